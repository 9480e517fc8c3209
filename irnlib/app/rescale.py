"""Rescaling the user's files for ``irn downscale`` / ``irn upscale``.

``downscale`` stores the original size, the scale and the weights' fingerprint in the LR PNG's
text chunks; ``upscale`` reads them back to crop to the original size and to warn when other
weights are used. Outputs follow one policy (:func:`plan`): an output never replaces an input,
two inputs never share an output, and temporaries left by a killed run are removed. Every
expected failure is a :class:`CommandError`, which the command line prints as one line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from irnlib.data.folders import IMAGE_SUFFIXES
from irnlib.imaging.images import ImageFileError, load_image, save_png
from irnlib.model.checkpoint import CheckpointError, load_checkpoint
from irnlib.model.inference import downscale_image_with_health, upscale_image
from irnlib.protocol.weights import choose_weights, weights_kind
from irnlib.runtime.device import net_device, usable_device
from irnlib.runtime.paths import remove_stale_temporaries, sha256_file, short_path
from irnlib.runtime.threads import tune_cpu_allocator

__all__ = [
    "KEY_SIZE",
    "KEY_SCALE",
    "KEY_CHECKPOINT",
    "CommandError",
    "command_device",
    "downscale_file",
    "upscale_file",
    "plan",
    "rescale",
]


# PNG text keys written by `downscale` and read by `upscale`.
KEY_SIZE = "irn:hr_size"  # "H x W" of the original image
KEY_SCALE = "irn:scale"
KEY_CHECKPOINT = "irn:checkpoint"  # file name and SHA-256 prefix of the checkpoint


class CommandError(Exception):
    """A problem with the user's input; printed as ``irn: error: ...`` with exit status 2."""


# --------------------------------------------------------------------------------------
# downscale / upscale
# --------------------------------------------------------------------------------------


def _checkpoint_path(checkpoint, scale: int | None) -> Path:
    """The weights to use: the given ones, else :func:`irnlib.protocol.weights.choose_weights`
    for rescaling (the official ones in data/pretrained/, else the kit's reference model in models/)."""

    if checkpoint:
        path = Path(checkpoint).expanduser()
    elif scale:
        path = choose_weights("rescale", scale)
    else:
        raise CommandError(
            "give --checkpoint (or --scale, to use data/pretrained/IRN_x{scale}.pth or the kit's reference model)"
        )
    if not path.is_file():
        raise CommandError(
            f"checkpoint {path} not found: pass --checkpoint PATH, or place the official IRN_x{scale or 'S'}.pth "
            "(released with the paper, pkuxmq/Invertible-Image-Rescaling) in data/pretrained/, "
            "or train one with `irn train`"
        )
    if not checkpoint:  # say which default was taken: the official model or the kit's own
        kind = (
            "the official checkpoint"
            if weights_kind(path, scale) == "official"
            else "the kit's reference model, see its README.md"
        )
        print(f"irn: using {short_path(path)} ({kind})", file=sys.stderr)
    return path


def _fingerprint(path: Path) -> str:
    return f"{path.name} sha256:{sha256_file(path)[:16]}"


def command_device(name: str):
    """The torch device ``--device name`` asks for, refused with a clear message if it is not there."""

    try:
        return usable_device(name, "--device {}")
    except ValueError as err:
        raise CommandError(str(err)) from None


def _load_network(checkpoint: Path, scale: int | None, device: str):
    try:
        net = load_checkpoint(checkpoint, map_location=command_device(device))
    except CheckpointError as err:
        raise CommandError(str(err)) from err
    if scale is not None and net.scale != scale:
        raise CommandError(f"{checkpoint} is an x{net.scale} checkpoint, but --scale {scale} was asked for")
    return net


def _load(path: Path):
    try:
        return load_image(path)
    except (FileNotFoundError, ImageFileError) as err:
        raise CommandError(str(err)) from err


def _save(dst: Path, img, metadata: dict[str, str]) -> None:
    """Write the output PNG atomically; a failure to write names the file and leaves it as it was."""

    try:
        save_png(dst, img, metadata)
    except OSError as err:  # read-only file system, full disk, a folder in the way, ...
        raise CommandError(
            f"{dst}: cannot write the output ({err.strerror or err}); nothing was written there - "
            "choose a writable location with free space"
        ) from None


def _check_png_output(out: Path) -> None:
    if out.suffix.lower() != ".png":
        raise CommandError(f"{out}: the output must be a .png file (IRN's images must be stored losslessly)")


