"""Synthetic training patches: the content photographs of T91 and BSD200 almost never hold.

The kit's reference models destroyed flat saturated colour fields, colour wheels, saturated
gradients and clipped highlights (``results/panel/cause_measured.md``): the training sets have
saturated pixels but almost no flat 32×32 blocks (T91 0 %, BSD200 2.5 %), so nothing in
training holds the latent ``z`` near N(0, 1) or the LR inside ``[0, 1]`` there.
:func:`synthetic_patch` draws such content, as a deterministic function of a generator:

- ``"flat"``: rectangles and discs of flat colour with hard edges on a flat background;
- ``"gradient"``: a smooth ramp between two colours, or a sweep of pure hues, in a random
  direction (saturated, as a colour wheel's rim);
- ``"strokes"``: thin dark or coloured lines and bars on a light flat page (text-like edges);
- ``"highlights"``: a photograph patch with its contrast stretched until it clips, and soft
  discs whose cores are pure saturated colour;
- ``"smooth"``: a gentle ramp, 0.1 to 5 levels a pixel, between two colours or across the hues
  (a colour wheel's or a sky's slope; ``"gradient"``'s ramps on a 48-pixel patch change by 2
  to 100 levels a pixel);
- ``"vivid"``: a photograph patch with its chroma scaled by 1.5 to 3.5 about its luma (BT.601),
  clipped: a "vivid" colour edit, which puts texture in the shadows of saturated colours, one
  channel at 0 or 255 (where the ×4 models' LR left [0, 1] under
  ``irnlib.experiments.saturation_stress``);
- ``"grain"``: a saturated colour (its smallest channel 0 to 40 % of its largest, 40 to 255) in a
  gentle shade, with pixel-to-pixel noise of 2 to 20 levels on it, partly shared by the channels,
  clipped: film or sensor grain in a saturated colour, where one channel's noise touches 0 (the
  texture under the ×4 models' one LR value out of range on ``coffee``).

:data:`FIRST_KINDS`, the first four, are the kinds of the first robust recipe
(``TrainConfig.synthetic_kinds``' default): drawing from them gives the patches it gave.

Colours come from :func:`palette_colour`: every channel is 0 or 255 with probability 0.7, else
any 8-bit value, so pure primaries, white and black are common. These are generated shapes, not
the generalisation panel's images (``irnlib.experiments.panel``), which stay held out.
"""

from __future__ import annotations

import numpy as np

from irnlib.imaging.metrics import LUMA_WEIGHTS

__all__ = [
    "FIRST_KINDS",
    "SYNTHETIC_KINDS",
    "hue_rgb",
    "palette_colour",
    "scale_chroma",
    "pick_kind",
    "patch_of_kind",
    "synthetic_patch",
]

SYNTHETIC_KINDS = ("flat", "gradient", "strokes", "highlights", "smooth", "vivid", "grain")
FIRST_KINDS = SYNTHETIC_KINDS[:4]
SMOOTH_SLOPES = (0.1, 5.0)  # "smooth": the largest channel's change, 8-bit levels a pixel (log-uniform)
VIVID_GAINS = (1.5, 3.5)  # "vivid": the chroma's gain about the luma (uniform)
GRAIN_SIGMAS = (2.0, 20.0)  # "grain": the noise's standard deviation, 8-bit levels (uniform)


def palette_colour(rng: np.random.Generator) -> np.ndarray:
    """An RGB colour (float64, 0..255): each channel 0 or 255 with probability 0.7, else uniform."""
    extreme = rng.random(3) < 0.7
    return np.where(extreme, 255.0 * (rng.random(3) < 0.5), np.floor(rng.random(3) * 256))


def hue_rgb(hue: np.ndarray) -> np.ndarray:
    """Pure, fully saturated RGB in [0, 1] of ``hue`` in sectors (0 red, 2 green, 4 blue; period 6).

    ``hue`` of shape (..., 1) gives (..., 3): red, green and blue each rise and fall over two
    sectors, as on a colour wheel's rim.
    """
    return np.clip(np.abs((hue + np.array([0.0, 4.0, 2.0])) % 6 - 3) - 1, 0, 1)


def _grid(p: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:p, 0:p]
    return yy.astype(np.float64), xx.astype(np.float64)


