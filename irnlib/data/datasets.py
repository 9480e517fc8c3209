"""Where the images are, how the kit checks them, and the torch datasets it trains and tests on.

Layout. A dataset on disk is a folder of HR images named after the dataset under the *data
root* (``<root>/Set5/*.png``, ``<root>/DIV2K_valid_HR/*.png``; see :mod:`irnlib.data.registry`).
The data root is, in order: an explicit ``root`` argument, the ``IRN_DATA`` environment
variable, or ``data/`` in the repository. The embedded default datasets (``embedded-train``,
``embedded-test``) are the colour photographs bundled with scikit-image and need no download.

Caches. The data root may be read-only (a shared copy), so everything the kit derives from
the images goes to a separate, writable *cache folder*: an explicit ``cache_dir``, else the
``IRN_CACHE`` environment variable, else ``results/cache/`` in the repository (git-ignored,
removed by ``make clean``). Nothing is ever written into the data root except by
:func:`irnlib.data.download.download`. Two caches, both optional and both safe to delete:

- ``<cache>/<dataset>/LRbicx<s>/<stem>.png``: the MATLAB-bicubic LR reference of a test
  image (uint8, as :func:`irnlib.imaging.imresize` gives it). Each PNG records the SHA-256 of its
  source file and the cache version in its text chunks; it is reused only if both match,
  otherwise recomputed and replaced.
- ``<cache>/decoded/<stem>-<key>.npy``: a decoded training image (uint8 ``H×W×3``), read
  memory-mapped so that cropping a patch costs almost nothing. ``key`` hashes the source's
  absolute path, size and modification time, so a changed source gets a new file. DIV2K's
  800 training images take about 6.6 GB here.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from irnlib.data.registry import DATASETS, EMBEDDED, DatasetInfo, dataset_info
from irnlib.imaging.images import ImageFileError, image_size, load_image, mod_crop, save_png
from irnlib.imaging.imresize import imresize
from irnlib.runtime.paths import atomic_write, cache_root, data_root

__all__ = [
    "IMAGE_SUFFIXES",
    "EMBEDDED",
    "CHECKSUM_FILE",
    "LR_CACHE_VERSION",
    "dataset_dir",
    "list_images",
    "available_datasets",
    "sha256_file",
    "dataset_version",
    "write_checksums",
    "Verification",
    "verify_folder",
    "verify_dataset",
    "dataset_table",
    "lr_cache_dir",
    "lr_cache_path",
    "lr_reference",
    "prepare_lr_references",
    "TestPair",
    "PairedTestSet",
    "TrainingPatches",
    "SAMPLINGS",
    "LR_TARGETS",
    "official_training_size",
    "bilinear_resize",
    "official_training_image",
    "epoch_order",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
CHECKSUM_FILE = "SHA256SUMS"
# Bump when the LR references change meaning (e.g. a fix in imresize): old cache entries are
# then recomputed instead of reused.
LR_CACHE_VERSION = "1"


# --------------------------------------------------------------------------- where things are


def _folder_name(name: str) -> str:
    """Registry name for a known dataset or alias (``"B100"`` -> ``"BSD100"``), else ``name``."""
    try:
        return dataset_info(name).name
    except KeyError:
        return name


def dataset_dir(name: str, root=None) -> Path:
    """Folder holding the HR images of dataset ``name`` (aliases such as ``"B100"`` accepted)."""
    name = _folder_name(name)
    if name in EMBEDDED:
        import skimage.data

        return Path(skimage.data.data_dir)
    return data_root(root) / name


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def list_images(name: str, root=None) -> list[Path]:
    """Sorted HR image files of dataset ``name``.

    ``"A+B"`` names the union of datasets ``A`` and ``B`` (e.g. the classical 291-image
    training set ``"T91+BSD200"``), sorted by file name.

    Raises
    ------
    FileNotFoundError
        If the dataset folder is missing or holds no images; the message says where it
        looked and how to get the data.
    ValueError
        If the datasets of a union share a file name.
    """
    if "+" in name:
        paths = [p for part in name.split("+") for p in list_images(part, root)]
        clashes = sorted(n for n, count in Counter(p.name for p in paths).items() if count > 1)
        if clashes:
            raise ValueError(f"datasets {name!r} share the file name(s) {clashes}; a union needs distinct names")
        return sorted(paths, key=lambda p: p.name)
    name = _folder_name(name)
    folder = dataset_dir(name, root)
    if name in EMBEDDED:
        paths = [folder / f for f in EMBEDDED[name]]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"embedded dataset {name}: scikit-image is missing {missing}")
        return paths
    if not folder.is_dir():
        raise FileNotFoundError(
            f"dataset {name!r} not found: no folder {folder} (set IRN_DATA or pass the data root; "
            f"irnlib.data.download.download({name!r}) or notebooks/00_data_preparation.ipynb fetches it)"
        )
    paths = _image_files(folder)
    if not paths:
        raise FileNotFoundError(f"dataset {name!r}: the folder {folder} holds no images")
    return paths


def available_datasets(root=None) -> list[str]:
    """Registered datasets present under the data root (a folder with images), embedded first."""
    present = [name for name in EMBEDDED]
    for name in DATASETS:
        folder = data_root(root) / name
        if name not in EMBEDDED and folder.is_dir() and _image_files(folder):
            present.append(name)
    return present


# --------------------------------------------------------------------------- verification


def sha256_file(path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(folder) -> Path:
    """Write ``<folder>/SHA256SUMS`` for its images (``sha256sum -c`` format), atomically."""
    folder = Path(folder)
    lines = "".join(f"{sha256_file(p)}  {p.name}\n" for p in _image_files(folder))
    return atomic_write(folder / CHECKSUM_FILE, lambda tmp: tmp.write_text(lines))


def _read_checksums(path: Path) -> dict[str, str]:
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, _, name = line.partition("  ")
            sums[name.strip().lstrip("*")] = digest.strip().lower()
    return sums


@dataclass
class Verification:
    """What :func:`verify_dataset` found. ``ok`` is true when ``problems`` is empty."""

    name: str
    folder: Path
    images: int  # image files found
    expected: int | None  # from the registry; None for an unregistered folder
    size_bytes: int  # image files plus SHA256SUMS
    thorough: bool  # every file decoded and SHA256SUMS checked, or headers only
    checksums: str  # "n files match SHA256SUMS", "no SHA256SUMS", "not checked"
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_image(path: Path, info: DatasetInfo | None, thorough: bool) -> str | None:
    """The problem with one image file, or None."""
    try:
        if thorough:
            h, w = load_image(path).shape[:2]
        else:
            h, w = image_size(path)
    except (ImageFileError, FileNotFoundError) as err:
        return str(err)
    if info is not None and not (info.min_side <= min(h, w) and max(h, w) <= info.max_side):
        return f"{path}: size {h}×{w} outside the expected {info.min_side}..{info.max_side} pixels per side"
    return None


def _check_sums(folder: Path, paths: list[Path]) -> tuple[str, list[str]]:
    sums_file = folder / CHECKSUM_FILE
    if not sums_file.is_file():
        return "no SHA256SUMS", []
    sums = _read_checksums(sums_file)
    problems = [f"{p}: not listed in {sums_file}" for p in paths if p.name not in sums]
    problems += [f"{folder / n}: listed in {sums_file} but missing" for n in sums if not (folder / n).is_file()]
    for p in paths:
        if p.name in sums and sha256_file(p) != sums[p.name]:
            problems.append(f"{p}: SHA-256 differs from {sums_file}")
    return f"{len(sums)} files checked against SHA256SUMS", problems


def verify_folder(
    folder, info: DatasetInfo | None = None, *, thorough: bool = True, progress: bool = False
) -> Verification:
    """Check a folder of images against a registry entry (see :mod:`irnlib.data.registry`).

    Parameters
    ----------
    folder : path
        The dataset folder.
    info : DatasetInfo, optional
        Expected count, file names and sizes. Without it only decoding (and SHA256SUMS) is
        checked.
    thorough : bool
        Decode every image with :func:`irnlib.imaging.images.load_image` and check ``SHA256SUMS``
        when the folder has one. Otherwise read image headers only (fast, for "is it there").
    progress : bool
        Show a tqdm bar.
    """
    folder = Path(folder)
    name = info.name if info is not None else folder.name
    expected = info.count if info is not None else None
    if not folder.is_dir():
        return Verification(name, folder, 0, expected, 0, thorough, "not checked", [f"{folder}: no such folder"])
    paths = _image_files(folder)
    problems = []
    if expected is not None and len(paths) != expected:
        problems.append(f"{folder}: {len(paths)} images, expected {expected}")
    if info is not None and info.stems is not None:
        missing = sorted(set(info.stems) - {p.stem for p in paths})
        if missing:
            problems.append(f"{folder}: missing {len(missing)} expected images, e.g. {missing[:3]}")
    for path in tqdm(paths, desc=f"verify {name}", disable=not progress, leave=False):
        problem = _check_image(path, info, thorough)
        if problem:
            problems.append(problem)
    checksums, sum_problems = _check_sums(folder, paths) if thorough else ("not checked", [])
    size = sum(p.stat().st_size for p in paths)
    size += (folder / CHECKSUM_FILE).stat().st_size if (folder / CHECKSUM_FILE).is_file() else 0
    return Verification(name, folder, len(paths), expected, size, thorough, checksums, problems + sum_problems)


def verify_dataset(name: str, root=None, *, thorough: bool = True, progress: bool = False) -> Verification:
    """Check dataset ``name`` under the data root; see :func:`verify_folder`.

    The embedded datasets are checked file by file from scikit-image's data folder.
    """
    info = dataset_info(name)
    if info.name not in EMBEDDED:
        return verify_folder(dataset_dir(info.name, root), info, thorough=thorough, progress=progress)
    paths = [dataset_dir(info.name) / f for f in EMBEDDED[info.name]]
    problems = [p for p in (_check_image(path, info, thorough) for path in paths) if p]
    size = sum(p.stat().st_size for p in paths if p.is_file())
    return Verification(info.name, paths[0].parent, len(paths), info.count, size, thorough, "not applicable", problems)


def dataset_table(names=None, root=None, *, thorough: bool = True, progress: bool = False):
    """What is present: a pandas DataFrame, one row per dataset.

    Columns: ``dataset``, ``purpose``, ``images`` (found), ``expected``, ``verified`` (bool),
    ``size on disk (MB)``, ``problems`` (first problem and how many, or how to get a missing
    dataset). ``names`` defaults to every registered dataset.
    """
    import pandas as pd

    rows = []
    for name in names if names is not None else list(DATASETS):
        info = dataset_info(name)
        check = verify_dataset(info.name, root, thorough=thorough, progress=progress)
        if check.images == 0 and info.archive is not None:
            note = f"missing: irnlib.data.download.download({info.name!r}) fetches {info.archive.filename}"
        elif check.problems:
            more = f" (+{len(check.problems) - 1} more)" if len(check.problems) > 1 else ""
            note = check.problems[0] + more
        else:
            note = ""
        rows.append(
            {
                "dataset": info.name,
                "purpose": info.purpose,
                "images": check.images,
                "expected": info.count,
                "verified": check.ok,
                "size on disk (MB)": round(check.size_bytes / 1e6, 1),
                "problems": note,
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- LR reference cache


def lr_cache_dir(cache_dir, dataset: str, scale: int) -> Path:
    """``<cache>/<dataset>/LRbicx<scale>``: the cached LR references of one dataset and scale."""
    return cache_root(cache_dir) / _folder_name(dataset) / f"LRbicx{scale}"


def lr_cache_path(cache_dir, dataset: str, scale: int, stem: str) -> Path:
    """``<cache>/<dataset>/LRbicx<scale>/<stem>.png``."""
    return lr_cache_dir(cache_dir, dataset, scale) / f"{stem}.png"


def _read_cached_lr(path: Path, key: dict[str, str], shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached LR if ``path`` exists, records ``key`` and has ``shape``; else None."""
    try:
        with Image.open(path) as pil:
            pil.load()
            if any(pil.text.get(k) != v for k, v in key.items()) or pil.mode != "RGB":
                return None
            lr = np.asarray(pil, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError):
        return None  # absent or unreadable: recompute
    return lr if lr.shape == shape else None


