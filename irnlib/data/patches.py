"""Training patches: HR crops of the training images and their MATLAB-bicubic LR targets.

:class:`TrainingPatches` is the endless, deterministic stream of training samples; the helpers
around it reproduce how the official release prepares a training image
(:func:`official_training_size`, :func:`bilinear_resize`, :func:`official_training_image`) and
orders an epoch (:func:`epoch_order`).

Cache. Decoded images go to the writable cache folder (an explicit ``cache_dir``, else
``IRN_CACHE``, else ``results/cache/``; see :func:`irnlib.runtime.paths.cache_root`), never
into the data root. Optional and safe to delete:

- ``<cache>/decoded/<stem>-<key>.npy``: a decoded training image (uint8 ``H×W×3``), read
  memory-mapped so that cropping a patch costs almost nothing. ``key`` hashes the source's
  absolute path, size and modification time, so a changed source gets a new file. DIV2K's
  800 training images take about 6.6 GB here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from irnlib.data.synthetic import FIRST_KINDS, patch_of_kind, pick_kind
from irnlib.imaging.images import load_image
from irnlib.imaging.imresize import imresize
from irnlib.runtime.paths import atomic_write, cache_root

__all__ = [
    "TrainingPatches",
    "SAMPLINGS",
    "LR_TARGETS",
    "SYNTHETIC_LRS",
    "official_training_size",
    "bilinear_resize",
    "official_training_image",
    "epoch_order",
]

SAMPLINGS = ("epoch", "stream")  # how TrainingPatches picks the image of item k
LR_TARGETS = ("image", "patch")  # how it makes the LR target of a patch
SYNTHETIC_LRS = ("bicubic", "clipped")  # a synthetic patch's LR target: its bicubic LR, or that in [0, 1]
OFFICIAL_TRAIN_VERSION = "1"  # bump when official_training_image changes meaning


# --------------------------------------------------------------------------- decoded-image cache


def _decoded_cache_file(cache_dir, path: Path) -> Path:
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_root(cache_dir) / "decoded" / f"{path.stem}-{key}.npy"


def _save_npy(cache_file: Path, arr: np.ndarray) -> None:
    """Write ``arr`` as ``.npy`` atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.save(path) would append ".npy"
            np.save(f, arr)

    atomic_write(cache_file, write)


def _load_decoded(path: Path, cache_dir) -> np.ndarray:
    """``load_image(path)`` via the decoded-image cache: a read-only memory map."""
    cache_file = _decoded_cache_file(cache_dir, path)
    if not cache_file.is_file():
        _save_npy(cache_file, load_image(path))
    return np.load(cache_file, mmap_mode="r")


# --------------------------------------------------------------------------- the official preparation


