"""The paper's objective: the three loss terms, :class:`IRNObjective` and the schedules.

The objective is the official release's (``IRN_model.optimize_parameters``)::

    y      = net(x)                                     # (B, 3·s², P/s, P/s)
    lr, z  = y[:, :3], y[:, 3:]
    L_forw = λ1 · mean_b Σ (lr − lr_bicubic)²           # LR close to MATLAB bicubic
    L_distr= λ3 · mean_b Σ z²                            # z close to N(0, 1)
                                                        # (or the kit's unit_kl_loss or
                                                        # unit_hinge_loss: config.distr_loss)
    x̂      = net.inverse(cat(quantize(lr), g·z'))[:, :3],  z' ~ N(0, 1), g = gaussian_scale
                                                        # (quantize's gradient: config.quantize_gradient)
    L_back = λ2 · mean_b Σ sqrt((x̂ − x)² + 1e-6)         # Charbonnier reconstruction
    total  = L_forw + L_back + L_distr                   # (+ the kit's L_stress, L_range, L_grid, below)

The kit's per-sample weights (not the paper's, which has every weight 1): each image's L_back and
L_distr (also inside L_stress) is multiplied by its ``back_weight`` / ``distr_weight`` before the
batch mean (:func:`batch_mean`, still divided by the whole batch). They are 0 for the synthetic
kinds a run names in ``forward_only_kinds`` (L_back), ``lr_only_kinds`` (both) or
``free_latent_kinds`` (L_distr), ``heavy_back_weight`` in L_back for ``heavy_back_kinds``, else 1.

The kit's stress term (``lambda_stress > 0``; not the paper's)::

    x'       = clip(x + ε · sign(∇_x (L_forw + L_distr)), 0, 1)   # ε = stress_eps
    L_stress = λs · (L_forw + L_distr)(net(x'))                   # same targets as x's

``x'`` differs from ``x`` by at most ``ε`` (1/255 by default: one 8-bit level) per value, in the
direction that makes the forward terms grow fastest (one step of the fast gradient sign
method). An IRN whose couplings sit at their clamp can turn such a change into a latent of
|z| in the hundreds; L_stress asks for the same LR and a latent of the same scale there
(measured before and after: ``results/panel/stress_x4/README.md``). With both forward terms off
it is off too.

With ``stress_start="random"`` the step starts from a random point of the bound instead (Wong,
Rice & Kolter 2020, "Fast is better than free", their remedy for single-step training that
wears off)::

    δ0 ~ U(−ε, ε);  g = ∇ (L_forw + L_distr) at clip(x + δ0, 0, 1)
    x' = clip(x + clip(δ0 + 1.25 ε · sign(g), −ε, ε), 0, 1)

It costs one more forward and backward pass a step. Measured on the ×4 reference's
continuation it holds the latent worse than the step from ``x`` (a weaker push:
``results/panel/stress_start_x4/README.md``), so it stays off unless asked for.

The kit's range term (``lambda_range > 0``; not the paper's)::

    L_range = λr · mean_b Σ (max(lr − 1, 0)² + max(−lr, 0)²)      # the LR before quantisation

What the LR holds outside [0, 1] the 8-bit file clips away; L_forw's squared error to a bicubic
LR that may itself overshoot a little barely notices a few edge pixels past the range (measured:
``results/panel/range_x2/README.md``).

The kit's grid term (``lambda_grid > 0``; not the paper's)::

    e      = x̂ − x                                       # L_back's error, (b, C, P, P)
    g      = each of the s × s pixel positions of e less their mean
    L_grid = λg · mean_b w_b Σ (g averaged over k × k blocks)² · (k/s)²    # k = grid_block

``g`` at one position of the s × s grid, averaged over a block, is the error's fixed pattern of
period s there: a reconstruction whose mean over draws of z' carries the same s × s pattern
everywhere. L_back (Charbonnier, an L1) pulls on such a pattern only as hard as it moves the
signs of the per-pixel errors, which on photographs are ten times larger; on smooth images the
pattern is a third of the error (measured: ``results/panel/grid_x4/README.md``). L_grid is the
squared norm of that part of the error, an L2 on it, each sample's times its L_back weight; it
uses L_back's x̂, so with L_back off it is off too.

:func:`lr_factor` is the learning-rate schedule (halved at 100k, 200k, 300k and 400k of 500k
iterations, with an optional warm-up) and :func:`distr_factor` the kit's curriculum on L_distr.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from irnlib.model.network import IRN, quantize
from irnlib.training.config import TrainConfig
from irnlib.training.fields import DISTR_LOSS_FORMS

__all__ = [
    "TERMS",
    "batch_mean",
    "forward_loss",
    "distribution_loss",
    "unit_kl_loss",
    "unit_hinge_loss",
    "DISTR_LOSSES",
    "range_loss",
    "backward_loss",
    "grid_loss",
    "run_network",
    "IRNObjective",
    "lr_factor",
    "distr_factor",
]

TERMS = ("l_forw", "l_back", "l_distr", "l_stress", "l_range", "l_grid")  # the loss terms, in train_log.csv's order


def batch_mean(per_image: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """``mean_b w_b · per_image_b``: per-image values ``(b,)`` times their ``weight`` ``(b,)``
    (default 1), averaged over the whole batch (a sample of weight 0 still counts in ``b``)."""
    return per_image.mean() if weight is None else (weight * per_image).mean()


def forward_loss(lr: torch.Tensor, lr_ref: torch.Tensor) -> torch.Tensor:
    """``mean_b Σ_{c,h,w} (lr − lr_ref)²``: squared error summed per image, averaged over the batch."""
    return (lr - lr_ref).pow(2).sum(dim=(1, 2, 3)).mean()


def distribution_loss(z: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """``mean_b Σ z²``: twice the negative log-likelihood of ``z`` under N(0, 1), up to a constant
    (each image's sum times its ``weight``, :func:`batch_mean`, as in the other two forms)."""
    return batch_mean(z.pow(2).sum(dim=(1, 2, 3)), weight)


def unit_kl_loss(z: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """``mean_b N/2 · (m − 1 − ln m)``, ``m`` an image's mean ``z²`` over its ``N`` latent values.

    ``N`` times the KL divergence from N(0, m) to N(0, 1): zero when the image's latent has unit
    mean square, the scale of the ``z' ~ N(0, 1)`` the protocol draws; it grows without bound as
    ``m → 0``, where :func:`distribution_loss` is smallest. The kit's alternative L_distr
    (``TrainConfig.distr_loss = "unit_kl"``), not the paper's.
    """
    n = z[0].numel()
    m = z.float().pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-12)  # (b,)
    return batch_mean(0.5 * n * (m - 1 - m.log()), weight)


def unit_hinge_loss(z: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """``mean_b Σ max(|z| − 1, 0)²``: the squared excess of ``|z|`` over 1, summed per image.

    Zero for every latent value within one standard deviation of the ``z' ~ N(0, 1)`` the
    protocol draws, and :func:`distribution_loss`'s growth beyond it. It holds the latent to the
    draw's scale without pulling it below (:func:`distribution_loss` is smallest at ``z = 0``) or
    pushing it up (:func:`unit_kl_loss` grows as an image's latent shrinks). The kit's alternative
    L_distr (``TrainConfig.distr_loss = "unit_hinge"``), not the paper's.
    """
    return batch_mean((z.abs() - 1).clamp_min(0).pow(2).sum(dim=(1, 2, 3)), weight)


# L_distr's forms by TrainConfig.distr_loss (fields.DISTR_LOSS_FORMS): the official one, the kit's two
DISTR_LOSSES = dict(zip(DISTR_LOSS_FORMS, (distribution_loss, unit_kl_loss, unit_hinge_loss), strict=True))


def range_loss(lr: torch.Tensor) -> torch.Tensor:
    """``mean_b Σ (max(lr − 1, 0)² + max(−lr, 0)²)``: the squared excess of the LR outside [0, 1],
    summed per image (the part the 8-bit quantiser clips away)."""
    return ((lr - 1).clamp_min(0).pow(2) + (-lr).clamp_min(0).pow(2)).sum(dim=(1, 2, 3)).mean()


def backward_loss(
    x_hat: torch.Tensor, x: torch.Tensor, eps: float = 1e-6, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """``mean_b w_b Σ sqrt((x̂ − x)² + eps)``: the Charbonnier (smooth L1) error, summed per image,
    each image's sum times its ``weight`` ``(b,)`` (default 1), averaged over the whole batch."""
    return batch_mean(torch.sqrt((x_hat - x).pow(2) + eps).sum(dim=(1, 2, 3)), weight)


def grid_loss(
    x_hat: torch.Tensor, x: torch.Tensor, scale: int, block: int, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """``mean_b w_b ‖G(x̂ − x)‖²``: the squared norm of the error's block-averaged s × s grid pattern.

    ``G`` keeps, per colour, each of the ``scale × scale`` pixel positions' mean over
    ``block × block`` pixel blocks, less the mean of the positions, spread back over the block's
    pixels (an orthogonal projection). ``block`` is a multiple of ``scale`` that divides the
    image sides. Each image's sum times its ``weight`` ``(b,)`` (default 1), :func:`batch_mean`.
    """
    b, c, h, w = x.shape
    if block % scale or h % block or w % block:
        raise ValueError(f"grid_loss: block {block} must be a multiple of the scale {scale} and divide {h}×{w}")
    cells = block // scale  # a block's side in s × s cells
    phases = F.pixel_unshuffle(x_hat - x, scale).view(b, c, scale * scale, h // scale, w // scale)
    grid = phases - phases.mean(dim=2, keepdim=True)  # (b, C, s², H/s, W/s)
    block_means = F.avg_pool2d(grid.view(b, c * scale * scale, h // scale, w // scale), cells)  # (b, C·s², H/k, W/k)
    return batch_mean(block_means.pow(2).sum(dim=(1, 2, 3)) * cells * cells, weight)


def run_network(
    net: IRN, x: torch.Tensor, inverse: bool = False, memory_saving: bool = False, channels_last: bool = False
) -> torch.Tensor:
    """``net(x)`` or ``net.inverse(x)``, optionally recomputing activations in the backward pass.

    With ``memory_saving`` each InvBlock is run under :func:`torch.utils.checkpoint.checkpoint`:
    only the block inputs are kept and the dense-block activations (the bulk of the memory)
    are recomputed during the backward pass. Same operations, same numbers; about one extra
    forward pass of compute.

    With ``channels_last`` each InvBlock's input is made channels-last (NHWC) first. The Haar
    levels and the concatenation of the LR with ``z`` give NCHW tensors; an InvBlock fed one
    concatenates its dense blocks' activations in NCHW, and every convolution (forward and
    backward) then copies its input to NHWC. Same numbers: only the layout changes.
    """
    if not memory_saving and not channels_last:
        return net.inverse(x) if inverse else net(x)

    def run_block(fn, x):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return checkpoint(fn, x, use_reentrant=False) if memory_saving else fn(x)

    return net.run(x, inverse=inverse, run_block=run_block)


class IRNObjective(nn.Module):
    """The training objective as a module, so that DDP can wrap it as a whole.

    ``forward(hr, lr_ref, z_prime, back_weight=None, distr_weight=None, distr_factor=1.0)`` (a
    training sample's items, :class:`~irnlib.training.samples.TrainingSamples`, then the
    curriculum's factor) returns the weighted loss
    terms :data:`TERMS` (a switched-off term is a zero tensor); L_distr's weight is
    ``lambda_distr · distr_factor`` (the curriculum's factor, :func:`distr_factor`), also inside
    L_stress; ``back_weight`` and ``distr_weight`` ``(b,)`` weigh each sample's L_back and L_distr
    (also inside L_stress; default 1: :class:`~irnlib.training.samples.TrainingSamples` gives 0 to
    the synthetic kinds a run trains on the forward terms or the LR only).

    Parameters
    ----------
    net : IRN
    config : TrainConfig
        Uses ``lambda_forw``, ``lambda_back``, ``lambda_distr``, ``distr_loss``, ``gaussian_scale``,
        ``quantize_gradient``, ``lambda_stress``, ``stress_eps``, ``stress_start``, ``lambda_range``,
        ``lambda_grid``, ``grid_block``, ``memory_saving`` and ``channels_last``.
    """

    def __init__(self, net: IRN, config: TrainConfig):
        super().__init__()
        self.net = net
        self.lambda_forw, self.lambda_back = config.lambda_forw, config.lambda_back
        self.lambda_distr, self.gaussian_scale = config.lambda_distr, config.gaussian_scale
        self.memory_saving, self.channels_last = config.memory_saving, config.channels_last
        self.quantize_gradient = config.quantize_gradient
        self.distr_loss = DISTR_LOSSES[config.distr_loss]
        self.lambda_stress, self.stress_eps = config.lambda_stress, config.stress_eps
        self.stress_start = config.stress_start
        self.lambda_range = config.lambda_range
        self.lambda_grid, self.grid_block = config.lambda_grid, config.grid_block

    def forward_terms(
        self, hr: torch.Tensor, lr_ref: torch.Tensor, lambda_distr: float, distr_weight: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The LR ``net(hr)[:, :C]`` and the weighted ``{"l_forw", "l_distr"}`` of ``hr``
        (each sample's L_distr times its ``distr_weight``)."""
        c = self.net.channels
        y = run_network(
            self.net, hr, memory_saving=self.memory_saving, channels_last=self.channels_last
        ).float()  # (b, 3·s², P/s, P/s)
        lr, z = y[:, :c], y[:, c:]
        zero = y.new_zeros(())
        return lr, {
            "l_forw": self.lambda_forw * forward_loss(lr, lr_ref) if self.lambda_forw else zero,
            "l_distr": lambda_distr * self.distr_loss(z, distr_weight) if lambda_distr else zero,
        }

    def moved_batch(
        self,
        hr: torch.Tensor,
        lr_ref: torch.Tensor,
        lambda_distr: float,
        forward_terms: dict[str, torch.Tensor],
        distr_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """L_stress's ``x'``: ``hr`` moved by at most ``stress_eps`` per value up the forward terms.

        ``forward_terms`` are ``hr``'s own (with ``stress_start="zero"`` their graph from ``hr``,
        which requires grad, gives the step's direction).
        """
        eps = self.stress_eps
        if self.stress_start == "zero":
            (grad,) = torch.autograd.grad(sum(forward_terms.values()), hr, retain_graph=True)
            return (hr.detach() + eps * grad.sign()).clamp(0, 1)
        start = (2 * torch.rand_like(hr) - 1) * eps  # δ0 ~ U(−ε, ε): (b, 3, P, P)
        x0 = (hr + start).clamp(0, 1).requires_grad_(True)
        _, start_terms = self.forward_terms(x0, lr_ref, lambda_distr, distr_weight)
        (grad,) = torch.autograd.grad(sum(start_terms.values()), x0)
        return (hr + (start + 1.25 * eps * grad.sign()).clamp(-eps, eps)).clamp(0, 1)

    def forward(
        self,
        hr: torch.Tensor,
        lr_ref: torch.Tensor,
        z_prime: torch.Tensor,
        back_weight: torch.Tensor | None = None,
        distr_weight: torch.Tensor | None = None,
        distr_factor: float = 1.0,
    ) -> dict[str, torch.Tensor]:
        # hr (b, 3, P, P); lr_ref (b, 3, P/s, P/s); z_prime (b, 3·s² − 3, P/s, P/s) ~ N(0, 1)
        # back_weight, distr_weight (b,) or None
        lambda_distr = self.lambda_distr * distr_factor
        stress = self.lambda_stress > 0 and bool(self.lambda_forw or lambda_distr) and torch.is_grad_enabled()
        if stress and self.stress_start == "zero":
            hr = hr.detach().requires_grad_(True)  # for ∇_x of the forward terms
        lr, forward_terms = self.forward_terms(hr, lr_ref, lambda_distr, distr_weight)  # lr (b, 3, P/s, P/s)
        zero = lr.new_zeros(())
        terms = {**forward_terms, "l_back": zero, "l_stress": zero, "l_range": zero, "l_grid": zero}
        if self.lambda_range:
            terms["l_range"] = self.lambda_range * range_loss(lr)
        if stress:
            moved = self.moved_batch(hr, lr_ref, lambda_distr, forward_terms, distr_weight)  # x': (b, 3, P, P)
            hr = hr.detach()
            _, moved_terms = self.forward_terms(moved, lr_ref, lambda_distr, distr_weight)
            terms["l_stress"] = self.lambda_stress * sum(moved_terms.values())
        if self.lambda_back:
            # The 8-bit LR (straight-through gradient) and a fresh latent go back up.
            y_hat = torch.cat((quantize(lr, self.quantize_gradient), self.gaussian_scale * z_prime), dim=1)
            x_hat = run_network(
                self.net, y_hat, inverse=True, memory_saving=self.memory_saving, channels_last=self.channels_last
            )[:, : self.net.channels]
            terms["l_back"] = self.lambda_back * backward_loss(x_hat.float(), hr, weight=back_weight)
            if self.lambda_grid:
                terms["l_grid"] = self.lambda_grid * grid_loss(
                    x_hat.float(), hr, self.net.scale, self.grid_block, weight=back_weight
                )
        return terms


def lr_factor(step: int, config: TrainConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based) as a multiple of ``config.lr``.

    ``lr_gamma`` to the power of the milestones passed (the official MultiStepLR: ×0.5 after
    100k, 200k, 300k and 400k steps). With a warm-up of ``W = warmup_iterations`` steps
    (off in the paper's configs):

    - ``warmup_rule="kit"``: times ``(step + 1) / W`` during the first ``W`` steps, then 1.
    - ``warmup_rule="official"``: what the official release does (``train.py`` calls
      ``update_learning_rate(current_step, warmup_iter)`` *after* each step, which sets
      ``init_lr · current_step / W`` while ``current_step < W`` and then leaves the rate
      where it is): step 0 uses the full rate, step ``i < W`` uses ``i / W``, and every later
      step ``(W − 1) / W`` (for ``W = 5``: 1, .2, .4, .6, .8, .8, ...); milestones before
      ``W`` are overwritten by the warm-up, later ones multiply ``(W − 1) / W``.
    """
    w = config.warmup_iterations
    if config.warmup_rule == "official" and w > 1:
        if step == 0:
            return 1.0
        if step < w:
            return step / w
        return (w - 1) / w * config.lr_gamma ** sum(w <= m <= step for m in config.lr_milestones)
    factor = config.lr_gamma ** sum(step >= m for m in config.lr_milestones)
    if config.warmup_rule == "kit" and step < w:
        factor *= (step + 1) / w
    return factor


def distr_factor(step: int, config: TrainConfig) -> float:
    """L_distr's weight at optimizer step ``step`` (0-based) as a multiple of ``config.lambda_distr``.

    0 during the first ``K = distr_off_iterations`` steps, then ``(step − K + 1) / R`` over the
    next ``R = distr_ramp_iterations`` steps (as the learning rate's warm-up counts), then 1.
    With ``K = R = 0`` (the paper) it is always 1.
    """
    k, r = config.distr_off_iterations, config.distr_ramp_iterations
    if step < k:
        return 0.0
    return min(1.0, (step - k + 1) / r) if r else 1.0
