"""The main job: the ordered notebooks executed by papermill with one profile for all.

``reproduce()`` runs ``notebooks/00_*.ipynb`` .. ``04_*.ipynb`` in order, saves each executed
copy under ``results/executed/``, records the run in ``results/RUN.json`` and prints a summary
(what ran, how long, which tables and figures were written, where). Every notebook sees the
run's id in ``$IRN_RUN_ID``; :func:`irnlib.runtime.provenance.provenance` puts it on every table, so a
table left over from an earlier run never passes for a current one.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import papermill
from jupyter_client.manager import AsyncKernelManager

from irnlib.protocol import profiles
from irnlib.runtime.paths import REPO_ROOT, results_root, write_json
from irnlib.runtime.provenance import make_run_id, provenance

__all__ = ["NotebookRun", "PipelineError", "notebooks", "reproduce"]

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


class PipelineError(RuntimeError):
    """A notebook of the pipeline failed; the message names the notebook and the cell."""


@dataclass
class NotebookRun:
    notebook: str  # e.g. "01_train.ipynb"
    executed: str  # the executed copy, relative to the results folder
    seconds: float
    status: str  # "ok" or "failed"
    error: str = ""


def notebooks(folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The pipeline's notebooks in order (their names start with a two-digit number)."""
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def _outputs_since(folder: Path, since: float) -> list[Path]:
    """Tables and figures under ``folder`` written after ``since`` (a time.time() stamp)."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.rglob("*") if p.is_file() and p.stat().st_mtime >= since]
    wanted = {".csv", ".md", ".png", ".pdf", ".svg"}
    skipped = {"executed", "runs", "cache"}  # notebooks, training runs, derived data: not results
    return sorted(p for p in found if p.suffix in wanted and not skipped & set(p.relative_to(folder).parts))


def _failure_message(nb: Path, err: Exception, executed: Path) -> str:
    count, source = getattr(err, "exec_count", None), getattr(err, "source", "")
    first_line = source.strip().splitlines()[0][:80] if source.strip() else ""
    where = f"cell In [{count}] `{first_line}`" if count is not None else "before any cell ran"
    detail = f"{getattr(err, 'ename', type(err).__name__)}: {getattr(err, 'evalue', err)}"
    return f"{nb.name} failed in {where}: {detail} (executed copy kept at {executed})"


def reproduce(
    profile: str = "smoke",
    notebook_dir: Path = NOTEBOOK_DIR,
    results=None,
    parameters: dict | None = None,
) -> list[NotebookRun]:
    """Execute the pipeline's notebooks in order with papermill.

    Parameters
    ----------
    profile : str
        A profile of :mod:`irnlib.protocol.profiles`; passed to every notebook as its ``profile`` parameter.
    notebook_dir : Path
        Folder holding the ``NN_name.ipynb`` notebooks.
    results : path, optional
        Results folder (default :func:`irnlib.runtime.paths.results_root`); exported to the notebooks
        as ``$IRN_RESULTS``.
    parameters : dict, optional
        Further parameters passed to every notebook.

    Returns
    -------
    list of NotebookRun

    Raises
    ------
    PipelineError
        At the first failing notebook; later notebooks are not run (they build on it).
    """

    profiles.get(profile)  # an unknown profile stops here, before any notebook runs
    results = results_root(results).resolve()
    executed_dir = results / "executed"
    executed_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    run_id = make_run_id()
    record = {
        "run_id": run_id,
        "profile": profile,
        "status": "running",
        "notebooks": [],
        **provenance(None),
    }  # commit, date (the start), CPU, host, versions
    write_json(results / "RUN.json", record)
    params = {"profile": profile, **(parameters or {})}
    todo = notebooks(notebook_dir)
    print(f"run {run_id}: {len(todo)} notebooks, profile {profile!r}, results in {results}")
    runs: list[NotebookRun] = []
    # Kernels inherit these; they run in notebooks/, so relative folders are made absolute here.
    folders = {
        key: str(Path(os.environ[key]).expanduser().resolve())
        for key in ("IRN_DATA", "IRN_CACHE")
        if os.environ.get(key)
    }
    with _environment(IRN_RUN_ID=run_id, IRN_RESULTS=str(results), **folders):
        for nb in todo:
            run, err = _execute(nb, executed_dir / nb.name, params, results)
            runs.append(run)
            if err is not None:
                record.update(status="failed", error=runs[-1].error, notebooks=[asdict(r) for r in runs])
                write_json(results / "RUN.json", record)
                print(f"  FAILED {runs[-1].error}")
                raise PipelineError(run.error) from err
            print(f"  {nb.name}: {runs[-1].seconds:.0f} s")
    written = _outputs_since(results, started)
    record.update(
        status="complete",
        finished=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        seconds=round(time.time() - started, 1),
        notebooks=[asdict(r) for r in runs],
        outputs=[str(p.relative_to(results)) for p in written],
    )
    write_json(results / "RUN.json", record)
    print(_summary(runs, written, results, time.time() - started))
    return runs


def _execute(nb: Path, out: Path, params: dict, results: Path) -> tuple[NotebookRun, Exception | None]:
    """Run one notebook with papermill into ``out``: its record and, when it failed, the error
    (the record's status is then ``"failed"`` and its message names the notebook and the cell)."""
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(nb),
            str(out),
            parameters=params,
            cwd=str(nb.parent),
            progress_bar={"desc": f"  {nb.name}", "unit": "cell", "file": sys.stderr},
            kernel_manager_class=quiet_kernel_manager(),
        )
    except Exception as err:  # PapermillExecutionError names the cell; others (kernel died, ...) too
        message = _failure_message(nb, err, out)
        return NotebookRun(nb.name, _relative(out, results), time.perf_counter() - t0, "failed", message), err
    return NotebookRun(nb.name, _relative(out, results), time.perf_counter() - t0, "ok"), None


