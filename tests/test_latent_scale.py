"""The latent-scale measurement (issue 29): Y-PSNR against the temperature of z, per checkpoint."""

import pandas as pd
import pytest
import torch

from irnlib.experiments import latent_scale as L
from irnlib.model.checkpoint import save_model
from irnlib.model.network import IRN


@pytest.fixture
def tiny_checkpoint(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "IRN_x2.pth"
    save_model(IRN(2, [1]), path)
    return path


def test_a_curve_per_checkpoint_and_temperature_and_its_gap(tiny_checkpoint):
    curve = L.temperature_curve([("tiny", 3, tiny_checkpoint)], "embedded-test", (0.0, 1.0), draws=1, progress=False)
    assert list(curve["temperature"]) == [0.0, 1.0] and (curve["iterations"] == 3).all()
    assert curve["psnr_y"].between(5, 60).all() and curve["bicubic_psnr_y"].between(20, 40).all()
    gaps = L.latent_gaps(curve)
    at = curve.set_index("temperature")["psnr_y"]
    assert gaps.loc[0, "gap_db"] == pytest.approx(at[1.0] - at[0.0])
    assert gaps.loc[0, "best_temperature"] == at.idxmax()


def test_latent_use_matches_the_curve_at_t1_and_t0_and_reads_the_own_latent(tiny_checkpoint):
    curve = L.temperature_curve([("tiny", 3, tiny_checkpoint)], "embedded-test", (0.0, 1.0), draws=1, progress=False)
    use = L.latent_use([("tiny", 3, tiny_checkpoint)], "embedded-test", progress=False)
    at = curve.set_index("temperature")["psnr_y"]
    row = use.iloc[0]
    assert row["psnr_y_drawn_z"] == pytest.approx(at[1.0], abs=1e-9)  # the protocol's first draw
    assert row["psnr_y_zero_z"] == pytest.approx(at[0.0], abs=1e-9)
    # an invertible network given its own latent loses only the LR's 8-bit rounding
    assert row["psnr_y_own_z"] > max(at[0.0], at[1.0]) and row["z_rms"] > 0 and row["z_abs_max"] >= row["z_rms"]
    assert row["images"] == 3 and row["bicubic_psnr_y"] == pytest.approx(curve["bicubic_psnr_y"].iloc[0])
    page = L.latent_use_markdown(use, {"commit": "abc"})
    assert f"| tiny | ×2 | 3 | {row['z_rms']:.3g} |" in page and "- commit: abc" in page


def test_gaps_are_ordered_by_training_length_and_rendered():
    curve = pd.DataFrame(
        [dict(label=lab, iterations=it, scale=2, dataset="Set5", temperature=t, psnr_y=p, bicubic_psnr_y=33.7)
         for lab, it, t, p in [("long", 900, 0.0, 35.0), ("long", 900, 1.0, 37.0),
                               ("short", 100, 0.0, 20.0), ("short", 100, 1.0, 36.0)]]
    )  # fmt: skip
    gaps = L.latent_gaps(curve)
    assert list(gaps["label"]) == ["short", "long"] and list(gaps["gap_db"]) == [16.0, 2.0]
    page = L.latent_markdown(gaps, {"commit": "abc"})
    assert "| short | ×2 | 100 | 36.00 | 20.00 | +16.00 | 1 | 36.00 | 33.70 |" in page
    assert L.latent_figure(curve.assign(checkpoint="x")) is not None


def test_a_malformed_checkpoint_argument_is_one_line(capsys):
    with pytest.raises(SystemExit):
        L.main(["--checkpoint", "no-iterations.pth"])
    assert "use LABEL=ITERATIONS=PATH" in capsys.readouterr().err


def test_the_command_writes_the_curve_the_page_and_the_figure(tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    L.main(
        ["--checkpoint", f"tiny=3={tiny_checkpoint}", "--dataset", "embedded-test", "--draws", "1", "--out", str(out)]
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "latent_scale_x2.csv", "latent_scale_x2.md", "latent_scale_x2.png", "latent_use_x2.csv", "latent_use_x2.md",
    ]  # fmt: skip
    assert len(pd.read_csv(out / "latent_scale_x2.csv")) == len(L.TEMPERATURES)
    assert list(pd.read_csv(out / "latent_use_x2.csv")["label"]) == ["tiny"]
    command = "- command: python -m irnlib.experiments.latent_scale --checkpoint tiny=3="  # rerunnable from the page
    assert command in (out / "latent_scale_x2.md").read_text() and command in (out / "latent_use_x2.md").read_text()
