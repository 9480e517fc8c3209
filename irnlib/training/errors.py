"""The expected failures of a training run, which the entry points print as one line."""

from __future__ import annotations

__all__ = [
    "TrainingError",
    "TrainingDiverged",
    "SettingsError",
    "CheckpointUnreadable",
    "RunFolderBusy",
    "RunFolderUnwritable",
    "NonFiniteStep",
]


class TrainingError(RuntimeError):
    """An expected failure of a training run; the entry points print it as one line, no traceback.

    Attributes
    ----------
    exit_status : int
        The command's exit status for it (2: a setting or the run folder; 3: divergence).
    """

    exit_status = 2


class TrainingDiverged(TrainingError, FloatingPointError):
    """A loss or gradient became NaN/Inf; the run stopped before the update was applied."""

    exit_status = 3


class SettingsError(TrainingError, ValueError):
    """Settings this run cannot use: a field outside its range, a dataset or ``init_from`` file that is
    not there or not usable, changed since its training state, a device that is not there, ``IRN_THREADS``."""


class CheckpointUnreadable(TrainingError):
    """The training state ``checkpoints/last.pt`` cannot be read; the message says how to go on safely."""


class RunFolderBusy(TrainingError):
    """Another process is training in this run folder."""


class RunFolderUnwritable(TrainingError):
    """The run folder (or ``runs_dir``) cannot be written: read-only, no permission, a full disk."""


class NonFiniteStep(FloatingPointError):
    """Raised by :func:`irnlib.training.loop.train_step` before a NaN/Inf update is applied; ``values`` says which."""

    def __init__(self, values: dict):
        super().__init__(f"non-finite value(s) {values}")
        self.values = values
