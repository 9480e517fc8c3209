"""PSNR and SSIM exactly as the paper's evaluation computes them.

Protocol (the official IRN test script): both images are uint8; the Y channel of YCbCr
(ITU-R BT.601, ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` with R, G, B in [0, 1], kept
as float, not rounded) is compared after removing ``border`` pixels on every side; peak
value 255. SSIM uses an 11×11 Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03, on the
valid region only (no padding), averaged over the map.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["rgb_to_y", "psnr", "ssim", "gaussian_window", "SSIM_WINDOW", "LUMA_WEIGHTS"]

SSIM_WINDOW = 11  # the side of SSIM's Gaussian window: a measured region needs at least this many pixels a side

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])
LUMA_WEIGHTS = _Y_WEIGHTS / 219.0  # BT.601 luma as weights of R, G, B summing to 1 (0.299, 0.587, 0.114)


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Luma of an RGB uint8 image, float64 in [16, 235] (BT.601, not rounded)."""
    return img.astype(np.float64) @ _Y_WEIGHTS / 255.0 + 16.0


def _prepare(img1, img2, border: int, y_channel: bool, fn: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate the pair, convert to Y if asked, crop the border; float64 (H, W[, C])."""
    for name, img in (("img1", img1), ("img2", img2)):
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
            got = img.dtype if isinstance(img, np.ndarray) else type(img).__name__
            raise TypeError(f"{fn}: {name} must be a uint8 NumPy array (H×W×3 RGB or H×W), got {got}")
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3)):
            raise ValueError(f"{fn}: {name} must be H×W×3 RGB or H×W, got shape {img.shape}")
    if img1.shape != img2.shape:
        raise ValueError(f"{fn}: images differ in shape: img1 {img1.shape} vs img2 {img2.shape}")
    if not isinstance(border, (int, np.integer)) or border < 0:
        raise ValueError(f"{fn}: border must be a non-negative int, got {border!r}")
    h, w = img1.shape[:2]
    if 2 * border >= min(h, w):
        raise ValueError(f"{fn}: border {border} leaves nothing of a {h}×{w} image")
    a, b = img1, img2
    if a.ndim == 3 and a.shape[2] == 1:
        a, b = a[:, :, 0], b[:, :, 0]
    if a.ndim == 3 and y_channel:
        a, b = rgb_to_y(a), rgb_to_y(b)
    a = a.astype(np.float64)[border : h - border, border : w - border]
    b = b.astype(np.float64)[border : h - border, border : w - border]
    return a, b


def psnr(img1: np.ndarray, img2: np.ndarray, *, border: int, y_channel: bool = True) -> float:
    """Peak signal-to-noise ratio in dB (peak 255).

    Parameters
    ----------
    img1, img2 : ndarray of uint8, shape (H, W, 3) RGB or (H, W)
    border : int
        Pixels removed on each side before measuring (the paper: the scale factor).
    y_channel : bool
        Measure the BT.601 Y channel of RGB input (the paper); ``False`` measures all RGB
        values together (what training logs usually show). Ignored for H×W input.

    Returns
    -------
    float
        ``20·log10(255 / sqrt(MSE))``; ``inf`` for identical images.
    """
    a, b = _prepare(img1, img2, border, y_channel, "psnr")
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 20 * math.log10(255.0 / math.sqrt(mse))


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1-D Gaussian (as OpenCV's ``getGaussianKernel``), float64."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 2-D correlation with ``outer(g, g)`` on the valid region only."""
    n = len(g)
    h, w = img.shape
    rows = sum(g[i] * img[i : h - n + 1 + i] for i in range(n))
    return sum(g[j] * rows[:, j : w - n + 1 + j] for j in range(n))


def _ssim_single(a: np.ndarray, b: np.ndarray) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = gaussian_window()
    if min(a.shape) < len(g):
        raise ValueError(f"ssim: the measured region {a.shape} is smaller than the 11×11 window")
    mu1, mu2 = _filter_valid(a, g), _filter_valid(b, g)
    mu1_sq, mu2_sq, mu12 = mu1**2, mu2**2, mu1 * mu2
    sigma1_sq = _filter_valid(a * a, g) - mu1_sq
    sigma2_sq = _filter_valid(b * b, g) - mu2_sq
    sigma12 = _filter_valid(a * b, g) - mu12
    ssim_map = ((2 * mu12 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))
    return float(ssim_map.mean())


def ssim(img1: np.ndarray, img2: np.ndarray, *, border: int, y_channel: bool = True) -> float:
    """Structural similarity (Wang et al. 2004) as the paper's evaluation computes it.

    Parameters are those of :func:`psnr`. With ``y_channel=False`` on RGB input the result
    is the mean of the three per-channel SSIMs.
    """
    a, b = _prepare(img1, img2, border, y_channel, "ssim")
    if a.ndim == 2:
        return _ssim_single(a, b)
    return float(np.mean([_ssim_single(a[:, :, c], b[:, :, c]) for c in range(a.shape[2])]))