def _warn_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def downscale_file(net, src: Path, dst: Path, checkpoint_id: str, *, warn=_warn_stderr) -> tuple[int, int]:
    """IRN-downscale the image file ``src`` to the PNG ``dst``; returns the LR's ``(h, w)``.

    The PNG carries the original size, the scale and ``checkpoint_id`` as text chunks. When the
    downscale leaves IRN's trained range (:class:`irnlib.model.inference.DownscaleHealth`), ``warn``
    gets one line ``irn: warning: <src>: ...`` (how much and where); the output is written all the same.
    """

    hr = _load(src)
    lr, health = downscale_image_with_health(net, hr)
    if not health.healthy:
        warn(f"irn: warning: {src}: {health.message()}")
    metadata = {KEY_SIZE: f"{hr.shape[0]} x {hr.shape[1]}", KEY_SCALE: str(net.scale), KEY_CHECKPOINT: checkpoint_id}
    _save(dst, lr, metadata)
    return lr.shape[:2]


def _read_metadata(path: Path) -> dict[str, str]:
    try:
        with Image.open(path) as pil:
            return {str(k): str(v) for k, v in (getattr(pil, "text", {}) or {}).items()}
    except Exception:  # load_image has already reported unreadable files
        return {}


def _stored_scale(path: Path) -> int | None:
    """The scale `irn downscale` stored in the LR PNG ``path``, None if there is none."""
    text = _read_metadata(path).get(KEY_SCALE)
    if not text:
        return None
    if text.strip() not in ("2", "4", "8"):
        raise CommandError(
            f"{path}: its {KEY_SCALE} text chunk is {text[:20]!r}, not 2, 4 or 8; pass --scale or --checkpoint"
        )
    return int(text)


def _parse_size(text: str, source: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().replace(" ", "").split("x"))
    except ValueError:
        raise CommandError(f"{source}: size {text!r} is not of the form HxW (e.g. 480x320)") from None
    if h <= 0 or w <= 0:
        raise CommandError(f"{source}: size {text!r} must be positive")
    return h, w


