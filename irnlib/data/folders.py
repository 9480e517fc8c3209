"""Dataset folders: where the images of a dataset are, and how the kit checks them.

Layout. A dataset on disk is a folder of HR images named after the dataset under the *data
root* (``<root>/Set5/*.png``, ``<root>/DIV2K_valid_HR/*.png``; see :mod:`irnlib.data.registry`).
The data root is, in order: an explicit ``root`` argument, the ``IRN_DATA`` environment
variable, or ``data/`` in the repository. The embedded default datasets (``embedded-train``,
``embedded-test``) are the colour photographs bundled with scikit-image and need no download.

Checks. :func:`write_checksums` records a folder's SHA-256 sums (``SHA256SUMS``);
:func:`verify_folder` / :func:`verify_dataset` check a folder against its registry entry (and
those sums); :func:`dataset_table` summarises what is present; :func:`dataset_version`
fingerprints a test set's content. Nothing here writes into the data root except
:func:`write_checksums`, which :func:`irnlib.data.download.download` calls.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import skimage.data
from tqdm.auto import tqdm

from irnlib.data.registry import (
    DATASETS,
    EMBEDDED,
    DatasetInfo,
    UnknownDatasetError,
    dataset_info,
    unknown_dataset_message,
)
from irnlib.imaging.images import ImageFileError, image_size, load_image
from irnlib.runtime.paths import atomic_write, data_root, sha256_file

__all__ = [
    "IMAGE_SUFFIXES",
    "EMBEDDED",
    "CHECKSUM_FILE",
    "dataset_folder_name",
    "resolve_dataset_names",
    "dataset_dir",
    "list_images",
    "available_datasets",
    "write_checksums",
    "Verification",
    "verify_folder",
    "verify_dataset",
    "count_problems",
    "dataset_table",
    "dataset_version",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
CHECKSUM_FILE = "SHA256SUMS"


# --------------------------------------------------------------------------- where things are


def dataset_folder_name(name: str) -> str:
    """Registry name for a known dataset or alias (``"B100"`` -> ``"BSD100"``), else ``name``."""
    try:
        return dataset_info(name).name
    except KeyError:
        return name


def resolve_dataset_names(names, root=None) -> list[str]:
    """Check dataset names before any work; return them as registry names (``"B100"`` -> ``"BSD100"``).

    A name is accepted if it is registered (present on disk or not: a missing one is for the
    caller to report with its download advice) or if the data root holds a folder of that
    name (a dataset of your own). ``"A+B"`` unions are checked part by part. This is the
    function a command line or notebook calls to validate ``--datasets`` early.

    Raises
    ------
    UnknownDatasetError
        A ValueError (and KeyError) naming the first unknown name and listing the known ones.
    """
    resolved = []
    for name in [names] if isinstance(names, str) else list(names):
        for part in str(name).split("+"):
            try:
                dataset_info(part)
            except UnknownDatasetError:
                folder = data_root(root) / part
                if not part or not folder.is_dir():
                    raise UnknownDatasetError(
                        f"{unknown_dataset_message(part)}; nor is there a folder {folder} of your own"
                    ) from None
        resolved.append("+".join(dataset_folder_name(part) for part in str(name).split("+")))
    return resolved


def dataset_dir(name: str, root=None) -> Path:
    """Folder holding the HR images of dataset ``name`` (aliases such as ``"B100"`` accepted)."""
    name = dataset_folder_name(name)
    if name in EMBEDDED:
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
    name = dataset_folder_name(name)
    folder = dataset_dir(name, root)
    if name in EMBEDDED:
        paths = [folder / f for f in EMBEDDED[name]]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"embedded dataset {name}: scikit-image is missing {missing}")
        return paths
    if not folder.is_dir() and name not in DATASETS:  # no download can fetch it: say what is known
        raise FileNotFoundError(f"dataset {name!r} not found: no folder {folder}, and {unknown_dataset_message(name)}")
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
    """The problem with one image file, or None.

    The size is read from the header first, so an image outside the entry's bounds (or over
    Pillow's decompression-bomb limit) is reported without being decoded.
    """
    try:
        h, w = image_size(path)
        if info is not None and not (info.min_side <= min(h, w) and max(h, w) <= info.max_side):
            return f"{path}: size {h}×{w} outside the expected {info.min_side}..{info.max_side} pixels per side"
        if thorough:
            load_image(path)
    except (ImageFileError, FileNotFoundError) as err:
        return str(err)
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
    problems = count_problems(folder, info, paths) if info is not None else []
    for path in tqdm(paths, desc=f"verify {name}", disable=not progress, leave=False):
        problem = _check_image(path, info, thorough)
        if problem:
            problems.append(problem)
    checksums, sum_problems = _check_sums(folder, paths) if thorough else ("not checked", [])
    size = sum(p.stat().st_size for p in paths)
    size += (folder / CHECKSUM_FILE).stat().st_size if (folder / CHECKSUM_FILE).is_file() else 0
    return Verification(name, folder, len(paths), expected, size, thorough, checksums, problems + sum_problems)


def count_problems(folder, info: DatasetInfo, paths) -> list[str]:
    """What differs between the images ``paths`` of ``folder`` and the entry ``info``: their
    number, and the expected file names where the entry fixes them. Empty when they match."""
    problems = []
    if len(paths) != info.count:
        problems.append(f"{folder}: {len(paths)} images, expected {info.count}")
    if info.stems is not None:
        missing = sorted(set(info.stems) - {Path(p).stem for p in paths})
        if missing:
            problems.append(f"{folder}: missing {len(missing)} expected images, e.g. {missing[:3]}")
    return problems


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
