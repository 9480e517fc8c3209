"""The LR reference cache: the MATLAB-bicubic LR of each test image, kept on disk.

The data root may be read-only (a shared copy), so everything the kit derives from the images
goes to a separate, writable *cache folder*: an explicit ``cache_dir``, else the ``IRN_CACHE``
environment variable, else ``results/cache/`` in the repository (git-ignored, removed by
``make clean``; see :func:`irnlib.runtime.paths.cache_root`). This module keeps one of its two
caches (the other, the decoded training images, is :mod:`irnlib.data.patches`'s); both are
optional and safe to delete:

- ``<cache>/<dataset>/LRbicx<s>/<stem>.png``: the MATLAB-bicubic LR reference of a test
  image (uint8, as :func:`irnlib.imaging.imresize` gives it). Each PNG records the SHA-256 of its
  source file and the cache version in its text chunks; it is reused only if both match,
  otherwise recomputed and replaced.

:class:`irnlib.data.test_pairs.PairedTestSet` reads its LR references through
:func:`lr_reference`; :func:`irnlib.data.test_pairs.prepare_lr_references` fills the cache for
whole datasets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from irnlib.data.folders import dataset_folder_name
from irnlib.imaging.images import save_png
from irnlib.imaging.imresize import imresize
from irnlib.runtime.paths import cache_root, sha256_file

__all__ = ["LR_CACHE_VERSION", "lr_cache_dir", "lr_cache_path", "lr_reference"]

# Bump when the LR references change meaning (e.g. a fix in imresize): old cache entries are
# then recomputed instead of reused.
LR_CACHE_VERSION = "1"


def lr_cache_dir(cache_dir, dataset: str, scale: int) -> Path:
    """``<cache>/<dataset>/LRbicx<scale>``: the cached LR references of one dataset and scale."""
    return cache_root(cache_dir) / dataset_folder_name(dataset) / f"LRbicx{scale}"


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

    Raises
    ------
    ValueError
        If ``hr`` is not an H×W×3 image whose sides are positive multiples of ``scale`` (the
        message names ``source``).
    """
    h, w = np.shape(hr)[:2] if np.ndim(hr) == 3 else (0, 0)
    if not (h and w and h % scale == 0 and w % scale == 0):
        raise ValueError(
            f"{source or 'lr_reference'}: an HR of shape {np.shape(hr)} has no x{scale} LR reference; "
            f"it needs an H×W×3 image whose sides are positive multiples of {scale} (mod-crop it first)"
        )
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
