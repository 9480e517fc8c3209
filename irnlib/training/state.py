"""The training state: what training changes, built, saved to ``checkpoints/last.pt`` and resumed.

``last.pt`` (and the periodic ``iter_NNNNNNN.pt``) hold the training state: the weights, their
moving average, the optimiser, the schedule, the gradient scaler, the iteration, every RNG and
the configuration. The word *checkpoint* elsewhere in the kit means exported weights
(:mod:`irnlib.model.checkpoint`); ``checkpoints/`` keeps its name for the run folders already made.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from irnlib.model.checkpoint import CheckpointError, load_checkpoint, save_torch
from irnlib.model.network import IRN
from irnlib.training.config import RESUMABLE_CHANGES, TrainConfig, as_trained
from irnlib.training.errors import CheckpointUnreadable, SettingsError
from irnlib.training.fields import show
from irnlib.training.objective import IRNObjective, lr_factor

__all__ = ["TrainingState", "build", "resume_or_wipe", "training_state_path"]


def training_state_path(run_dir: Path) -> Path:
    """The training state a run folder resumes from: ``<run_dir>/checkpoints/last.pt``."""
    return Path(run_dir) / "checkpoints" / "last.pt"


@dataclass
class TrainingState:
    """What training changes: what the saved training state holds besides the iteration and RNGs."""

    net: IRN
    model: nn.Module  # the objective (IRNObjective), DDP-wrapped under torchrun
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None  # autocast dtype (None: off)
    average: AveragedModel | None = None  # the weights' moving average (config.ema_decay; None: off)

    @property
    def exported_net(self) -> IRN:
        """The network that validation measures and the export writes: the average when kept."""
        return self.net if self.average is None else self.average.module

    def save(self, path: Path, iteration: int, config: TrainConfig) -> None:
        """Save the training state at ``iteration`` to ``path`` (``last.pt`` or a periodic one), atomically."""
        parts = (self.net, self.average, self.optimizer, self.scheduler, self.scaler)
        _save_training_state(path, *parts, iteration, config)


def build(config: TrainConfig, device: torch.device, world: int = 1) -> TrainingState:
    """The network, its objective and the optimiser, as ``config`` says, on ``device``.

    Seeding first makes the initial weights the same in every process and every run.
    """
    torch.manual_seed(config.seed)
    net = IRN(config.scale, config.block_num, downsampling=config.downsampling).to(device)
    if config.channels_last:
        net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, config))
    amp_dtype = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[config.amp]
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16)
    # Every process keeps the same average (their weights are equal); only the main one uses it.
    average = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay)) if config.ema_decay else None
    model = IRNObjective(net, config)
    if world > 1:
        # The only buffers are the constant Haar filters: nothing to broadcast at every step.
        device_ids = [device.index] if device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)
    return TrainingState(net, model, optimizer, scheduler, scaler, amp_dtype, average)


def _rng_states() -> dict:
    """Every global RNG state, in a form that ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "cached": cached,
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict) -> None:
    """Restore the global RNG states :func:`_rng_states` saved."""
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _save_training_state(
    path: Path, net, average, optimizer, scheduler, scaler, iteration: int, config: TrainConfig
) -> None:
    """Write the training state to ``path``: a temporary file, then a rename."""
    as_saved = lambda module: {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}  # noqa: E731
    state = {
        "model": as_saved(net),
        "average": None if average is None else as_saved(average),  # AveragedModel: "n_averaged", "module.*"
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "iteration": iteration,
        "rng": _rng_states(),
        "config": dataclasses.asdict(config),
    }
    save_torch(state, path)  # temporary file, then rename


TRAINING_STATE_KEYS = ("model", "optimizer", "scheduler", "scaler", "iteration", "rng", "config")


def _load_training_state(path: Path, device: torch.device) -> dict:
    """The training state saved at ``path``; :class:`CheckpointUnreadable` if it cannot be read or is not one."""
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:  # torch's safe loader refused it: its text advises weights_only=False
        raise _unreadable(path, "it holds Python objects that are not a training state") from None
    except OSError as err:
        raise _unreadable(path, f"the file cannot be read ({err.strerror or type(err).__name__})") from None
    except Exception:
        raise _unreadable(path, "the file is truncated, corrupt or not a PyTorch file") from None
    _check_training_state(saved, path)
    return saved


