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

from irnlib.data.folders import dataset_folder_name, list_images
from irnlib.data.lr_cache import lr_cache_dir, lr_cache_path, lr_reference
from irnlib.imaging.images import load_image, mod_crop
from irnlib.runtime.paths import cache_root

__all__ = ["TestPair", "PairedTestSet", "prepare_lr_references"]


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
        self.name, self.scale = dataset_folder_name(name), scale
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
