"""Training IRN: the paper's objective and schedule, a resumable runner, DDP under ``torchrun``.

The code lives in :mod:`irnlib.training`, one job a module, read in this order:
:mod:`~irnlib.training.config` (:class:`TrainConfig`, :func:`make_config`; the allowed range of
every field in :mod:`~irnlib.training.fields`),
:mod:`~irnlib.training.objective` (the loss terms, :class:`IRNObjective`, the schedules),
:mod:`~irnlib.training.samples` (the data stream), :mod:`~irnlib.training.state` (build, save
and resume the training state), :mod:`~irnlib.training.validation`,
:mod:`~irnlib.training.run_folder` (lock, logs, record, curves), :mod:`~irnlib.training.loop`
(:func:`train_step`, :func:`train`; its boundary around the run folder in
:mod:`~irnlib.training.boundary`) and :mod:`~irnlib.training.cli`. This module keeps the
names users know in one place, and the command::

    python -m irnlib.train --profile smoke                       # a few minutes on a CPU
    python -m irnlib.train --profile paper scale=2 device=cuda   # the paper's run
    torchrun --nproc_per_node=4 -m irnlib.train --profile paper  # DDP, same code

or from Python: ``train(make_config("smoke", iterations=100))``, which returns the run folder
``results/runs/<run_name>/`` (its contents: :mod:`irnlib.training.run_folder`).
"""

from __future__ import annotations

import sys

from irnlib.runtime.threads import tune_cpu_allocator
from irnlib.training.cli import command, main
from irnlib.training.config import (
    LEGACY_VALUES,
    RESUMABLE_CHANGES,
    TrainConfig,
    as_trained,
    make_config,
    parse_overrides,
    resolve_amp,
)
from irnlib.training.errors import (
    CheckpointUnreadable,
    NonFiniteStep,
    RunFolderBusy,
    RunFolderUnwritable,
    SettingsError,
    TrainingDiverged,
    TrainingError,
)
from irnlib.training.loop import train, train_step
from irnlib.training.objective import (
    TERMS,
    IRNObjective,
    backward_loss,
    distr_factor,
    distribution_loss,
    forward_loss,
    grid_loss,
    lr_factor,
    range_loss,
    run_network,
    unit_hinge_loss,
    unit_kl_loss,
)
from irnlib.training.run_folder import LOCK_NAME, LOG_COLUMNS, VAL_COLUMNS, RunRecord, lock_run_folder, plot_curves
from irnlib.training.samples import IterationBatches, TrainingSamples, training_loader
from irnlib.training.state import TrainingState, build, resume_or_wipe
from irnlib.training.validation import validate, validation_pairs

__all__ = [
    "TrainConfig",
    "make_config",
    "parse_overrides",
    "as_trained",
    "RESUMABLE_CHANGES",
    "LEGACY_VALUES",
    "forward_loss",
    "distribution_loss",
    "unit_kl_loss",
    "unit_hinge_loss",
    "range_loss",
    "grid_loss",
    "backward_loss",
    "run_network",
    "IRNObjective",
    "TERMS",
    "lr_factor",
    "distr_factor",
    "resolve_amp",
    "TrainingSamples",
    "IterationBatches",
    "TrainingError",
    "TrainingDiverged",
    "SettingsError",
    "CheckpointUnreadable",
    "RunFolderBusy",
    "RunFolderUnwritable",
    "LOCK_NAME",
    "lock_run_folder",
    "TrainingState",
    "build",
    "resume_or_wipe",
    "training_loader",
    "NonFiniteStep",
    "train_step",
    "RunRecord",
    "LOG_COLUMNS",
    "VAL_COLUMNS",
    "validation_pairs",
    "validate",
    "plot_curves",
    "train",
    "tune_cpu_allocator",
    "main",
    "command",
]

if __name__ == "__main__":
    sys.exit(command())
