"""The main job end to end: `python -m irnlib reproduce` (smoke profile, embedded data) in a
fresh process, its tables and figures, every notebook executed as committed; then nbval (lax
mode) on the notebooks that can reuse the pipeline's work.

Both run with IRN_DATA unset, as on a fresh machine, and write to a temporary results folder
(never into the repository's results/). They take several minutes together.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import papermill
import pytest
from papermill.translators import PythonTranslator, translate_parameters

from irnlib.app.pipeline import notebooks
from irnlib.imaging.images import load_image
from irnlib.protocol.weights import reference_weights
from irnlib.runtime.paths import REPO_ROOT

pytestmark = pytest.mark.slow

NOTEBOOKS = [p.name for p in notebooks()]


def _fresh_env(results) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IRN_")}
    env["IRN_RESULTS"] = str(results)
    return env


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The whole pipeline, as `make reproduce` runs it, into a temporary results folder."""
    results = tmp_path_factory.mktemp("results")
    proc = subprocess.run(
        [sys.executable, "-m", "irnlib", "reproduce", "--profile", "smoke", "--results", str(results)],
        env=_fresh_env(results), cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return results, proc.stdout, json.loads((results / "RUN.json").read_text())


def test_every_notebook_ran_in_order_and_the_summary_says_what_was_written(smoke_run):
    results, stdout, record = smoke_run
    assert NOTEBOOKS == ["00_data_preparation.ipynb", "01_train.ipynb", "02_results_tables.ipynb",
                         "03_ablations.ipynb", "04_explore.ipynb"]  # fmt: skip
    assert record["status"] == "complete" and record["profile"] == "smoke"
    assert [n["notebook"] for n in record["notebooks"]] == NOTEBOOKS
    for name in NOTEBOOKS:
        assert (results / "executed" / name).is_file()
    assert "Pipeline complete" in stdout
    for name in ("tables/table1_x4.md", "tables/ablations.md", "figures/ablations.png"):
        assert name in stdout and name in record["outputs"]


def test_tables_parse_carry_the_run_id_and_hold_measured_values_in_range(smoke_run):
    results, _, record = smoke_run
    run_id = record["run_id"]
    tables = results / "tables"
    for scale in (2, 4):
        table = pd.read_csv(tables / f"table1_x{scale}.csv")
        assert (table["run_id"] == run_id).all()
        assert run_id in (tables / f"table1_x{scale}.md").read_text()
        kit = table[(table["source"] == "this kit") & (table["status"] == "measured")]
        bicubic = kit[kit["paper_row"] == "Bicubic & Bicubic"]
        assert set(bicubic["dataset"]) == {"embedded-test"}
        # MATLAB bicubic down and up on the scikit-image photographs: between 22 and 36 dB.
        assert bicubic["psnr"].between(22, 36).all() and bicubic["ssim"].between(0.6, 1).all()
        paper = table[table["source"] == "paper"]
        assert (paper["status"] == "printed").any() and paper["psnr"].notna().any()  # the paper's, as printed
    x4 = pd.read_csv(tables / "table1_x4.csv")
    measured = x4[(x4["source"] == "this kit") & (x4["paper_row"] == "IRN (ours)") & (x4["status"] == "measured")]
    reference4 = measured["row"].str.startswith("IRN (kit reference")
    assert reference4.sum() == int(reference_weights(4).is_file())
    irn = measured[~reference4]
    assert len(irn) == 1 and "60 iterations" in irn["training"].iloc[0]  # notebook 01's smoke model
    bicubic4 = x4[(x4["source"] == "this kit") & (x4["paper_row"] == "Bicubic & Bicubic")]["psnr"].item()
    assert (measured[reference4]["psnr"] > bicubic4).all()  # the kit's trained x4 beats bicubic
    # 60 smoke steps: it has learnt something (an untrained IRN gives ~9 dB), far from bicubic yet
    assert irn["psnr"].between(13, 40).all() and irn["ssim"].between(0.2, 1).all()
    assert irn["lr_psnr_y"].between(13, 50).all()
    x2 = pd.read_csv(tables / "table1_x2.csv")  # the smoke profile trains x4 only
    x2_irn = x2[(x2["source"] == "this kit") & (x2["paper_row"] == "IRN (ours)")]
    reference = x2_irn["row"].str.startswith("IRN (kit reference")
    assert (~reference).sum() == 0  # this run's own x2 model does not exist: its row is left out, not "not available"
    assert "×2 rows of this run's own model are left out" in (tables / "table1_x2.md").read_text()
    # The committed kit reference model (models/kit_reference_x2) has its own, measured row.
    assert x2_irn[reference]["status"].eq("measured").all() and reference.sum() == int(reference_weights(2).is_file())
    assert x2_irn[reference]["psnr"].between(20, 45).all()

    ablations = pd.read_csv(tables / "ablations.csv")
    assert (ablations["run_id"] == run_id).all()
    assert ablations["psnr_y"].between(5, 50).all() and ablations["ssim_y"].between(-1, 1).all()
    by_row = ablations.set_index(["variant", "condition"])
    bicubic = by_row.loc[("Bicubic & Bicubic", "z ~ N(0, 1)"), "psnr_y"]
    assert 28 < bicubic < 36  # x2 on 160² crops
    assert 5 < by_row.loc[("IRN (full)", "z ~ N(0, 1)"), "psnr_y"] < 40  # 30 iterations: far from the paper
    trained = {"IRN (full)", "without L_forw", "without L_back", "without L_distr", "learned 1x1 downsampling",
               "2 InvBlocks per level", "4 InvBlocks per level"}  # fmt: skip
    assert (ablations.loc[ablations["variant"].isin(trained), "seeds"] == 2).all()
    # The latent and JPEG conditions are measured on the committed kit reference model (x2).
    model = ablations[ablations["group"] == "model"]
    assert set(ablations["variant"]) == trained | {"Bicubic & Bicubic"} | set(model["variant"])
    if reference_weights(2).is_file():
        assert len(set(model["variant"])) == 1 and model["variant"].iloc[0].startswith("IRN (kit reference")
        conditions = model.set_index("condition")
        assert conditions.loc["z = 0", "psnr_y_std"] == 0 and conditions.loc["z ~ N(0, 1)", "psnr_y_std"] > 0
        assert conditions.loc["z ~ N(0, 1)", "psnr_y"] > bicubic  # the kit's model beats bicubic here
    ordering = pd.read_csv(tables / "ablation_ordering.csv")
    assert len(ordering) == 6 and ordering["holds"].str.endswith("of 2").all()
    page = (tables / "ablations.md").read_text()
    assert "SMOKE RUN" in page and "Does the paper's ordering hold at this budget?" in page


def test_figures_are_real_images(smoke_run):
    results, _, record = smoke_run
    figures = [results / p for p in record["outputs"] if p.startswith("figures/")]
    assert len(figures) >= 4
    for path in figures:
        img = load_image(path)
        assert min(img.shape[:2]) > 100 and np.ptp(img) > 0, path


def _code_sources(notebook: dict) -> list[str]:
    return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]