# The one line ipykernel logs at every start on a local TCP connection: noise for a local run.
KERNEL_NOISE = b"Kernel is running over TCP without encryption"


def forward_kernel_stderr(stream, out, noise: bytes = KERNEL_NOISE) -> None:
    """Copy a kernel's stderr to ``out`` line by line, leaving out the lines that contain ``noise``.

    Parameters
    ----------
    stream : binary file
        The kernel process's stderr pipe; read until it closes.
    out : text file
        Where the other lines go (``sys.stderr``).
    noise : bytes
        A line containing it is dropped.
    """
    for line in iter(stream.readline, b""):
        if noise not in line:
            out.write(line.decode(errors="replace"))
            out.flush()


def quiet_kernel_manager():
    """nbclient's kernel manager with the kernel's stderr passed through :func:`forward_kernel_stderr`."""

    class QuietKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            kw["stderr"] = subprocess.PIPE
            await super()._async_launch_kernel(kernel_cmd, **kw)
            stderr = self.provisioner.process.stderr
            threading.Thread(target=forward_kernel_stderr, args=(stderr, sys.stderr), daemon=True).start()

    return QuietKernelManager


def _relative(path: Path, results: Path) -> str:
    """``path`` relative to the results folder, so RUN.json stays valid when the folder moves."""
    return str(path.relative_to(results))


@contextlib.contextmanager
def _environment(**variables: str):
    """Set environment variables for the duration of the block, then restore them."""
    saved = {key: os.environ.get(key) for key in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _summary(runs: list[NotebookRun], written: list[Path], results: Path, seconds: float) -> str:
    lines = [
        f"\nPipeline complete in {seconds / 60:.1f} min.",
        "",
        "| notebook | seconds | executed copy |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {r.notebook} | {r.seconds:.0f} | {results / r.executed} |" for r in runs]
    lines += ["", f"Written under {results}:"]
    lines += [f"  {p.relative_to(results)}" for p in written] or ["  (no tables or figures)"]
    return "\n".join(lines)
