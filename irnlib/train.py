"""Training IRN: the paper's objective and schedule, a resumable runner, DDP under ``torchrun``.

Read top to bottom: :class:`TrainConfig` (a profile's fields come from :mod:`irnlib.protocol.profiles`),
the three loss terms and the objective module, the data stream, checkpoints, validation, the
runner's pieces (:func:`build`, :func:`resume_or_wipe`, :func:`train_step`, :class:`RunRecord`)
and :func:`train` (the loop).

The objective is the official release's (``IRN_model.optimize_parameters``)::

    y      = net(x)                                     # (B, 3·s², P/s, P/s)
    lr, z  = y[:, :3], y[:, 3:]
    L_forw = λ1 · mean_b Σ (lr − lr_bicubic)²           # LR close to MATLAB bicubic
    L_distr= λ3 · mean_b Σ z²                            # z close to N(0, 1)
    x̂      = net.inverse(cat(quantize(lr), g·z'))[:, :3],  z' ~ N(0, 1), g = gaussian_scale
    L_back = λ2 · mean_b Σ sqrt((x̂ − x)² + 1e-6)         # Charbonnier reconstruction
    total  = L_forw + L_back + L_distr

then gradient-norm clipping at 10 and an Adam step; the learning rate halves at 100k, 200k,
300k and 400k of 500k iterations. A run may also keep an exponential moving average of the
weights (``ema_decay``; the paper does not): it changes no step of the training, only which
weights are validated and exported.

Running it::

    python -m irnlib.train --profile smoke                       # a few minutes on a CPU
    python -m irnlib.train --profile paper scale=2 device=cuda   # the paper's run
    torchrun --nproc_per_node=4 -m irnlib.train --profile paper  # DDP, same code

or from Python: ``train(make_config("smoke", iterations=100))``, which returns the run
folder ``results/runs/<run_name>/``:

    config.json          the resolved configuration (``TrainConfig(**json.load(...))``)
    provenance.json      commit, date, device, data, iterations done, status, last validation
    train_log.csv        iteration, each loss term, grad norm, learning rate, throughput
    val_log.csv          iteration, Y- and RGB-PSNR of the reconstruction and of the LR vs bicubic LR
                         (of the exported weights: their average when ``ema_decay`` is on)
    training_curves.png  loss and validation PSNR curves
    checkpoints/last.pt  the latest training checkpoint (model, its average, optimizer, scheduler, RNG, ...)
    checkpoints/iter_NNNNNNN.pt   periodic checkpoints kept along the way
    IRN_x{s}.pth         the model alone, in the official format (``load_checkpoint`` reads it)
    .train.lock          held (``flock``) by the training running in the folder; the OS frees it

Every sample is a deterministic function of ``(seed, index)`` (the HR patch, its bicubic LR
and the latent draw ``z'``), and iteration ``t`` uses samples ``t·B .. t·B + B − 1``. So a
resumed run needs no sampler state, and on CPU reaches bit-identical weights to an
uninterrupted run at the same thread count (the thread policy follows the load unless
``IRN_THREADS`` fixes it; a changed count changes the last bits); under DDP, rank ``r`` of ``W`` takes the ``r``-th ``B/W`` of them.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import random
import sys
import time
import types
import typing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.checkpoint import checkpoint
from torch.utils.data import DataLoader, Dataset, Sampler

from irnlib.data.datasets import TestPair, TrainingPatches, list_images, sha256_file
from irnlib.model.checkpoint import load_checkpoint, save_model
from irnlib.model.network import IRN, quantize
from irnlib.paper import PAPER_ITERATIONS
from irnlib.protocol import profiles
from irnlib.protocol.evaluate import evaluation_pairs, round_trip
from irnlib.runtime.device import usable_device
from irnlib.runtime.paths import atomic_write, cache_root, results_root, save_figure, write_json
from irnlib.runtime.provenance import native_bf16, provenance
from irnlib.runtime.threads import adjust_threads, apply_thread_policy, tune_cpu_allocator

try:
    import fcntl
except ImportError:  # Windows: no run-folder lock
    fcntl = None

__all__ = [
    "TrainConfig",
    "make_config",
    "parse_overrides",
    "forward_loss",
    "distribution_loss",
    "backward_loss",
    "IRNObjective",
    "lr_factor",
    "resolve_amp",
    "TrainingSamples",
    "IterationBatches",
    "TrainingError",
    "TrainingDiverged",
    "SettingsError",
    "CheckpointUnreadable",
    "RunFolderBusy",
    "lock_run_folder",
    "TrainingState",
    "build",
    "resume_or_wipe",
    "training_loader",
    "NonFiniteStep",
    "train_step",
    "RunRecord",
    "validation_pairs",
    "validate",
    "plot_curves",
    "train",
    "tune_cpu_allocator",
    "main",
    "command",
]


TERMS = ("l_forw", "l_back", "l_distr")  # the loss terms, in train_log.csv's order
LOG_COLUMNS = ["iteration", "loss", *TERMS, "grad_norm", "lr", "s_per_it", "samples_per_s", "data_share"]
VAL_COLUMNS = [
    "iteration",
    "psnr_y",
    "psnr_rgb",
    "lr_psnr_y",
    "lr_psnr_rgb",
]  # the metric names of irnlib.protocol.evaluate


# ----------------------------------------------------------------------------------------
# Configuration


@dataclass
class TrainConfig:
    """Everything a training run depends on; the defaults are the paper's ×4 run.

    Build one with :func:`make_config` (a profile plus overrides) or by hand. Sizes are in
    pixels, ``batch_size`` is the *global* batch (split evenly over DDP processes).
    """

    profile: str = "paper"  # the profile this configuration started from (for the record)
    scale: int = 4  # 2, 4 or 8
    block_num: list[int] | None = None  # InvBlocks per Haar level; None -> [8] * log2(scale)
    downsampling: str = "haar"  # "haar" (the paper) or "learned" (the ablation, see network.py)
    # data
    train_set: str = "DIV2K_train_HR"  # a dataset name under the data root, or "embedded-train"
    val_set: str = "DIV2K_valid_HR"
    val_images: int | None = None  # validate on the first N images only (None: all)
    val_crop: int | None = None  # centre-crop validation HR images to this size (None: whole)
    data_root: str | None = None  # None: $IRN_DATA or <repo>/data
    patch_size: int = 144  # HR patch side
    batch_size: int = 16  # global batch
    augment: bool = True  # random flips and 90° rotations
    # How samples are made (irnlib.data.datasets.TrainingPatches). "epoch": the official sampling,
    # each epoch a fresh order of the images (a function of (seed, epoch)), last incomplete
    # batch dropped; "stream": a random image per sample, with replacement.
    sampling: str = "epoch"
    # "image": the official LR target, MATLAB bicubic of the whole image cropped scale-aligned
    # (and the official rule for awkward image sizes); "patch": the kit's earlier target, the
    # bicubic LR of the patch itself (differs in a 2-pixel LR frame), crops anywhere.
    lr_target: str = "image"
    num_workers: int = 4  # DataLoader worker processes per training process (0: load in it)
    # objective (a weight of 0 switches its term off)
    lambda_forw: float | None = None  # λ1; None -> scale²
    lambda_back: float = 1.0  # λ2
    lambda_distr: float = 1.0  # λ3
    gaussian_scale: float = 1.0  # z' ~ N(0, gaussian_scale²) in the backward pass
    # A curriculum on L_distr (the kit's; the paper has none, 0 and 0): its weight is 0 for the
    # first `distr_off_iterations` steps, then grows linearly to λ3 over `distr_ramp_iterations`
    # steps (see distr_factor). Early on L_distr holds the reconstruction back (benchmarks/README.md).
    distr_off_iterations: int = 0
    distr_ramp_iterations: int = 0
    # optimisation
    iterations: int = PAPER_ITERATIONS
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-5
    lr_milestones: tuple[int, ...] = (100_000, 200_000, 300_000, 400_000)  # absolute iterations
    lr_gamma: float = 0.5
    warmup_iterations: int = 0  # linear warm-up of the learning rate (the official warmup_iter; off)
    # "kit": factors 1/W, 2/W, .. 1 over the first W steps; "official": what the official
    # release's warm-up really does: 1, 1/W, .., (W-1)/W, then (W-1)/W for good (see lr_factor)
    warmup_rule: str = "kit"
    grad_clip: float = 10.0  # max gradient norm (0: no clipping)
    # Exponential moving average of the weights, w̄ ← d·w̄ + (1 − d)·w after every step (0: off,
    # the paper). When on, validation and the exported model use w̄; the steps are unchanged.
    ema_decay: float = 0.0
    seed: int = 0
    # Start from these weights (an IRN_x{s}.pth of the same architecture, e.g. a kit reference
    # model) instead of random ones: a second stage of training, with a fresh optimiser and
    # schedule. The run records the file's SHA-256.
    init_from: str | None = None
    # bookkeeping
    run_name: str | None = None  # None -> "<profile>_x<scale>"
    runs_dir: str | None = None  # None -> <results>/runs (results/ or $IRN_RESULTS)
    log_every: int = 100
    val_every: int = 5000
    checkpoint_every: int = 5000  # refresh checkpoints/last.pt and the exported model
    keep_every: int = 50_000  # also keep checkpoints/iter_NNNNNNN.pt (0: never)
    progress: bool = True  # tqdm progress bar
    # device and speed (none of these changes the mathematics; amp changes the arithmetic's precision)
    device: str = "auto"  # "auto" (CUDA if available), "cpu", "cuda", "cuda:1", ...
    # "off", "bf16" or "fp16" autocast (off until verified on your GPU); "auto": bf16 on a CPU
    # that does it natively (AMX, AVX-512-BF16), else off; resolved when training starts
    # (the run records the choice, so resuming on another kind of CPU is refused, not silent)
    amp: str = "off"
    channels_last: bool = False
    memory_saving: bool = False  # recompute each InvBlock's activations during backward
    tune_allocator: bool = True  # CPU: keep freed memory for reuse (see tune_cpu_allocator)

    def __post_init__(self):
        if self.scale not in (2, 4, 8):
            raise ValueError(f"scale must be 2, 4 or 8, got {self.scale!r}")
        if self.patch_size % self.scale:
            raise ValueError(f"patch_size {self.patch_size} must be a multiple of scale {self.scale}")
        if self.sampling not in ("epoch", "stream"):
            raise ValueError(f"sampling must be 'epoch' or 'stream', got {self.sampling!r}")
        if self.lr_target not in ("image", "patch"):
            raise ValueError(f"lr_target must be 'image' or 'patch', got {self.lr_target!r}")
        if self.warmup_rule not in ("kit", "official"):
            raise ValueError(f"warmup_rule must be 'kit' or 'official', got {self.warmup_rule!r}")
        if self.amp not in ("off", "bf16", "fp16", "auto"):
            raise ValueError(f"amp must be 'off', 'bf16', 'fp16' or 'auto', got {self.amp!r}")
        if self.batch_size < 1 or self.iterations < 0:
            raise ValueError(f"need batch_size >= 1 and iterations >= 0, got {self.batch_size}, {self.iterations}")
        for name in ("log_every", "val_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        self._check_optimisation()
        self.betas = tuple(self.betas)
        self.lr_milestones = tuple(self.lr_milestones)
        if self.block_num is not None:
            self.block_num = list(self.block_num)
        if self.lambda_forw is None:
            self.lambda_forw = float(self.scale**2)  # λ1 = s² as in the official configs
        if self.run_name is None:
            self.run_name = profiles.run_name(self.profile, self.scale)

    def _check_optimisation(self) -> None:
        """Refuse optimisation and bookkeeping values no run can use (``lr=-1``, ...), naming the field."""
        positive = {"lr": self.lr, "lr_gamma": self.lr_gamma}
        non_negative = {"weight_decay": self.weight_decay, "grad_clip": self.grad_clip, "keep_every": self.keep_every,
                        "warmup_iterations": self.warmup_iterations, "num_workers": self.num_workers,
                        "gaussian_scale": self.gaussian_scale, "distr_off_iterations": self.distr_off_iterations,
                        "distr_ramp_iterations": self.distr_ramp_iterations}  # fmt: skip
        for name, value in positive.items():
            if not value > 0:  # also refuses NaN
                raise ValueError(f"{name} must be > 0, got {value!r}")
        for name, value in non_negative.items():
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1) (0: off), got {self.ema_decay!r}")

    @property
    def run_dir(self) -> Path:
        """``<runs_dir>/<run_name>``."""
        root = Path(self.runs_dir) if self.runs_dir else results_root() / "runs"
        return root / self.run_name


# Fields that may change when a run is resumed: they do not change the mathematics (the
# device and memory layout may change the rounding). The learning-rate milestones are
# absolute iterations, so extending `iterations` continues the same run.
RESUMABLE_CHANGES = {
    "profile", "iterations", "data_root", "num_workers", "run_name", "runs_dir", "log_every", "val_every",
    "checkpoint_every", "keep_every", "progress", "device", "val_set", "val_images", "val_crop",
    "memory_saving", "channels_last", "tune_allocator",
}  # fmt: skip

# What a checkpoint saved before a field existed was trained with (resuming such a run with
# these values continues it exactly).
LEGACY_VALUES = {
    "sampling": "stream",
    "lr_target": "patch",
    "warmup_rule": "kit",
    "ema_decay": 0.0,
    "distr_off_iterations": 0,
    "distr_ramp_iterations": 0,
}


def as_trained(saved: dict) -> dict:
    """A saved run configuration (``config.json``, a checkpoint's) with the :data:`LEGACY_VALUES`
    of the fields it predates: the settings the run was really trained with."""
    return {**LEGACY_VALUES, **saved}


def resolve_amp(amp: str, device: torch.device) -> str:
    """``amp`` with ``"auto"`` decided for ``device``: ``"bf16"`` on a CPU with native bf16
    arithmetic (:func:`irnlib.runtime.provenance.native_bf16`), else ``"off"`` (also on CUDA, where
    autocast stays off until verified on your GPU). Other values pass through."""
    if amp != "auto":
        return amp
    return "bf16" if device.type == "cpu" and native_bf16() else "off"


def make_config(profile: str = "smoke", **overrides) -> TrainConfig:
    """A profile's configuration with some fields replaced.

    Parameters
    ----------
    profile : str
        A profile of :mod:`irnlib.protocol.profiles` (its ``train`` fields): ``paper`` is the paper's
        training (DIV2K, 500k iterations of 16 × 144² patches); ``smoke`` takes a few minutes
        on 2 CPU cores (×4, the embedded photographs, 60 iterations of 4 × 48² patches): it
        shows the training path, not a useful model (``quick`` trains those, see ``models/``).
    **overrides
        Any :class:`TrainConfig` field. ``lambda_forw`` and ``run_name`` follow ``scale``
        unless given.

    Raises
    ------
    ValueError
        For an unknown profile or field, naming the valid ones.
    """
    fields = profiles.get(profile).train
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown TrainConfig field(s) {unknown}; valid fields: {sorted(names)}")
    return TrainConfig(**{**fields, **overrides, "profile": profile})


def _parse_value(text: str, annotation):
    """Turn ``text`` into a value of type ``annotation`` (int, float, bool, str, tuple, list, Optional)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):  # X | None
        if text.lower() in ("none", "null", ""):
            return None
        return _parse_value(text, next(a for a in args if a is not type(None)))
    if origin in (tuple, list):
        items = [item.strip(" ()[]") for item in text.split(",")]
        return origin(_parse_value(item, args[0]) for item in items if item)
    if annotation is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean (true/false), got {text!r}")
    if annotation is int:
        return int(float(text)) if "e" in text.lower() else int(text)  # 5e5 is fine
    return annotation(text)


