"""Running IRN: the device, and tiled inference for images of any size.

Tiling. An :class:`~irnlib.model.network.InvBlock` output pixel depends on input pixels within a
radius of :data:`HALO` = 10 at its level's resolution: ``y1 = x1 + F(x2)`` reads 5 pixels
around (five 3×3 convolutions), and ``G(y1)``, ``H(y1)`` read another 5 around ``y1``. The
Haar levels are exact 2×2 block transforms. The tiled functions below therefore run the
network one operation at a time: each InvBlock is applied tile by tile to its level's
feature map, every tile read with a margin of :data:`HALO` pixels (cut only where the real
image ends, so the convolutions zero-pad exactly where the whole-image network does), and
only the tile's core is kept. The result equals the whole-image result up to floating-point
rounding, while the large intermediate activations of the dense subnets (up to 140
channels) exist for one tile at a time. What stays image-sized is the network's state,
``3·H·W`` float values (12 bytes per HR pixel), plus the input and output.

Faster dense subnets. On CPU with channels-last convolutions, the InvBlocks' subnets run
through :func:`subnet_nhwc`: the same function as :class:`~irnlib.model.network.DenseSubnet`,
summed in a different order (equal up to float rounding) to skip its largest concatenation
and the CPU's slow case of a 3×3 convolution with few output channels.

Conventions: batches are float tensors ``(B, 3, H, W)`` in ``[0, 1]``; images are uint8
``(H, W, 3)`` RGB arrays.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from irnlib.imaging.images import to_batch, to_image
from irnlib.model.network import IRN, DenseSubnet, quantize
from irnlib.runtime.device import net_device

__all__ = [
    "HALO",
    "TILE",
    "subnet_nhwc",
    "forward",
    "inverse",
    "downscale",
    "upscale",
    "downscale_image",
    "upscale_image",
    "LR_RANGE",
    "Z_LIMIT",
    "RescaleWarning",
    "DownscaleHealth",
    "downscale_health",
    "downscale_with_health",
    "downscale_image_with_health",
]

HALO = 10  # receptive radius of one InvBlock, in pixels of its level's feature map
TILE = 160  # least tile side (core, without the halo), in pixels of each level's feature map


def _spans(length: int, tile: int) -> list[tuple[int, int]]:
    """Consecutive ``[start, stop)`` ranges covering ``range(length)``: ``length // tile`` of them
    (at least one), equal to within a pixel, so each is ``tile`` to ``2·tile − 1`` pixels long
    (or all of ``length`` when that is shorter). Equal spans leave no thin last tile, whose
    halo would cost more than its core; a map shorter than ``2·tile`` stays whole."""
    count = max(1, length // tile)
    bounds = [i * length // count for i in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _tiled(fn, x: torch.Tensor, tile: int | None, channels_last: bool) -> torch.Tensor:
    """Apply a shape-preserving, :data:`HALO`-local function ``fn`` to ``x`` tile by tile.

    Each tile is read with a margin of ``HALO`` pixels (clipped at the image border) and
    only its core is written to the output, so the result equals ``fn(x)``. ``tile=None``
    is ``fn(x)`` itself.
    """
    if tile is None:
        return fn(x)  # the whole feature map, exactly as the network itself runs it
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    rows, cols = _spans(x.shape[-2], tile), _spans(x.shape[-1], tile)
    if len(rows) == len(cols) == 1:
        return fn(x.contiguous(memory_format=fmt)).contiguous()
    h, w = x.shape[-2:]
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    for top, bottom in rows:
        r0, r1 = max(top - HALO, 0), min(bottom + HALO, h)
        for left, right in cols:
            c0, c1 = max(left - HALO, 0), min(right + HALO, w)
            piece = fn(x[:, :, r0:r1, c0:c1].contiguous(memory_format=fmt))
            out[:, :, top:bottom, left:right] = piece[:, :, top - r0 : bottom - r0, left - c0 : right - c0]
    return out


NARROW = 16  # fewer output channels than this: a 3x3 convolution goes by columns (one AVX-512 vector of floats)


def _conv3x3_by_columns(parts: list[torch.Tensor], weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``conv2d(cat(parts, 1), weight, bias, padding=1)`` for a narrow 3×3 convolution.

    A CPU convolution in NHWC layout vectorises over output channels, so one with 3 outputs
    runs at the cost of 16 (measured 73 against 420 GFLOP/s for 32 outputs). Here the
    ``cout`` outputs become ``3·cout``: a 3×1 convolution per column offset ``dx``
    (``p[dx·cout + c]``), summed over ``dx`` shifted by ``dx − 1`` columns. Same products,
    other order of the sums; ``parts`` (the input split along channels, each NHWC) are
    convolved separately and added, so they are never concatenated.
    """
    cout = weight.shape[0]
    n, _, h, w = parts[0].shape
    columns = weight.permute(3, 0, 1, 2).reshape(3 * cout, weight.shape[1], 3, 1)  # (dx, c) -> 3×1 kernel
    p, start = None, 0
    for part in parts:
        term = F.conv2d(part, columns[:, start : start + part.shape[1]], padding=(1, 0))  # (N, 3·cout, H, W)
        p, start = term if p is None else p + term, start + part.shape[1]
    p = p.permute(0, 2, 3, 1).reshape(n, h, w, 3, cout)  # a view of the NHWC memory: [..., dx, c]
    out = p[:, :, :, 1] + bias  # (N, H, W, cout): dx = 1 reads its own column
    out[:, :, 1:] += p[:, :, :-1, 0]  # dx = 0 reads the column to the left (zero padding at x = 0)
    out[:, :, :-1] += p[:, :, 1:, 2]  # dx = 2 reads the column to the right
    return out.permute(0, 3, 1, 2)  # (N, cout, H, W), NHWC memory


