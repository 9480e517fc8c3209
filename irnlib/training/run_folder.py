"""The run folder: its lock, its logs, its record and its curves.

``train(config)`` writes ``results/runs/<run_name>/``::

    config.json          the resolved configuration (``TrainConfig(**json.load(...))``)
    provenance.json      commit, date, device, data, iterations done, status, last validation
    train_log.csv        iteration, each loss term, grad norm, learning rate, throughput
    val_log.csv          iteration, Y- and RGB-PSNR of the reconstruction and of the LR vs bicubic LR
                         (of the exported weights: their average when ``ema_decay`` is on)
    training_curves.png  loss and validation PSNR curves
    checkpoints/last.pt  the latest training state (model, its average, optimizer, scheduler, RNG, ...)
    checkpoints/iter_NNNNNNN.pt   periodic training states kept along the way
    IRN_x{s}.pth         the exported weights alone, in the official format (``load_checkpoint`` reads them)
    .train.lock          held (``flock``) by the training running in the folder; the OS frees it

:class:`RunRecord` keeps all but the lock and the training states' contents, in the main process.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import torch

from irnlib.data.test_pairs import TestPair
from irnlib.model.checkpoint import save_model
from irnlib.paper import PAPER_ITERATIONS
from irnlib.protocol import profiles
from irnlib.protocol.weights import exported_weights
from irnlib.runtime.paths import atomic_write, save_figure, sha256_file, write_json
from irnlib.runtime.provenance import provenance
from irnlib.training.config import TrainConfig
from irnlib.training.errors import RunFolderBusy
from irnlib.training.objective import TERMS
from irnlib.training.state import TrainingState, training_state_path
from irnlib.training.validation import validate

try:
    import fcntl
except ImportError:  # Windows: no run-folder lock
    fcntl = None

__all__ = ["LOCK_NAME", "LOG_COLUMNS", "VAL_COLUMNS", "lock_run_folder", "plot_curves", "RunRecord"]

LOG_COLUMNS = ["iteration", "loss", *TERMS, "grad_norm", "lr", "s_per_it", "samples_per_s", "data_share"]
VAL_COLUMNS = [
    "iteration",
    "psnr_y",
    "psnr_rgb",
    "lr_psnr_y",
    "lr_psnr_rgb",
]  # the metric names of irnlib.protocol.evaluate


# ----------------------------------------------------------------------------------------
# The lock


LOCK_NAME = ".train.lock"  # in the run folder; holds the pid of the training that holds it


def lock_run_folder(run_dir: Path) -> int | None:
    """Hold ``run_dir`` for this process alone: an exclusive ``fcntl.flock`` on its lock file.

    The operating system releases the lock when the process ends in any way (``kill -9``
    included), so a dead run never leaves a stale lock. Release it earlier by closing the
    returned descriptor.

    Parameters
    ----------
    run_dir : Path
        The run folder (created if missing).

    Returns
    -------
    int or None
        The lock file's descriptor; None where ``fcntl`` is missing (Windows: no lock).

    Raises
    ------
    RunFolderBusy
        Another process holds the folder; the message names it and its pid.
    """
    if fcntl is None:
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunFolderBusy(
            f"{run_dir}: another training (pid {holder}) is running in this run folder; wait for it to end or stop it, "
            "or train under another run_name"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


# ----------------------------------------------------------------------------------------
# Logs and curves


def plot_curves(run_dir):
    """Loss terms and validation PSNR of a run folder, as a matplotlib figure."""
    if not hasattr(sys, "ps1") and "ipykernel" not in sys.modules:
        matplotlib.use("Agg")  # headless script or torchrun
    run_dir = Path(run_dir)
    fig, (ax_loss, ax_psnr) = plt.subplots(1, 2, figsize=(11, 4))
    log_path, val_path = run_dir / "train_log.csv", run_dir / "val_log.csv"
    if log_path.is_file() and log_path.stat().st_size:
        log = pd.read_csv(log_path)
        for term in ("loss", *TERMS):
            if term in log and log[term].abs().sum() > 0:  # l_stress, l_range: not in older logs
                ax_loss.plot(log["iteration"], log[term], label=term, lw=1)
        ax_loss.set_yscale("log")
    ax_loss.set(xlabel="iteration", ylabel="loss (weighted)", title="training loss")
    if ax_loss.get_legend_handles_labels()[0]:  # a run with no steps logged yet has no curves
        ax_loss.legend()
    if val_path.is_file() and val_path.stat().st_size:
        val = pd.read_csv(val_path)
        ax_psnr.plot(val["iteration"], val["psnr_y"], "o-", color="C0", label="reconstruction vs HR, Y (paper)")
        ax_psnr.plot(val["iteration"], val["lr_psnr_y"], "s-", color="C1", label="LR vs bicubic LR, Y")
        if "psnr_rgb" in val and val["psnr_rgb"].notna().any():
            ax_psnr.plot(
                val["iteration"],
                val["psnr_rgb"],
                "o--",
                color="C0",
                alpha=0.6,
                label="reconstruction vs HR, RGB (official log)",
            )
        if "lr_psnr_rgb" in val and val["lr_psnr_rgb"].notna().any():
            ax_psnr.plot(
                val["iteration"], val["lr_psnr_rgb"], "s--", color="C1", alpha=0.6, label="LR vs bicubic LR, RGB"
            )
    ax_psnr.set(xlabel="iteration", ylabel="PSNR (dB)", title="validation (solid: Y, dashed: RGB)")
    ax_psnr.legend()
    fig.suptitle(run_dir.name)
    fig.tight_layout()
    return fig


def _save_curves(run_dir: Path) -> None:
    """Draw :func:`plot_curves` into ``<run_dir>/training_curves.png``."""
    fig = plot_curves(run_dir)
    save_figure(fig, "training_curves.png", run_dir, dpi=100)
    plt.close(fig)


class _CsvLog:
    """Append-only CSV with a header, its rows also kept in memory; on resume, rows past the
    training state are dropped."""

    def __init__(self, path: Path, columns: list[str], keep_until: int | None):
        self.path, self.columns = path, columns
        self.rows = []
        if keep_until is not None and path.is_file():
            with open(path, newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["iteration"]) <= keep_until]

        def write(tmp):
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, columns)
                writer.writeheader()
                writer.writerows(self.rows)

        atomic_write(path, write)

    def append(self, row: dict) -> None:
        self.rows.append(row)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns).writerow(row)


def _rounded(row: dict) -> dict:
    """``row`` with its floats rounded to 7 significant digits, for the CSV logs."""
    return {k: (float(f"{v:.7g}") if isinstance(v, float) else v) for k, v in row.items()}


# ----------------------------------------------------------------------------------------
# The run's records


class RunRecord:
    """The run folder's records, kept by the main process.

    ``record`` (what ``provenance.json`` says) lives in memory and is written atomically on
    every change; ``train_log.csv`` and ``val_log.csv`` grow a row at a time; :meth:`save`
    writes the training states and the exported weights. ``pairs`` are the validation images
    (:func:`irnlib.training.validation.validation_pairs`).
    """

    def __init__(
        self,
        config: TrainConfig,
        state: TrainingState,
        device: torch.device,
        world: int,
        start: int,
        resume: bool,
        pairs: list[TestPair],
        threads: str | None = None,
    ):
        self.config, self.state, self.device, self.pairs = config, state, device, pairs
        self.run_dir = config.run_dir
        self.last_path = training_state_path(self.run_dir)
        self.weights_path = exported_weights(self.run_dir, config.scale)
        write_json(self.run_dir / "config.json", dataclasses.asdict(config))
        self.record = provenance(
            device, run=config.run_name, profile=config.profile, data=config.train_set,
            validation=config.val_set, iterations=config.iterations, processes=world, status="running",
        )  # fmt: skip
        self._note_origin(threads, start)
        self.write()
        keep_until = start if resume else None
        self.train_log = _CsvLog(self.run_dir / "train_log.csv", LOG_COLUMNS, keep_until)
        self.val_log = _CsvLog(self.run_dir / "val_log.csv", VAL_COLUMNS, keep_until)
        self.busy, self.data_time, self.steps = 0.0, 0.0, 0  # time in steps (not bookkeeping) since the last log row

    def _note_origin(self, threads: str | None, start: int) -> None:
        """Record the thread policy, where the run began (its weights, an earlier session) and a shortened run."""
        config = self.config
        if threads:
            self.record["threads"] = threads  # the thread policy's decision (irnlib.runtime.threads)
        if config.init_from and not start:
            self.record["init_from"] = {"file": config.init_from, "sha256": sha256_file(config.init_from)}
        if start:
            self.record["resumed_from"] = start
            self._carry_over_origin()
        paper_experiment = config.profile in profiles.PROFILES and not profiles.PROFILES[config.profile].indicative
        if paper_experiment and config.iterations < PAPER_ITERATIONS:
            self.record["note"] = f"shortened run: {config.iterations} of the paper's {PAPER_ITERATIONS} iterations"

    def _carry_over_origin(self) -> None:
        """Where the run began, carried over from the record it resumes (read once, here): a run
        continued in another session or on another machine keeps its origin."""
        try:
            earlier = json.loads((self.run_dir / "provenance.json").read_text())
        except (OSError, ValueError):
            earlier = {}
        started = earlier.get("started") or {k: earlier[k] for k in ("commit", "date", "device") if k in earlier}
        if started:
            self.record["started"] = started
        if "init_from" in earlier:  # the weights it began from, hashed then (the file may since have changed)
            self.record["init_from"] = earlier["init_from"]

    def write(self, **changes) -> None:
        """Update the record with ``changes`` and write ``provenance.json``."""
        self.record.update(changes)
        write_json(self.run_dir / "provenance.json", self.record)

    def validate(self, iteration: int) -> None:
        """Validate the exported network on the validation pairs; a row of ``val_log.csv``."""
        self.val_log.append(
            {"iteration": iteration, **_rounded(validate(self.state.exported_net, self.pairs, self.config.seed))}
        )

    def step(
        self, done: int, values: torch.Tensor, grad_norm, lr_now: float, tic: float, data_time: float, bar
    ) -> None:
        """Log iteration ``done`` (completed, begun at ``time.perf_counter() == tic``); validate
        and save when they are due."""
        config = self.config
        row = dict(zip(["loss", *TERMS], values.tolist()))  # .tolist() waits for the GPU
        busy = time.perf_counter() - tic  # the step's time, bookkeeping excluded
        self.busy, self.data_time, self.steps = self.busy + busy, self.data_time + data_time, self.steps + 1
        bar.set_postfix(
            loss=f"{row['loss']:.4g}", img_s=f"{self.steps * config.batch_size / self.busy:.1f}", refresh=False
        )
        bar.update(1)
        if done % config.log_every == 0 or done == config.iterations:
            self._log(done, row, grad_norm, lr_now)
        if done % config.val_every == 0 or done == config.iterations:
            self.validate(done)
            _save_curves(self.run_dir)
        if done % config.checkpoint_every == 0 or done == config.iterations:
            self.save(done)

    def _log(self, done: int, row: dict, grad_norm, lr_now: float) -> None:
        """A row of ``train_log.csv``: the losses of step ``done``, the throughput since the last row."""
        config = self.config
        row.update(
            iteration=done, grad_norm=float(grad_norm), lr=lr_now, s_per_it=self.busy / self.steps,
            samples_per_s=self.steps * config.batch_size / self.busy, data_share=self.data_time / self.busy,
        )  # fmt: skip
        self.train_log.append(_rounded(row))
        self.busy, self.data_time, self.steps = 0.0, 0.0, 0

    def save(self, iteration: int) -> None:
        """Save iteration ``iteration``: the export and the record first, ``last.pt`` last.

        ``last.pt`` is the run folder's commit point: whatever it says is done, the export
        and the record already hold. A run killed before it resumes from the previous
        ``last.pt`` and writes them again.
        """
        config = self.config
        self.export(iteration)
        if config.keep_every and iteration % config.keep_every == 0:
            self.state.save(self.last_path.parent / f"iter_{iteration:07d}.pt", iteration, config)
        self.state.save(self.last_path, iteration, config)

    def export(self, iteration: int) -> None:
        """Write the weights alone (``IRN_x{s}.pth``: their average when kept) and record
        ``iteration`` as the export's."""
        save_model(self.state.exported_net, self.weights_path)  # the official format: a plain state dict
        self.write(iterations_done=iteration)

    def reconcile(self, start: int) -> None:
        """On resume: export the weights of ``last.pt`` (iteration ``start``) again.

        A folder written before ``last.pt`` became the commit point (or by hand) may hold an
        export older than ``last.pt``; afterwards the export is always the training state's weights.
        """
        if start:
            self.export(start)

    def finish(self) -> None:
        """Save what is missing, draw the curves and record the run as finished."""
        if not self.last_path.is_file() or not self.weights_path.is_file():
            self.save(self.config.iterations)  # a run of 0 iterations, or an export that went missing
        _save_curves(self.run_dir)
        self.record.update(status="finished", iterations_done=self.config.iterations)
        if self.val_log.rows:
            self.record["validation_first"] = _as_numbers(self.val_log.rows[0])
            self.record["validation_last"] = _as_numbers(self.val_log.rows[-1])
        self.write()


def _as_numbers(row: dict) -> dict:
    """A row read back from ``val_log.csv`` (strings) as numbers, its empty cells left out."""
    return {k: (int(v) if k == "iteration" else float(v)) for k, v in row.items() if v not in (None, "")}