def parse_overrides(pairs: list[str]) -> dict:
    """``["iterations=100", "betas=0.9,0.99", "val_crop=none"]`` -> typed keyword arguments.

    Raises
    ------
    ValueError
        For a malformed pair, an unknown field or a value of the wrong type.
    """
    hints = typing.get_type_hints(TrainConfig)
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"override {pair!r} is not of the form field=value")
        if key not in hints:
            raise ValueError(f"unknown TrainConfig field {key!r}; valid fields: {sorted(hints)}")
        try:
            out[key] = _parse_value(value, hints[key])
        except ValueError as err:
            raise ValueError(f"override {pair!r}: {err}") from None
    return out


# ----------------------------------------------------------------------------------------
# The objective


def forward_loss(lr: torch.Tensor, lr_ref: torch.Tensor) -> torch.Tensor:
    """``mean_b Σ_{c,h,w} (lr − lr_ref)²``: squared error summed per image, averaged over the batch."""
    return (lr - lr_ref).pow(2).sum(dim=(1, 2, 3)).mean()


def distribution_loss(z: torch.Tensor) -> torch.Tensor:
    """``mean_b Σ z²``: twice the negative log-likelihood of ``z`` under N(0, 1), up to a constant."""
    return z.pow(2).sum(dim=(1, 2, 3)).mean()


