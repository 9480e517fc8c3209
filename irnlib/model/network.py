"""The IRN network (Xiao et al., "Invertible Image Rescaling", ECCV 2020).

Layout, state-dict keys and arithmetic follow the official release, so its checkpoints
(``IRN_x2.pth``, ``IRN_x4.pth``, ``IRN_x8.pth``) load strictly:

    operations.{i}.haar_weights                 (4C, 1, 2, 2)   Haar level, not trained
    operations.{i}.{F,G,H}.conv{1..5}.{weight,bias}             InvBlock subnets

For each factor of two there is one :class:`HaarDownsampling` followed by that level's
:class:`InvBlock` s. Every invertible module has ``forward``, ``inverse`` and
``log_det`` (the log-determinant of ``forward``'s Jacobian, per sample).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "HaarDownsampling",
    "LearnedDownsampling",
    "DenseSubnet",
    "InvBlock",
    "IRN",
    "quantize",
    "QUANTIZE_GRADIENTS",
    "SCALES",
]

SCALES = {2: 1, 4: 2, 8: 3}  # scale -> number of Haar levels


QUANTIZE_GRADIENTS = ("straight", "clipped")  # the quantiser's backward pass: the official one, the kit's


class _Quantize(torch.autograd.Function):
    """Round to 8 bits in the forward pass; pass the gradient straight through."""

    @staticmethod
    def forward(ctx, x):
        return (x.clamp(0, 1) * 255.0).round() / 255.0

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


class _QuantizeClipped(torch.autograd.Function):
    """Round to 8 bits in the forward pass; pass the gradient through inside ``[0, 1]`` only."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x.clamp(0, 1) * 255.0).round() / 255.0

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * ((x >= 0) & (x <= 1)).to(grad_output.dtype)


def quantize(x: torch.Tensor, gradient: str = "straight") -> torch.Tensor:
    """Clamp to ``[0, 1]`` and round to multiples of 1/255.

    This is what happens to IRN's LR image when it is stored as an 8-bit file. The rounding has
    no useful derivative, so the backward pass substitutes one:

    - ``"straight"`` (the official release): the gradient passes unchanged everywhere, also
      where the clamp cut the value off, whose true derivative is 0. There the reconstruction
      loss can push the LR further out of ``[0, 1]`` with nothing in the 8-bit file to show
      for it (results/panel/cause_measured.md).
    - ``"clipped"`` (the kit's recipe): the gradient passes where ``0 <= x <= 1`` and is 0
      where the clamp acts: the derivative of the clamp, with the rounding treated as identity.
    """
    if gradient == "straight":
        return _Quantize.apply(x)
    if gradient == "clipped":
        return _QuantizeClipped.apply(x)
    raise ValueError(f"quantize: gradient must be one of {QUANTIZE_GRADIENTS}, got {gradient!r}")