def lr_reference(hr: np.ndarray, scale: int, cache_file=None, source=None) -> tuple[np.ndarray, bool]:
    """The MATLAB-bicubic LR reference ``imresize(hr, 1/scale)``, from the cache when valid.

    Parameters
    ----------
    hr : ndarray of uint8, shape (H, W, 3)
        HR image, H and W multiples of ``scale``.
    scale : int
    cache_file : path, optional
        Cache entry to reuse or (re)write; None computes without caching.
    source : path, optional
        The file ``hr`` was read from; its SHA-256 keys the cache entry. Required with
        ``cache_file``.

    Returns
    -------
    lr : ndarray of uint8, shape (H/scale, W/scale, 3)
    reused : bool
        Whether it came from the cache.
    """
    if cache_file is None:
        return imresize(hr, 1 / scale), False
    if source is None:
        raise ValueError("lr_reference: a cache_file needs the source file that keys it")
    key = {
        "irnlib-lr-version": LR_CACHE_VERSION,
        "method": "MATLAB imresize bicubic, uint8",
        "scale": str(scale),
        "source-sha256": sha256_file(source),
        "hr-size": f"{hr.shape[0]}x{hr.shape[1]}",
    }
    shape = (hr.shape[0] // scale, hr.shape[1] // scale, 3)
    cached = _read_cached_lr(Path(cache_file), key, shape)
    if cached is not None:
        return cached, True
    lr = imresize(hr, 1 / scale)
    save_png(cache_file, lr, metadata={**key, "source": Path(source).name})
    return lr, False


def prepare_lr_references(name: str, scales=(2, 4), root=None, *, cache_dir=None, progress: bool = True):
    """Compute (or check) the cached LR references of dataset ``name`` for every scale.

    ``cache_dir`` None means the default cache folder (:func:`cache_root`). Returns a pandas
    DataFrame: ``dataset``, ``scale``, ``images``, ``reused`` (already cached and valid),
    ``computed``, ``seconds``, ``folder``.
    """
    import pandas as pd

    cache_dir = cache_root(cache_dir)
    rows = []
    for scale in scales:
        start = time.perf_counter()
        test_set = PairedTestSet(name, scale, root, cache_dir=cache_dir)
        reused = 0
        for i in tqdm(range(len(test_set)), desc=f"{test_set.name} LRbicx{scale}", disable=not progress, leave=False):
            reused += test_set.load(i)[1]
        rows.append(
            {
                "dataset": test_set.name,
                "scale": scale,
                "images": len(test_set),
                "reused": reused,
                "computed": len(test_set) - reused,
                "seconds": round(time.perf_counter() - start, 2),
                "folder": str(lr_cache_dir(cache_dir, test_set.name, scale)),
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- test pairs


@dataclass
class TestPair:
    """One evaluation image: HR mod-cropped to a multiple of ``scale`` and its bicubic LR."""

    __test__ = False  # not a pytest test class, whatever its name

    name: str  # file stem, e.g. "baby"
    hr: np.ndarray  # uint8 (H, W, 3), H and W multiples of scale
    lr: np.ndarray  # uint8 (H/scale, W/scale, 3): MATLAB imresize(hr, 1/scale)


class PairedTestSet(Dataset):
    """HR test images with their MATLAB-bicubic LR references.

    Parameters
    ----------
    name : str
        Dataset name (``"Set5"``, ``"embedded-test"``, aliases such as ``"B100"``, ...).
    scale : int
        Downscaling factor.
    root : path, optional
        Data root (see :func:`data_root`).
    cache_dir : path, optional
        Cache folder for the LR references, e.g. ``cache_root()`` for the default one. None
        (the default) computes them on every access and writes nothing.

    Items are :class:`TestPair` s, in file-name order.
    """

    def __init__(self, name: str, scale: int, root=None, *, cache_dir=None):
        self.name, self.scale = _folder_name(name), scale
        self.paths = list_images(self.name, root)
        self.cache_dir = cache_dir

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> tuple[TestPair, bool]:
        """Item ``i`` and whether its LR came from the cache."""
        path = self.paths[i]
        hr = mod_crop(load_image(path), self.scale)
        cache_file = None
        if self.cache_dir is not None:
            cache_file = lr_cache_path(self.cache_dir, self.name, self.scale, path.stem)
        lr, reused = lr_reference(hr, self.scale, cache_file, source=path)
        return TestPair(path.stem, hr, lr), reused

    def __getitem__(self, i: int) -> TestPair:
        return self.load(i)[0]


# --------------------------------------------------------------------------- training patches


def _decoded_cache_file(cache_dir, path: Path) -> Path:
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_root(cache_dir) / "decoded" / f"{path.stem}-{key}.npy"


def _load_decoded(path: Path, cache_dir) -> np.ndarray:
    """``load_image(path)`` via the decoded-image cache: a read-only memory map."""
    cache_file = _decoded_cache_file(cache_dir, path)
    if not cache_file.is_file():
        img = load_image(path)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # a file object: np.save(path) would append ".npy"
                np.save(f, img)

        atomic_write(cache_file, write)
    return np.load(cache_file, mmap_mode="r")


SAMPLINGS = ("epoch", "stream")  # how TrainingPatches picks the image of item k
LR_TARGETS = ("image", "patch")  # how it makes the LR target of a patch
OFFICIAL_TRAIN_VERSION = "1"  # bump when official_training_image changes meaning


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


def _save_npy(cache_file: Path, arr: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, arr)

    atomic_write(cache_file, write)


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
    ):
        if patch % scale:
            raise ValueError(f"patch size {patch} must be a multiple of the scale {scale}")
        if lr_target not in LR_TARGETS:
            raise ValueError(f"lr_target must be one of {LR_TARGETS}, got {lr_target!r}")
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
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
        self._images: dict[int, np.ndarray] = {}  # decoded arrays or memory maps, per process
        self._prepared: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # (hr, whole-image lr) per image
        self._orders: dict[int, np.ndarray] = {}  # epoch -> image order

    def __len__(self) -> int:
        return 2**62  # an endless stream; the training loop decides how much it takes

    def __getstate__(self) -> dict:
        # DataLoader workers get a copy of the dataset: send no decoded pixels (a memory map
        # would be pickled as its full contents); each worker opens what it needs itself.
        return {**self.__dict__, "_images": {}, "_prepared": {}, "_orders": {}}

    def _image(self, j: int) -> np.ndarray:
        if j not in self._images:
            path = self.paths[j]
            img = load_image(path) if self.cache_dir is None else _load_decoded(path, self.cache_dir)
            if self.lr_target == "patch" and min(img.shape[:2]) < self.patch:
                raise ValueError(f"{path}: image {img.shape[:2]} is smaller than the patch {self.patch}")
            self._images[j] = img
        return self._images[j]

    def prepared(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Image ``j`` as the official release trains on it: (HR, whole-image float LR);
        see :func:`official_training_image`. Cached (on disk with a ``cache_dir``)."""
        if j in self._prepared:
            return self._prepared[j]
        if self.cache_dir is None:
            pair = official_training_image(self._image(j), self.scale, self.patch)
        else:
            decoded = _decoded_cache_file(self.cache_dir, self.paths[j])
            folder = decoded.parent / f"official-x{self.scale}-p{self.patch}-v{OFFICIAL_TRAIN_VERSION}"
            lr_file, hr_file = folder / f"{decoded.stem}.lr.npy", folder / f"{decoded.stem}.hr.npy"
            img = self._image(j)
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
        with ``lr_target="image"``, the LR patch (float32); ``None`` with ``"patch"``."""
        rng = np.random.default_rng((self.seed, k))
        j = self.image_index(k, rng)
        if self.lr_target == "patch":
            img = self._image(j)
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
        # small writable copies, also of read-only memory maps
        return np.array(hr), None if lr is None else np.array(lr)

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
        else:
            lr = torch.from_numpy(np.ascontiguousarray(lr_arr)).permute(2, 0, 1).contiguous()
        return hr, lr


def dataset_version(name: str, root=None) -> dict:
    """Image count and a content fingerprint of a test set (SHA-256 over file names and bytes).

    Returns
    -------
    dict
        ``{"dataset", "images", "sha256" (first 16 hex digits), "folder"}``.

    Raises
    ------
    FileNotFoundError
        If the dataset is not on disk.
    """
    paths = list_images(name, root)
    digest = hashlib.sha256()
    for p in paths:
        digest.update(p.name.encode())
        digest.update(p.read_bytes())
    return {"dataset": name, "images": len(paths), "sha256": digest.hexdigest()[:16], "folder": str(paths[0].parent)}
