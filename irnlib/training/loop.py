"""The training loop: settle the process, build or resume the state, step, record.

:func:`train` runs :func:`train_step` (gradient-norm clipping at 10 and an Adam step after the
objective of :mod:`irnlib.training.objective`) for ``config.iterations`` steps; the learning
rate halves at 100k, 200k, 300k and 400k of 500k iterations. A run may also keep an exponential
moving average of the weights (``ema_decay``; the paper does not): it changes no step of the
training, only which weights are validated and exported.

Every sample is a deterministic function of ``(seed, index)`` (:mod:`irnlib.training.samples`),
so a resumed run needs no sampler state, and on CPU reaches bit-identical weights to an
uninterrupted run at the same thread count (the thread policy follows the load unless
``IRN_THREADS`` fixes it; a changed count changes the last bits). Under ``torchrun`` each
process takes its share of every batch and DDP averages the gradients.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
from tqdm.auto import tqdm

from irnlib.runtime.device import usable_device
from irnlib.runtime.threads import adjust_threads, apply_thread_policy, tune_cpu_allocator
from irnlib.training.boundary import missing_folders, remove_unused, unwritable, writing_error
from irnlib.training.config import TrainConfig, resolve_amp
from irnlib.training.errors import NonFiniteStep, SettingsError, TrainingDiverged
from irnlib.training.objective import TERMS, distr_factor
from irnlib.training.run_folder import RunRecord, lock_run_folder
from irnlib.training.samples import training_loader, training_patches
from irnlib.training.state import TrainingState, build, resume_or_wipe, training_state_path
from irnlib.training.validation import validation_pairs

__all__ = ["train", "train_step"]


# ----------------------------------------------------------------------------------------
# The process: its rank, its device


def _setup_distributed(config: TrainConfig) -> tuple[int, int, torch.device]:
    """Rank, world size and device; initialises the process group under ``torchrun``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = _usable_device(config.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed patch size: pick the fastest kernels once
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def _usable_device(name: str) -> torch.device:
    """The device ``device=name`` asks for; :class:`SettingsError` if it is not one or not there."""
    try:
        return usable_device(name, "device={}")
    except ValueError as err:
        raise SettingsError(str(err)) from None


# ----------------------------------------------------------------------------------------
# One step


def train_step(
    state: TrainingState,
    hr: torch.Tensor,
    lr_ref: torch.Tensor,
    z_prime: torch.Tensor,
    config: TrainConfig,
    step: int,
    world: int = 1,
    back_weight: torch.Tensor | None = None,
    distr_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Optimiser step ``step`` (0-based) on one batch (already on the device); the step of :func:`train`.

    The objective (under autocast if ``config.amp``; L_distr weighted by the curriculum's
    :func:`distr_factor` of ``step``), the loss values every process agrees on
    (averaged over processes), backward, gradient-norm clipping at ``config.grad_clip``, the
    Adam step, the learning-rate schedule and the weights' moving average (if kept).
    ``back_weight`` and ``distr_weight`` (``(b,)``, default all 1) weigh each sample's L_back and L_distr.

    Returns
    -------
    values : tensor (5,)
        ``loss`` and the terms :data:`TERMS`, as the processes' average.
    grad_norm : tensor
        The gradient norm before clipping.
    lr : float
        The learning rate the step used.

    Raises
    ------
    NonFiniteStep
        If a loss value or the gradient norm is NaN/Inf; the update is not applied.
    """
    amp_dtype = state.amp_dtype
    with torch.autocast(hr.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        terms = state.model(hr, lr_ref, z_prime, back_weight, distr_weight, distr_factor(step, config))
    loss = sum(terms[k] for k in TERMS)
    values = torch.stack([loss.detach(), *(terms[k].detach() for k in TERMS)]).float()
    if world > 1:
        dist.all_reduce(values)
        values /= world
    if not torch.isfinite(values).all():
        raise NonFiniteStep(dict(zip(["loss", *TERMS], values.tolist())))

    optimizer, scaler = state.optimizer, state.scaler
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)  # clip the true gradient, not the scaled one
    grad_norm = nn.utils.clip_grad_norm_(state.net.parameters(), config.grad_clip or float("inf"))
    if not torch.isfinite(grad_norm) and not scaler.is_enabled():  # fp16: the scaler skips such steps
        raise NonFiniteStep({"grad_norm": float(grad_norm)})
    lr_now = optimizer.param_groups[0]["lr"]
    scaler.step(optimizer)
    scaler.update()
    state.scheduler.step()
    if state.average is not None:
        state.average.update_parameters(state.net)  # the first call copies the weights
    return values, grad_norm, lr_now


# ----------------------------------------------------------------------------------------
# The loop


def train(config: TrainConfig, resume: bool = True) -> Path:
    """Train IRN as ``config`` says and return the run folder.

    Parameters
    ----------
    config : TrainConfig
    resume : bool
        Continue from ``checkpoints/last.pt`` of the run folder if there is one (a finished
        run then just returns). ``False`` starts afresh, discarding the folder's old
        checkpoints and logs.

    Returns
    -------
    pathlib.Path
        The run folder (see the module docstring for its contents).

    Raises
    ------
    TrainingDiverged
        If a loss term or the gradient norm becomes NaN/Inf. The update is not applied and
        the last good training state stays in place.
    SettingsError
        If ``resume`` meets a training state trained with mathematically different settings, the
        device is not there, or ``IRN_THREADS`` is malformed.
    CheckpointUnreadable
        If ``checkpoints/last.pt`` cannot be read (or is missing beside periodic checkpoints).
    RunFolderBusy
        If another process is training in the same run folder.

    RunFolderUnwritable
        If the run folder (or ``runs_dir``) cannot be written: read-only, no permission, a full disk.

    All of these are :class:`TrainingError`. The settings, the datasets and the device are checked
    before the run folder is touched; a run folder this call created is removed again if the run
    fails before writing anything into it. Nothing saved earlier is lost by them.
    """
    try:
        threads = apply_thread_policy()  # once per process; adjust_threads() follows the load below
    except ValueError as err:  # a malformed IRN_THREADS
        raise SettingsError(str(err)) from None
    rank, world, device = _setup_distributed(config)
    patches = training_patches(config)  # the data, before any folder is made
    pairs = validation_pairs(config) if rank == 0 else None
    made = missing_folders(config.run_dir) if rank == 0 else []
    lock = None
    try:
        try:
            lock = lock_run_folder(config.run_dir) if rank == 0 else None
            return _train_locked(config, resume, rank, world, device, threads.reason, patches, pairs)
        except OSError as err:  # read-only, no permission, a full disk: one line naming the folder
            raise unwritable(config.run_dir, err) if writing_error(err, config.run_dir) else err from None
    except BaseException:
        remove_unused(made)  # only folders this call made, and only while they hold nothing of the run
        raise
    finally:
        if lock is not None:
            os.close(lock)  # releases the run folder


def _train_locked(
    config: TrainConfig, resume: bool, rank: int, world: int, device: torch.device, threads: str, patches, pairs
) -> Path:
    """:func:`train` once the thread policy, the device, the data and the run folder's lock are settled."""
    is_main = rank == 0
    config = dataclasses.replace(config, amp=resolve_amp(config.amp, device))
    if device.type == "cpu" and config.tune_allocator:
        tune_cpu_allocator()
    state = build(config, device, world)
    start = resume_or_wipe(state, config, device, resume, is_main, world)
    loader = training_loader(config, start, rank, world, device, patches)
    run = _open_record(config, state, device, world, start, resume, threads, pairs) if is_main else None
    bar = tqdm(
        total=config.iterations,
        initial=start,
        desc=config.run_name,
        unit="it",
        disable=not (is_main and config.progress),
    )
    _run_steps(config, state, loader, start, world, device, run, bar)
    bar.close()
    if run:
        run.finish()
    if world > 1:
        dist.barrier()
    return config.run_dir


def _open_record(
    config: TrainConfig,
    state: TrainingState,
    device: torch.device,
    world: int,
    start: int,
    resume: bool,
    threads: str,
    pairs: list,
) -> RunRecord:
    """The main process's :class:`RunRecord`, given the validation pairs; a fresh run is
    validated before its first step, a resumed one re-exports its training state's weights."""
    run = RunRecord(config, state, device, world, start, resume, pairs, threads)
    if start == 0:
        run.validate(0)
    run.reconcile(start)
    return run


def _run_steps(
    config: TrainConfig,
    state: TrainingState,
    loader,
    start: int,
    world: int,
    device: torch.device,
    run: RunRecord | None,
    bar,
) -> None:
    """Steps ``start .. config.iterations − 1`` on batches of ``loader``; ``run`` (the main
    process's) logs each, and validates and saves when due."""
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    state.model.train()
    batches = iter(loader)
    for t in range(start, config.iterations):
        tic = time.perf_counter()
        # (b, 3, P, P), (b, 3, P/s, P/s), (b, 3s²−3, P/s, P/s), (b,), (b,)
        hr, lr_ref, z_prime, back_weight, distr_weight = next(batches)
        hr = hr.to(device, non_blocking=True, memory_format=memory_format)
        lr_ref, z_prime = lr_ref.to(device, non_blocking=True), z_prime.to(device, non_blocking=True)
        back_weight, distr_weight = (
            back_weight.to(device, non_blocking=True),
            distr_weight.to(device, non_blocking=True),
        )
        data_time = time.perf_counter() - tic
        try:
            values, grad_norm, lr_now = train_step(
                state, hr, lr_ref, z_prime, config, t, world, back_weight, distr_weight
            )
        except NonFiniteStep as err:
            bar.close()
            raise _diverged(t + 1, err, config, run) from None
        done = t + 1  # iterations completed
        adjust_threads()  # at most one measurement per 5 s
        if run:
            run.step(done, values, grad_norm, lr_now, tic, data_time, bar)
        if world > 1 and (done % config.checkpoint_every == 0 or done == config.iterations):
            dist.barrier()  # nobody runs ahead of a training state being written


def _diverged(iteration: int, err: NonFiniteStep, config: TrainConfig, run: RunRecord | None) -> TrainingDiverged:
    """The error that stops a run, recorded in ``provenance.json``: nothing is saved, so the
    last good training state stays what it was."""
    last_path = training_state_path(config.run_dir)
    kept = (
        f"the last good checkpoint {last_path} is kept" if last_path.is_file() else "no checkpoint had been written yet"
    )
    diverged = TrainingDiverged(
        f"training diverged at iteration {iteration}: non-finite value(s) {err.values}; the update was not "
        f"applied and {kept}. Try a lower learning rate (lr=...), or amp='off' if it was on."
    )
    if run:
        run.write(status="diverged", diverged_at=iteration, message=str(diverged))
    return diverged