def _check_training_state(saved, path: Path) -> None:
    """Refuse what is not a training state: an exported model (weights alone), another file, a bad iteration."""
    missing = [key for key in TRAINING_STATE_KEYS if key not in saved] if isinstance(saved, dict) else None
    if missing is None or missing:
        if isinstance(saved, dict) and saved and all(isinstance(v, torch.Tensor) for v in saved.values()):
            what = "it holds weights alone (an exported model such as IRN_x<s>.pth), not a training state"
            raise _unreadable(path, f"{what}; to start a run from such weights, use init_from=<file> in a fresh run")
        shown = ", ".join(missing[:4]) if missing else "a dictionary"
        raise _unreadable(path, f"it is not a training state (it lacks {shown})")
    iteration = saved["iteration"]
    if not (isinstance(iteration, int) and not isinstance(iteration, bool) and iteration >= 0):
        raise _unreadable(path, f"its iteration {show(iteration)} is not a number of iterations done (>= 0)")
    if not isinstance(saved["config"], dict):
        raise _unreadable(path, "its configuration is not a record of settings")


def _unreadable(path: Path, what: str) -> CheckpointUnreadable:
    """The error for an unreadable ``last.pt``: what is wrong (the kit's words only, no library text),
    and the ways on that keep or knowingly drop data."""
    periodic = sorted(path.parent.glob("iter_*.pt"))
    if periodic:
        way_on = (f"To resume from a periodic checkpoint, copy it to last.pt, e.g. `cp {periodic[-1]} {path}` "
                  f"(periodic checkpoints here: {', '.join(p.name for p in periodic)}).")  # fmt: skip
    else:
        way_on = "There is no periodic checkpoint (iter_*.pt) in that folder to resume from."
    return CheckpointUnreadable(
        f"{path}: cannot read the training checkpoint: {what}; nothing was changed. "
        f"{way_on} Or start the run over with --fresh (command line) or resume=False (Python), which DELETES "
        "this folder's checkpoints (last.pt and every iter_*.pt) and logs."
    )


def _check_resumable(saved: dict, config: TrainConfig, path: Path, done: int) -> None:
    """Refuse to resume with settings that would change the mathematics of the run.

    The learning-rate schedule (``lr_milestones``, ``lr_gamma``) may change where it has not
    been used yet: if the new schedule gives the same rate for the ``done`` steps already
    taken, the resumed run equals a fresh run with the new schedule (so a running training
    can be given its decay once one knows how long it can run).
    """
    current = json.loads(json.dumps(dataclasses.asdict(config)))  # tuples -> lists, as saved
    saved = as_trained(saved)  # JSON form, as current
    free = set(RESUMABLE_CHANGES)
    schedule = ("lr_milestones", "lr_gamma")
    if all(k in saved for k in schedule):
        before = dataclasses.replace(config, lr_milestones=tuple(saved["lr_milestones"]), lr_gamma=saved["lr_gamma"])
        # both factors are constant after the last milestone and the warm-up
        last_change = max([*before.lr_milestones, *config.lr_milestones, config.warmup_iterations]) + 1
        if all(lr_factor(step, before) == lr_factor(step, config) for step in range(min(done, last_change))):
            free.update(schedule)
    diff = {k: (saved.get(k), v) for k, v in current.items() if k not in free and saved.get(k) != v}
    if diff:
        lines = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(diff.items()))
        raise SettingsError(
            f"cannot resume {path}: its run was trained with different settings ({lines}). Use another run_name, "
            "or start this run over with --fresh (command line) or resume=False (Python), "
            "which deletes its checkpoints."
        )


def resume_or_wipe(
    state: TrainingState, config: TrainConfig, device: torch.device, resume: bool, is_main: bool, world: int = 1
) -> int:
    """Continue from ``checkpoints/last.pt`` (returns its iteration), or start afresh (0), from
    ``config.init_from``'s weights if it names a model.

    Starting afresh removes the run folder's old training states and logs; either way,
    temporary files left by a run killed while saving go.
    """
    last_path = training_state_path(config.run_dir)
    if is_main:
        _remove_temporaries(config.run_dir)
    if world > 1:
        dist.barrier()
    if resume:
        _refuse_periodic_without_last(last_path)
    if resume and last_path.is_file():
        return _resume(state, config, last_path, device)
    if config.init_from:  # a fresh run that starts from these weights (a resumed one has its own)
        _start_from(state, config)
    if is_main:
        for old in [*last_path.parent.glob("*.pt"), config.run_dir / "train_log.csv", config.run_dir / "val_log.csv"]:
            old.unlink(missing_ok=True)
    return 0


