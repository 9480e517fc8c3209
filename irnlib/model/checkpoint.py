"""Loading and saving IRN weights in the official checkpoint format.

The official release (``IRN_x2.pth``, ``IRN_x4.pth``, ``IRN_x8.pth``) stores a plain state
dict whose keys are those of :class:`irnlib.model.network.IRN`, sometimes prefixed with
``module.`` (saved from a ``DataParallel`` wrapper). The kit's training checkpoints hold
the same state dict under ``"model"``. Files are read with ``weights_only=True``: no code
from a checkpoint is ever executed.

A checkpoint is checked before any network is built: every value must be a dense tensor of
real floating point, the architecture is inferred from the keys within the bounds below, and
every key and shape is compared with that architecture's (:func:`expected_shapes`). A hostile
or damaged file therefore costs at most the memory of a network within those bounds, and every
refusal is one :class:`CheckpointError` line naming the file, the value and the fix.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from collections import Counter
from pathlib import Path

import torch

from irnlib.model.network import IRN, SCALES
from irnlib.runtime.paths import atomic_write

__all__ = [
    "CheckpointError",
    "load_checkpoint",
    "load_state_dict",
    "save_model",
    "save_torch",
    "infer_architecture",
    "expected_shapes",
    "check_finite",
    "MAX_BLOCKS_PER_LEVEL",
    "MAX_CHANNELS",
    "MAX_GROWTH",
    "MAX_PARAMETERS",
]

# Bounds on the network a checkpoint may describe, checked before anything is built. The paper's
# IRN has 1 to 3 Haar levels (x2, x4, x8: see SCALES) of 8 InvBlocks, 3 image channels and 32 growth
# channels: 11.1 million parameters at x8. The bounds are generous (8 times the paper's blocks and
# growth) but keep a hostile file from asking for millions of blocks or channels.
MAX_BLOCKS_PER_LEVEL = 64  # InvBlocks after one Haar level (the paper: 8; the kit's ablations: 2, 4)
MAX_CHANNELS = 16  # image channels (RGB: 3; grey, RGBA and multispectral images fit)
MAX_GROWTH = 256  # growth channels of the dense subnets (the paper: 32)
MAX_PARAMETERS = 100_000_000  # 400 MB in float32; 9 times the paper's x8, which 64 blocks per level still fit

# Real floating point: the network's float32, or a dtype that converts to it without loss of meaning.
_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
_INDEX_DIGITS = 9  # an operation index with more digits is "too large" without converting it to int
_HAAR = re.compile(r"^operations\.(\d+)\.haar_weights$")
_LEARNED = re.compile(r"^operations\.(\d+)\.weight$")  # the LearnedDownsampling ablation
_BLOCK = re.compile(r"^operations\.(\d+)\.[FGH]\.conv[1-5]\.(weight|bias)$")
_CONV1 = re.compile(r"^operations\.\d+\.[FGH]\.conv1\.weight$")
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")  # torch: "Trying to load unsupported GLOBAL posix.system ..."
_OPERAND = re.compile(r"Unsupported operand (\d+)")
_USE = "use an official IRN_x2/x4/x8.pth or one written by `irn train`"
_EXPECTED = "expected a dict of tensors with keys like 'operations.0.haar_weights' and 'operations.1.F.conv1.weight'"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message says which file and why."""


def _show(value, limit: int = 60) -> str:
    """A short one-line rendering of a key or value found in a file (keys can be long or odd)."""
    if isinstance(value, str) or (isinstance(value, int) and abs(value) < 10**18):
        text = repr(value)
    else:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _shown(keys, count: int = 5) -> str:
    """The first ``count`` keys of ``keys`` (sorted), as a short one-line list."""
    return "[" + ", ".join(_show(k) for k in sorted(keys)[:count]) + "]"