def test_the_pipeline_executed_every_notebook_as_committed(smoke_run):
    """Papermill's only change is its injected-parameters cell, which sets each notebook's committed
    defaults again: the pipeline's run is the committed notebooks' run (so nbval below need not
    repeat the evaluation-heavy notebooks)."""
    results, _, record = smoke_run
    for name in NOTEBOOKS:
        committed = json.loads((REPO_ROOT / "notebooks" / name).read_text())
        executed = json.loads((results / "executed" / name).read_text())
        injected = [c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
        assert len(injected) == 1, name
        executed["cells"].remove(injected[0])
        assert _code_sources(executed) == _code_sources(committed), name
        # papermill's own writing of the one parameter, and its own reading of the committed default
        injected_source = translate_parameters("python3", "python", {"profile": record["profile"]})
        assert "".join(injected[0]["source"]) == injected_source, name
        default = papermill.inspect_notebook(str(REPO_ROOT / "notebooks" / name))["profile"]["default"]
        assert default == PythonTranslator.translate(record["profile"]), name


# 02 and 03 evaluate many models (minutes); the test above shows the pipeline ran them as committed.
NBVAL_NOTEBOOKS = ["00_data_preparation.ipynb", "01_train.ipynb", "04_explore.ipynb"]


def test_nbval_executes_the_notebooks_that_reuse_the_pipelines_work(smoke_run, tmp_path):
    """`pytest --nbval-lax notebooks/...`: notebooks as committed (smoke defaults), in a kernel.

    The trained smoke run is copied over, so notebook 01 resumes the finished run instead of
    training again (the pipeline test above has just trained it).
    """
    results = tmp_path / "results"
    shutil.copytree(smoke_run[0] / "runs", results / "runs")
    log = results / "runs" / "smoke_x4" / "train_log.csv"
    trained = log.read_bytes()
    paths = [f"notebooks/{name}" for name in NBVAL_NOTEBOOKS]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-v", *paths],
        env=_fresh_env(results), cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-5000:]
    for name in NBVAL_NOTEBOOKS:  # nbval names items "notebooks/01_train::ipynb::Cell 3"
        assert f"notebooks/{name.removesuffix('.ipynb')}::ipynb::Cell" in proc.stdout
    assert "failed" not in proc.stdout.splitlines()[-1] and "passed" in proc.stdout.splitlines()[-1]
    assert log.read_bytes() == trained  # resumed the finished run: not one step more
