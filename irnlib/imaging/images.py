"""Image files and conversions: the one loader of the kit, atomic PNG writes, mod-crop.

Conventions: an *image* is a NumPy ``uint8`` array of shape ``(H, W, 3)`` in RGB order;
a *batch* is a float tensor of shape ``(B, 3, H, W)`` with values in ``[0, 1]``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from irnlib.runtime.paths import atomic_write

__all__ = [
    "ImageFileError",
    "load_image",
    "image_size",
    "save_png",
    "mod_crop",
    "center_crop",
    "jpeg_round_trip",
    "to_batch",
    "to_image",
]


class ImageFileError(ValueError):
    """An image file that cannot be used; the message names the file and the problem."""


def _to_rgb_uint8(pil: Image.Image, path: Path) -> np.ndarray:
    """Apply the kit's colour rule (see :func:`load_image`)."""
    mode = pil.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: keep the most significant byte, v >> 8, the same rule Pillow
        # applies to 16-bit RGB(A) PNGs (which it only ever exposes as 8-bit).
        arr = np.asarray(pil, dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ImageFileError(f"{path}: 32-bit integer images are not supported (values outside 0..65535)")
        arr = (arr >> 8).astype(np.uint8)
        return np.repeat(arr[:, :, None], 3, axis=2)
    if mode == "F":
        raise ImageFileError(f"{path}: floating-point images are not supported")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in pil.info):
        pil = pil.convert("RGBA")  # alpha is dropped below, not composited
    rgb = pil if pil.mode == "RGB" else pil.convert("RGB")
    return np.array(rgb, dtype=np.uint8)  # a writable copy (np.asarray would be read-only)


def _existing_file(path) -> Path:
    """``path`` as a Path if it is a non-empty file; FileNotFoundError / ImageFileError naming it otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file")
    if path.stat().st_size == 0:
        raise ImageFileError(f"{path}: the file is empty (0 bytes)")
    return path


def load_image(path) -> np.ndarray:
    """Read an image file as RGB ``uint8``.

    Parameters
    ----------
    path : str or os.PathLike
        Any format Pillow decodes (PNG, JPEG, BMP, TIFF, ...).

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
        RGB, values 0..255, the pixels as stored in the file; a writable array of its own.
        The rules:

        - greyscale (``L``, 1-bit) is replicated to three equal channels;
        - palette (``P``) images are expanded to their RGB colours;
        - an alpha channel (``RGBA``, ``LA``, palette transparency) is **dropped**: the
          colour values are kept as stored, not composited on any background;
        - 16-bit images (greyscale or RGB) keep their most significant byte, ``v >> 8``
          (``floor(v / 256)``), as Pillow and OpenCV's default ``imread`` do (MATLAB's
          ``im2uint8`` would round ``v / 257`` instead: at most one level apart);
        - CMYK and YCbCr files are converted to RGB by Pillow;
        - the EXIF orientation tag is **not** applied (as MATLAB's ``imread``), and a
          multi-frame file (GIF, TIFF) gives its first frame.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ImageFileError
        If the file is empty, cannot be decoded, or has zero size; the message names it.
    """
    path = _existing_file(path)
    try:
        with Image.open(path) as pil:
            pil.load()
            img = _to_rgb_uint8(pil, path)
    except ImageFileError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageFileError(f"{path}: cannot be decoded as an image ({err})") from err
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ImageFileError(f"{path}: the image has zero size {img.shape[:2]}")
    return img


def image_size(path) -> tuple[int, int]:
    """``(H, W)`` of an image file, read from its header only (no pixel decoding).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ImageFileError
        If the file is empty, not an image Pillow recognises, or declares more pixels than
        Pillow's decompression-bomb limit; the message names it.
    """
    path = _existing_file(path)
    try:
        with Image.open(path) as pil:
            width, height = pil.size
    except Image.DecompressionBombError as err:  # raised by the header alone: nothing was decoded
        raise ImageFileError(f"{path}: refused without decoding: {_bomb_size(path, err)}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageFileError(f"{path}: not a recognisable image ({err})") from err
    return height, width


def _bomb_size(path: Path, err: Exception) -> str:
    """What an image over Pillow's decompression-bomb limit declares, and the limit (for messages)."""
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return f"{err}"  # Pillow's message gives the pixel count and the limit
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    return (
        f"its PNG header declares {height}×{width} pixels ({height * width}), more than the "
        f"{2 * Image.MAX_IMAGE_PIXELS} pixels Pillow reads as one image (its decompression-bomb limit)"
    )


def save_png(path, img: np.ndarray, metadata: dict[str, str] | None = None) -> Path:
    """Write a uint8 image as a lossless PNG, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; parent folders are created.
    img : ndarray of uint8, shape (H, W, 3) or (H, W)
    metadata : dict of str, optional
        Stored as PNG text chunks (read back with ``PIL.Image.open(path).text``).
    """
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise TypeError(f"save_png: expected a uint8 H×W×3 or H×W array, got {img.dtype} {img.shape}")
    info = PngImagePlugin.PngInfo()
    for key, value in (metadata or {}).items():
        info.add_text(str(key), str(value))
    return atomic_write(path, lambda tmp: Image.fromarray(img).save(tmp, format="PNG", pnginfo=info))


def center_crop(img: np.ndarray, size: int | None, multiple: int = 1) -> np.ndarray:
    """Central crop with sides at most ``size``, rounded down to a multiple of ``multiple``.

    ``size=None`` keeps the whole image (still cut to a multiple of ``multiple``).
    """
    h, w = img.shape[:2]
    ch, cw = (h, w) if size is None else (min(size, h), min(size, w))
    ch, cw = ch // multiple * multiple, cw // multiple * multiple
    top, left = (h - ch) // 2, (w - cw) // 2
    return img[top : top + ch, left : left + cw]


def jpeg_round_trip(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode a uint8 RGB image as JPEG at ``quality`` (1..100; Pillow advises at most 95) and decode
    it again, in memory.

    Pillow's encoder with its defaults (4:2:0 chroma subsampling, standard tables): what
    happens to an image shared on the web. Returns uint8 ``(H, W, 3)``.
    """
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality!r}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as pil:
        return np.array(pil.convert("RGB"), dtype=np.uint8)


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom and right edges so that both sides are multiples of ``scale``."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def to_batch(img: np.ndarray, device=None, dtype=torch.float32) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` image -> float ``(1, 3, H, W)`` tensor in ``[0, 1]``; ``img`` may be read-only."""
    arr = np.ascontiguousarray(img)
    if not arr.flags.writeable:  # torch cannot wrap a read-only array (a cached or memory-mapped image)
        arr = arr.copy()
    t = torch.from_numpy(arr).permute(2, 0, 1)[None]
    return t.to(device=device, dtype=dtype) / 255.0


def to_image(batch: torch.Tensor) -> np.ndarray:
    """Float ``(1, 3, H, W)`` or ``(3, H, W)`` tensor in ``[0, 1]`` -> uint8 ``(H, W, 3)``.

    Values are clamped to ``[0, 1]`` and rounded to the nearest of the 256 levels, as the
    official evaluation does before measuring PSNR/SSIM.
    """
    t = batch.detach()
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f"to_image: expected a single image, got a batch of {t.shape[0]}")
        t = t[0]
    t = (t.float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return t.permute(1, 2, 0).cpu().numpy()