class HaarDownsampling(nn.Module):
    """One level of the Haar wavelet transform: ``(B, C, H, W) -> (B, 4C, H/2, W/2)``.

    Output channel ``k*C + c`` is filter ``k`` applied to input channel ``c``: the first
    ``C`` channels are the low-pass (2×2 average) image, the other ``3C`` the horizontal,
    vertical and diagonal details.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        w = torch.ones(4, 1, 2, 2)
        w[1, 0, 0, 1] = w[1, 0, 1, 1] = -1  # [[1, -1], [1, -1]]
        w[2, 0, 1, 0] = w[2, 0, 1, 1] = -1  # [[1, 1], [-1, -1]]
        w[3, 0, 1, 0] = w[3, 0, 0, 1] = -1  # [[1, -1], [-1, 1]]
        # Index 4c + k holds filter k for channel c (the grouped-convolution layout).
        self.register_buffer("haar_weights", w.repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        out = F.conv2d(x, self.haar_weights, stride=2, groups=c) / 4.0  # (B, C*4, H/2, W/2)
        out = out.reshape(b, c, 4, h // 2, w // 2).transpose(1, 2)  # (c, k) -> (k, c) order
        return out.reshape(b, 4 * c, h // 2, w // 2)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        b, c4, h, w = y.shape
        c = c4 // 4
        x = y.reshape(b, 4, c, h, w).transpose(1, 2).reshape(b, c4, h, w)  # (k, c) -> (c, k)
        return F.conv_transpose2d(x, self.haar_weights, stride=2, groups=c)

    def log_det(self, x: torch.Tensor) -> torch.Tensor:
        """``(C·H·W / 4) · ln(1/16)`` for every sample: each 2×2 block is scaled by 1/4."""
        elements = x[0].numel()
        return x.new_full((x.shape[0],), elements / 4 * math.log(1 / 16.0))


class LearnedDownsampling(nn.Module):
    """Ablation of the Haar level: space-to-depth, then a learned invertible 1×1 channel mixing.

    ``(B, C, H, W) -> (B, 4C, H/2, W/2)``. The 2×2 pixels of each block are stacked as channels
    (``pixel_unshuffle``) and mixed by a ``4C × 4C`` matrix initialised as a random orthogonal
    matrix, so the first ``C`` output channels are *not* a low-pass image at the start — which
    is what the ablation measures. Not part of the paper's network.
    """

    def __init__(self, channels: int, generator: torch.Generator | None = None):
        super().__init__()
        self.channels = channels
        q, r = torch.linalg.qr(torch.randn(4 * channels, 4 * channels, generator=generator))
        self.weight = nn.Parameter(q * torch.sign(torch.diagonal(r)))  # Haar-distributed orthogonal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.pixel_unshuffle(x, 2)  # (B, 4C, H/2, W/2)
        return F.conv2d(y, self.weight[:, :, None, None])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        w_inv = torch.linalg.inv(self.weight)
        return F.pixel_shuffle(F.conv2d(y, w_inv[:, :, None, None]), 2)

    def log_det(self, x: torch.Tensor) -> torch.Tensor:
        """``(H/2)(W/2) · log|det W|`` for every sample."""
        pixels = (x.shape[2] // 2) * (x.shape[3] // 2)
        return (pixels * torch.linalg.slogdet(self.weight)[1]).expand(x.shape[0])


class DenseSubnet(nn.Module):
    """Five-layer dense block ``cin -> cout`` used for F, G and H inside an InvBlock.

    Each of conv1..conv4 sees the block input concatenated with all earlier activations and
    adds ``growth`` channels; conv5 maps everything to ``cout``. conv5 starts at zero, so a
    fresh InvBlock is the identity and a fresh IRN is the pure Haar transform.
    """

    def __init__(self, cin: int, cout: int, growth: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, growth, 3, 1, 1)
        self.conv2 = nn.Conv2d(cin + growth, growth, 3, 1, 1)
        self.conv3 = nn.Conv2d(cin + 2 * growth, growth, 3, 1, 1)
        self.conv4 = nn.Conv2d(cin + 3 * growth, growth, 3, 1, 1)
        self.conv5 = nn.Conv2d(cin + 4 * growth, cout, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2)
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            nn.init.xavier_normal_(conv.weight)
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)
        nn.init.zeros_(self.conv5.weight)
        nn.init.zeros_(self.conv5.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled(x.device.type):
            # Every convolution would cast its input to the autocast dtype; casting the block
            # input once keeps the concatenations in that dtype (not promoted to float32 and
            # cast again per layer). The forward values are the same; without autocast, a no-op.
            x = x.to(torch.get_autocast_dtype(x.device.type))
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        return self.conv5(torch.cat((x, x1, x2, x3, x4), 1))


def _apply(subnet: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return subnet(x)


class InvBlock(nn.Module):
    """Affine coupling block on ``channels`` channels, split ``split`` | ``channels - split``.

    forward:  y1 = x1 + F(x2);  s = 2·sigmoid(H(y1)) - 1;  y2 = x2·exp(s) + G(y1)
    inverse:  s = 2·sigmoid(H(y1)) - 1;  x2 = (y2 - G(y1))·exp(-s);  x1 = y1 - F(x2)

    ``forward`` and ``inverse`` take ``run_subnet(subnet, t)``, which evaluates F, G and H
    (default ``subnet(t)``); tiled inference passes a faster evaluation of the same function
    (:func:`irnlib.model.inference.subnet_nhwc`).
    """

    def __init__(self, channels: int, split: int = 3, growth: int = 32):
        super().__init__()
        self.split = split
        rest = channels - split
        self.F = DenseSubnet(rest, split, growth)
        self.G = DenseSubnet(split, rest, growth)
        self.H = DenseSubnet(split, rest, growth)

    def log_scale(self, y1: torch.Tensor, run_subnet=_apply) -> torch.Tensor:
        """``s = 2·sigmoid(H(y1)) - 1``, the log of the gain on the second part (one value per element)."""
        return torch.sigmoid(run_subnet(self.H, y1)) * 2 - 1  # clamp = 1: s in (-1, 1)

    def forward(self, x: torch.Tensor, run_subnet=_apply) -> torch.Tensor:
        x1, x2 = x[:, : self.split], x[:, self.split :]
        y1 = x1 + run_subnet(self.F, x2)
        y2 = x2 * torch.exp(self.log_scale(y1, run_subnet)) + run_subnet(self.G, y1)
        return torch.cat((y1, y2), 1)

    def inverse(self, y: torch.Tensor, run_subnet=_apply) -> torch.Tensor:
        y1, y2 = y[:, : self.split], y[:, self.split :]
        x2 = (y2 - run_subnet(self.G, y1)) * torch.exp(-self.log_scale(y1, run_subnet))
        x1 = y1 - run_subnet(self.F, x2)
        return torch.cat((x1, x2), 1)

    def log_det(self, x: torch.Tensor) -> torch.Tensor:
        """Sum of ``s`` over channels and pixels, per sample."""
        y1 = x[:, : self.split] + self.F(x[:, self.split :])
        return self.log_scale(y1).flatten(1).sum(1)


def default_blocks(scale: int) -> list[int]:
    """Eight InvBlocks per Haar level, as in the paper."""
    if scale not in SCALES:
        raise ValueError(f"IRN supports scales {sorted(SCALES)}, got {scale!r}")
    return [8] * SCALES[scale]


class IRN(nn.Module):
    """Invertible Rescaling Net: HR ``(B, C, H, W)`` <-> ``(B, C·s², H/s, W/s)``.

    ``net(x)[:, :C]`` is the LR image and ``net(x)[:, C:]`` the latent ``z``;
    ``net.inverse(y)`` maps back exactly (up to floating-point rounding).

    Parameters
    ----------
    scale : {2, 4, 8}
        Downscaling factor: one Haar level per factor of two.
    block_num : list of int, optional
        InvBlocks after each Haar level; default ``[8] * log2(scale)``.
    channels : int
        Image channels (3 for RGB); also the width of the LR branch of every InvBlock.
    gc : int
        Growth channels of the dense subnets (32 in the paper).
    downsampling : {"haar", "learned"}
        ``"haar"`` is the paper's network. ``"learned"`` replaces every Haar level by
        :class:`LearnedDownsampling` (an ablation; its checkpoints are the kit's own).
    """

    def __init__(
        self,
        scale: int = 4,
        block_num: list[int] | None = None,
        channels: int = 3,
        gc: int = 32,
        downsampling: str = "haar",
    ):
        super().__init__()
        block_num = list(block_num) if block_num is not None else default_blocks(scale)
        if scale not in SCALES or len(block_num) != SCALES[scale]:
            raise ValueError(
                f"IRN(scale={scale}) needs scale in {sorted(SCALES)} and one block count per "
                f"Haar level ({SCALES.get(scale, '?')}); got block_num={block_num}"
            )
        if downsampling not in ("haar", "learned"):
            raise ValueError(f"downsampling must be 'haar' or 'learned', got {downsampling!r}")
        self.scale, self.block_num, self.channels, self.gc = scale, block_num, channels, gc
        self.downsampling = downsampling
        level = HaarDownsampling if downsampling == "haar" else LearnedDownsampling
        ops: list[nn.Module] = []
        width = channels
        for blocks in block_num:
            ops.append(level(width))
            width *= 4
            ops.extend(InvBlock(width, channels, gc) for _ in range(blocks))
        self.operations = nn.ModuleList(ops)

    def run(self, x: torch.Tensor, *, inverse: bool = False, run_block=None) -> torch.Tensor:
        """Walk the operations: each in order (forward), or each inverse in reverse order.

        ``run_block(fn, x)``, if given, runs every :class:`InvBlock` step ``fn`` (the block or
        its inverse) on ``x`` instead of ``fn(x)``; the Haar levels always run directly. This
        is the one loop over the network: :meth:`forward`, :meth:`inverse`, tiled inference
        (:mod:`irnlib.model.inference`, a tile at a time) and training's recomputation
        (:func:`irnlib.train.run_network`, under activation checkpointing) all use it.
        """
        for op in reversed(self.operations) if inverse else self.operations:
            fn = op.inverse if inverse else op
            x = run_block(fn, x) if run_block is not None and isinstance(op, InvBlock) else fn(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self.run(y, inverse=True)

    def log_det(self, x: torch.Tensor) -> torch.Tensor:
        """Log-determinant of the forward Jacobian, per sample: shape ``(B,)``."""
        total = x.new_zeros(x.shape[0])
        for op in self.operations:
            total = total + op.log_det(x)
            x = op(x)
        return total

    def pad_to_multiple(self, x: torch.Tensor) -> torch.Tensor:
        """Pad ``(B, C, H, W)`` at the bottom/right to multiples of the scale (reflection;
        replication where the image is too small to reflect); unchanged if they already are."""
        h, w = x.shape[-2:]
        ph, pw = -h % self.scale, -w % self.scale
        if ph == 0 and pw == 0:
            return x
        mode = "reflect" if ph < h and pw < w else "replicate"  # reflect needs pad < size
        return F.pad(x, (0, pw, 0, ph), mode=mode)

    def downscale(self, hr: torch.Tensor) -> torch.Tensor:
        """HR ``(B, C, H, W)`` in ``[0, 1]`` -> quantized LR ``(B, C, ⌈H/s⌉, ⌈W/s⌉)``.

        Sizes that are not multiples of ``s`` are padded at the bottom/right by reflection
        first; pass ``size=(H, W)`` to :meth:`upscale` to crop the reconstruction back.
        """
        return quantize(self(self.pad_to_multiple(hr))[:, : self.channels])

    def sample_latent(
        self, lr: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``z ~ N(0, temperature²)`` of shape ``(B, C·(s²−1), h, w)`` for an LR ``(B, C, h, w)``.

        Drawn on the generator's device (so a CPU generator gives the same ``z`` whatever
        device ``lr`` is on), then moved to ``lr``'s device.
        """
        b, c, h, w = lr.shape
        gen_device = generator.device if generator is not None else lr.device
        z = torch.randn((b, c * (self.scale**2 - 1), h, w), generator=generator, device=gen_device, dtype=lr.dtype)
        return temperature * z.to(lr.device)

    def upscale(
        self,
        lr: torch.Tensor,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """LR ``(B, C, h, w)`` -> HR reconstruction ``(B, C, h·s, w·s)``.

        The latent is drawn as ``z ~ N(0, temperature²)``; ``generator`` (on any device)
        makes the draw reproducible. The result is not clamped (round it with
        :func:`irnlib.imaging.images.to_image`). ``size=(H, W)`` crops the result to the original
        HR size after :meth:`downscale` padded it.
        """
        z = self.sample_latent(lr, temperature, generator)
        hr = self.inverse(torch.cat((lr, z), 1))[:, : self.channels]
        if size is not None:
            hr = hr[..., : size[0], : size[1]]
        return hr
