"""irnlib.protocol.summary: the one summary over draws of z (mean, range, standard deviation), each named
for what it holds."""

import numpy as np
import pandas as pd
import pytest

from irnlib.protocol.summary import TABLE1_KEYS, summarize_draws


def _per_image(by_draw: dict[int, tuple[float, float]], **keys) -> list[dict]:
    """Two images per draw: ``draw -> (psnr of image a, psnr of image b)``."""
    rows = []
    for draw, values in by_draw.items():
        for image, value in zip(("a", "b"), values):
            rows.append(dict(dataset="d", image=image, method="irn", scale=2, draw=draw, checkpoint="c",
                             psnr_y=value, ssim_y=value / 100, psnr_rgb=value - 1, lr_psnr_y=40.0,
                             lr_ssim_y=0.9, **keys))  # fmt: skip
    return rows


def test_mean_range_and_std_over_draws_of_the_image_average():
    # image averages per draw: 30, 31, 33 -> mean 31.333, range 3, std (ddof=0) sqrt(14/9)
    frame = pd.DataFrame(_per_image({0: (29.0, 31.0), 1: (30.0, 32.0), 2: (33.0, 33.0)}))
    s = summarize_draws(frame).iloc[0]
    assert s["psnr_y"] == pytest.approx(94 / 3)
    assert s["psnr_y_range"] == pytest.approx(3.0)
    assert s["psnr_y_std"] == pytest.approx(np.std([30.0, 31.0, 33.0]))
    assert s["ssim_y_range"] == pytest.approx(0.03) and s["ssim_y_std"] == pytest.approx(np.std([0.30, 0.31, 0.33]))
    assert s["psnr_rgb"] == pytest.approx(94 / 3 - 1) and s["lr_psnr_y"] == 40.0
    assert s["draws"] == 3 and s["images"] == 2
    assert "psnr_y_spread" not in s.index and not any("spread" in c for c in s.index)
    assert s["temperature"] == 1.0  # a CSV without the column: the paper's temperature


def test_one_draw_has_no_range_and_no_std():
    s = summarize_draws(pd.DataFrame(_per_image({0: (29.0, 31.0)}))).iloc[0]
    assert s["psnr_y"] == 30.0 and s["psnr_y_range"] == 0.0 and s["psnr_y_std"] == 0.0 and s["draws"] == 1


def test_groups_keep_their_order_and_an_empty_key_is_a_group():
    rows = _per_image({0: (10.0, 10.0), 1: (12.0, 12.0)}, train_seed=1.0)
    rows += _per_image({0: (20.0, 20.0)}, train_seed=0.0)
    rows += _per_image({0: (30.0, 30.0)}, train_seed=np.nan)  # a model the study did not train
    out = summarize_draws(
        pd.DataFrame(rows), keys=["dataset", "train_seed"], metrics=["psnr_y"], draw_metrics=["psnr_y"]
    )
    assert list(out["psnr_y"]) == [11.0, 20.0, 30.0] and out["train_seed"].isna().tolist() == [False, False, True]
    assert list(out["psnr_y_std"]) == [1.0, 0.0, 0.0] and list(out["psnr_y_range"]) == [2.0, 0.0, 0.0]
    assert list(out.columns) == ["dataset", "train_seed", "psnr_y", "psnr_y_range", "psnr_y_std", "draws", "images"]


def test_table1_keys_fill_an_empty_checkpoint_and_temperature():
    rows = _per_image({0: (29.0, 31.0)}, temperature=np.nan)
    for row in rows:
        row["checkpoint"] = np.nan
    out = summarize_draws(pd.DataFrame(rows))
    assert list(out.columns[: len(TABLE1_KEYS)]) == list(TABLE1_KEYS)
    assert out["checkpoint"].iloc[0] == "" and out["temperature"].iloc[0] == 1.0
