"""The saturation stress test: photographs with their chroma scaled about their luma."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import randomize

from irnlib.experiments import saturation_stress as ss
from irnlib.model.network import IRN


def test_gain_one_keeps_the_image_and_grey_stays_grey():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert np.array_equal(ss.saturate(img, 1.0), img)
    grey = np.repeat(rng.integers(0, 256, (8, 8, 1), dtype=np.uint8), 3, axis=2)
    assert np.array_equal(ss.saturate(grey, 3.0), grey)


def test_gain_two_doubles_the_distance_from_grey_until_it_clips():
    img = np.array([[[150, 100, 100]]], dtype=np.uint8)
    luma = 0.299 * 150 + 0.587 * 100 + 0.114 * 100  # BT.601: 114.95
    out = ss.saturate(img, 2.0)[0, 0].astype(float)
    assert np.allclose(out, np.round(luma + 2 * (img[0, 0] - luma)), atol=0)
    assert ss.saturate(np.array([[[250, 10, 10]]], dtype=np.uint8), 3.0)[0, 0].tolist() == [255, 0, 0]


def test_saturate_refuses_what_is_not_8_bit_rgb():
    with pytest.raises(ValueError, match="uint8 \\(H, W, 3\\)"):
        ss.saturate(np.zeros((4, 4), np.uint8), 2.0)


def test_command_writes_a_row_per_photograph_and_gain(tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "IRN_x2.pth"
    torch.save(randomize(IRN(2, block_num=[2]), seed=0).state_dict(), weights)
    out, csv = tmp_path / "stress.md", tmp_path / "stress.csv"
    ss.main([str(weights), "--photographs", "chelsea", "--gains", "1", "2", "--out", str(out), "--csv", str(csv)])
    text = out.read_text()
    assert "# Saturation stress" in text and "IRN_x2.pth" in text
    assert [line.split("|")[1:3] for line in text.splitlines() if line.startswith("| chelsea")] == [
        [" chelsea ", " 1 "], [" chelsea ", " 2 "]]  # fmt: skip
    frame = pd.read_csv(csv)
    assert frame["gain"].tolist() == [1.0, 2.0] and frame["photograph"].tolist() == ["chelsea", "chelsea"]
    assert frame[["lr_min", "lr_max", "z_max", "psnr_gap_db"]].notna().all().all()


def test_the_card_section_bolds_flagged_cells_and_is_absent_from_older_cards():
    cell = dict(lr_min=-0.02, lr_max=1.0, z_max=0.8, psnr_gap_db=1.5, flagged=False)
    entry = {
        "file": "saturation_x4.csv", "gains": [1.0, 2.0], "photographs": ["coffee"], "flagged": ["coffee ×2"],
        "cells": [{**cell, "photograph": "coffee", "gain": 1.0},
                  {**cell, "photograph": "coffee", "gain": 2.0, "lr_min": -0.71, "flagged": True}],
    }  # fmt: skip
    lines = ss.saturation_card_lines({"saturation": entry})
    assert "| coffee | -0.02 … 1.00, 0.8, +1.50 | **-0.71 … 1.00, 0.8, +1.50** |" in lines
    assert any("Flagged: 1 of 2 (coffee ×2)" in line for line in lines)
    assert ss.saturation_card_lines({}) == [] and ss.saturation_card_lines({"saturation": None}) == []
