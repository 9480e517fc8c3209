"""The latent-sensitivity measure: crops of test images moved by at most eps per value."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import randomize

from irnlib.experiments import latent_sensitivity as ls
from irnlib.model.network import IRN


def _net(seed=0):
    torch.manual_seed(seed)
    return randomize(IRN(2, block_num=[2]), seed=seed).eval()


def test_crops_are_seeded_squares_of_the_test_images():
    crops = ls.sample_crops(["embedded-test"], 2, count=4, size=32, seed=1)
    assert crops.shape == (4, 32, 32, 3) and crops.dtype == np.uint8
    np.testing.assert_array_equal(crops, ls.sample_crops(["embedded-test"], 2, count=4, size=32, seed=1))
    assert not np.array_equal(crops, ls.sample_crops(["embedded-test"], 2, count=4, size=32, seed=2))
    with pytest.raises(ValueError, match="smaller than the crop"):
        ls.sample_crops(["embedded-test"], 2, count=1, size=100_000)


def test_the_ascent_stays_within_eps_and_raises_the_latent():
    net = _net()
    crops = ls.sample_crops(["embedded-test"], 2, count=3, size=32)
    frame = ls.latent_sensitivity(net, crops, eps=4 / 255, steps=3)
    assert list(frame.columns) == ["z_crop", "z_moved", "lr_min_moved", "lr_max_moved"] and len(frame) == 3
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        z = net(x)[:, 3:].abs().flatten(1).amax(1).numpy()
    np.testing.assert_allclose(frame["z_crop"], z, rtol=1e-6)
    assert (frame["z_moved"] > frame["z_crop"]).all()  # moved up the gradient of the largest |z|
    # A bound far below one 8-bit level moves nothing measurable.
    still = ls.latent_sensitivity(net, crops, eps=1e-7, steps=3)
    np.testing.assert_allclose(still["z_moved"], still["z_crop"], rtol=1e-3)
    # The network is left trainable, as it came.
    assert all(p.requires_grad for p in net.parameters())


def test_summary_counts_crops_past_the_limits():
    frame = pd.DataFrame(
        {"z_crop": [0.5, 1.0, 2.0], "z_moved": [3.0, 9.0, 100.0], "lr_min_moved": [0.0, -0.5, 0.0],
         "lr_max_moved": [1.0, 1.0, 1.2]}
    )  # fmt: skip
    s = ls.sensitivity_summary(frame)
    assert s == {"z_crop_max": 2.0, "z_moved_median": 9.0, "z_moved_max": 100.0, "crops_z_over_limit": 2,
                 "crops_lr_out_of_range": 2, "crops": 3}  # fmt: skip


def test_command_writes_one_row_per_model(tmp_path):
    weights = tmp_path / "IRN_x2.pth"
    torch.save(_net().state_dict(), weights)
    out = tmp_path / "sensitivity.md"
    ls.main([str(weights), "--datasets", "embedded-test", "--crops", "2", "--size", "32", "--steps", "1",
             "--out", str(out)])  # fmt: skip
    text = out.read_text()
    assert "# Latent sensitivity, ×2" in text and "2 crops of 32² from embedded-test" in text
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == 1 and "IRN_x2.pth" in rows[0] and rows[0].endswith("| 0/2 | 0/2 |")


def test_without_set14_and_bsd100_the_crops_come_from_embedded_test_and_it_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IRN_DATA", str(tmp_path))
    assert ls.crop_datasets() == ["embedded-test"]
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "embedded-test" in err and "IRN_DATA" in err and len(err.splitlines()) == 1