def official_training_size(h: int, w: int, scale: int, patch: int) -> tuple[int, int]:
    """The size the official release brings a training image to before making its LR.

    ``codes/data/LQGT_dataset.py`` (training phase, ``random_scale = 1``): each side becomes
    ``max(patch, ⌊side / scale⌋ · scale)``: rounded *down* to a multiple of the scale, or *up*
    to the patch side if that is smaller. An image already of that size is left alone;
    otherwise the whole image is *resized* (not cropped) to it with OpenCV's bilinear
    interpolation (:func:`bilinear_resize`).
    """
    return max(patch, h // scale * scale), max(patch, w // scale * scale)


def bilinear_resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)`` for a float image, in NumPy.

    Half-pixel centres (source ``x = (i + 0.5) · in/out − 0.5``), the edge pixel repeated
    outside the image, no antialiasing; float64 arithmetic, float32 result (OpenCV computes
    in float32: the two agree to about 1e-7).
    """

    def taps(n_in: int, n_out: int):
        x = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        i0 = np.floor(x).astype(np.int64)
        f = x - i0
        f[i0 < 0], i0[i0 < 0] = 0.0, 0
        top = i0 >= n_in - 1
        f[top], i0[top] = 0.0, n_in - 1
        return i0, np.minimum(i0 + 1, n_in - 1), f

    h, w = size
    arr = np.asarray(img, dtype=np.float64)
    y0, y1, fy = taps(arr.shape[0], h)
    x0, x1, fx = taps(arr.shape[1], w)
    rows = arr[:, x0] * (1 - fx)[None, :, None] + arr[:, x1] * fx[None, :, None]
    out = rows[y0] * (1 - fy)[:, None, None] + rows[y1] * fy[:, None, None]
    return out.astype(np.float32)


def official_training_image(img: np.ndarray, scale: int, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """A training image as the official release prepares it: the HR it crops and its whole LR.

    Returns
    -------
    hr : uint8 (H, W, 3), or float32 in [0, 1]
        ``img`` itself when its sides are already :func:`official_training_size`, else the
        float image ``img / 255`` resized to that size (:func:`bilinear_resize`).
    lr : float32 (H/s, W/s, 3) in [0, 1] (may overshoot slightly, as bicubic does)
        MATLAB ``imresize(hr / 255, 1/s)`` of the *whole* image, float, unrounded
        (the official ``util.imresize_np(img_GT, 1/scale, True)``).
    """
    target = official_training_size(img.shape[0], img.shape[1], scale, patch)
    hr = np.asarray(img)
    if hr.shape[:2] != target:
        hr = bilinear_resize(hr.astype(np.float32) / 255.0, target)
    as_float = hr.astype(np.float64) / 255.0 if hr.dtype == np.uint8 else hr.astype(np.float64)
    lr = imresize(as_float, 1 / scale).astype(np.float32)
    return hr, lr


def epoch_order(seed: int, epoch: int, count: int) -> np.ndarray:
    """The image order of one epoch: a permutation of ``range(count)``, a function of ``(seed, epoch)``."""
    return np.random.default_rng((seed, epoch, 2)).permutation(count)


# --------------------------------------------------------------------------- the dataset


class TrainingPatches(Dataset):
    """HR training patches and their MATLAB-bicubic LR targets.

    Item ``k`` is a deterministic function of ``(seed, k)`` (and, with ``sampling="epoch"``,
    of the batch size): an image, a random ``patch × patch`` crop, a random horizontal flip,
    vertical flip and transpose (together the 8 symmetries of the square, i.e. flips and 90°
    rotations). A training run takes items ``t·B .. t·B + B - 1`` at iteration ``t``, which
    makes runs reproducible and resumable without any sampler state.

    Parameters
    ----------
    paths : sequence of path
        HR training images.
    scale : int
    patch : int
        HR patch side, a multiple of ``scale`` (the paper: 144).
    seed : int
    augment : bool
        Random flips and 90° rotations, applied identically to the HR and LR patches.
    cache_dir : path, optional
        Where decoded images are kept, e.g. ``cache_root()``: one memory-mapped ``.npy``
        per image, written on first use, shared by every process and run (with
        ``lr_target="image"`` also each image's float LR, a quarter of the decoded size at
        ×2, a sixteenth at ×4, in ``decoded/official-x<s>-p<P>/``). None (the default) keeps
        them in this process's memory instead: fine for small sets; for DIV2K pass a cache
        folder.
    lr_target : "patch" or "image"
        ``"image"``: the official release's training data (``LQGT_dataset.py``): the image is
        brought to :func:`official_training_size` (resized if needed, so no image is too
        small), its LR is MATLAB bicubic of the *whole* image in float
        (:func:`official_training_image`, computed once per image and cached), the crop is
        scale-aligned (LR patch at ``(top, left)``, HR patch at ``(s·top, s·left)``) and the
        flips are applied to both patches. ``"patch"`` (the default here, for compatibility;
        training uses ``"image"``): the kit's earlier stream, a crop anywhere and the bicubic
        LR of the augmented patch itself, which differs from the official target in a
        2-pixel LR frame; images smaller than the patch are refused.
    sampling : "stream" or "epoch"
        ``"stream"``: the image of item ``k`` is drawn at random (with replacement).
        ``"epoch"``: the official sampling: every epoch goes through the images in a fresh
        random order (:func:`epoch_order` of ``(seed, epoch)``), ``batch_size`` at a time,
        and drops the last incomplete batch: item ``k`` is image
        ``epoch_order(seed, e, N)[i·B + k mod B]`` with ``t = k // B``,
        ``e = t // (N // B)``, ``i = t mod (N // B)``. Crop and flips come from ``(seed, k)``
        as in the stream.
    batch_size : int
        The global batch ``B``; needed by ``sampling="epoch"``.
    synthetic_fraction : float in [0, 1)
        The kit's robustness recipe (0, the default, is the paper's data): item ``k`` is, with
        this probability, a synthetic patch instead (:func:`irnlib.data.synthetic.synthetic_patch`,
        drawn from its own generator of ``(seed, k, 2)``, so the other items do not change) and its
        LR target the bicubic LR of the patch itself (as ``lr_target="patch"``).
    synthetic_kinds : tuple of str
        The kinds of synthetic patch (default :data:`irnlib.data.synthetic.FIRST_KINDS`).
    synthetic_lr : "bicubic" or "clipped"
        A synthetic patch's LR target: its bicubic LR as it is, or clipped to [0, 1] (bicubic
        overshoots at a hard saturated edge, where L_range holds the LR inside).

    Returns
    -------
    hr : float32 tensor (3, patch, patch) in [0, 1]
    lr : float32 tensor (3, patch/scale, patch/scale)
        The LR target, float and unrounded (as the official training data).
    """

    def __init__(
        self,
        paths,
        scale: int,
        patch: int = 144,
        seed: int = 0,
        augment: bool = True,
        *,
        cache_dir=None,
        lr_target: str = "patch",
        sampling: str = "stream",
        batch_size: int | None = None,
        synthetic_fraction: float = 0.0,
        synthetic_kinds: tuple[str, ...] = FIRST_KINDS,
        synthetic_lr: str = "bicubic",
    ):
        if patch % scale:
            raise ValueError(f"patch size {patch} must be a multiple of the scale {scale}")
        if lr_target not in LR_TARGETS:
            raise ValueError(f"lr_target must be one of {LR_TARGETS}, got {lr_target!r}")
        if not 0.0 <= synthetic_fraction < 1.0:
            raise ValueError(f"synthetic_fraction must be in [0, 1), got {synthetic_fraction!r}")
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        if synthetic_lr not in SYNTHETIC_LRS:
            raise ValueError(f"synthetic_lr must be one of {SYNTHETIC_LRS}, got {synthetic_lr!r}")
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("TrainingPatches needs at least one image")
        if sampling == "epoch":
            if not batch_size or batch_size < 1:
                raise ValueError("sampling='epoch' needs the batch size")
            if len(self.paths) < batch_size:
                raise ValueError(f"sampling='epoch': {len(self.paths)} images make no complete batch of {batch_size}")
        self.scale, self.patch, self.seed, self.augment = scale, patch, seed, augment
        self.cache_dir, self.lr_target, self.sampling, self.batch_size = cache_dir, lr_target, sampling, batch_size
        self.synthetic_fraction, self.synthetic_kinds = synthetic_fraction, tuple(synthetic_kinds)
        self.synthetic_lr = synthetic_lr
        self._images: dict[int, np.ndarray] = {}  # decoded arrays or memory maps, per process
        self._prepared: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # (hr, whole-image lr) per image
        self._orders: dict[int, np.ndarray] = {}  # epoch -> image order

    def __len__(self) -> int:
        return 2**62  # an endless stream; the training loop decides how much it takes

    def __getstate__(self) -> dict:
        # DataLoader workers get a copy of the dataset: send no decoded pixels (a memory map
        # would be pickled as its full contents); each worker opens what it needs itself.
        return {**self.__dict__, "_images": {}, "_prepared": {}, "_orders": {}}

    def image(self, j: int) -> np.ndarray:
        """Decoded image ``j`` (uint8 ``H×W×3``), kept for this process once loaded: an array, or a
        read-only memory map of the decoded-image cache with a ``cache_dir`` (written on first use)."""
        if j not in self._images:
            path = self.paths[j]
            img = load_image(path) if self.cache_dir is None else _load_decoded(path, self.cache_dir)
            if self.lr_target == "patch" and min(img.shape[:2]) < self.patch:
                raise ValueError(f"{path}: image {img.shape[:2]} is smaller than the patch {self.patch}")
            self._images[j] = img
        return self._images[j]

    def forget_images(self) -> None:
        """Drop the images this process holds (:meth:`image`): the next access loads them again,
        decoding the file without a ``cache_dir``. The ``.npy`` files of the cache stay."""
        self._images.clear()

    def prepared(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Image ``j`` as the official release trains on it: (HR, whole-image float LR);
        see :func:`official_training_image`. Cached (on disk with a ``cache_dir``)."""
        if j in self._prepared:
            return self._prepared[j]
        if self.cache_dir is None:
            pair = official_training_image(self.image(j), self.scale, self.patch)
        else:
            decoded = _decoded_cache_file(self.cache_dir, self.paths[j])
            folder = decoded.parent / f"official-x{self.scale}-p{self.patch}-v{OFFICIAL_TRAIN_VERSION}"
            lr_file, hr_file = folder / f"{decoded.stem}.lr.npy", folder / f"{decoded.stem}.hr.npy"
            img = self.image(j)
            if not lr_file.is_file():
                hr, lr = official_training_image(img, self.scale, self.patch)
                if hr is not img and hr.dtype != np.uint8:
                    _save_npy(hr_file, hr)
                _save_npy(lr_file, lr)
            hr = np.load(hr_file, mmap_mode="r") if hr_file.is_file() else img
            pair = (hr, np.load(lr_file, mmap_mode="r"))
        self._prepared[j] = pair
        return pair

    def image_index(self, k: int, rng: np.random.Generator) -> int:
        """The image of item ``k`` (``rng`` is the item's generator; its first draw is always taken)."""
        drawn = int(rng.integers(len(self.paths)))
        if self.sampling == "stream":
            return drawn
        b, n = self.batch_size, len(self.paths)
        t = k // b
        epoch, i = divmod(t, n // b)
        if epoch not in self._orders:
            if len(self._orders) > 4:
                self._orders.clear()
            self._orders[epoch] = epoch_order(self.seed, epoch, n)
        return int(self._orders[epoch][i * b + k % b])

    def _augment(self, arr: np.ndarray, flips) -> np.ndarray:
        hflip, vflip, transpose = flips
        arr = arr[:, ::-1] if hflip else arr
        arr = arr[::-1] if vflip else arr
        return arr.transpose(1, 0, 2) if transpose else arr

    def sample(self, k: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Item ``k`` as arrays: the HR patch (uint8, or float32 for a resized image) and,
        with ``lr_target="image"``, the LR patch (float32); ``None`` with ``"patch"`` and for a
        synthetic patch (its LR target is then the patch's own bicubic LR)."""
        rng = np.random.default_rng((self.seed, k))
        j = self.image_index(k, rng)
        if self.lr_target == "patch":
            img = self.image(j)
            top = int(rng.integers(img.shape[0] - self.patch + 1))
            left = int(rng.integers(img.shape[1] - self.patch + 1))
            hr, lr = img[top : top + self.patch, left : left + self.patch], None
        else:
            img, whole_lr = self.prepared(j)
            p, s = self.patch // self.scale, self.scale
            top = int(rng.integers(whole_lr.shape[0] - p + 1))
            left = int(rng.integers(whole_lr.shape[1] - p + 1))
            lr = whole_lr[top : top + p, left : left + p]
            hr = img[s * top : s * top + self.patch, s * left : s * left + self.patch]
        if self.augment:
            flips = rng.random(3) < 0.5
            hr = self._augment(hr, flips)
            lr = None if lr is None else self._augment(lr, flips)
        extra, kind = self._synthetic_draw(k)
        if kind is not None:
            hr, lr = patch_of_kind(extra, kind, self.patch, hr), None
        # small writable copies, also of read-only memory maps
        return np.array(hr), None if lr is None else np.array(lr)

    def _synthetic_draw(self, k: int) -> tuple[np.random.Generator | None, str | None]:
        """Item ``k``'s own generator of ``(seed, k, 2)`` and its synthetic kind (``None`` for a photograph)."""
        if not self.synthetic_fraction:
            return None, None
        extra = np.random.default_rng((self.seed, k, 2))
        if extra.random() >= self.synthetic_fraction:
            return extra, None
        return extra, pick_kind(extra, self.synthetic_kinds)

    def synthetic_kind(self, k: int) -> str | None:
        """The synthetic kind of item ``k`` (:data:`~irnlib.data.synthetic.SYNTHETIC_KINDS`), or
        ``None`` when it is a photograph's patch; decodes nothing."""
        return self._synthetic_draw(k)[1]

    def crop(self, k: int) -> np.ndarray:
        """The HR patch of item ``k`` as ``(patch, patch, 3)``, augmented: uint8 (float32 in
        [0, 1] for an image the official rule resized)."""
        return self.sample(k)[0]

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        hr_arr, lr_arr = self.sample(k)
        hr = torch.from_numpy(hr_arr).permute(2, 0, 1).float()
        if hr_arr.dtype == np.uint8:
            hr = hr / 255.0  # (3, P, P)
        if lr_arr is None:
            lr = imresize(hr[None], 1 / self.scale)[0]  # (3, P/s, P/s): the patch's own bicubic LR
            if self.synthetic_lr == "clipped" and self.synthetic_kind(k) is not None:
                lr = lr.clamp(0, 1)
        else:
            lr = torch.from_numpy(np.ascontiguousarray(lr_arr)).permute(2, 0, 1).contiguous()
        return hr, lr