def backward_loss(x_hat: torch.Tensor, x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``mean_b Σ sqrt((x̂ − x)² + eps)``: the Charbonnier (smooth L1) error, summed per image."""
    return torch.sqrt((x_hat - x).pow(2) + eps).sum(dim=(1, 2, 3)).mean()


def run_network(
    net: IRN, x: torch.Tensor, inverse: bool = False, memory_saving: bool = False, channels_last: bool = False
) -> torch.Tensor:
    """``net(x)`` or ``net.inverse(x)``, optionally recomputing activations in the backward pass.

    With ``memory_saving`` each InvBlock is run under :func:`torch.utils.checkpoint.checkpoint`:
    only the block inputs are kept and the dense-block activations (the bulk of the memory)
    are recomputed during the backward pass. Same operations, same numbers; about one extra
    forward pass of compute.

    With ``channels_last`` each InvBlock's input is made channels-last (NHWC) first. The Haar
    levels and the concatenation of the LR with ``z`` give NCHW tensors; an InvBlock fed one
    concatenates its dense blocks' activations in NCHW, and every convolution (forward and
    backward) then copies its input to NHWC. Same numbers: only the layout changes.
    """
    if not memory_saving and not channels_last:
        return net.inverse(x) if inverse else net(x)

    def run_block(fn, x):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return checkpoint(fn, x, use_reentrant=False) if memory_saving else fn(x)

    return net.run(x, inverse=inverse, run_block=run_block)


class IRNObjective(nn.Module):
    """The training objective as a module, so that DDP can wrap it as a whole.

    ``forward(hr, lr_ref, z_prime, distr_factor=1.0)`` returns the weighted loss terms
    ``{"l_forw", "l_back", "l_distr"}`` (a switched-off term is a zero tensor); L_distr's
    weight is ``lambda_distr · distr_factor`` (the curriculum's factor, :func:`distr_factor`).

    Parameters
    ----------
    net : IRN
    config : TrainConfig
        Uses ``lambda_forw``, ``lambda_back``, ``lambda_distr``, ``gaussian_scale``,
        ``memory_saving`` and ``channels_last``.
    """

    def __init__(self, net: IRN, config: TrainConfig):
        super().__init__()
        self.net = net
        self.lambda_forw, self.lambda_back = config.lambda_forw, config.lambda_back
        self.lambda_distr, self.gaussian_scale = config.lambda_distr, config.gaussian_scale
        self.memory_saving, self.channels_last = config.memory_saving, config.channels_last

    def forward(
        self, hr: torch.Tensor, lr_ref: torch.Tensor, z_prime: torch.Tensor, distr_factor: float = 1.0
    ) -> dict[str, torch.Tensor]:
        # hr (b, 3, P, P); lr_ref (b, 3, P/s, P/s); z_prime (b, 3·s² − 3, P/s, P/s) ~ N(0, 1)
        c = self.net.channels
        lambda_distr = self.lambda_distr * distr_factor
        y = run_network(
            self.net, hr, memory_saving=self.memory_saving, channels_last=self.channels_last
        ).float()  # (b, 3·s², P/s, P/s)
        lr, z = y[:, :c], y[:, c:]
        zero = y.new_zeros(())
        terms = {
            "l_forw": self.lambda_forw * forward_loss(lr, lr_ref) if self.lambda_forw else zero,
            "l_back": zero,
            "l_distr": lambda_distr * distribution_loss(z) if lambda_distr else zero,
        }
        if self.lambda_back:
            # The 8-bit LR (straight-through gradient) and a fresh latent go back up.
            y_hat = torch.cat((quantize(lr), self.gaussian_scale * z_prime), dim=1)
            x_hat = run_network(
                self.net, y_hat, inverse=True, memory_saving=self.memory_saving, channels_last=self.channels_last
            )[:, :c]
            terms["l_back"] = self.lambda_back * backward_loss(x_hat.float(), hr)
        return terms


def lr_factor(step: int, config: TrainConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based) as a multiple of ``config.lr``.

    ``lr_gamma`` to the power of the milestones passed (the official MultiStepLR: ×0.5 after
    100k, 200k, 300k and 400k steps). With a warm-up of ``W = warmup_iterations`` steps
    (off in the paper's configs):

    - ``warmup_rule="kit"``: times ``(step + 1) / W`` during the first ``W`` steps, then 1.
    - ``warmup_rule="official"``: what the official release does (``train.py`` calls
      ``update_learning_rate(current_step, warmup_iter)`` *after* each step, which sets
      ``init_lr · current_step / W`` while ``current_step < W`` and then leaves the rate
      where it is): step 0 uses the full rate, step ``i < W`` uses ``i / W``, and every later
      step ``(W − 1) / W`` (for ``W = 5``: 1, .2, .4, .6, .8, .8, ...); milestones before
      ``W`` are overwritten by the warm-up, later ones multiply ``(W − 1) / W``.
    """
    w = config.warmup_iterations
    if config.warmup_rule == "official" and w > 1:
        if step == 0:
            return 1.0
        if step < w:
            return step / w
        return (w - 1) / w * config.lr_gamma ** sum(w <= m <= step for m in config.lr_milestones)
    factor = config.lr_gamma ** sum(step >= m for m in config.lr_milestones)
    if config.warmup_rule == "kit" and step < w:
        factor *= (step + 1) / w
    return factor


def distr_factor(step: int, config: TrainConfig) -> float:
    """L_distr's weight at optimizer step ``step`` (0-based) as a multiple of ``config.lambda_distr``.

    0 during the first ``K = distr_off_iterations`` steps, then ``(step − K + 1) / R`` over the
    next ``R = distr_ramp_iterations`` steps (as the learning rate's warm-up counts), then 1.
    With ``K = R = 0`` (the paper) it is always 1.
    """
    k, r = config.distr_off_iterations, config.distr_ramp_iterations
    if step < k:
        return 0.0
    return min(1.0, (step - k + 1) / r) if r else 1.0


# ----------------------------------------------------------------------------------------
# Data: a deterministic stream of samples, sliced by iteration and rank


class TrainingSamples(Dataset):
    """:class:`~irnlib.data.datasets.TrainingPatches` plus each sample's latent draw ``z'``.

    Item ``k`` is ``(hr, lr_ref, z_prime)``: the patch pair ``patches[k]`` and
    ``z_prime ~ N(0, 1)`` of shape ``(3·s² − 3, P/s, P/s)`` (the shape of ``z``), float32,
    drawn from a generator seeded with ``(seed, k)``: the whole sample depends on ``k`` alone.
    """

    def __init__(self, patches: Dataset, scale: int, seed: int):
        self.patches, self.scale, self.seed = patches, scale, seed

    def __len__(self) -> int:
        return len(self.patches)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hr, lr = self.patches[k]  # (3, P, P), (3, P/s, P/s)
        c, h, w = lr.shape
        rng = np.random.default_rng((self.seed, k, 1))  # a different stream from the patch's (seed, k)
        z = torch.from_numpy(rng.standard_normal((c * (self.scale**2 - 1), h, w), dtype=np.float32))
        return hr, lr, z


class IterationBatches(Sampler):
    """Sample indices of iterations ``start .. stop − 1`` for one process.

    Iteration ``t`` of a global batch ``B`` uses samples ``t·B .. t·B + B − 1``; process
    ``rank`` of ``world`` takes the ``rank``-th contiguous ``B / world`` of them (the
    distributed-sampler split, with no state to save).
    """

    def __init__(self, start: int, stop: int, batch_size: int, rank: int = 0, world: int = 1):
        if batch_size % world:
            raise ValueError(f"batch_size {batch_size} is not divisible by the {world} processes")
        self.start, self.stop, self.batch_size = start, stop, batch_size
        self.local = batch_size // world
        self.offset = rank * self.local

    def __iter__(self):
        for t in range(self.start, self.stop):
            first = t * self.batch_size + self.offset
            yield list(range(first, first + self.local))

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


# ----------------------------------------------------------------------------------------
# Checkpoints


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
    """Settings this run cannot use: changed since its checkpoint, a device that is not there, ``IRN_THREADS``."""


class CheckpointUnreadable(TrainingError):
    """``checkpoints/last.pt`` cannot be read; the message says how to go on without losing data."""


class RunFolderBusy(TrainingError):
    """Another process is training in this run folder."""


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
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _save_checkpoint(
    path: Path, net, average, optimizer, scheduler, scaler, iteration: int, config: TrainConfig
) -> None:
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
    atomic_write(path, lambda tmp: torch.save(state, tmp))  # temporary file, then rename


def _load_checkpoint(path: Path, device: torch.device) -> dict:
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:
        raise _unreadable(path, err) from None


def _unreadable(path: Path, err: Exception) -> CheckpointUnreadable:
    """The error for an unreadable ``last.pt``: what failed, and the ways on that keep or knowingly drop data."""
    first_line = (str(err).strip().splitlines() or [""])[0][:160]
    periodic = sorted(path.parent.glob("iter_*.pt"))
    if periodic:
        way_on = (f"To resume from a periodic checkpoint, copy it to last.pt, e.g. `cp {periodic[-1]} {path}` "
                  f"(periodic checkpoints here: {', '.join(p.name for p in periodic)}).")  # fmt: skip
    else:
        way_on = "There is no periodic checkpoint (iter_*.pt) in that folder to resume from."
    return CheckpointUnreadable(
        f"{path}: cannot read the training checkpoint ({type(err).__name__}: {first_line}); nothing was changed. "
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
    saved = as_trained(json.loads(json.dumps(saved)))
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
            "or start this run over with --fresh (command line) or resume=False (Python), which deletes its checkpoints."
        )


# ----------------------------------------------------------------------------------------
# Validation and plots


def validation_pairs(config: TrainConfig) -> list[TestPair]:
    """The validation images: (HR, bicubic LR) pairs of ``val_set``, cropped as configured."""
    return evaluation_pairs(
        config.val_set, config.scale, config.data_root, crop=config.val_crop, count=config.val_images
    )


def validate(net: IRN, pairs: list[TestPair], seed: int = 0) -> dict[str, float]:
    """PSNR (dB) of the reconstruction and of IRN's LR against the bicubic LR, image averages.

    The paper's protocol (:func:`irnlib.protocol.evaluate.round_trip`) on the whole images, with
    ``z ~ N(0, 1)`` drawn from one generator seeded with ``seed`` (the same draws at every
    validation). The paper reports Y-PSNR; the official training log reports RGB PSNR (its
    ``psnr`` of the validation images, from an unseeded ``z``): both are here.

    Returns
    -------
    dict
        ``psnr_y``, ``psnr_rgb`` (reconstruction vs HR, border ``s``), ``lr_psnr_y`` and
        ``lr_psnr_rgb`` (IRN's 8-bit LR vs the bicubic LR, no border); the metric names of
        :mod:`irnlib.protocol.evaluate`.
    """
    was_training = net.training
    net.eval()
    generator = torch.Generator().manual_seed(seed)
    trips = [round_trip(net, pair, [generator], tile=None) for pair in pairs]
    net.train(was_training)
    return {
        "psnr_y": float(np.mean([t.sr_metrics[0]["psnr_y"] for t in trips])),
        "psnr_rgb": float(np.mean([t.sr_metrics[0]["psnr_rgb"] for t in trips])),
        "lr_psnr_y": float(np.mean([t.lr_metrics["lr_psnr_y"] for t in trips])),
        "lr_psnr_rgb": float(np.mean([t.lr_metrics["lr_psnr_rgb"] for t in trips])),
    }


def plot_curves(run_dir):
    """Loss terms and validation PSNR of a run folder, as a matplotlib figure."""
    import matplotlib

    if not hasattr(sys, "ps1") and "ipykernel" not in sys.modules:
        matplotlib.use("Agg")  # headless script or torchrun
    import matplotlib.pyplot as plt
    import pandas as pd

    run_dir = Path(run_dir)
    fig, (ax_loss, ax_psnr) = plt.subplots(1, 2, figsize=(11, 4))
    log_path, val_path = run_dir / "train_log.csv", run_dir / "val_log.csv"
    if log_path.is_file() and log_path.stat().st_size:
        log = pd.read_csv(log_path)
        for term in ("loss", "l_forw", "l_back", "l_distr"):
            if log[term].abs().sum() > 0:
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
    import matplotlib.pyplot as plt

    fig = plot_curves(run_dir)
    save_figure(fig, "training_curves.png", run_dir, dpi=100)
    plt.close(fig)


class _CsvLog:
    """Append-only CSV with a header, its rows also kept in memory; on resume, rows past the
    checkpoint are dropped."""

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
    return {k: (float(f"{v:.7g}") if isinstance(v, float) else v) for k, v in row.items()}


# ----------------------------------------------------------------------------------------
# The runner's pieces: build, resume, one step, the run's records


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


@dataclass
class TrainingState:
    """What training changes, and what a checkpoint holds besides the iteration and RNGs."""

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
        _save_checkpoint(path, self.net, self.average, self.optimizer, self.scheduler, self.scaler, iteration, config)


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


def resume_or_wipe(
    state: TrainingState, config: TrainConfig, device: torch.device, resume: bool, is_main: bool, world: int = 1
) -> int:
    """Continue from ``checkpoints/last.pt`` (returns its iteration), or start afresh (0), from
    ``config.init_from``'s weights if it names a model.

    Starting afresh removes the run folder's old checkpoints and logs; either way,
    temporary files left by a run killed while saving go.
    """
    run_dir, ckpt_dir = config.run_dir, config.run_dir / "checkpoints"
    last_path = ckpt_dir / "last.pt"
    if is_main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        for stale in [*ckpt_dir.glob(".*.tmp"), *run_dir.glob(".*.tmp")]:
            stale.unlink(missing_ok=True)
    if world > 1:
        dist.barrier()
    periodic = sorted(ckpt_dir.glob("iter_*.pt"))
    if resume and not last_path.is_file() and periodic:
        raise CheckpointUnreadable(
            f"{last_path} is missing, but the folder holds periodic checkpoints ({', '.join(p.name for p in periodic)}); "
            f"nothing was changed. To resume from one, copy it to last.pt, e.g. `cp {periodic[-1]} {last_path}`; or "
            "start the run over with --fresh (command line) or resume=False (Python), which DELETES them."
        )
    if resume and last_path.is_file():
        saved = _load_checkpoint(last_path, device)
        _check_resumable(saved["config"], config, last_path, saved["iteration"])
        state.net.load_state_dict(saved["model"])
        state.optimizer.load_state_dict(saved["optimizer"])
        state.scheduler.load_state_dict(saved["scheduler"])
        state.scaler.load_state_dict(saved["scaler"])
        if state.average is not None:
            state.average.load_state_dict(saved["average"])
        _set_rng_states(saved["rng"])
        if saved["iteration"] > config.iterations:
            raise ValueError(
                f"{last_path} is at iteration {saved['iteration']}, beyond the requested iterations={config.iterations}; "
                "ask for at least that many, or use another run_name"
            )
        return saved["iteration"]
    if config.init_from:  # a fresh run that starts from these weights (a resumed one has its own)
        initial = load_checkpoint(config.init_from)
        if initial.state_dict().keys() != state.net.state_dict().keys():
            raise SettingsError(
                f"init_from={config.init_from}: an IRN x{initial.scale} whose blocks differ from this run's "
                f"(scale={config.scale}, block_num={config.block_num}, downsampling={config.downsampling})"
            )
        state.net.load_state_dict(initial.state_dict())
        if state.average is not None:  # what is validated and exported before the first step
            state.average.module.load_state_dict(initial.state_dict())
    if is_main:
        for old in [*ckpt_dir.glob("*.pt"), run_dir / "train_log.csv", run_dir / "val_log.csv"]:
            old.unlink(missing_ok=True)
    return 0


def training_loader(config: TrainConfig, start: int, rank: int, world: int, device: torch.device) -> DataLoader:
    """Batches of iterations ``start ..`` for this process: sample ``k`` is a function of ``(seed, k)``
    (and of the batch size with ``sampling="epoch"``); see :class:`~irnlib.data.datasets.TrainingPatches`.

    Decoded images live in a memory-mapped cache shared by all workers (DIV2K: 6.6 GB once,
    not once per worker process).
    """
    paths = list_images(config.train_set, config.data_root)
    patches = TrainingPatches(
        paths, config.scale, config.patch_size, config.seed, config.augment, cache_dir=cache_root(),
        lr_target=config.lr_target, sampling=config.sampling, batch_size=config.batch_size,
    )  # fmt: skip
    return DataLoader(
        TrainingSamples(patches, config.scale, config.seed),
        batch_sampler=IterationBatches(start, config.iterations, config.batch_size, rank, world),
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )


class NonFiniteStep(FloatingPointError):
    """Raised by :func:`train_step` before a NaN/Inf update is applied; ``values`` says which."""

    def __init__(self, values: dict):
        super().__init__(f"non-finite value(s) {values}")
        self.values = values


def train_step(
    state: TrainingState,
    hr: torch.Tensor,
    lr_ref: torch.Tensor,
    z_prime: torch.Tensor,
    config: TrainConfig,
    step: int,
    world: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Optimiser step ``step`` (0-based) on one batch (already on the device); the step of :func:`train`.

    The objective (under autocast if ``config.amp``; L_distr weighted by the curriculum's
    :func:`distr_factor` of ``step``), the loss values every process agrees on
    (averaged over processes), backward, gradient-norm clipping at ``config.grad_clip``, the
    Adam step, the learning-rate schedule and the weights' moving average (if kept).

    Returns
    -------
    values : tensor (4,)
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
        terms = state.model(hr, lr_ref, z_prime, distr_factor(step, config))
    loss = terms["l_forw"] + terms["l_back"] + terms["l_distr"]
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


class RunRecord:
    """The run folder's records, kept by the main process.

    ``record`` (what ``provenance.json`` says) lives in memory and is written atomically on
    every change; ``train_log.csv`` and ``val_log.csv`` grow a row at a time; :meth:`save`
    writes the checkpoints and the exported model.
    """

    def __init__(
        self,
        config: TrainConfig,
        state: TrainingState,
        device: torch.device,
        world: int,
        start: int,
        resume: bool,
        threads: str | None = None,
    ):
        self.config, self.state, self.device = config, state, device
        self.run_dir = config.run_dir
        self.last_path = self.run_dir / "checkpoints" / "last.pt"
        write_json(self.run_dir / "config.json", dataclasses.asdict(config))
        self.record = provenance(
            device, run=config.run_name, profile=config.profile, data=config.train_set,
            validation=config.val_set, iterations=config.iterations, processes=world, status="running",
        )  # fmt: skip
        if threads:
            self.record["threads"] = threads  # the thread policy's decision (irnlib.runtime.threads)
        if config.init_from and not start:
            self.record["init_from"] = {"file": config.init_from, "sha256": sha256_file(config.init_from)}
        if start:
            self.record["resumed_from"] = start
            # Where the run began, carried over from the record it resumes (read once, here): a run
            # continued in another session or on another machine keeps its origin.
            try:
                earlier = json.loads((self.run_dir / "provenance.json").read_text())
            except (OSError, ValueError):
                earlier = {}
            started = earlier.get("started") or {k: earlier[k] for k in ("commit", "date", "device") if k in earlier}
            if started:
                self.record["started"] = started
            if "init_from" in earlier:  # the weights it began from, hashed then (the file may since have changed)
                self.record["init_from"] = earlier["init_from"]
        paper_experiment = config.profile in profiles.PROFILES and not profiles.PROFILES[config.profile].indicative
        if paper_experiment and config.iterations < PAPER_ITERATIONS:
            self.record["note"] = f"shortened run: {config.iterations} of the paper's {PAPER_ITERATIONS} iterations"
        self.write()
        keep_until = start if resume else None
        self.train_log = _CsvLog(self.run_dir / "train_log.csv", LOG_COLUMNS, keep_until)
        self.val_log = _CsvLog(self.run_dir / "val_log.csv", VAL_COLUMNS, keep_until)
        self.pairs = validation_pairs(config)
        self.busy, self.data_time, self.steps = 0.0, 0.0, 0  # time in steps (not bookkeeping) since the last log row

    def write(self, **changes) -> None:
        self.record.update(changes)
        write_json(self.run_dir / "provenance.json", self.record)

    def validate(self, iteration: int) -> None:
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
            row.update(
                iteration=done, grad_norm=float(grad_norm), lr=lr_now, s_per_it=self.busy / self.steps,
                samples_per_s=self.steps * config.batch_size / self.busy, data_share=self.data_time / self.busy,
            )  # fmt: skip
            self.train_log.append(_rounded(row))
            self.busy, self.data_time, self.steps = 0.0, 0.0, 0
        if done % config.val_every == 0 or done == config.iterations:
            self.validate(done)
            _save_curves(self.run_dir)
        if done % config.checkpoint_every == 0 or done == config.iterations:
            self.save(done)

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
        """Write the model alone (``IRN_x{s}.pth``: the weights' average when kept) and record
        ``iteration`` as the export's."""
        save_model(self.state.exported_net, self.run_dir / f"IRN_x{self.config.scale}.pth")
        self.write(iterations_done=iteration)

    def reconcile(self, start: int) -> None:
        """On resume: export the weights of ``last.pt`` (iteration ``start``) again.

        A folder written before ``last.pt`` became the commit point (or by hand) may hold an
        export older than ``last.pt``; afterwards the export is always the checkpoint's model.
        """
        if start:
            self.export(start)

    def finish(self) -> None:
        if not self.last_path.is_file() or not (self.run_dir / f"IRN_x{self.config.scale}.pth").is_file():
            self.save(self.config.iterations)  # a run of 0 iterations, or an export that went missing
        _save_curves(self.run_dir)
        self.record.update(status="finished", iterations_done=self.config.iterations)
        if self.val_log.rows:
            as_numbers = lambda row: {
                k: (int(v) if k == "iteration" else float(v)) for k, v in row.items() if v not in (None, "")
            }  # noqa: E731
            self.record["validation_first"] = as_numbers(self.val_log.rows[0])
            self.record["validation_last"] = as_numbers(self.val_log.rows[-1])
        self.write()


def _divergence(iteration: int, err: NonFiniteStep, last_path: Path) -> TrainingDiverged:
    """The error that stops a run: nothing is saved, so the last good checkpoint stays what it was."""
    kept = (
        f"the last good checkpoint {last_path} is kept" if last_path.is_file() else "no checkpoint had been written yet"
    )
    return TrainingDiverged(
        f"training diverged at iteration {iteration}: non-finite value(s) {err.values}; the update was not "
        f"applied and {kept}. Try a lower learning rate (lr=...), or amp='off' if it was on."
    )


# ----------------------------------------------------------------------------------------
# The runner


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
        the last good checkpoint stays in place.
    SettingsError
        If ``resume`` meets a checkpoint trained with mathematically different settings, the
        device is not there, or ``IRN_THREADS`` is malformed.
    CheckpointUnreadable
        If ``checkpoints/last.pt`` cannot be read (or is missing beside periodic checkpoints).
    RunFolderBusy
        If another process is training in the same run folder.

    All of these are :class:`TrainingError`; nothing in the run folder is changed by them.
    """
    try:
        threads = apply_thread_policy()  # once per process; adjust_threads() follows the load below
    except ValueError as err:  # a malformed IRN_THREADS
        raise SettingsError(str(err)) from None
    rank, world, device = _setup_distributed(config)
    lock = lock_run_folder(config.run_dir) if rank == 0 else None
    try:
        return _train_locked(config, resume, rank, world, device, threads.reason)
    finally:
        if lock is not None:
            os.close(lock)  # releases the run folder


def _train_locked(config: TrainConfig, resume: bool, rank: int, world: int, device: torch.device, threads: str) -> Path:
    """:func:`train` once the thread policy, the device and the run folder's lock are settled."""
    from tqdm.auto import tqdm

    is_main = rank == 0
    config = dataclasses.replace(config, amp=resolve_amp(config.amp, device))
    if device.type == "cpu" and config.tune_allocator:
        tune_cpu_allocator()
    state = build(config, device, world)
    start = resume_or_wipe(state, config, device, resume, is_main, world)
    loader = training_loader(config, start, rank, world, device)
    run = RunRecord(config, state, device, world, start, resume, threads) if is_main else None
    if run and start == 0:
        run.validate(0)
    if run:
        run.reconcile(start)

    bar = tqdm(
        total=config.iterations,
        initial=start,
        desc=config.run_name,
        unit="it",
        disable=not (is_main and config.progress),
    )
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    state.model.train()
    batches = iter(loader)
    for t in range(start, config.iterations):
        tic = time.perf_counter()
        hr, lr_ref, z_prime = next(batches)  # (b, 3, P, P), (b, 3, P/s, P/s), (b, 3s²−3, P/s, P/s)
        hr = hr.to(device, non_blocking=True, memory_format=memory_format)
        lr_ref, z_prime = lr_ref.to(device, non_blocking=True), z_prime.to(device, non_blocking=True)
        data_time = time.perf_counter() - tic
        try:
            values, grad_norm, lr_now = train_step(state, hr, lr_ref, z_prime, config, t, world)
        except NonFiniteStep as err:
            bar.close()
            diverged = _divergence(t + 1, err, config.run_dir / "checkpoints" / "last.pt")
            if run:
                run.write(status="diverged", diverged_at=t + 1, message=str(diverged))
            raise diverged from None
        done = t + 1  # iterations completed
        adjust_threads()  # at most one measurement per 5 s
        if run:
            run.step(done, values, grad_norm, lr_now, tic, data_time, bar)
        if world > 1 and (done % config.checkpoint_every == 0 or done == config.iterations):
            dist.barrier()  # nobody runs ahead of a checkpoint being written
    bar.close()

    if run:
        run.finish()
    if world > 1:
        dist.barrier()
    return config.run_dir


def main(argv=None) -> Path:
    """Command line: ``python -m irnlib.train [--profile P] [--fresh] [field=value ...]``.

    Also the entry point under ``torchrun --nproc_per_node=N -m irnlib.train ...``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m irnlib.train",
        description="Train IRN (the paper's objective). Any TrainConfig field can be set as field=value.",
    )
    parser.add_argument("--profile", default="smoke", choices=sorted(profiles.PROFILES))
    parser.add_argument("--fresh", action="store_true", help="start afresh instead of resuming the run")
    parser.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    parser.add_argument("overrides", nargs="*", metavar="field=value", help="e.g. scale=2 iterations=1000 device=cuda")
    args = parser.parse_args(argv)
    try:
        config = make_config(args.profile, **parse_overrides(args.overrides))
    except ValueError as err:
        parser.error(str(err))
    if args.print_config:
        print(json.dumps(dataclasses.asdict(config), indent=2))
        return config.run_dir
    try:
        run_dir = train(config, resume=not args.fresh)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run folder: {run_dir}")
    return run_dir


def command(argv=None, prefix: str = "error") -> int:
    """:func:`main` inside the training error boundary; returns the exit status.

    An expected failure (:class:`TrainingError`: an unreadable ``last.pt``, changed settings on
    resume, a missing device, a malformed ``IRN_THREADS``, a busy run folder, divergence) is
    printed as one line ``<prefix>: <message>`` on stderr, without a traceback.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``).
    prefix : str
        ``"error"`` for ``python -m irnlib.train``, ``"irn: error"`` for ``irn train``.

    Returns
    -------
    int
        0 on success, else the error's :attr:`TrainingError.exit_status` (2, or 3 for divergence).
        A bad argument exits through argparse (status 2).
    """
    try:
        main(argv)
    except TrainingError as err:
        print(f"{prefix}: {err}", file=sys.stderr)
        return err.exit_status
    return 0


if __name__ == "__main__":
    sys.exit(command())