def _check_size(size: tuple[int, int], lr: tuple[int, int], s: int, src: Path) -> None:
    """Refuse an HR size the LR cannot come from: IRN makes an H×W image ⌈H/s⌉×⌈W/s⌉."""
    if all(-(-n // s) == m for n, m in zip(size, lr)):
        return
    lo, hi = [(m - 1) * s + 1 for m in lr], [m * s for m in lr]
    raise CommandError(
        f"{src}: size {size[0]}x{size[1]} does not fit a {lr[0]}x{lr[1]} LR at x{s} (an HxW image becomes "
        f"ceil(H/{s}) x ceil(W/{s})); the size must be {lo[0]}..{hi[0]} x {lo[1]}..{hi[1]}: "
        f"if the {KEY_SIZE} text chunk is damaged, give --size"
    )


def upscale_file(
    net,
    src: Path,
    dst: Path,
    checkpoint_id: str,
    *,
    size: tuple[int, int] | None = None,
    temperature: float = 1.0,
    seed: int | None = 0,
    warn=print,
) -> tuple[int, int]:
    """Restore the LR image ``src`` to full size in the PNG ``dst``; returns the HR's ``(H, W)``.

    The size is ``size`` if given, else the original size stored by :func:`downscale_file`,
    else ``s`` times the LR's size.
    """

    lr = _load(src)
    meta = _read_metadata(src)
    if meta.get(KEY_SCALE) and meta[KEY_SCALE] != str(net.scale):
        raise CommandError(f"{src} was downscaled x{meta[KEY_SCALE]}, but the checkpoint is x{net.scale}")
    if meta.get(KEY_CHECKPOINT) and meta[KEY_CHECKPOINT] != checkpoint_id:
        warn(f"warning: {src} was downscaled with {meta[KEY_CHECKPOINT]}, upscaling with {checkpoint_id}")
    if not meta.get(KEY_SIZE):
        warn(f"note: {src} was not written by `irn downscale`; restoring to {net.scale}x its size")
    if size is None and meta.get(KEY_SIZE):
        size = _parse_size(meta[KEY_SIZE], f"{src} ({KEY_SIZE})")
    if size is not None:
        _check_size(size, lr.shape[:2], net.scale, src)
    sr = upscale_image(net, lr, size=size, temperature=temperature, seed=seed)
    _save(dst, sr, {"irn:restored_from": src.name, KEY_CHECKPOINT: checkpoint_id, "irn:seed": str(seed)})
    return sr.shape[:2]


def _pairs(src: Path, dst: Path) -> list[tuple[Path, Path]]:
    """(input, output) files: one file, or every image of a folder into a folder of PNGs."""

    suffixes = (*IMAGE_SUFFIXES, ".webp")  # a dataset's kinds of file, and WebP photos
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
        if not files:
            raise CommandError(f"{src}: the folder holds no images ({', '.join(sorted(suffixes))})")
        if dst.suffix.lower() == ".png":
            raise CommandError(f"{src} is a folder, so the output {dst} must be a folder too")
        return [(p, dst / f"{p.stem}.png") for p in files]
    if not src.exists():
        raise CommandError(f"{src}: no such file or folder")
    _check_png_output(dst)
    return [(src, dst)]


def _same(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name the same file or folder (links and ``..`` included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return a.resolve() == b.resolve()


def plan(src: Path, dst: Path, overwrite: bool = False) -> list[tuple[Path, Path]]:
    """The (input, output) pairs of a command, after the output-path policy.

    The policy: an output never replaces an input (``irn downscale a.png a.png``, or ``OUT`` the
    input folder), two inputs never share an output (``x.png`` and ``x.jpg`` both giving
    ``x.png``), an existing file is replaced only if ``irn`` wrote it (its PNG text chunks say
    so) or ``overwrite`` is given, and temporary files left in the output folder by a killed
    run are removed. A refusal raises :class:`CommandError` before anything is written.
    """

    jobs = _pairs(src, dst)
    if src.is_dir() and dst.exists() and _same(src, dst):
        raise CommandError(
            f"{dst}: OUT is the input folder, so the outputs would replace or mix with the "
            "originals; choose another output folder"
        )
    by_output: dict[Path, list[Path]] = {}
    for i, o in jobs:
        by_output.setdefault(o.resolve(), []).append(i)
        if _same(i, o):
            raise CommandError(
                f"{o}: OUT is the input file {i}, which would be replaced by its result; choose another output name"
            )
    clashes = [(o, ins) for o, ins in by_output.items() if len(ins) > 1]
    if clashes:
        lines = [f"{' and '.join(i.name for i in ins)} would be written to {o.name}" for o, ins in clashes]
        raise CommandError(
            f"{src}: {len(clashes)} output name(s) are shared, nothing was written:\n  "
            + "\n  ".join(lines)
            + "\nrename the inputs so that their names differ before the suffix"
        )
    foreign = [o for _, o in jobs if not overwrite and o.is_file() and not written_by_irn(o)]
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise CommandError(
            f"{foreign[0]}{more}: the output exists and was not written by irn, so it is kept and nothing was "
            "written; choose another output name or folder, or pass --overwrite to replace it"
        )
    for folder in {o.parent for _, o in jobs}:
        remove_stale_temporaries(folder)
    return jobs


def written_by_irn(path: Path) -> bool:
    """Whether ``path`` is a PNG that ``irn downscale`` or ``irn upscale`` wrote (an ``irn:`` text chunk)."""
    return path.is_file() and any(key.startswith("irn:") for key in _read_metadata(path))


def rescale(args, up: bool) -> None:
    jobs = plan(Path(args.input), Path(args.output), overwrite=args.overwrite)
    scale = args.scale
    if up and scale is None and not args.checkpoint:  # the scale `irn downscale` stored in the LR
        scale = _stored_scale(jobs[0][0])
    checkpoint = _checkpoint_path(args.checkpoint, scale)
    net = _load_network(checkpoint, scale, args.device)
    if net_device(net).type == "cpu":
        tune_cpu_allocator()  # every image allocates the same large blocks again (irnlib.runtime.threads)
    ident = _fingerprint(checkpoint)
    size = _parse_size(args.size, "--size") if up and args.size else None
    failed = []
    for src, dst in tqdm(jobs, desc="upscaling" if up else "downscaling", disable=len(jobs) == 1):
        try:
            if up:
                shape = upscale_file(
                    net,
                    src,
                    dst,
                    ident,
                    size=size,
                    temperature=args.temperature,
                    seed=args.seed,
                    warn=lambda m: print(m, file=sys.stderr),
                )
            else:
                shape = downscale_file(net, src, dst, ident)
        except CommandError as err:
            if len(jobs) == 1:
                raise
            failed.append(str(err))  # a folder: report the bad file, go on with the others
            continue
        print(f"{src} -> {dst} ({shape[0]}x{shape[1]}, x{net.scale})")
    if failed:
        raise CommandError(f"{len(failed)} of {len(jobs)} images failed:\n  " + "\n  ".join(failed))
