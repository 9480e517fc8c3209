"""Table 1 under faults (issue 14, item 9): a checkpoint the user named must exist."""

import papermill
import pytest

from irnlib.app.pipeline import NOTEBOOK_DIR
from irnlib.experiments.table1_job import make_table1


def test_make_table1_refuses_a_named_checkpoint_that_does_not_exist(tmp_path):
    missing = tmp_path / "IRN_x4_typo.pth"
    with pytest.raises(FileNotFoundError, match=f"checkpoint {missing} not found: correct the path"):
        make_table1(4, profile="smoke", checkpoint=missing, out_dir=tmp_path / "tables")
    assert not (tmp_path / "tables").exists()  # refused before any work


def test_notebook_02_fails_on_a_named_checkpoint_that_does_not_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("IRN_RESULTS", str(tmp_path / "results"))
    missing = tmp_path / "IRN_x4_typo.pth"
    with pytest.raises(
        papermill.PapermillExecutionError, match="checkpoints given but not found: x4: .*IRN_x4_typo.pth"
    ):
        papermill.execute_notebook(str(NOTEBOOK_DIR / "02_results_tables.ipynb"), str(tmp_path / "02.ipynb"),
                                   parameters={"profile": "smoke", "scales": [4], "checkpoints": {"4": str(missing)}},
                                   cwd=str(NOTEBOOK_DIR), progress_bar=False)  # fmt: skip
    assert not (tmp_path / "results" / "tables").exists()