def _flat(rng: np.random.Generator, p: int) -> np.ndarray:
    img = np.broadcast_to(palette_colour(rng), (p, p, 3)).copy()
    yy, xx = _grid(p)
    for _ in range(int(rng.integers(1, 6))):
        colour = palette_colour(rng)
        if rng.random() < 0.5:  # a rectangle
            top, left = rng.integers(-p // 4, p, size=2)
            height, width = rng.integers(p // 8, p, size=2)
            img[max(top, 0) : top + height, max(left, 0) : left + width] = colour
        else:  # a disc
            cy, cx = rng.random(2) * p
            radius = p * (0.1 + 0.5 * rng.random())
            img[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = colour
    return img


def _gradient(rng: np.random.Generator, p: int) -> np.ndarray:
    yy, xx = _grid(p)
    angle = rng.random() * 2 * np.pi
    t = (np.cos(angle) * xx + np.sin(angle) * yy) / p  # about -1.4 .. 1.4
    t = (t - t.min()) / max(t.max() - t.min(), 1e-9) * (0.5 + 2.5 * rng.random())
    if rng.random() < 0.5:  # two colours
        a, b = palette_colour(rng), palette_colour(rng)
        w = np.clip(t, 0, 1)[..., None]
        return a * (1 - w) + b * w
    hue = (6 * t + 6 * rng.random())[..., None]  # pure hues, fully saturated
    rgb = hue_rgb(hue)
    value = 1.0 - rng.random() * np.clip(yy / p if rng.random() < 0.5 else xx / p, 0, 1)[..., None]
    return 255.0 * rgb * value


def _strokes(rng: np.random.Generator, p: int) -> np.ndarray:
    page = np.full(3, 255.0) if rng.random() < 0.6 else palette_colour(rng)
    img = np.broadcast_to(page, (p, p, 3)).copy()
    ink = np.zeros(3) if rng.random() < 0.6 else palette_colour(rng)
    for _ in range(int(rng.integers(3, 12))):
        width = int(rng.integers(1, 4))
        length = int(rng.integers(p // 8, p))
        top, left = (int(v) for v in rng.integers(0, p, size=2))
        if rng.random() < 0.5:
            img[top : top + width, left : left + length] = ink
        else:
            img[top : top + length, left : left + width] = ink
    return img


def _highlights(rng: np.random.Generator, p: int, photo: np.ndarray) -> np.ndarray:
    gain = 1.5 + 2.0 * rng.random()
    img = np.clip((photo - 127.5) * gain + 127.5 + 80 * (rng.random() - 0.5), 0, 255)  # clips
    yy, xx = _grid(p)
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = rng.random(2) * p
        radius = p * (0.1 + 0.3 * rng.random())
        r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / radius**2
        weight = np.clip(1.5 - r2, 0, 1)[..., None]  # a flat saturated core, a soft rim
        img = img * (1 - weight) + palette_colour(rng) * weight
    return img


def _smooth(rng: np.random.Generator, p: int) -> np.ndarray:
    yy, xx = _grid(p)
    angle = rng.random() * 2 * np.pi
    along = np.cos(angle) * xx + np.sin(angle) * yy  # pixels along the ramp's direction
    along -= along.min()
    slope = np.exp(np.log(SMOOTH_SLOPES[0]) + np.log(SMOOTH_SLOPES[1] / SMOOTH_SLOPES[0]) * rng.random())
    if rng.random() < 0.5:  # two colours, the one that differs most by ``slope`` levels a pixel
        a, b = palette_colour(rng), palette_colour(rng)
        span = max(np.abs(b - a).max(), 1.0)
        w = np.clip(along * slope / span, 0, 1)[..., None]
        return a * (1 - w) + b * w
    # pure hues: one hue sector (a channel's full swing, 255 levels) per 255 / slope pixels
    hue = (along * slope / 255.0 + 6 * rng.random())[..., None]
    rgb = hue_rgb(hue)
    across = -np.sin(angle) * xx + np.cos(angle) * yy
    value = 1.0 - np.clip((across - across.min()) * rng.random() * slope / 255.0, 0, 1)[..., None]
    return 255.0 * rgb * value


def scale_chroma(rgb: np.ndarray, gain: float) -> np.ndarray:
    """``rgb`` (float, ``(..., 3)``) with every pixel's distance from its grey, its BT.601 luma, times ``gain``;
    not rounded or clipped (1 leaves it as it is, 0 gives the luma as grey)."""
    luma = (rgb @ LUMA_WEIGHTS)[..., None]
    return luma + gain * (rgb - luma)


def _vivid(rng: np.random.Generator, photo: np.ndarray) -> np.ndarray:
    gain = VIVID_GAINS[0] + (VIVID_GAINS[1] - VIVID_GAINS[0]) * rng.random()
    return scale_chroma(photo, gain)


def _grain(rng: np.random.Generator, p: int) -> np.ndarray:
    yy, xx = _grid(p)
    brightest = 40.0 + 215.0 * rng.random()  # the saturated colour's largest channel
    darkest = brightest * 0.4 * rng.random()  # ... and its smallest: 0 to 40 % of it
    colour = darkest + (brightest - darkest) * hue_rgb(np.array([6 * rng.random()]))
    angle = rng.random() * 2 * np.pi
    shade = 1.0 - 0.5 * rng.random() * (np.cos(angle) * xx + np.sin(angle) * yy + 1.5 * p) / (3 * p)
    img = colour * shade[..., None]  # a saturated colour in gentle shade, then grain on it:
    sigma = GRAIN_SIGMAS[0] + (GRAIN_SIGMAS[1] - GRAIN_SIGMAS[0]) * rng.random()
    shared = rng.random()  # how much of the grain all three channels share (brightness grain)
    noise = np.sqrt(shared) * rng.standard_normal((p, p, 1)) + np.sqrt(1 - shared) * rng.standard_normal((p, p, 3))
    return img + sigma * noise


def pick_kind(rng: np.random.Generator, kinds: tuple[str, ...]) -> str:
    """One of ``kinds``, drawn uniformly from ``rng`` (a kind named twice comes twice as often).

    Raises
    ------
    ValueError
        If ``kinds`` is empty or names a kind not in :data:`SYNTHETIC_KINDS`.
    """
    unknown = [kind for kind in kinds if kind not in SYNTHETIC_KINDS]
    if not kinds or unknown:
        raise ValueError(f"synthetic_patch: kinds must be names of {SYNTHETIC_KINDS}, got {kinds!r}")
    return kinds[int(rng.integers(len(kinds)))]


def patch_of_kind(rng: np.random.Generator, kind: str, patch: int, photo: np.ndarray) -> np.ndarray:
    """A synthetic ``patch × patch`` RGB patch of ``kind``, uint8 (H×W×3), drawn from ``rng``;
    ``photo`` as in :func:`synthetic_patch`."""
    photo = np.asarray(photo)
    if photo.shape != (patch, patch, 3):
        raise ValueError(f"synthetic_patch: photo must be ({patch}, {patch}, 3), got {photo.shape}")
    photo = photo.astype(np.float64) if photo.dtype == np.uint8 else photo.astype(np.float64) * 255.0
    if kind == "flat":
        img = _flat(rng, patch)
    elif kind == "gradient":
        img = _gradient(rng, patch)
    elif kind == "strokes":
        img = _strokes(rng, patch)
    elif kind == "smooth":
        img = _smooth(rng, patch)
    elif kind == "vivid":
        img = _vivid(rng, photo)
    elif kind == "grain":
        img = _grain(rng, patch)
    elif kind == "highlights":
        img = _highlights(rng, patch, photo)
    else:
        raise ValueError(f"synthetic_patch: kind must be one of {SYNTHETIC_KINDS}, got {kind!r}")
    return np.round(np.clip(img, 0, 255)).astype(np.uint8)


def synthetic_patch(
    rng: np.random.Generator, patch: int, photo: np.ndarray, kinds: tuple[str, ...] = FIRST_KINDS
) -> np.ndarray:
    """A synthetic ``patch × patch`` RGB patch, uint8 (H×W×3), drawn from ``rng``:
    :func:`pick_kind`, then :func:`patch_of_kind`.

    Parameters
    ----------
    rng : numpy.random.Generator
        The patch is a deterministic function of this generator's state.
    patch : int
        The side in pixels.
    photo : ndarray (patch, patch, 3)
        A photograph patch (uint8 0..255, or float in [0, 1]) for the ``"highlights"`` and ``"vivid"`` kinds.
    kinds : tuple of str
        The kinds to draw from, uniformly (names of :data:`SYNTHETIC_KINDS`, default :data:`FIRST_KINDS`);
        a kind named twice is drawn twice as often.

    Returns
    -------
    ndarray of uint8, shape (patch, patch, 3)
    """
    return patch_of_kind(rng, pick_kind(rng, kinds), patch, photo)