def subnet_nhwc(subnet: DenseSubnet, x: torch.Tensor) -> torch.Tensor:
    """``subnet(x)`` evaluated faster on CPU in NHWC layout; equal up to float rounding.

    The same convolutions as :meth:`DenseSubnet.forward`, with two sums reordered: ``conv5``
    (input ``x, x1..x4``) is applied to ``conv4``'s concatenated input ``x, x1..x3`` and to
    ``x4`` separately and the results added, so the largest concatenation is never built;
    and when ``conv5`` has fewer than :data:`NARROW` output channels (F's 3; G's and H's 9
    at the first level of ×2 and ×4) it goes by columns (:func:`_conv3x3_by_columns`).
    Measured on a 512² image, 2 threads (Zen 5): the round trip 1.12× (×2) to 1.17× (×4) faster.

    Parameters
    ----------
    subnet : DenseSubnet
    x : float tensor (B, cin, H, W)
        Any layout; made channels-last contiguous.

    Returns
    -------
    float tensor (B, cout, H, W), channels-last memory.
    """
    act = functools.partial(F.leaky_relu, negative_slope=0.2)
    x = x.contiguous(memory_format=torch.channels_last)
    x1 = act(subnet.conv1(x))
    c = torch.cat((x, x1), 1)
    x2 = act(subnet.conv2(c))
    c = torch.cat((c, x2), 1)
    x3 = act(subnet.conv3(c))
    c = torch.cat((c, x3), 1)  # conv4's input, and conv5's without x4
    x4 = act(subnet.conv4(c))
    weight, bias, k = subnet.conv5.weight, subnet.conv5.bias, c.shape[1]
    if weight.shape[0] < NARROW:
        return _conv3x3_by_columns([c, x4], weight, bias)
    return F.conv2d(c, weight[:, :k], bias, padding=1) + F.conv2d(x4, weight[:, k:], padding=1)


def _run(net: IRN, x: torch.Tensor, inverse: bool, tile: int | None, channels_last: bool) -> torch.Tensor:
    """``net.run`` with every InvBlock step tiled, its subnets by :func:`subnet_nhwc` on CPU
    with ``channels_last``; ``tile=None`` is the network's own ``net.run``."""
    _check_tile(tile)
    fast = tile is not None and channels_last and x.device.type == "cpu"

    def step(fn, x):  # fn: an InvBlock or its inverse
        return _tiled(functools.partial(fn, run_subnet=subnet_nhwc) if fast else fn, x, tile, channels_last)

    return net.run(x, inverse=inverse, run_block=step)


def _check_tile(tile: int | None) -> None:
    if tile is not None and (not isinstance(tile, (int, np.integer)) or tile < 1):
        raise ValueError(f"tile must be a positive int (pixels of a feature map) or None, got {tile!r}")


def forward(net: IRN, x: torch.Tensor, *, tile: int | None = TILE, channels_last: bool = True) -> torch.Tensor:
    """``net(x)`` computed tile by tile: ``(B, C, H, W) -> (B, C·s², H/s, W/s)``.

    Parameters
    ----------
    net : IRN
    x : float tensor (B, C, H, W)
        ``H`` and ``W`` multiples of ``net.scale``.
    tile : int or None
        Least tile side in pixels of each level's feature map: each side is cut into
        ``side // tile`` equal spans, ``tile`` to ``2·tile − 1`` pixels long (``None``: the
        whole image at once, exactly as ``net(x)``). The working memory of one InvBlock is
        at most about ``(2·tile + 20)² × 300`` floats (140 MB for the default 160).
    channels_last : bool
        Run the convolutions in NHWC layout, on CPU with :func:`subnet_nhwc` (faster;
        equal up to float rounding). ``False``: the network's own operations, tile by tile.
    """
    return _run(net, x, False, tile, channels_last)