def _remove_temporaries(run_dir: Path) -> None:
    """Make ``checkpoints/`` and drop the temporary files of a run killed while saving."""
    state_dir = run_dir / "checkpoints"
    state_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*state_dir.glob(".*.tmp"), *run_dir.glob(".*.tmp")]:
        stale.unlink(missing_ok=True)


def _refuse_periodic_without_last(last_path: Path) -> None:
    """Refuse to resume a folder whose ``last.pt`` is gone but whose periodic states remain."""
    periodic = sorted(last_path.parent.glob("iter_*.pt"))
    if not last_path.is_file() and periodic:
        raise CheckpointUnreadable(
            f"{last_path} is missing, but the folder holds periodic checkpoints "
            f"({', '.join(p.name for p in periodic)}); nothing was changed. "
            f"To resume from one, copy it to last.pt, e.g. `cp {periodic[-1]} {last_path}`; or "
            "start the run over with --fresh (command line) or resume=False (Python), which DELETES them."
        )


def _resume(state: TrainingState, config: TrainConfig, last_path: Path, device: torch.device) -> int:
    """Load the training state at ``last_path`` into ``state`` and the RNGs; returns its iteration."""
    saved = _load_training_state(last_path, device)
    done = saved["iteration"]
    if done > config.iterations:
        raise SettingsError(
            f"{last_path} is at iteration {done}, beyond the requested iterations={config.iterations}; ask for "
            f"iterations={done} or more to resume it, or use another run_name (nothing was changed)"
        )
    _check_resumable(saved["config"], config, last_path, done)
    try:
        state.net.load_state_dict(saved["model"])
        state.optimizer.load_state_dict(saved["optimizer"])
        state.scheduler.load_state_dict(saved["scheduler"])
        state.scaler.load_state_dict(saved["scaler"])
        if state.average is not None:
            state.average.load_state_dict(saved["average"])
        _set_rng_states(saved["rng"])
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError):
        raise _unreadable(
            last_path, "its contents do not fit the network and optimiser its settings describe"
        ) from None
    return done


def _start_from(state: TrainingState, config: TrainConfig) -> None:
    """Load the weights of ``config.init_from`` into the network (and its average, if kept)."""
    try:
        initial = load_checkpoint(config.init_from)
    except (CheckpointError, OSError) as err:  # CheckpointError and FileNotFoundError name the file
        reason = " ".join(str(err).split())
        raise SettingsError(f"init_from={config.init_from}: {reason.removeprefix(config.init_from + ': ')}") from None
    own, given = state.net.state_dict(), initial.state_dict()
    if given.keys() != own.keys() and not _first_levels_fit(initial, state.net, given, own):
        raise SettingsError(
            f"init_from={config.init_from}: an IRN x{initial.scale} whose blocks differ from this run's "
            f"(scale={config.scale}, block_num={config.block_num}, downsampling={config.downsampling})"
        )
    # a smaller scale's model (x2 in a x4 run) starts this run's first levels; the later levels
    # keep their fresh initialisation (InvBlocks start as the identity: the LR is then the Haar
    # low-pass of the smaller model's LR)
    weights = own | given
    state.net.load_state_dict(weights)
    if state.average is not None:  # what is validated and exported before the first step
        state.average.module.load_state_dict(weights)


def _first_levels_fit(smaller: IRN, net: IRN, given: dict, own: dict) -> bool:
    """Whether ``smaller``'s levels (weights ``given``) are ``net``'s first levels (weights ``own``):
    the same kind, blocks and shapes."""
    return (
        smaller.scale < net.scale
        and smaller.downsampling == net.downsampling
        and smaller.block_num == net.block_num[: len(smaller.block_num)]
        and all(key in own and own[key].shape == value.shape for key, value in given.items())
    )
