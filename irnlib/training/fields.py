"""The allowed values of every :class:`~irnlib.training.config.TrainConfig` field, checked when one is made.

:data:`RULES` holds one rule per field: a test of the value (given the configuration, for the
bounds that depend on ``scale``) and the allowed range in words. :func:`check_fields` applies them
in field order and raises :class:`~irnlib.training.errors.SettingsError` for the first bad value,
one line naming the field, its allowed range and the value: ``val_crop must be None (whole
images) or a whole number >= 44 (...), got 32``. A value of a wrong type (a string for a count, a
float for an integer) is refused the same way, never with another exception.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Sequence

from irnlib.data.patches import SYNTHETIC_LRS
from irnlib.data.synthetic import SYNTHETIC_KINDS
from irnlib.imaging.metrics import SSIM_WINDOW
from irnlib.paper import PAPER_DISTR_LOSS
from irnlib.training.errors import SettingsError

__all__ = ["RULES", "SSIM_WINDOW", "MAX_INT", "DISTR_LOSS_FORMS", "check_fields", "check_run_name", "show"]

MAX_INT = 2**63 - 1  # the largest count or seed torch and numpy take
# TrainConfig.distr_loss's allowed values, the paper's first (their losses: objective.DISTR_LOSSES)
DISTR_LOSS_FORMS = (PAPER_DISTR_LOSS, "unit_kl", "unit_hinge")
HAAR_LEVELS = {2: 1, 4: 2, 8: 3}


def show(value, limit: int = 80) -> str:
    """``repr(value)`` on one line, cut to ``limit`` characters (a huge integer has no repr at all)."""
    try:
        text = repr(value)
    except ValueError:  # an integer beyond Python's digit limit for str()
        text = "a number of more than 4300 digits"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _count(low: int) -> Callable:
    """A whole number in ``low .. MAX_INT``."""
    return lambda value, config: _integer(value) and low <= value <= MAX_INT


def _real(low: float, *, strict: bool = False, high: float | None = None) -> Callable:
    """A finite number ``>= low`` (``> low`` if ``strict``), below ``high`` if given."""

    def test(value, config) -> bool:
        if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)):
            return False
        return (value > low if strict else value >= low) and (high is None or value < high)

    return test


def _one_of(*choices: str) -> Callable:
    return lambda value, config: isinstance(value, str) and value in choices


def _text(value, config) -> bool:
    """A non-empty string without NUL (a name, a path, a device)."""
    return isinstance(value, str) and value.strip() != "" and "\0" not in value


def _optional(test: Callable) -> Callable:
    return lambda value, config: value is None or test(value, config)


def _flag(value, config) -> bool:
    return isinstance(value, bool)


def _scale(value, config) -> bool:
    return _integer(value) and value in HAAR_LEVELS


def _block_num(value, config) -> bool:
    """One count >= 1 per Haar level of ``config.scale``."""
    if not isinstance(value, Sequence) or isinstance(value, str):
        return False
    return len(value) == HAAR_LEVELS[config.scale] and all(_count(1)(v, config) for v in value)


def _multiple_of_scale(value, config) -> bool:
    return _count(config.scale)(value, config) and value % config.scale == 0


def _grid_block(value, config) -> bool:
    """A multiple of the scale; with the grid term on, also a divisor of the patch side."""
    return _multiple_of_scale(value, config) and (not config.lambda_grid or config.patch_size % value == 0)


def _val_crop(value, config) -> bool:
    return _count(SSIM_WINDOW * config.scale)(value, config)


def _betas(value, config) -> bool:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        return False
    return all(_real(0, high=1)(b, config) for b in value)


def _milestones(value, config) -> bool:
    if not isinstance(value, Sequence) or isinstance(value, str):
        return False
    return all(_count(0)(m, config) for m in value)


def _kinds(value, config) -> bool:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        return False
    return all(isinstance(kind, str) and kind in SYNTHETIC_KINDS for kind in value)


def _kinds_trained(value, config) -> bool:
    """None or more of the synthetic kinds the run draws."""
    if not isinstance(value, Sequence) or isinstance(value, str):
        return False
    return all(isinstance(kind, str) and kind in tuple(config.synthetic_kinds) for kind in value)


def _run_name(value, config) -> bool:
    return _text(value, config) and run_name_problem(value) is None


COUNT = "a whole number >= {low}"
KINDS_TRAINED = "none or more of synthetic_kinds ({synthetic_kinds}), comma-separated"  # the per-kind weightings
RULES: dict[str, tuple[Callable, str]] = {
    "profile": (_text, "a profile name"),
    "scale": (_scale, "2, 4 or 8"),
    "block_num": (_optional(_block_num),
                  "None or {levels} whole number(s) >= 1, one InvBlock count per Haar level of scale {scale}"),
    "downsampling": (_one_of("haar", "learned"), "'haar' or 'learned'"),
    "train_set": (_text, "a dataset name"),
    "val_set": (_text, "a dataset name"),
    "val_images": (_optional(_count(1)), "None (all images) or a whole number >= 1"),
    "val_crop": (_optional(_val_crop), "None (whole images) or a whole number >= {min_crop} (11 x scale {scale}: "
                 "SSIM's 11x11 window needs a validation LR of at least 11x11 pixels)"),
    "data_root": (_optional(_text), "None or a folder"),
    "patch_size": (_multiple_of_scale, "a multiple of scale {scale}, at least {scale}"),
    "batch_size": (_count(1), COUNT.format(low=1)),
    "augment": (_flag, "true or false"),
    "sampling": (_one_of("epoch", "stream"), "'epoch' or 'stream'"),
    "lr_target": (_one_of("image", "patch"), "'image' or 'patch'"),
    "synthetic_fraction": (_real(0, high=1), "a number in [0, 1) (0: photographs only, the paper)"),
    "synthetic_kinds": (_kinds, "one or more of " + ",".join(SYNTHETIC_KINDS) + ", comma-separated"),
    "forward_only_kinds": (_kinds_trained, KINDS_TRAINED),
    "lr_only_kinds": (_kinds_trained, KINDS_TRAINED),
    "heavy_back_kinds": (_kinds_trained, KINDS_TRAINED),
    "heavy_back_weight": (_real(0), "a finite number >= 0 (1: as every other sample)"),
    "free_latent_kinds": (_kinds_trained, KINDS_TRAINED),
    "synthetic_lr": (_one_of(*SYNTHETIC_LRS), "'bicubic' (the patch's own bicubic LR) or 'clipped' (that in [0, 1])"),
    "num_workers": (_count(0), COUNT.format(low=0) + " (0: load in the training process)"),
    "lambda_forw": (_optional(_real(0)), "None (scale squared) or a finite number >= 0"),
    "lambda_back": (_real(0), "a finite number >= 0 (0: term off)"),
    "lambda_distr": (_real(0), "a finite number >= 0 (0: term off)"),
    "gaussian_scale": (_real(0), ">= 0, a finite number"),
    "quantize_gradient": (_one_of("straight", "clipped"), "'straight' (the paper) or 'clipped'"),
    "distr_loss": (
        _one_of(*DISTR_LOSS_FORMS),
        f"'{DISTR_LOSS_FORMS[0]}' (the paper), " + " or ".join(f"'{form}'" for form in DISTR_LOSS_FORMS[1:]),
    ),
    "distr_off_iterations": (_count(0), ">= 0, a whole number"),
    "distr_ramp_iterations": (_count(0), ">= 0, a whole number"),
    "lambda_stress": (_real(0), "a finite number >= 0 (0: term off, the paper)"),
    "stress_eps": (_real(0, strict=True, high=1), "a number in (0, 1): the perturbation's bound per value"),
    "stress_start": (_one_of("zero", "random"), "'zero' (the step from the batch) or 'random' (from a random point)"),
    "lambda_range": (_real(0), "a finite number >= 0 (0: term off, the paper)"),
    "lambda_grid": (_real(0), "a finite number >= 0 (0: term off, the paper)"),
    "grid_block": (_grid_block, "a multiple of scale {scale} that divides patch_size (with lambda_grid > 0)"),
    "iterations": (_count(0), COUNT.format(low=0)),
    "lr": (_real(0, strict=True), "> 0, a finite number"),
    "betas": (_betas, "two numbers in [0, 1)"),
    "weight_decay": (_real(0), ">= 0, a finite number"),
    "lr_milestones": (_milestones, "whole numbers >= 0 (absolute iterations), e.g. 100000,200000"),
    "lr_gamma": (_real(0, strict=True), "> 0, a finite number"),
    "warmup_iterations": (_count(0), ">= 0, a whole number"),
    "warmup_rule": (_one_of("kit", "official"), "'kit' or 'official'"),
    "grad_clip": (_real(0), ">= 0, a finite number (0: no clipping)"),
    "ema_decay": (_real(0, high=1), "in [0, 1) (0: off)"),
    "seed": (_count(0), f"a whole number in 0..{MAX_INT}"),
    "init_from": (_optional(_text), "None or a weights file (IRN_x<s>.pth)"),
    "run_name": (_optional(_run_name), "a plain folder name inside runs_dir: not empty, no '/' or '\\', not "
                 "'.' or '..'"),
    "runs_dir": (_optional(_text), "None or a folder"),
    "log_every": (_count(1), ">= 1, a whole number"),
    "val_every": (_count(1), ">= 1, a whole number"),
    "checkpoint_every": (_count(1), ">= 1, a whole number"),
    "keep_every": (_count(0), ">= 0, a whole number (0: never)"),
    "progress": (_flag, "true or false"),
    "device": (_text, "'auto', 'cpu', 'cuda' or 'cuda:<n>'"),
    "amp": (_one_of("off", "bf16", "fp16", "auto"), "'off', 'bf16', 'fp16' or 'auto'"),
    "channels_last": (_flag, "true or false"),
    "memory_saving": (_flag, "true or false"),
    "tune_allocator": (_flag, "true or false"),
}  # fmt: skip


# The messages that keep an earlier wording (``patch_size 50 must be a multiple of scale 4``).
TEMPLATES = {"patch_size": "{name} {value} must be {allowed}"}


def run_name_problem(name: str) -> str | None:
    """What keeps ``name`` from being one plain folder name inside ``runs_dir`` (None: nothing)."""
    separators = {"/", "\\", os.sep, os.altsep or "/"}
    if any(sep in name for sep in separators):
        return "it holds a path separator"
    if name in (".", ".."):
        return "it names no folder of its own"
    if name != name.strip():
        return "it begins or ends with white space"
    return None


def check_run_name(name) -> None:
    """Refuse a ``run_name`` that is not one plain folder name, so every run folder stays inside ``runs_dir``."""
    if name is not None and not _run_name(name, None):
        if not isinstance(name, str) or not name.strip():
            problem = "it is empty or not text"
        elif "\0" in name:
            problem = "it holds a NUL character"
        else:
            problem = run_name_problem(name)
        raise SettingsError(
            f"run_name={show(name)}: {problem}; a run name must be {RULES['run_name'][1]}, so that the run folder "
            "stays inside runs_dir (set runs_dir=... to train elsewhere)"
        )


def check_fields(config) -> None:
    """Check every field of ``config`` against :data:`RULES`, in field order.

    Raises
    ------
    SettingsError
        For the first field whose value is outside its allowed range (or of another type),
        naming the field, the range and the value, on one line.
    """
    for name, (test, allowed) in RULES.items():
        value = getattr(config, name)
        try:
            ok = bool(test(value, config))
        except (TypeError, ValueError, OverflowError, KeyError):
            ok = False
        if ok:
            continue
        if name == "run_name":
            check_run_name(value)
        scale = config.scale if _scale(config.scale, config) else "?"
        levels, min_crop = HAAR_LEVELS.get(scale, "?"), SSIM_WINDOW * scale if scale != "?" else "?"
        template = TEMPLATES.get(name, "{name} must be {allowed}, got {value}")
        kinds = ",".join(config.synthetic_kinds) if _kinds(config.synthetic_kinds, config) else "?"
        allowed = allowed.format(scale=scale, levels=levels, min_crop=min_crop, synthetic_kinds=kinds)
        raise SettingsError(template.format(name=name, allowed=allowed, value=show(value)))