def inverse(net: IRN, y: torch.Tensor, *, tile: int | None = TILE, channels_last: bool = True) -> torch.Tensor:
    """``net.inverse(y)`` computed tile by tile (see :func:`forward`)."""
    return _run(net, y, True, tile, channels_last)


def downscale(net: IRN, hr: torch.Tensor, *, tile: int | None = TILE, channels_last: bool = True) -> torch.Tensor:
    """Tiled :meth:`IRN.downscale`: HR ``(B, C, H, W)`` in [0, 1] -> quantized LR ``(B, C, ⌈H/s⌉, ⌈W/s⌉)``.

    Sizes that are not multiples of ``s`` are padded exactly as :meth:`IRN.downscale` does
    (reflection at the bottom/right); crop back with ``size=`` in :func:`upscale`.
    """
    return downscale_with_health(net, hr, tile=tile, channels_last=channels_last)[0]


def upscale(
    net: IRN,
    lr: torch.Tensor,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    size: tuple[int, int] | None = None,
    *,
    tile: int | None = TILE,
    channels_last: bool = True,
) -> torch.Tensor:
    """Tiled :meth:`IRN.upscale`: LR ``(B, C, h, w)`` -> HR ``(B, C, h·s, w·s)``, not clamped.

    The latent ``z ~ N(0, temperature²)`` is drawn for the whole LR at once, with the same
    call as :meth:`IRN.upscale`, so the same ``generator`` state gives the same result as
    the untiled method.
    """
    z = net.sample_latent(lr, temperature, generator)
    hr = inverse(net, torch.cat((lr, z), 1), tile=tile, channels_last=channels_last)
    hr = hr[:, : net.channels]
    if size is not None:
        hr = hr[..., : size[0], : size[1]]
    return hr


# The guard's thresholds (the generalisation panel's goals, irnlib.experiments.panel; results/panel/).
LR_RANGE = (-0.1, 1.1)  # the LR before quantisation outside this: clipping destroys what IRN stored there
Z_LIMIT = 8.0  # |z| beyond this: a latent the upscaler never sees (it draws z ~ N(0, 1))


class RescaleWarning(UserWarning):
    """IRN's downscale left its trained range: the restored image may be damaged locally."""


@dataclass(frozen=True)
class DownscaleHealth:
    """How far one downscale strayed from what IRN was trained to produce.

    Attributes
    ----------
    lr_min, lr_max : float
        Range of the LR (the forward pass's first ``C`` channels) *before* clamping to
        ``[0, 1]`` and 8-bit rounding; a healthy image stays within :data:`LR_RANGE`.
    z_max : float
        Largest ``|z|`` of the latent (the other channels); healthy: at most :data:`Z_LIMIT`.
    box : (top, left, bottom, right) or None
        Bounding box, in HR pixels (``bottom``/``right`` exclusive, clipped to the HR size), of
        every LR pixel outside :data:`LR_RANGE` or with some ``|z|`` above :data:`Z_LIMIT`;
        None when there is none.
    scale : int
    """

    lr_min: float
    lr_max: float
    z_max: float
    box: tuple[int, int, int, int] | None
    scale: int

    @property
    def lr_out_of_range(self) -> bool:
        return self.lr_min < LR_RANGE[0] or self.lr_max > LR_RANGE[1]

    @property
    def latent_far(self) -> bool:
        return self.z_max > Z_LIMIT

    @property
    def healthy(self) -> bool:
        return not (self.lr_out_of_range or self.latent_far)

    def message(self) -> str:
        """One line for the user: how much and where (empty when healthy)."""
        if self.healthy:
            return ""
        parts = []
        if self.lr_out_of_range:
            parts.append(
                f"the LR before 8-bit rounding spans {self.lr_min:.2f}..{self.lr_max:.2f} "
                f"(trained range {LR_RANGE[0]:g}..{LR_RANGE[1]:g}; the clipped part is lost)"
            )
        if self.latent_far:
            parts.append(
                f"the latent reaches |z| = {self.z_max:.1f} (the upscaler draws z ~ N(0, 1); limit {Z_LIMIT:g})"
            )
        top, left, bottom, right = self.box
        return (
            f"IRN x{self.scale} is outside its training range here: {'; '.join(parts)}; in HR rows "
            f"{top}..{bottom - 1}, columns {left}..{right - 1} the restored image may be damaged (compare with bicubic)"
        )


