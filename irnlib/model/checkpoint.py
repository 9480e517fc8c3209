"""Loading and saving IRN weights in the official checkpoint format.

The official release (``IRN_x2.pth``, ``IRN_x4.pth``, ``IRN_x8.pth``) stores a plain state
dict whose keys are those of :class:`irnlib.model.network.IRN`, sometimes prefixed with
``module.`` (saved from a ``DataParallel`` wrapper). The kit's training checkpoints hold
the same state dict under ``"model"``. Files are read with ``weights_only=True``: no code
from a checkpoint is ever executed.
"""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from irnlib.model.network import IRN, SCALES
from irnlib.paper import PAPER_ITERATIONS
from irnlib.runtime.paths import atomic_write, short_path

__all__ = ["CheckpointError", "load_checkpoint", "load_state_dict", "save_model", "infer_architecture", "check_finite"]

_HAAR = re.compile(r"^operations\.(\d+)\.haar_weights$")
_LEARNED = re.compile(r"^operations\.(\d+)\.weight$")  # the LearnedDownsampling ablation
_BLOCK = re.compile(r"^operations\.(\d+)\.[FGH]\.conv[1-5]\.(weight|bias)$")
_CONV1 = re.compile(r"^operations\.\d+\.[FGH]\.conv1\.weight$")
_UNSUPPORTED = re.compile(r"Unsupported (global|operand)[^\n]*")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message says which file and why."""


def load_state_dict(path, map_location="cpu") -> dict[str, torch.Tensor]:
    """Read the IRN state dict from a checkpoint file (official or the kit's).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    CheckpointError
        If the file is truncated, not a PyTorch file, or holds no IRN state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint file not found")
    obj = _torch_load(path, map_location)
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        # The kit's training checkpoint: the model its run exports, i.e. the weights' moving
        # average when the run keeps one (an AveragedModel's state: "n_averaged", "module.*").
        average = obj.get("average")
        obj = {k: v for k, v in average.items() if k != "n_averaged"} if average else obj["model"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        found = sorted(obj)[:5] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(
            f"{path}: holds no IRN state dict (found {found}); expected a dict of tensors "
            "with keys like 'operations.0.haar_weights' and 'operations.1.F.conv1.weight'"
        )
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _torch_load(path: Path, map_location):
    """``torch.load(weights_only=True)`` with errors that name the file and say what is wrong.

    Torch's own text is not passed on: it advises ``weights_only=False``, which would run
    whatever code the file holds. Its warning about the pickle protocol of a file that is
    refused anyway is silenced.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # weights_only unpickling fails in many ways on a bad file
        text = str(err)
        if "Weights only load failed" in text:  # a pickle with something other than tensors
            found = _UNSUPPORTED.search(text)
            raise CheckpointError(
                f"{path}: refused - the file holds Python objects that are not weights"
                f"{f' ({found.group(0).strip()})' if found else ''}, so it is not an IRN checkpoint; "
                "the kit never runs code from a checkpoint. "
                "Use an official IRN_x2/x4/x8.pth or one written by `irn train`"
            ) from None
        first = next((line for line in text.splitlines() if line.strip() and "weights_only" not in line), "")
        raise CheckpointError(
            f"{path}: cannot be read as a PyTorch checkpoint - the file is truncated, corrupt "
            f"or not a checkpoint ({type(err).__name__}: {first})"
        ) from None


def check_finite(state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise :class:`CheckpointError` if any floating-point weight in ``state`` is NaN or infinite.

    A network with such weights computes NaN everywhere, which becomes an all-black image
    without any error; a checkpoint of a diverged or damaged run is refused instead.
    """
    bad = {}
    for key, value in state.items():
        if value.is_floating_point() or value.is_complex():
            count = int((~torch.isfinite(value)).sum())
            if count:
                bad[key] = count
    if bad:
        first = ", ".join(f"{k} ({n} of {state[k].numel()})" for k, n in list(bad.items())[:3])
        raise CheckpointError(
            f"{source}: {len(bad)} of {len(state)} tensors hold NaN or infinite values ({first}) - the weights "
            "come from a diverged or damaged run and would give black images; use another checkpoint"
        )


def infer_architecture(state: dict[str, torch.Tensor], source: str = "checkpoint") -> dict:
    """Scale, block counts, channels and growth of the IRN that ``state`` belongs to."""
    haar = sorted(int(m.group(1)) for k in state if (m := _HAAR.match(k)))
    downsampling = "haar"
    if not haar:
        haar = sorted(int(m.group(1)) for k in state if (m := _LEARNED.match(k)))
        downsampling = "learned"
    if not haar or haar[0] != 0:
        raise CheckpointError(
            f"{source}: not an IRN state dict - no 'operations.0.haar_weights' key (first keys: {sorted(state)[:5]})"
        )
    blocks_at = {int(m.group(1)) for k in state if (m := _BLOCK.match(k))}
    last = max(blocks_at | set(haar))
    bounds = haar + [last + 1]
    block_num = [bounds[i + 1] - bounds[i] - 1 for i in range(len(haar))]
    scale = 2 ** len(haar)
    if scale not in SCALES:
        raise CheckpointError(f"{source}: {len(haar)} Haar levels (scale {scale}); IRN supports {sorted(SCALES)}")
    first = state["operations.0.haar_weights" if downsampling == "haar" else "operations.0.weight"]
    channels = first.shape[0] // 4
    # By majority over every subnet, so that one damaged tensor does not define the "expected" shapes.
    votes = Counter(v.shape[0] for k, v in state.items() if _CONV1.match(k) and v.ndim == 4)
    gc = votes.most_common(1)[0][0] if votes else 32
    return {"scale": scale, "block_num": block_num, "channels": channels, "gc": gc, "downsampling": downsampling}


def load_checkpoint(path, map_location="cpu") -> IRN:
    """Build an :class:`IRN` from a checkpoint file and load its weights strictly.

    Parameters
    ----------
    path : str or os.PathLike
        An official IRN checkpoint (plain state dict, optional ``module.`` prefix), a model
        exported by the kit, or a kit training checkpoint (state dict under ``"model"``).
    map_location : str or torch.device
        Where to put the weights.

    Returns
    -------
    IRN
        In eval mode, with scale and block counts inferred from the keys.

    Raises
    ------
    FileNotFoundError, CheckpointError
        With the file name and what was found versus expected; also for weights that are
        NaN or infinite (see :func:`check_finite`).
    """
    state = load_state_dict(path, map_location)
    arch = infer_architecture(state, source=str(path))
    net = IRN(**arch)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k}: {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{path}: does not match an IRN x{arch['scale']} with blocks {arch['block_num']} - "
            f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}, wrong shapes {wrong[:5]}"
        )
    check_finite(state, source=str(path))
    net.load_state_dict(state, strict=True)
    return net.to(map_location).eval()


