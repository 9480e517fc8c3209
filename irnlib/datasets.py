"""Where the images are, and the torch datasets the kit trains and evaluates on.

A dataset on disk is a folder of HR images named after the dataset under the *data root*
(``<root>/Set5/*.png``, ``<root>/DIV2K_valid_HR/*.png``, ...). The data root is, in order:
an explicit ``root`` argument, the ``IRN_DATA`` environment variable, or ``data/`` in the
repository. The embedded default datasets (``embedded-train``, ``embedded-test``) are the
colour photographs bundled with scikit-image and need no download.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .images import load_image, mod_crop
from .imresize import imresize

__all__ = [
    "REPO_ROOT",
    "IMAGE_SUFFIXES",
    "EMBEDDED",
    "data_root",
    "dataset_dir",
    "list_images",
    "TestPair",
    "PairedTestSet",
    "TrainingPatches",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# scikit-image's bundled colour photographs: file names inside skimage/data/.
EMBEDDED = {
    "embedded-train": (
        "ihc.png",
        "motorcycle_left.png",
        "motorcycle_right.png",
        "rocket.jpg",
        "hubble_deep_field.jpg",
        "retina.jpg",
    ),
    "embedded-test": ("astronaut.png", "chelsea.png", "coffee.png"),
}


def data_root(root=None) -> Path:
    """The data root: ``root`` if given, else ``$IRN_DATA``, else ``<repo>/data``."""
    if root is not None and str(root) != "":
        return Path(root).expanduser()
    env = os.environ.get("IRN_DATA")
    return Path(env).expanduser() if env else REPO_ROOT / "data"


def dataset_dir(name: str, root=None) -> Path:
    """Folder holding the HR images of dataset ``name``."""
    if name in EMBEDDED:
        import skimage.data

        return Path(skimage.data.data_dir)
    return data_root(root) / name


def list_images(name: str, root=None) -> list[Path]:
    """Sorted HR image files of dataset ``name``.

    Raises
    ------
    FileNotFoundError
        If the dataset folder is missing or holds no images; the message says where it
        looked and how to get the data.
    """
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
            "notebooks/00_data_preparation.ipynb downloads the benchmarks)"
        )
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise FileNotFoundError(f"dataset {name!r}: the folder {folder} holds no images")
    return paths


@dataclass
class TestPair:
    """One evaluation image: HR mod-cropped to a multiple of ``scale`` and its bicubic LR."""

    name: str  # file stem, e.g. "baby"
    hr: np.ndarray  # uint8 (H, W, 3), H and W multiples of scale
    lr: np.ndarray  # uint8 (H/scale, W/scale, 3): MATLAB imresize(hr, 1/scale)


class PairedTestSet(Dataset):
    """HR test images with their MATLAB-bicubic LR references.

    Parameters
    ----------
    name : str
        Dataset name (``"Set5"``, ``"embedded-test"``, ...).
    scale : int
        Downscaling factor.
    root : path, optional
        Data root (see :func:`data_root`).

    Items are :class:`TestPair` s, in file-name order.
    """

    def __init__(self, name: str, scale: int, root=None):
        self.name, self.scale = name, scale
        self.paths = list_images(name, root)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> TestPair:
        path = self.paths[i]
        hr = mod_crop(load_image(path), self.scale)
        return TestPair(path.stem, hr, imresize(hr, 1 / self.scale))


class TrainingPatches(Dataset):
    """Random HR training patches and their MATLAB-bicubic LR references.

    Item ``k`` is a deterministic function of ``(seed, k)``: a random image, a random
    ``patch × patch`` crop, a random horizontal flip, vertical flip and transpose (together
    the 8 symmetries of the square, i.e. flips and 90° rotations). A training run takes
    items ``t·B .. t·B + B - 1`` at iteration ``t``, which makes runs reproducible and
    resumable without any sampler state.

    Returns
    -------
    hr : float32 tensor (3, patch, patch) in [0, 1]
    lr : float32 tensor (3, patch/scale, patch/scale)
        ``imresize(hr, 1/scale)`` (float, unrounded, as the official training data).
    """

    def __init__(self, paths, scale: int, patch: int = 144, seed: int = 0, augment: bool = True):
        if patch % scale:
            raise ValueError(f"patch size {patch} must be a multiple of the scale {scale}")
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("TrainingPatches needs at least one image")
        self.scale, self.patch, self.seed, self.augment = scale, patch, seed, augment
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return 2**62  # an endless stream; the training loop decides how much it takes

    def _image(self, j: int) -> np.ndarray:
        if j not in self._cache:
            img = load_image(self.paths[j])
            if min(img.shape[:2]) < self.patch:
                raise ValueError(f"{self.paths[j]}: image {img.shape[:2]} is smaller than the patch {self.patch}")
            self._cache[j] = img
        return self._cache[j]

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
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
        hr = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float() / 255.0
        lr = imresize(hr[None], 1 / self.scale)[0]
        return hr, lr
