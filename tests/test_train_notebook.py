"""notebooks/01_train.ipynb runs under papermill (a few iterations) and writes its run folder."""

import json
from pathlib import Path

import nbformat
import papermill
import pytest

from irnlib.runtime.paths import REPO_ROOT

NOTEBOOK = REPO_ROOT / "notebooks" / "01_train.ipynb"


def test_notebook_is_committed_without_outputs_and_has_parameters():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for name in (
        "profile",
        "scale",
        "iterations",
        "batch_size",
        "patch_size",
        "data_root",
        "device",
        "run_name",
        "resume",
    ):
        assert f"{name} =" in tagged[0].source
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None


@pytest.mark.slow
def test_notebook_runs_under_papermill(tmp_path):
    out = tmp_path / "01_train.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK), str(out), cwd=str(NOTEBOOK.parent), kernel_name="python3", progress_bar=False,
        parameters={"iterations": 4, "runs_dir": str(tmp_path / "runs"), "run_name": "nb"},
    )  # fmt: skip
    run_dir = tmp_path / "runs" / "nb"
    assert (run_dir / "IRN_x4.pth").is_file() and (run_dir / "training_curves.png").is_file()
    assert json.loads((run_dir / "provenance.json").read_text())["status"] == "finished"
    text = Path(out).read_text()
    assert "reconstruction Y-PSNR" in text and "image/png" in text
