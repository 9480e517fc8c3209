"""The panel where people read about a model (irnlib.experiments.panel_card): the card's summary,
finding a model's panel on disk by its SHA-256, and what notebooks 02 and 04 show."""

import pandas as pd
import pytest
from conftest import randomize

from irnlib import IRN, save_model
from irnlib.experiments import panel as P
from irnlib.experiments import panel_card as PC
from irnlib.runtime.paths import sha256_file


def frame_of(rows):
    """A panel frame from (image, gap dB, worst block, lr_min, lr_max, z_max) rows, flags as panel_flags sets them."""
    records = []
    for image, gap, worst, lr_min, lr_max, z in rows:
        flags = P.panel_flags(30 + gap, 30.0, worst, 5.0, lr_min, lr_max, z)
        records.append(dict(image=image, scale=2, height=64, width=64, psnr_y_irn=30 + gap, psnr_y_bicubic=30.0,
                            psnr_gap_db=gap, worst_block_irn=worst, worst_block_bicubic=5.0, worst_block_top=0,
                            worst_block_left=0, lr_min=lr_min, lr_max=lr_max, z_max=z, seed=0, **flags))  # fmt: skip
    return pd.DataFrame(records, columns=P.PANEL_COLUMNS)


FRAME = frame_of([
    ("skimage/rocket", -1.8, 114.0, -5.86, 2.80, 201.2),
    ("grey/camera", 6.2, 6.0, -0.04, 1.11, 0.4),
    ("synthetic/text", 4.0, 12.0, 0.0, 1.0, 1.0),
])  # fmt: skip


def test_the_cards_summary_counts_each_goal_and_names_the_extremes():
    summary = PC.panel_card_summary(FRAME, max_side=640, seed=0)
    assert summary["goals"]["local_failure"] == {"goal": dict(P.GOALS)["local_failure"], "failing": 1,
                                                 "images": ["skimage/rocket"]}  # fmt: skip
    assert summary["goals"]["lr_out_of_range"]["images"] == ["skimage/rocket", "grey/camera"]
    assert summary["median_margin_db"] == pytest.approx(4.0)
    assert (summary["worst_margin_db"], summary["worst_margin_image"]) == (pytest.approx(-1.8), "skimage/rocket")
    assert (summary["z_max"], summary["lr_min"], summary["lr_max"]) == pytest.approx((201.2, -5.86, 2.80))
    assert summary["files"] == {"csv": "panel_x2.csv", "markdown": "panel_x2.md", "figure": "panel_x2_worst.png"}
    lines = "\n".join(PC.panel_card_lines({"scale": 2, "file": "IRN_x2.pth", "panel": summary}))
    assert "| no local failure" in lines and "| 1 of 3 | skimage/rocket |" in lines
    assert "largest |z| 201.2 (skimage/rocket)" in lines and "median +4.00 dB" in lines
    assert "Not measured" in "\n".join(PC.panel_card_lines({"scale": 2, "file": "IRN_x2.pth", "panel": None}))


def test_flagged_images_worst_block_first_with_their_flags():
    table = PC.flagged_images(FRAME)
    assert list(table["image"]) == ["skimage/rocket", "grey/camera"]  # synthetic/text has no flag
    assert table.loc[0, "flags"] == "below_bicubic, local_failure, latent_far, lr_out_of_range"
    assert table.loc[1, "flags"] == "lr_out_of_range"


@pytest.fixture
def model(tmp_path):
    path = save_model(randomize(IRN(2, block_num=[1]), seed=1).eval(), tmp_path / "model" / "IRN_x2.pth")
    return path


def _write(folder, checkpoint):
    return P.write_panel(FRAME, {}, folder, {"model": "m", "sha256": sha256_file(checkpoint), "max side": 640})


def test_a_panel_is_found_only_for_the_model_it_measured(tmp_path, model, monkeypatch):
    monkeypatch.setattr(P, "worst_crops_figure", lambda *a, **k: P.Figure())  # no crops in this frame
    monkeypatch.setenv("IRN_RESULTS", str(tmp_path / "results"))
    assert PC.find_panel(model, 2) is None and PC.find_panel(tmp_path / "missing.pth", 2) is None
    _write(tmp_path / "results" / "panel", model)  # in <results>/panel
    found = PC.find_panel(model, 2)
    assert found.csv == (tmp_path / "results" / "panel" / "panel_x2.csv").resolve()
    assert found.record["max side"] == "640" and list(found.frame()["image"]) == list(FRAME["image"])
    assert "| no local failure" in PC.panel_overview(found) and "**×2: m**" in PC.panel_overview(found)
    _write(model.parent, model)  # beside the model (its folder): preferred
    assert PC.find_panel(model, 2).csv == (model.parent / "panel_x2.csv").resolve()
    other = save_model(randomize(IRN(2, block_num=[1]), seed=2).eval(), tmp_path / "other" / "IRN_x2.pth")
    _write(other.parent, model)  # a page naming another model's SHA-256 does not count
    assert PC.find_panel(other, 2) is None
    assert "no panel measured" in PC.panel_hint(other, 2) and "--checkpoint" in PC.panel_hint(other, 2)
    assert "no trained weights" in PC.panel_hint(None, 2)


def test_notebook_panel_shows_measures_or_skips(tmp_path, model, monkeypatch):
    monkeypatch.setenv("IRN_RESULTS", str(tmp_path / "elsewhere"))
    monkeypatch.setattr(P, "panel_images", lambda *a, **k: {"synthetic/gradients": P._gradients(32)})
    assert PC.notebook_panel(model, 2, "skip") is None
    assert PC.notebook_panel(model, 2, "committed", results=tmp_path / "results") is None
    found = PC.notebook_panel(model, 2, "measure", results=tmp_path / "results")
    assert found.csv == (tmp_path / "results" / "panel" / "panel_x2.csv").resolve() and found.figure.is_file()
    assert PC.notebook_panel(model, 2, "committed", results=tmp_path / "results").csv == found.csv
    with pytest.raises(ValueError, match="use one of committed, measure, skip"):
        PC.notebook_panel(model, 2, "always")
