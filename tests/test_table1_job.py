"""The main job's Table 1 reports what it measured: no row for its own model at a scale it does not train."""

import re

import nbformat
import pandas as pd
import pytest

from irnlib.experiments import table1, table1_job
from irnlib.runtime.paths import REPO_ROOT


@pytest.fixture
def no_models(tmp_path, monkeypatch):
    """No trained run, no kit reference model: the table holds Bicubic & Bicubic and the profile's own row."""
    monkeypatch.setenv("IRN_RESULTS", str(tmp_path / "results"))
    monkeypatch.setattr(table1_job, "reference_weights", lambda scale: tmp_path / "none" / f"IRN_x{scale}.pth")
    return tmp_path


def _table1(tmp_path, scale, **kwargs):
    return table1_job.make_table1(
        scale, datasets=["embedded-test", "Urban100"], draws=1, root=tmp_path / "nodata", out_dir=tmp_path / "tables",
        progress=False, **kwargs,
    )  # fmt: skip


def test_the_main_job_leaves_out_its_own_model_at_a_scale_it_does_not_train(no_models, monkeypatch):
    monkeypatch.setenv("IRN_RUN_ID", "20261202T000000Z-abcdef")  # inside `irn reproduce`
    result = _table1(no_models, 2)
    written = pd.read_csv(result.csv_path)
    kit = written[written["source"] == "this kit"]
    assert list(dict.fromkeys(kit["row"])) == ["Bicubic & Bicubic (this kit)"]  # no "IRN (this kit)" row
    # an absent test set stays "not available": the user fetches it
    assert kit.loc[kit["dataset"] == "Urban100", "status"].eq(table1.NOT_AVAILABLE).all()
    md = result.markdown
    note = table1_job.left_out_note("smoke", 2)
    assert note.startswith("the smoke profile trains ×4 only; ×2 rows of this run's own model are left out")
    assert md.count(note) == 1 and "| Row (this kit)¹ | Param |" in md and f"1. {note}" in md
    assert "IRN (this kit)" not in md and "01_train.ipynb out.ipynb -p profile smoke -p scale 2" in md
    assert md.count(table1.NOT_AVAILABLE) == 1  # Bicubic on Urban100, nothing else
    assert result.provenance["reference_model"] == "none"


def test_a_missing_model_at_a_scale_the_main_job_trains_stays_not_available(no_models):
    result = _table1(no_models, 4, main_job=True)  # notebook 01 should have made it: a finding, shown
    irn = result.table[(result.table["source"] == "this kit") & (result.table["row"] == "IRN (this kit)")]
    assert len(irn) == 2 and irn["status"].eq(table1.NOT_AVAILABLE).all() and "01_train.ipynb" in irn["note"].iloc[0]
    assert "left out" not in result.markdown


def test_outside_the_main_job_a_missing_model_says_how_to_train_it(no_models, monkeypatch):
    monkeypatch.delenv("IRN_RUN_ID", raising=False)
    result = _table1(no_models, 2)
    irn = result.table[(result.table["source"] == "this kit") & (result.table["row"] == "IRN (this kit)")]
    assert irn["status"].eq(table1.NOT_AVAILABLE).all() and "-p scale 2" in irn["note"].iloc[0]
    assert "left out" not in result.markdown


def test_official_checkpoints_the_user_fetches_stay_not_available(no_models, monkeypatch):
    official = no_models / "pretrained" / "IRN_x2.pth"  # absent
    monkeypatch.setattr(table1_job, "choose_weights", lambda purpose, scale, profile=None: official)
    result = _table1(no_models, 2, profile="paper", main_job=True)
    irn = result.table[(result.table["source"] == "this kit") & (result.table["row"] == "IRN (this kit)")]
    assert irn["status"].eq(table1.NOT_AVAILABLE).all() and "data/pretrained" in irn["note"].iloc[0]
    assert "left out" not in result.markdown


def test_the_main_job_scales_are_those_notebook_01_trains():
    """The pipeline passes only `profile` to notebook 01, which then trains at its default `scale`."""
    notebook = nbformat.read(REPO_ROOT / "notebooks" / "01_train.ipynb", as_version=4)
    parameters = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    scale = int(re.search(r"^scale = (\d+)", parameters.source, re.M).group(1))
    assert table1_job.MAIN_JOB_SCALES == (scale,)
