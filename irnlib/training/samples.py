"""The training data: a deterministic stream of samples, sliced by iteration and rank.

Every sample is a deterministic function of ``(seed, index)`` (the HR patch, its bicubic LR
and the latent draw ``z'``), and iteration ``t`` uses samples ``t·B .. t·B + B − 1``; under
DDP, rank ``r`` of ``W`` takes the ``r``-th ``B/W`` of them. A resumed run needs no sampler state.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from irnlib.data.folders import available_datasets, list_images
from irnlib.data.patches import TrainingPatches
from irnlib.runtime.paths import cache_root
from irnlib.training.config import TrainConfig
from irnlib.training.errors import SettingsError

__all__ = ["TrainingSamples", "IterationBatches", "training_patches", "training_loader"]


class TrainingSamples(Dataset):
    """:class:`~irnlib.data.patches.TrainingPatches` plus each sample's latent draw ``z'`` and its loss weights.

    Item ``k`` is ``(hr, lr_ref, z_prime, back_weight, distr_weight)``: the patch pair
    ``patches[k]``, ``z_prime ~ N(0, 1)`` of shape ``(3·s² − 3, P/s, P/s)`` (the shape of ``z``),
    float32, drawn from a generator seeded with ``(seed, k)``, and the sample's weights in L_back
    and L_distr, float32 scalars: 1, except for a synthetic patch of one of ``forward_only_kinds``
    (L_back 0: it trains the forward terms only) or of ``lr_only_kinds`` (L_back and L_distr 0:
    it trains the LR only, L_forw and L_range); a patch of one of ``heavy_back_kinds`` has the
    L_back weight ``heavy_back_weight``, of one of ``free_latent_kinds`` the L_distr weight 0.
    The whole sample depends on ``k`` alone.
    """

    def __init__(
        self,
        patches: Dataset,
        scale: int,
        seed: int,
        forward_only_kinds: tuple[str, ...] = (),
        lr_only_kinds: tuple[str, ...] = (),
        heavy_back_kinds: tuple[str, ...] = (),
        heavy_back_weight: float = 1.0,
        free_latent_kinds: tuple[str, ...] = (),
    ):
        self.patches, self.scale, self.seed = patches, scale, seed
        self.forward_only_kinds, self.lr_only_kinds = tuple(forward_only_kinds), tuple(lr_only_kinds)
        self.heavy_back_kinds, self.heavy_back_weight = tuple(heavy_back_kinds), float(heavy_back_weight)
        self.free_latent_kinds = tuple(free_latent_kinds)

    def __len__(self) -> int:
        return len(self.patches)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, ...]:
        hr, lr = self.patches[k]  # (3, P, P), (3, P/s, P/s)
        c, h, w = lr.shape
        rng = np.random.default_rng((self.seed, k, 1))  # a different stream from the patch's (seed, k)
        z = torch.from_numpy(rng.standard_normal((c * (self.scale**2 - 1), h, w), dtype=np.float32))
        weighted = self.forward_only_kinds or self.lr_only_kinds or self.heavy_back_kinds or self.free_latent_kinds
        kind = self.patches.synthetic_kind(k) if weighted else None
        lr_only = kind in self.lr_only_kinds
        back_weight = 0.0 if lr_only or kind in self.forward_only_kinds else 1.0
        if kind in self.heavy_back_kinds:
            back_weight *= self.heavy_back_weight
        distr_weight = 0.0 if lr_only or kind in self.free_latent_kinds else 1.0
        return hr, lr, z, torch.tensor(back_weight), torch.tensor(distr_weight)


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


def dataset_problem(field: str, name: str, err: Exception, data_root) -> SettingsError:
    """The one-line error for a dataset ``field=name`` that cannot be used, with the datasets present."""
    try:
        present = ", ".join(available_datasets(data_root)) or "none"
    except OSError:
        present = "none"
    reason = " ".join(str(err).split())
    return SettingsError(f"{field}={name}: {reason}; datasets present here: {present}")


def training_patches(config: TrainConfig) -> TrainingPatches:
    """The training patches of ``config.train_set`` (nothing decoded yet).

    Raises
    ------
    SettingsError
        If the dataset is unknown, missing or empty, or its images make no batch; the message lists
        the datasets present.
    """
    try:
        paths = list_images(config.train_set, config.data_root)
        return TrainingPatches(
            paths, config.scale, config.patch_size, config.seed, config.augment, cache_dir=cache_root(),
            lr_target=config.lr_target, sampling=config.sampling, batch_size=config.batch_size,
            synthetic_fraction=config.synthetic_fraction, synthetic_kinds=config.synthetic_kinds,
            synthetic_lr=config.synthetic_lr,
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as err:
        raise dataset_problem("train_set", config.train_set, err, config.data_root) from None


def training_loader(
    config: TrainConfig, start: int, rank: int, world: int, device: torch.device, patches: TrainingPatches | None = None
) -> DataLoader:
    """Batches of iterations ``start ..`` for this process: sample ``k`` is a function of ``(seed, k)``
    (and of the batch size with ``sampling="epoch"``); see :class:`~irnlib.data.patches.TrainingPatches`.

    Decoded images live in a memory-mapped cache shared by all workers (DIV2K: 6.6 GB once,
    not once per worker process). ``patches`` defaults to :func:`training_patches`.
    """
    patches = training_patches(config) if patches is None else patches
    return DataLoader(
        TrainingSamples(
            patches,
            config.scale,
            config.seed,
            config.forward_only_kinds,
            config.lr_only_kinds,
            config.heavy_back_kinds,
            config.heavy_back_weight,
            config.free_latent_kinds,
        ),
        batch_sampler=IterationBatches(start, config.iterations, config.batch_size, rank, world),
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
