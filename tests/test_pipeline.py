"""The pipeline runner: order, parameters, run id, failure reporting (on small real notebooks)."""

import json
import os

import nbformat
import pytest

from irnlib.app.pipeline import PipelineError, reproduce


def _notebook(path, *cells):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("profile = 'smoke'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def pipeline(tmp_path, monkeypatch):
    monkeypatch.delenv("IRN_RUN_ID", raising=False)
    monkeypatch.delenv("IRN_RESULTS", raising=False)
    book = tmp_path / "notebooks"
    book.mkdir()
    write_table = (
        "import os, pathlib\n"
        "t = pathlib.Path(os.environ['IRN_RESULTS']) / 'tables' / 'order.md'\n"
        "t.parent.mkdir(exist_ok=True)\n"
        "t.write_text((t.read_text() if t.exists() else '') + f'{NAME} {profile} {os.environ[\"IRN_RUN_ID\"]}\\n')"
    )
    _notebook(book / "00_first.ipynb", "NAME = 'first'", write_table)
    _notebook(book / "01_second.ipynb", "NAME = 'second'", write_table)
    _notebook(book / "README_not_a_step.ipynb", "raise SystemExit('must not run')")
    return book, tmp_path / "results"


def test_runs_in_order_with_the_profile_and_records_the_run(pipeline, capsys):
    book, results = pipeline
    runs = reproduce("paper", notebook_dir=book, results=results)
    assert "IRN_RUN_ID" not in os.environ and "IRN_RESULTS" not in os.environ  # restored
    assert [r.notebook for r in runs] == ["00_first.ipynb", "01_second.ipynb"]
    record = json.loads((results / "RUN.json").read_text())
    assert record["status"] == "complete" and record["profile"] == "paper"
    assert record["commit"] and record["date"] and record["device"].startswith("CPU")  # provenance
    assert [n["executed"] for n in record["notebooks"]] == ["executed/00_first.ipynb", "executed/01_second.ipynb"]
    lines = (results / "tables" / "order.md").read_text().splitlines()
    assert lines == [f"first paper {record['run_id']}", f"second paper {record['run_id']}"]
    assert (results / "executed" / "01_second.ipynb").is_file()
    out = capsys.readouterr().out
    assert "Pipeline complete" in out and "tables/order.md" in out


def test_failure_names_notebook_and_cell_and_keeps_the_executed_copy(pipeline):
    book, results = pipeline
    _notebook(book / "00_first.ipynb", "x = 1", "raise ValueError('bad input file data/x.png')")
    # In [4]: the parameters cell, papermill's injected parameters, "x = 1", then the failure.
    with pytest.raises(
        PipelineError, match=r"00_first.ipynb failed in cell In \[4\] `raise ValueError.*`: ValueError: bad input file"
    ):
        reproduce("smoke", notebook_dir=book, results=results)
    record = json.loads((results / "RUN.json").read_text())
    assert record["status"] == "failed" and "00_first.ipynb" in record["error"]
    executed = nbformat.read(results / "executed" / "00_first.ipynb", as_version=4)
    assert any(o.get("ename") == "ValueError" for c in executed.cells for o in c.get("outputs", []))
    assert not (results / "executed" / "01_second.ipynb").exists()  # later notebooks did not run


def test_unknown_profile_is_refused(pipeline):
    with pytest.raises(ValueError, match="profile"):
        reproduce("fast", notebook_dir=pipeline[0], results=pipeline[1])