def load_state_dict(path, map_location="cpu") -> dict[str, torch.Tensor]:
    """Read the IRN state dict from a checkpoint file (official or the kit's).

    Parameters
    ----------
    path : str or os.PathLike
        An official checkpoint (plain state dict, optional ``module.`` prefix) or a kit
        training checkpoint (state dict under ``"model"``, its moving average under ``"average"``).
    map_location : str or torch.device
        Where torch puts the tensors it reads.

    Returns
    -------
    dict of str to torch.Tensor
        Keys without the ``module.`` prefix; every value a dense real floating-point tensor.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    CheckpointError
        If the file is truncated, not a PyTorch file, or holds no IRN state dict: something
        other than a dict of tensors, a key that is not a string, a meta or sparse tensor, or
        a tensor that is not real floating point (integer, bool, complex, float8).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint file not found")
    state = _unwrap(_torch_load(path, map_location), path)
    _check_entries(state, path)
    stripped = {k.removeprefix("module."): v for k, v in state.items()}
    if len(stripped) != len(state):
        twice = sorted(k for k in state if k.startswith("module.") and k.removeprefix("module.") in state)
        raise CheckpointError(
            f"{path}: holds {_show(twice[0])} both with and without the 'module.' prefix, so it is not one "
            f"IRN state dict; {_USE}"
        )
    return stripped


def _unwrap(obj, path: Path):
    """The state dict inside a kit training checkpoint (its moving average when it keeps one), else ``obj``."""
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        # The model its run exports, i.e. the weights' moving average when the run keeps one
        # (an AveragedModel's state: "n_averaged", "module.*"); a run without one saves None.
        average = obj.get("average")
        if average is not None and not isinstance(average, dict):
            raise CheckpointError(
                f"{path}: a training checkpoint whose 'average' is a {type(average).__name__}, not the moving "
                f"average's state dict (or None) - the file is damaged; {_USE}"
            )
        if average:
            return {k: v for k, v in average.items() if not (isinstance(k, str) and k == "n_averaged")}
        return obj["model"]
    return obj


def _check_entries(state, path: Path) -> None:
    """Refuse anything but a non-empty dict of string keys to dense real floating-point tensors."""
    if not isinstance(state, dict) or not state:
        found = "an empty dict" if isinstance(state, dict) else f"a {type(state).__name__}"
        raise CheckpointError(f"{path}: holds no IRN state dict (found {found}); {_EXPECTED}")
    for key, value in state.items():
        if not isinstance(key, str):
            raise CheckpointError(
                f"{path}: holds no IRN state dict (found key {_show(key)} of type {type(key).__name__}, "
                f"not a string); {_EXPECTED}"
            )
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{path}: holds no IRN state dict (found {_show(key)}: {type(value).__name__}, not a tensor); "
                f"{_EXPECTED}"
            )
    for key, value in state.items():
        if value.is_meta:
            problem = "is a meta tensor (a shape without values, as saved from a model built on the meta device)"
        elif value.layout != torch.strided:
            problem = f"is a {str(value.layout).removeprefix('torch.')} tensor, not a dense one"
        elif value.dtype not in _FLOAT_DTYPES:
            problem = f"has dtype {str(value.dtype).removeprefix('torch.')}, not real floating point"
        else:
            continue
        raise CheckpointError(
            f"{path}: {_show(key)} {problem}; IRN weights are dense tensors of real floating point "
            f"(float32; float16, bfloat16 and float64 are converted) - {_USE}"
        )


def _torch_load(path: Path, map_location):
    """``torch.load(weights_only=True)`` with errors that name the file and say what is wrong.

    Torch's own text is not passed on beyond the name of what it refused or the first sentence
    of a read error: it advises ``weights_only=False`` or allowlisting globals, which would run
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
            name, operand = _GLOBAL.search(text), _OPERAND.search(text)
            found = f" (it refers to {name.group(1).rstrip('.')})" if name else ""
            found = found or (f" (unsupported pickle instruction {operand.group(1)})" if operand else "")
            raise CheckpointError(
                f"{path}: refused - the file holds Python objects that are not weights{found}, so it is not "
                "an IRN checkpoint; the kit never runs code from a checkpoint. "
                "Use an official IRN_x2/x4/x8.pth or one written by `irn train`"
            ) from None
        raise CheckpointError(
            f"{path}: cannot be read as a PyTorch checkpoint - the file is truncated, corrupt "
            f"or not a checkpoint ({_torch_reason(err)})"
        ) from None


