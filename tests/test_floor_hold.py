"""The floor-and-hold check: the panel's smooth images against bicubic, a saturated photograph's LR."""

import pandas as pd
import pytest
import skimage.data
import torch
from conftest import randomize

from irnlib.experiments import floor_hold as fh
from irnlib.experiments.panel import measure_image, panel_images
from irnlib.experiments.saturation_stress import saturate
from irnlib.model.network import IRN


@pytest.fixture(scope="module")
def net():
    return randomize(IRN(2, block_num=[2]), seed=0).eval()


def test_the_floor_is_the_panel_margin_averaged_over_draws_and_the_hold_the_lr_minimum(net):
    row = fh.floor_and_hold(net, draws=2, gains=(1.0, 3.0))
    assert list(row) == ["colorwheel_gap_db", "gradients_gap_db", "colorwheel_lr_max", "gradients_lr_max",
                         "coffee_lr_min_x1", "coffee_lr_min_x3"]  # fmt: skip
    wheel = panel_images()["skimage/colorwheel"]
    measured = [measure_image(net, "w", wheel, seed=seed)[0] for seed in (0, 1)]
    assert measured[0]["psnr_gap_db"] != measured[1]["psnr_gap_db"]  # the draws differ, so averaging them is seen
    assert row["colorwheel_gap_db"] == pytest.approx((measured[0]["psnr_gap_db"] + measured[1]["psnr_gap_db"]) / 2)
    assert row["colorwheel_lr_max"] == measured[0]["lr_max"] == measured[1]["lr_max"]
    coffee = saturate(skimage.data.coffee(), 3.0)
    assert row["coffee_lr_min_x3"] == measure_image(net, "c", coffee)[0]["lr_min"]
    with pytest.raises(ValueError, match="draws must be at least 1, got 0"):
        fh.floor_and_hold(net, draws=0)


def test_command_writes_a_row_per_model(tmp_path, net):
    weights = tmp_path / "IRN_x2.pth"
    torch.save(net.state_dict(), weights)
    out, csv = tmp_path / "floor.md", tmp_path / "floor.csv"
    fh.main([str(weights), str(weights), "--draws", "1", "--out", str(out), "--csv", str(csv)])
    frame = pd.read_csv(csv)
    assert len(frame) == 2 and frame.iloc[0].drop("model").equals(frame.iloc[1].drop("model"))
    assert list(frame.columns[2:4]) == ["colorwheel_gap_db", "gradients_gap_db"]
    text = out.read_text()
    assert "# Floor and hold" in text and "mean of 1 draw of z" in text
    assert sum(line.startswith("| `") and "IRN_x2.pth" in line for line in text.splitlines()) == 2