def save_model(net: IRN, path) -> Path:
    """Export the weights in the official format (a plain state dict), atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


# ----------------------------------------------------------------------------------------
# Describing a checkpoint: how it was trained, from the run folder it lives in

__all__ += ["CheckpointInfo", "describe_checkpoint"]


@dataclass
class CheckpointInfo:
    """What is known about a checkpoint file, for labels and provenance.

    Attributes
    ----------
    path : Path
    exists : bool
    training : str
        How it was trained: e.g. ``"2,000 iterations, profile smoke (shortened run; the
        paper trains 500,000)"``, ``"official checkpoint"`` or ``"training unknown ..."``.
    shortened : bool
        True when the run is known to be shorter than the paper's 500k iterations.
    config_path : Path or None
        The configuration JSON found beside the checkpoint.
    config : dict
    """

    path: Path
    exists: bool
    training: str
    shortened: bool = False
    config_path: Path | None = None
    config: dict = field(default_factory=dict)

    def label(self) -> str:
        """``"IRN (this kit, <checkpoint>, <training>)"``."""
        return f"IRN (this kit, {short_path(self.path)}, {self.training})"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def describe_checkpoint(path) -> CheckpointInfo:
    """Describe how a checkpoint was trained, from the training run folder it lives in.

    A model exported by :func:`irnlib.train.train` sits beside the run's ``config.json``
    (iterations, profile, training set) and ``provenance.json`` (status, iterations done).
    A run shorter than the paper's 500k iterations, or one still running, is marked as
    shortened. Without a ``config.json``, a file under ``data/pretrained/`` is taken to be
    the official release; anything else is "training unknown".
    """
    path = Path(path)
    if not path.is_file():
        return CheckpointInfo(path, False, "missing")
    config_path = path.parent / "config.json"
    config = _read_json(config_path) if config_path.is_file() else {}
    if "iterations" in config:
        record = _read_json(path.parent / "provenance.json")
        iterations = int(record.get("iterations_done", config["iterations"]))
        status = record.get("status", "finished")
        profile, train_set = config.get("profile", "?"), config.get("train_set", "?")
        text = f"{iterations:,} iterations, profile {profile}, trained on {train_set}"
        if status == "running":  # still training, or stopped before its end (killed, out of time)
            text += f", run not finished ({iterations:,} of {int(config['iterations']):,} planned iterations)"
        elif status != "finished":
            text += f", run {status}"
        shortened = iterations < PAPER_ITERATIONS or status != "finished"
        text += f" (shortened run; the paper trains {PAPER_ITERATIONS:,})" if shortened else ""
        return CheckpointInfo(path, True, text, shortened, config_path, config)
    if path.resolve().parent.name == "pretrained":
        return CheckpointInfo(path, True, "official checkpoint")
    return CheckpointInfo(path, True, "training unknown: no run configuration (config.json) beside the checkpoint")