def _torch_reason(err: Exception) -> str:
    """``Type: first sentence`` of torch's error, without any line about ``weights_only`` or allowlists."""
    lines = (line.strip() for line in str(err).splitlines())
    advice = ("weights_only", "safe_globals", "trusted source", "file an issue")
    first = next((line for line in lines if line and not any(a in line for a in advice)), "")
    first = first.split(". ")[0].rstrip(".")
    first = first if len(first) <= 160 else first[:157] + "..."
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


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


def _index(match: re.Match) -> int:
    """The operation index in a key; one too long to be real counts as ``10**_INDEX_DIGITS``."""
    digits = match.group(1)
    return int(digits) if len(digits) <= _INDEX_DIGITS else 10**_INDEX_DIGITS


def infer_architecture(state: dict[str, torch.Tensor], source: str = "checkpoint") -> dict:
    """Scale, block counts, channels and growth of the IRN that ``state`` belongs to, within bounds.

    Only the keys and the shapes of two tensors are read; no network is built and no values are touched.

    Parameters
    ----------
    state : dict of str to torch.Tensor
        A state dict as returned by :func:`load_state_dict`.
    source : str
        The file it came from, for messages.

    Returns
    -------
    dict
        Keyword arguments of :class:`IRN`: ``scale``, ``block_num``, ``channels``, ``gc``, ``downsampling``.

    Raises
    ------
    CheckpointError
        If the keys describe no IRN, or one beyond :data:`MAX_BLOCKS_PER_LEVEL`, :data:`MAX_CHANNELS`,
        :data:`MAX_GROWTH` or :data:`MAX_PARAMETERS`.
    """
    levels = {k: _index(m) for k in state if (m := _HAAR.match(k))}
    downsampling = "haar"
    if not levels:
        levels = {k: _index(m) for k in state if (m := _LEARNED.match(k))}
        downsampling = "learned"
    starts = sorted(set(levels.values()))
    if not starts or starts[0] != 0:
        raise CheckpointError(
            f"{source}: not an IRN state dict - no 'operations.0.haar_weights' key (first keys: {_shown(state)}); "
            f"{_USE}"
        )
    scale = 2 ** len(starts)
    if scale not in SCALES:
        raise CheckpointError(
            f"{source}: {len(starts)} Haar levels (scale {scale}); IRN supports {sorted(SCALES)} - {_USE}"
        )
    block_num = _block_counts(state, levels, starts, source)
    first = min(k for k, i in levels.items() if i == 0)  # 'operations.0.*' before 'operations.00.*'
    channels = _channels(state[first], first, source)
    arch = {"scale": scale, "block_num": block_num, "channels": channels, "gc": _growth(state, source)}
    arch["downsampling"] = downsampling
    parameters = sum(math.prod(shape) for shape in expected_shapes(**arch).values())
    if parameters > MAX_PARAMETERS:
        raise CheckpointError(
            f"{source}: describes an IRN x{scale} with blocks {block_num}, {channels} channels and growth "
            f"{arch['gc']}: {parameters:,} parameters, more than the {MAX_PARAMETERS:,} (MAX_PARAMETERS) accepted "
            f"(the paper's x8 has 11,120,256) - the file is damaged or not an IRN checkpoint; {_USE}"
        )
    return arch


def _block_counts(state: dict, levels: dict[str, int], starts: list[int], source: str) -> list[int]:
    """InvBlocks after each Haar level, from the operation indices; at most MAX_BLOCKS_PER_LEVEL each."""
    blocks = {k: _index(m) for k in state if (m := _BLOCK.match(k))}
    indexed = {**blocks, **levels}
    last = max(indexed.values())
    bounds = [*starts, last + 1]
    counts = [bounds[i + 1] - bounds[i] - 1 for i in range(len(starts))]
    if max(counts) > MAX_BLOCKS_PER_LEVEL:
        level = counts.index(max(counts))
        culprit = max((k for k, i in indexed.items() if i <= bounds[level + 1]), key=indexed.get)
        shown = f"{counts[level]:,}" if indexed[culprit] < 10**_INDEX_DIGITS else "more than a billion"
        raise CheckpointError(
            f"{source}: key {_show(culprit)} asks for {shown} InvBlocks after Haar level {level + 1}; IRN has at "
            f"most {MAX_BLOCKS_PER_LEVEL} per level (MAX_BLOCKS_PER_LEVEL; the paper's has 8) - the file is "
            f"damaged or not an IRN checkpoint; {_USE}"
        )
    return counts


