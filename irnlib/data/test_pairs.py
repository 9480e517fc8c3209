"""Test pairs: each HR test image, mod-cropped, with its MATLAB-bicubic LR reference.

:class:`PairedTestSet` is the torch dataset the evaluation runs over; its LR references come
from :func:`irnlib.data.lr_cache.lr_reference` (cached on disk with a ``cache_dir``).
:func:`prepare_lr_references` fills that cache for whole datasets ahead of an evaluation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from irnlib.data.folders import count_problems, dataset_folder_name, list_images
from irnlib.data.lr_cache import lr_cache_dir, lr_cache_path, lr_reference
from irnlib.data.registry import DATASETS
from irnlib.imaging.images import image_size, load_image, mod_crop
from irnlib.imaging.metrics import SSIM_WINDOW
from irnlib.runtime.paths import cache_root

__all__ = ["TestPair", "PairedTestSet", "IncompleteDatasetError", "min_test_side", "prepare_lr_references"]


class IncompleteDatasetError(ValueError):
    """A registered test set whose folder does not hold the registry's images: its numbers would
    not be the paper's. The message names the folder, what differs and the fix."""


def min_test_side(scale: int) -> int:
    """The smallest side (pixels) a test image needs at ``scale``: after the mod-crop, the
    evaluation's ``scale``-pixel border must leave SSIM's 11×11 window (16 at ×2, 20 at ×4, 32 at ×8)."""
    return -(-(2 * scale + SSIM_WINDOW) // scale) * scale


def check_test_image_size(path, h: int, w: int, scale: int) -> None:
    """Raise a one-line ValueError naming ``path`` if an ``h``×``w`` image is too small for ``scale``."""
    side = min_test_side(scale)
    if min(h, w) < side:
        raise ValueError(
            f"{path}: {h}×{w} pixels is too small for a x{scale} test pair: both sides must be at least {side} "
            f"pixels (a whole LR, and SSIM's {SSIM_WINDOW}×{SSIM_WINDOW} window inside the {scale}-pixel border); "
            "remove the image from the test folder"
        )


def _check_complete(name: str, paths) -> None:
    """Raise :class:`IncompleteDatasetError` if registered test set ``name`` is not the registry's set."""
    info = DATASETS.get(name)
    if info is None or not paths:
        return  # a folder of your own (or a union): nothing to compare with
    problems = count_problems(paths[0].parent, info, paths)
    if problems:
        raise IncompleteDatasetError(
            f"{name}: {'; '.join(problems)}, so results on it are not comparable with the paper's {name}; "
            f"restore the folder (move it away and run irnlib.data.download.download({name!r})), "
            "or copy the images you want under another folder name to evaluate them as a dataset of your own"
        )


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

    Raises
    ------
    FileNotFoundError
        If the dataset is not on disk.
    IncompleteDatasetError
        If ``name`` is a registered dataset and its folder holds another number of images
        (or other names) than the registry's: a partial Set5 is never measured as Set5.
    ValueError
        If an image is smaller than :func:`min_test_side` (read from the headers, before any
        work), naming the image.
    """

    def __init__(self, name: str, scale: int, root=None, *, cache_dir=None):
        self.name, self.scale = dataset_folder_name(name), scale
        self.paths = list_images(self.name, root)
        _check_complete(self.name, self.paths)
        for path in self.paths:
            check_test_image_size(path, *image_size(path), scale)
        self.cache_dir = cache_dir

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> tuple[TestPair, bool]:
        """Item ``i`` and whether its LR came from the cache."""
        path = self.paths[i]
        img = load_image(path)
        check_test_image_size(path, *img.shape[:2], self.scale)
        hr = mod_crop(img, self.scale)
        cache_file = None
        if self.cache_dir is not None:
            cache_file = lr_cache_path(self.cache_dir, self.name, self.scale, path.stem)
        lr, reused = lr_reference(hr, self.scale, cache_file, source=path)
        return TestPair(path.stem, hr, lr), reused

    def __getitem__(self, i: int) -> TestPair:
        return self.load(i)[0]


def prepare_lr_references(name: str, scales=(2, 4), root=None, *, cache_dir=None, progress: bool = True):
    """Compute (or check) the cached LR references of dataset ``name`` for every scale.

    ``cache_dir`` None means the default cache folder (:func:`cache_root`). Returns a pandas
    DataFrame: ``dataset``, ``scale``, ``images``, ``reused`` (already cached and valid),
    ``computed``, ``seconds``, ``folder``.
    """
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
