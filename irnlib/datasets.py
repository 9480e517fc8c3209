"""Where the images are, how the kit checks them, and the torch datasets it trains and tests on.

Layout. A dataset on disk is a folder of HR images named after the dataset under the *data
root* (``<root>/Set5/*.png``, ``<root>/DIV2K_valid_HR/*.png``; see :mod:`irnlib.registry`).
The data root is, in order: an explicit ``root`` argument, the ``IRN_DATA`` environment
variable, or ``data/`` in the repository. The embedded default datasets (``embedded-train``,
``embedded-test``) are the colour photographs bundled with scikit-image and need no download.

Caches. The data root may be read-only (a shared copy), so everything the kit derives from
the images goes to a separate, writable *cache folder*: an explicit ``cache_dir``, else the
``IRN_CACHE`` environment variable, else ``results/cache/`` in the repository (git-ignored,
removed by ``make clean``). Nothing is ever written into the data root except by
:func:`irnlib.download.download`. Two caches, both optional and both safe to delete:

- ``<cache>/<dataset>/LRbicx<s>/<stem>.png``: the MATLAB-bicubic LR reference of a test
  image (uint8, as :func:`irnlib.imresize` gives it). Each PNG records the SHA-256 of its
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

from .images import ImageFileError, image_size, load_image, mod_crop, save_png
from .paths import atomic_write, cache_root, data_root
from .imresize import imresize
from .registry import DATASETS, EMBEDDED, DatasetInfo, dataset_info

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
            f"irnlib.download.download({name!r}) or notebooks/00_data_preparation.ipynb fetches it)"
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


def verify_folder(folder, info: DatasetInfo | None = None, *, thorough: bool = True, progress: bool = False) -> Verification:
    """Check a folder of images against a registry entry (see :mod:`irnlib.registry`).

    Parameters
    ----------
    folder : path
        The dataset folder.
    info : DatasetInfo, optional
        Expected count, file names and sizes. Without it only decoding (and SHA256SUMS) is
        checked.
    thorough : bool
        Decode every image with :func:`irnlib.images.load_image` and check ``SHA256SUMS``
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
            note = f"missing: irnlib.download.download({info.name!r}) fetches {info.archive.filename}"
        elif check.problems:
            more = f" (+{len(check.problems) - 1} more)" if len(check.problems) > 1 else ""
            note = check.problems[0] + more
        else:
            note = ""
        rows.append({
            "dataset": info.name,
            "purpose": info.purpose,
            "images": check.images,
            "expected": info.count,
            "verified": check.ok,
            "size on disk (MB)": round(check.size_bytes / 1e6, 1),
            "problems": note,
        })
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
        rows.append({
            "dataset": test_set.name,
            "scale": scale,
            "images": len(test_set),
            "reused": reused,
            "computed": len(test_set) - reused,
            "seconds": round(time.perf_counter() - start, 2),
            "folder": str(lr_cache_dir(cache_dir, test_set.name, scale)),
        })
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


class TrainingPatches(Dataset):
    """Random HR training patches and their MATLAB-bicubic LR references.

    Item ``k`` is a deterministic function of ``(seed, k)``: a random image, a random
    ``patch × patch`` crop, a random horizontal flip, vertical flip and transpose (together
    the 8 symmetries of the square, i.e. flips and 90° rotations). A training run takes
    items ``t·B .. t·B + B - 1`` at iteration ``t``, which makes runs reproducible and
    resumable without any sampler state.

    Parameters
    ----------
    paths : sequence of path
        HR training images, each at least ``patch`` pixels on both sides.
    scale : int
    patch : int
        HR patch side, a multiple of ``scale`` (the paper: 144).
    seed : int
    augment : bool
        Random flips and 90° rotations.
    cache_dir : path, optional
        Where decoded images are kept, e.g. ``cache_root()``: one memory-mapped ``.npy``
        per image, written on first use, shared by every process and run. None (the
        default) keeps decoded images in this process's memory instead: fine for small sets;
        for DIV2K (6.6 GB decoded, copied into every DataLoader worker) pass a cache folder.

    Returns
    -------
    hr : float32 tensor (3, patch, patch) in [0, 1]
    lr : float32 tensor (3, patch/scale, patch/scale)
        ``imresize(hr, 1/scale)`` (float, unrounded, as the official training data),
        computed on the fly from the patch.
    """

    def __init__(self, paths, scale: int, patch: int = 144, seed: int = 0, augment: bool = True, *, cache_dir=None):
        if patch % scale:
            raise ValueError(f"patch size {patch} must be a multiple of the scale {scale}")
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("TrainingPatches needs at least one image")
        self.scale, self.patch, self.seed, self.augment = scale, patch, seed, augment
        self.cache_dir = cache_dir
        self._images: dict[int, np.ndarray] = {}  # decoded arrays or memory maps, per process

    def __len__(self) -> int:
        return 2**62  # an endless stream; the training loop decides how much it takes

    def __getstate__(self) -> dict:
        # DataLoader workers get a copy of the dataset: send no decoded pixels (a memory map
        # would be pickled as its full contents); each worker opens what it needs itself.
        return {**self.__dict__, "_images": {}}

    def _image(self, j: int) -> np.ndarray:
        if j not in self._images:
            path = self.paths[j]
            img = load_image(path) if self.cache_dir is None else _load_decoded(path, self.cache_dir)
            if min(img.shape[:2]) < self.patch:
                raise ValueError(f"{path}: image {img.shape[:2]} is smaller than the patch {self.patch}")
            self._images[j] = img
        return self._images[j]

    def crop(self, k: int) -> np.ndarray:
        """The HR patch of item ``k`` as uint8 ``(patch, patch, 3)``, augmented."""
        rng = np.random.default_rng((self.seed, k))
        img = self._image(int(rng.integers(len(self.paths))))
        top = int(rng.integers(img.shape[0] - self.patch + 1))
        left = int(rng.integers(img.shape[1] - self.patch + 1))
        crop = img[top : top + self.patch, left : left + self.patch]
        if self.augment:
            hflip, vflip, transpose = rng.random(3) < 0.5
            crop = crop[:, ::-1] if hflip else crop
            crop = crop[::-1] if vflip else crop
            crop = crop.transpose(1, 0, 2) if transpose else crop
        return np.array(crop)  # a small writable copy, also of a read-only memory map

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        hr = torch.from_numpy(self.crop(k)).permute(2, 0, 1).float() / 255.0  # (3, P, P)
        lr = imresize(hr[None], 1 / self.scale)[0]  # (3, P/s, P/s)
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