def downscale_health(net: IRN, y: torch.Tensor, size: tuple[int, int] | None = None) -> DownscaleHealth:
    """Measure a forward pass's output ``y`` (B, C·s², h, w): LR range before quantisation, max ``|z|``, where.

    Parameters
    ----------
    net : IRN
    y : float tensor (B, C·s², h, w)
        ``net(x)`` (or :func:`forward`) of an HR batch; nothing is recomputed.
    size : (H, W), optional
        The HR size before padding, to clip the box; default ``(h·s, w·s)``.
    """
    c, s = net.channels, net.scale
    lr, z = y[:, :c].float(), y[:, c:].float()
    z_abs = z.abs().amax(dim=(0, 1))  # (h, w): the largest |z| over the batch and channels
    bad = ((lr < LR_RANGE[0]) | (lr > LR_RANGE[1])).any(dim=1).any(dim=0) | (z_abs > Z_LIMIT)
    box = None
    if bool(bad.any()):
        rows, cols = torch.nonzero(bad.any(dim=1)).flatten(), torch.nonzero(bad.any(dim=0)).flatten()
        height, width = size if size is not None else (y.shape[-2] * s, y.shape[-1] * s)
        top, left = int(rows[0]) * s, int(cols[0]) * s
        box = (top, left, min((int(rows[-1]) + 1) * s, height), min((int(cols[-1]) + 1) * s, width))
    return DownscaleHealth(float(lr.min()), float(lr.max()), float(z_abs.max()), box, s)


def downscale_with_health(
    net: IRN, hr: torch.Tensor, *, tile: int | None = TILE, channels_last: bool = True
) -> tuple[torch.Tensor, DownscaleHealth]:
    """:func:`downscale` and the :class:`DownscaleHealth` of the same forward pass (run once).

    The LR is exactly :func:`downscale`'s: HR ``(B, C, H, W)`` in [0, 1] -> quantized
    ``(B, C, ⌈H/s⌉, ⌈W/s⌉)``.
    """
    y = forward(net, net.pad_to_multiple(hr), tile=tile, channels_last=channels_last)  # the network's own padding
    return quantize(y[:, : net.channels]), downscale_health(net, y, tuple(hr.shape[-2:]))


def downscale_image_with_health(
    net: IRN, img: np.ndarray, *, tile: int | None = TILE
) -> tuple[np.ndarray, DownscaleHealth]:
    """:func:`downscale_image` and its :class:`DownscaleHealth`, without warning."""
    with torch.inference_mode():
        lr, health = downscale_with_health(net, to_batch(img).to(net_device(net)), tile=tile)
    return to_image(lr), health


def downscale_image(net: IRN, img: np.ndarray, *, tile: int | None = TILE, warn: bool = True) -> np.ndarray:
    """Downscale a uint8 ``(H, W, 3)`` image of any size with IRN; returns the 8-bit LR.

    The LR has shape ``(⌈H/s⌉, ⌈W/s⌉, 3)``; the computation runs on the network's device
    in tiles (see :func:`forward`). With ``warn``, a :class:`RescaleWarning` says how much and
    where when the LR before quantisation leaves :data:`LR_RANGE` or ``|z|`` exceeds
    :data:`Z_LIMIT` (:class:`DownscaleHealth`); the LR is returned all the same.
    """
    lr, health = downscale_image_with_health(net, img, tile=tile)
    if warn and not health.healthy:
        warnings.warn(health.message(), RescaleWarning, stacklevel=2)
    return lr


def upscale_image(
    net: IRN,
    lr_img: np.ndarray,
    *,
    size: tuple[int, int] | None = None,
    temperature: float = 1.0,
    seed: int | None = 0,
    tile: int | None = TILE,
) -> np.ndarray:
    """Upscale a uint8 LR ``(h, w, 3)`` image with IRN; returns uint8 ``(h·s, w·s, 3)``.

    Parameters
    ----------
    size : (H, W), optional
        Crop the result to the original HR size (after :func:`downscale_image` of an image
        whose sides were not multiples of ``s``).
    temperature : float
        Standard deviation of the latent ``z`` (1 in the paper).
    seed : int or None
        Seed of the latent draw (CPU generator, so results agree across devices);
        ``None`` draws from torch's global generator.
    """
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    with torch.inference_mode():
        lr = to_batch(lr_img).to(net_device(net))
        sr = upscale(net, lr, temperature, generator=gen, size=size, tile=tile)
    return to_image(sr)
