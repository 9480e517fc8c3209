"""How a checkpoint was trained, read from the run or model folder it lives in.

A model exported by :func:`irnlib.train.train` sits beside its run's ``config.json`` and
``provenance.json``; a published kit model (:mod:`irnlib.experiments.modelcard`) keeps its
earlier stages' records in ``started_from/``. :func:`describe_checkpoint` turns those into the
one line that labels the checkpoint in tables and pages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from irnlib.paper import PAPER_DISTR_LOSS, PAPER_ITERATIONS
from irnlib.runtime.paths import short_path

__all__ = ["CheckpointInfo", "describe_checkpoint"]


@dataclass
class CheckpointInfo:
    """What is known about a checkpoint file, for labels and provenance.

    Attributes
    ----------
    path : Path
    exists : bool
    training : str
        How it was trained: e.g. ``"2,000 iterations, profile smoke, trained on embedded-train
        (shortened run; the paper trains 500,000)"``, ``"official checkpoint"`` or ``"training
        unknown ..."``. A form of L_distr other than the paper's is named after the profile
        (``"profile quick with distr_loss=unit_hinge"``).
    shortened : bool
        True when the run is known to be shorter than the paper's 500k iterations.
    config_path : Path or None
        The configuration JSON found beside the checkpoint.
    config : dict
    """

    path: Path
    exists: bool
    training: str
    shortened: bool = False
    config_path: Path | None = None
    config: dict = field(default_factory=dict)

    def label(self) -> str:
        """``"IRN (this kit, <checkpoint>, <training>)"``."""
        return f"IRN (this kit, {short_path(self.path)}, {self.training})"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _iterations_text(folder: Path, iterations: int, record: dict) -> str:
    """``"250 iterations"``; for a later stage (started from other weights, ``init_from``), the
    stages' total where a published model keeps its earlier stages' records in ``started_from/``
    (:mod:`irnlib.experiments.modelcard`), else the weights it started from."""
    if not record.get("init_from"):
        return f"{iterations:,} iterations"
    earlier, kept = [], folder / "started_from"
    while (kept / "provenance.json").is_file():
        earlier.append(int(_read_json(kept / "provenance.json").get("iterations_done", 0)))
        kept = kept / "started_from"
    if earlier:
        return f"{iterations + sum(earlier):,} iterations in {len(earlier) + 1} stages (the last {iterations:,})"
    return f"{iterations:,} iterations from the weights of {record['init_from'].get('file', '?')}"


def describe_checkpoint(path) -> CheckpointInfo:
    """Describe how a checkpoint was trained, from the training run folder it lives in.

    A model exported by :func:`irnlib.train.train` sits beside the run's ``config.json``
    (iterations, profile, training set) and ``provenance.json`` (status, iterations done).
    A run shorter than the paper's 500k iterations, or one still running, is marked as
    shortened. Without a ``config.json``, a file under ``data/pretrained/`` is taken to be
    the official release; anything else is "training unknown".
    """
    path = Path(path)
    if not path.is_file():
        return CheckpointInfo(path, False, "missing")
    config_path = path.parent / "config.json"
    config = _read_json(config_path) if config_path.is_file() else {}
    if "iterations" in config:
        record = _read_json(path.parent / "provenance.json")
        iterations = int(record.get("iterations_done", config["iterations"]))
        status = record.get("status", "finished")
        profile, train_set = config.get("profile", "?"), config.get("train_set", "?")
        text = f"{_iterations_text(path.parent, iterations, record)}, profile {profile}"
        distr_loss = config.get("distr_loss") or PAPER_DISTR_LOSS  # older runs: the paper's, unnamed
        text += f" with distr_loss={distr_loss}" if distr_loss != PAPER_DISTR_LOSS else ""
        text += f", trained on {train_set}"
        if status == "running":  # still training, or stopped before its end (killed, out of time)
            text += f", run not finished ({iterations:,} of {int(config['iterations']):,} planned iterations)"
        elif status != "finished":
            text += f", run {status}"
        shortened = iterations < PAPER_ITERATIONS or status != "finished"
        text += f" (shortened run; the paper trains {PAPER_ITERATIONS:,})" if shortened else ""
        return CheckpointInfo(path, True, text, shortened, config_path, config)
    if path.resolve().parent.name == "pretrained":
        return CheckpointInfo(path, True, "official checkpoint")
    return CheckpointInfo(path, True, "training unknown: no run configuration (config.json) beside the checkpoint")