def _channels(first: torch.Tensor, key: str, source: str) -> int:
    """Image channels ``C``, from the first Haar level's ``(4C, 1, 2, 2)`` (learned: ``(4C, 4C)``) weights."""
    if first.ndim not in (2, 4) or first.shape[0] < 4 or first.shape[0] % 4:
        raise CheckpointError(
            f"{source}: the first Haar level's weights have shape {tuple(first.shape)}; an IRN's are (4C, 1, 2, 2) "
            f"for C image channels, (12, 1, 2, 2) for RGB - the file is damaged or not an IRN checkpoint; {_USE}"
        )
    channels = first.shape[0] // 4
    if channels > MAX_CHANNELS:
        raise CheckpointError(
            f"{source}: {_show(key)} of shape {tuple(first.shape)} means {channels:,} image channels; IRN takes "
            f"at most {MAX_CHANNELS} (MAX_CHANNELS; 3 for RGB) - the file is damaged or not an IRN checkpoint; {_USE}"
        )
    return channels


def _growth(state: dict[str, torch.Tensor], source: str) -> int:
    """Growth channels of the dense subnets, by majority over every subnet's conv1 (32 without any)."""
    # By majority, so that one damaged tensor does not define the "expected" shapes.
    votes = Counter(v.shape[0] for k, v in state.items() if _CONV1.match(k) and v.ndim == 4)
    gc = votes.most_common(1)[0][0] if votes else 32
    if not 1 <= gc <= MAX_GROWTH:
        raise CheckpointError(
            f"{source}: the subnets' conv1 weights have {gc:,} output (growth) channels; IRN has 1 to {MAX_GROWTH} "
            f"(MAX_GROWTH; the paper's has 32) - the file is damaged or not an IRN checkpoint; {_USE}"
        )
    return gc


def expected_shapes(
    scale: int, block_num: list[int], channels: int = 3, gc: int = 32, downsampling: str = "haar"
) -> dict[str, tuple[int, ...]]:
    """The state-dict keys and shapes of ``IRN(scale, block_num, channels, gc, downsampling)``, in the
    order of its ``state_dict()``, without allocating it: the network is built on torch's ``meta``
    device (shapes only, no memory), so the layout is the network's own and defined once. Callers
    bound the architecture first (:func:`infer_architecture`'s limits).
    """
    with torch.device("meta"):
        net = IRN(scale=scale, block_num=block_num, channels=channels, gc=gc, downsampling=downsampling)
    return {key: tuple(value.shape) for key, value in net.state_dict().items()}


def load_checkpoint(path, map_location="cpu") -> IRN:
    """Build an :class:`IRN` from a checkpoint file and load its weights strictly.

    Every key and shape is checked against the inferred architecture (:func:`infer_architecture`,
    :func:`expected_shapes`) and every value for NaN or infinity before the network is built.

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
    expected = expected_shapes(**arch)
    missing = sorted(set(expected) - set(state))
    unexpected = set(state) - set(expected)
    wrong = [
        f"{k}: {tuple(state[k].shape)} (expected {shape})"
        for k, shape in expected.items()
        if k in state and tuple(state[k].shape) != shape
    ]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{path}: does not match an IRN x{arch['scale']} with blocks {arch['block_num']} - "
            f"missing keys {missing[:5]}, unexpected keys {_shown(unexpected)}, wrong shapes {wrong[:5]}; {_USE}"
        )
    check_finite(state, source=str(path))
    net = IRN(**arch)
    net.load_state_dict(state, strict=True)
    return net.to(map_location).eval()


def save_model(net: IRN, path) -> Path:
    """Export the weights in the official format (a plain state dict), atomically."""
    return save_torch({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, path)


def save_torch(obj, path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically, serialised in memory and written by Python, so
    that a full disk raises ``OSError`` (ENOSPC) that callers report in one line, not torch's
    ``RuntimeError``. Weights and training states are both written this way."""

    def write(tmp: Path) -> None:
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())

    return atomic_write(path, write)
