"""The main job: run the ordered notebooks with papermill, one profile for all."""

from __future__ import annotations

import time
from pathlib import Path

from .datasets import REPO_ROOT

__all__ = ["notebooks", "reproduce"]

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
EXECUTED_DIR = REPO_ROOT / "results" / "executed"


def notebooks(folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The pipeline's notebooks in order (their names start with a two-digit number)."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def reproduce(profile: str = "smoke", out_dir: Path = EXECUTED_DIR) -> list[Path]:
    """Execute every notebook in order with ``-p profile <profile>``; return the executed copies."""
    import papermill

    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    for nb in notebooks():
        start = time.perf_counter()
        out = out_dir / nb.name
        papermill.execute_notebook(str(nb), str(out), parameters={"profile": profile}, cwd=str(nb.parent))
        print(f"{nb.name}: {time.perf_counter() - start:.0f} s -> {out}")
        done.append(out)
    if not done:
        print(f"no notebooks in {NOTEBOOK_DIR} yet")
    return done
