"""Where the kit writes (the results folder: tables, figures, runs, executed notebooks) and
where it looks for the official checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REPO_ROOT", "results_root", "pretrained_checkpoint"]

REPO_ROOT = Path(__file__).resolve().parents[1]


def results_root(root=None) -> Path:
    """The results folder: ``root`` if given, else ``$IRN_RESULTS``, else ``<repo>/results``.

    Tests point ``IRN_RESULTS`` at a temporary folder so that they never overwrite the
    results a user (or the committed pipeline run) produced.
    """
    if root is not None and str(root) != "":
        return Path(root).expanduser()
    env = os.environ.get("IRN_RESULTS")
    return Path(env).expanduser() if env else REPO_ROOT / "results"


def pretrained_checkpoint(scale: int) -> Path:
    """Where the officially released ``IRN_x{scale}.pth`` goes: ``<repo>/data/pretrained/``."""
    return REPO_ROOT / "data" / "pretrained" / f"IRN_x{scale}.pth"
