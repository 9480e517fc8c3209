"""The grid-pattern check: the s × s pattern of a model's mean reconstruction error."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import randomize

from irnlib.experiments import grid_pattern as gp
from irnlib.imaging.metrics import psnr, rgb_to_y
from irnlib.model.network import IRN


def test_the_grid_is_the_mean_at_each_position_less_their_mean():
    pattern = np.arange(16, dtype=float).reshape(4, 4)
    slope = 0.1
    ramp = slope * np.arange(32)[:, None] + np.zeros((32, 48))  # an error that grows down the rows
    error = np.tile(pattern, (8, 12)) + 7.0
    np.testing.assert_allclose(gp.grid_of(error, 4), pattern - pattern.mean())
    # a smooth error's slope within a cell is part of the grid: small for a slope of 0.1 a pixel
    np.testing.assert_allclose(gp.grid_of(ramp, 4), slope * (np.arange(4)[:, None] - 1.5) + np.zeros((4, 4)))
    with pytest.raises(ValueError, match="30×48 must be multiples of the scale 4"):
        gp.grid_of(error[:30], 4)


class _Patterned:
    """A stand-in model: its scale and the fixed 2 × 2 pattern the test's upscaling adds."""

    scale = 2

    def __init__(self, pattern: np.ndarray):
        self.pattern = pattern


def test_a_known_pattern_is_found_and_removing_it_restores_the_image(monkeypatch):
    rng = np.random.default_rng(0)
    hr = (np.linspace(40, 200, 64)[:, None, None] + np.zeros((64, 64, 3))).astype(np.uint8)  # a grey ramp
    pattern = np.array([[3.0, -3.0], [-1.0, 1.0]])  # levels of 255, the same in R, G and B
    model = _Patterned(pattern)

    def upscale(net, lr, generator=None):
        noise = rng.normal(0, 0.3, hr.shape)  # each draw's own, small
        sr = hr + np.tile(net.pattern, (32, 32))[..., None] + noise
        return torch.from_numpy(sr / 255).permute(2, 0, 1)[None]

    monkeypatch.setattr(gp, "downscale", lambda net, x: x)
    monkeypatch.setattr(gp, "upscale", upscale)
    row = gp.measure_grid(model, "ramp", hr, draws=3)
    assert list(row) == gp.COLUMNS
    luma = rgb_to_y(np.full((1, 1, 3), 1.0))[0, 0] - 16  # one level in R, G and B is this much luma
    found = np.array([float(v) for v in row["pattern"].split()]).reshape(2, 2)
    np.testing.assert_allclose(found, pattern * luma, atol=0.05)
    assert row["pattern_rms"] == pytest.approx(np.sqrt(np.mean((pattern * luma) ** 2)), abs=0.05)
    sr = np.clip(np.round(hr + np.tile(pattern, (32, 32))[..., None]), 0, 255).astype(np.uint8)
    assert row["psnr_y"] == pytest.approx(psnr(sr, hr, border=2), abs=0.5)  # the pattern is the error
    assert row["psnr_y_pattern_removed"] > row["psnr_y"] + 10  # without it only the rounding is left


def test_command_writes_a_row_per_model_and_image(tmp_path):
    net = randomize(IRN(2, block_num=[2]), seed=0).eval()
    weights = tmp_path / "IRN_x2.pth"
    torch.save(net.state_dict(), weights)
    out, csv = tmp_path / "grid.md", tmp_path / "grid.csv"
    gp.main([str(weights), "--draws", "1", "--out", str(out), "--csv", str(csv)])
    frame = pd.read_csv(csv)
    assert list(frame["image"]) == ["skimage/colorwheel", "synthetic/gradients"]
    assert list(frame.columns) == ["model", "sha256", *gp.COLUMNS]
    assert all(len(p.split()) == 4 for p in frame["pattern"])
    text = out.read_text()
    assert "# The reconstruction's s × s pattern" in text and "mean of 1)" in text
    with pytest.raises(SystemExit):
        gp.main([str(weights), "--draws", "0"])
