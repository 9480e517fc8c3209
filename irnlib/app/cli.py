"""Command line of the kit: ``python -m irnlib <command>`` (also installed as ``irn``).

Commands
--------
reproduce   the main job: notebooks 00 → 04 executed in order by papermill
train       train IRN (the paper's objective); same as ``python -m irnlib.train``
evaluate    measure the paper's Table 1 rows for a checkpoint (as notebook 02 does)
downscale   IRN-downscale an image (or a folder of images) to a lossless PNG
upscale     restore an IRN-downscaled PNG (or a folder of them) to full size

``downscale`` stores the original size, the scale and the checkpoint's fingerprint in the
LR PNG's text chunks; ``upscale`` reads them back to crop to the original size and to warn
when another checkpoint is used.

Outputs follow one policy (:func:`_plan`): an output never replaces an input, two inputs never
share an output, and temporaries left by a killed run are removed. Expected failures (bad
input, an output that cannot be written, a device that is not there) end as one line
``irn: error: ...`` and exit status 2 (see ``tests/BAD_INPUTS.md``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from irnlib.protocol.profiles import PROFILES
from irnlib.protocol.weights import choose_weights, weights_kind
from irnlib.runtime.paths import short_path

__all__ = ["main", "downscale_file", "upscale_file", "CommandError"]


# PNG text keys written by `downscale` and read by `upscale`.
KEY_SIZE = "irn:hr_size"  # "H x W" of the original image
KEY_SCALE = "irn:scale"
KEY_CHECKPOINT = "irn:checkpoint"  # file name and SHA-256 prefix of the checkpoint

EPILOG = """\
examples:
  irn reproduce                                   # whole pipeline, smoke profile (CPU, minutes)
  irn reproduce --profile paper                   # the real study (GPU, DIV2K, official checkpoints)
  irn train --profile smoke scale=2 iterations=500
  irn evaluate --scale 4 --checkpoint data/pretrained/IRN_x4.pth --datasets Set5 Set14
  irn downscale photo.png photo_lr.png --scale 4 --checkpoint data/pretrained/IRN_x4.pth
  irn upscale photo_lr.png photo_restored.png --checkpoint data/pretrained/IRN_x4.pth

Official checkpoints (IRN_x2.pth, IRN_x4.pth, IRN_x8.pth) go in data/pretrained/; that is
where --checkpoint looks by default. Set IRN_DATA to a folder of datasets, IRN_RESULTS to
write results elsewhere than results/.
"""


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
    from irnlib.data.datasets import sha256_file

    return f"{path.name} sha256:{sha256_file(path)[:16]}"


def _device(name: str):
    """The torch device ``--device name`` asks for, refused with a clear message if it is not there."""
    from irnlib.runtime.device import usable_device

    try:
        return usable_device(name, "--device {}")
    except ValueError as err:
        raise CommandError(str(err)) from None


def _load_network(checkpoint: Path, scale: int | None, device: str):
    from irnlib.model.checkpoint import CheckpointError, load_checkpoint

    try:
        net = load_checkpoint(checkpoint, map_location=_device(device))
    except CheckpointError as err:
        raise CommandError(str(err)) from err
    if scale is not None and net.scale != scale:
        raise CommandError(f"{checkpoint} is an x{net.scale} checkpoint, but --scale {scale} was asked for")
    return net


def _load(path: Path):
    from irnlib.imaging.images import ImageFileError, load_image

    try:
        return load_image(path)
    except (FileNotFoundError, ImageFileError) as err:
        raise CommandError(str(err)) from err


def _save(dst: Path, img, metadata: dict[str, str]) -> None:
    """Write the output PNG atomically; a failure to write names the file and leaves it as it was."""
    from irnlib.imaging.images import save_png

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


def downscale_file(net, src: Path, dst: Path, checkpoint_id: str) -> tuple[int, int]:
    """IRN-downscale the image file ``src`` to the PNG ``dst``; returns the LR's ``(h, w)``.

    The PNG carries the original size, the scale and ``checkpoint_id`` as text chunks.
    """
    from irnlib.model.inference import downscale_image

    hr = _load(src)
    lr = downscale_image(net, hr)
    metadata = {KEY_SIZE: f"{hr.shape[0]} x {hr.shape[1]}", KEY_SCALE: str(net.scale), KEY_CHECKPOINT: checkpoint_id}
    _save(dst, lr, metadata)
    return lr.shape[:2]


def _read_metadata(path: Path) -> dict[str, str]:
    from PIL import Image

    try:
        with Image.open(path) as pil:
            return dict(getattr(pil, "text", {}) or {})
    except Exception:  # load_image has already reported unreadable files
        return {}


def _stored_scale(path: Path) -> int | None:
    """The scale `irn downscale` stored in the LR PNG ``path``, None if there is none."""
    text = _read_metadata(path).get(KEY_SCALE)
    if not text:
        return None
    if text.strip() not in ("2", "4", "8"):
        raise CommandError(f"{path}: its {KEY_SCALE} text chunk is {text[:20]!r}, not 2, 4 or 8; "
                           "pass --scale or --checkpoint")  # fmt: skip
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
    from irnlib.model.inference import upscale_image

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
    from irnlib.data.datasets import IMAGE_SUFFIXES

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


def _plan(src: Path, dst: Path) -> list[tuple[Path, Path]]:
    """The (input, output) pairs of a command, after the output-path policy.

    The policy: an output never replaces an input (``irn downscale a.png a.png``, or ``OUT`` the
    input folder), two inputs never share an output (``x.png`` and ``x.jpg`` both giving
    ``x.png``), and temporary files left in the output folder by a killed run are removed.
    A refusal raises :class:`CommandError` before anything is written.
    """
    from irnlib.runtime.paths import remove_stale_temporaries

    jobs = _pairs(src, dst)
    if src.is_dir() and dst.exists() and _same(src, dst):
        raise CommandError(f"{dst}: OUT is the input folder, so the outputs would replace or mix with the "
                           "originals; choose another output folder")  # fmt: skip
    by_output: dict[Path, list[Path]] = {}
    for i, o in jobs:
        by_output.setdefault(o.resolve(), []).append(i)
        if _same(i, o):
            raise CommandError(f"{o}: OUT is the input file {i}, which would be replaced by its "
                               "result; choose another output name")  # fmt: skip
    clashes = [(o, ins) for o, ins in by_output.items() if len(ins) > 1]
    if clashes:
        lines = [f"{' and '.join(i.name for i in ins)} would be written to {o.name}" for o, ins in clashes]
        raise CommandError(f"{src}: {len(clashes)} output name(s) are shared, nothing was written:\n  "
                           + "\n  ".join(lines) + "\nrename the inputs so that their names differ before the suffix")  # fmt: skip
    for folder in {o.parent for _, o in jobs}:
        remove_stale_temporaries(folder)
    return jobs


def _rescale(args, up: bool) -> None:
    from tqdm.auto import tqdm

    from irnlib.runtime.device import net_device
    from irnlib.runtime.threads import tune_cpu_allocator

    jobs = _plan(Path(args.input), Path(args.output))
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
                shape = upscale_file(net, src, dst, ident, size=size, temperature=args.temperature, seed=args.seed,
                                     warn=lambda m: print(m, file=sys.stderr))  # fmt: skip
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


def _require_writable(folder: Path, option: str) -> None:
    """Refuse, before any work, a results folder that cannot be created or written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".irn-write-check-"):
            pass
    except OSError as err:
        raise CommandError(f"{option} {folder}: cannot write there ({err.strerror or err}); "
                           "choose a writable folder (or set IRN_RESULTS)") from None  # fmt: skip


# --------------------------------------------------------------------------------------
# the parser
# --------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="irn",
        description="IRN reproducibility kit (Invertible Image Rescaling, Xiao et al., ECCV 2020): "
        "run the notebook pipeline, train, evaluate, and rescale your own images.",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("reproduce", formatter_class=fmt, help="run the whole notebook pipeline (00 → 04) with papermill",
                       description="Execute notebooks 00 → 04 in order with one profile; executed copies go to "
                       "results/executed/, tables to results/tables/, figures to results/figures/.")  # fmt: skip
    p.add_argument("--profile", default="smoke", choices=list(PROFILES),
                   help="smoke: CPU, embedded photographs, minutes (default); paper: GPU, DIV2K, official checkpoints")  # fmt: skip
    p.add_argument("--results", metavar="DIR", help="results folder (default results/ or $IRN_RESULTS)")

    p = sub.add_parser("train", add_help=False, help="train IRN (see `irn train --help`)",
                       description="Train IRN; all arguments go to `python -m irnlib.train`.")  # fmt: skip
    p.add_argument("args", nargs=argparse.REMAINDER)

    p = sub.add_parser("evaluate", formatter_class=fmt, help="measure Table 1 rows (Bicubic & Bicubic and an IRN checkpoint)",
                       description="Measure the paper's Table 1 rows on the test sets present and write "
                       "results/tables/table1_x{s}.{csv,md} (+ per-image CSV), next to the paper's numbers.")  # fmt: skip
    p.add_argument("--scale", type=int, nargs="+", default=[2, 4], choices=[2, 4, 8], help="scales (default 2 4)")
    p.add_argument("--checkpoint", metavar="PATH", help="IRN checkpoint (one scale only; default: the profile's)")
    p.add_argument("--profile", default="paper", choices=list(PROFILES),
                   help="paper (default): data/pretrained/IRN_x{s}.pth on the paper's test sets; "
                   "smoke: the smoke model of notebook 01 on the embedded photographs")  # fmt: skip
    p.add_argument(
        "--datasets", nargs="+", metavar="NAME", help="test sets, e.g. Set5 Set14 BSD100 (default: the profile's)"
    )
    p.add_argument(
        "--draws",
        type=int,
        default=None,
        help="draws of z per image (default: the profile's; smoke 2, quick and paper 5 as the paper)",
    )
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, ...")
    p.add_argument("--out", metavar="DIR", help="tables folder (default results/tables)")

    for name, helptext in (("downscale", "IRN-downscale an image to a lossless PNG"),
                           ("upscale", "restore an IRN-downscaled PNG to full size")):  # fmt: skip
        p = sub.add_parser(name, formatter_class=fmt, help=helptext, description=helptext + (
            ". IN may be a folder: every image in it is processed into the folder OUT." + ("" if name == "downscale" else
            " The original size is read from the PNG written by `irn downscale` (or --size); the lost high "
            "frequencies are drawn as z ~ N(0, T²) with --seed, so the same seed gives the same image.")))  # fmt: skip
        p.add_argument("input", metavar="IN", help="image file (PNG, JPEG, ...) or folder")
        p.add_argument("output", metavar="OUT", help="output .png file, or folder when IN is a folder")
        p.add_argument("--scale", type=int, choices=[2, 4, 8], help="scale factor (checked against the checkpoint)")
        p.add_argument("--checkpoint", metavar="PATH", help="IRN checkpoint (default data/pretrained/IRN_x{scale}.pth)")
        p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, ...")
        if name == "upscale":
            p.add_argument("--seed", type=int, default=0, help="seed of the latent draw (default 0)")
            p.add_argument(
                "--temperature", type=float, default=1.0, help="standard deviation of z (default 1, the paper)"
            )
            p.add_argument("--size", metavar="HxW", help="crop to this size (default: the size stored by downscale)")
    return parser


def _apply_thread_policy() -> None:
    """Size torch's thread team for this machine and its load, once (``irnlib.runtime.threads``;
    ``OMP_NUM_THREADS`` or ``IRN_THREADS=<n>|auto`` override it)."""
    from irnlib.runtime.threads import apply_thread_policy

    try:
        apply_thread_policy()
    except ValueError as err:  # a malformed IRN_THREADS
        raise CommandError(str(err)) from None


def main(argv=None) -> int:
    """Run the command line; returns the exit status (0 success, 2 bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if argv[:1] == ["train"]:  # everything after `train` belongs to irnlib.train's own parser
        from irnlib import train

        try:
            _apply_thread_policy()
        except CommandError as err:
            print(f"irn: error: {err}", file=sys.stderr)
            return 2
        return train.command(argv[1:], prefix="irn: error")
    args = parser.parse_args(argv)
    try:
        _apply_thread_policy()
        if args.command == "reproduce":
            from irnlib.app.pipeline import PipelineError, reproduce
            from irnlib.runtime.paths import results_root

            _require_writable(results_root(args.results), "--results")
            try:
                reproduce(args.profile, results=args.results)
            except PipelineError as err:
                print(f"irn: {err}", file=sys.stderr)
                return 1
        elif args.command == "evaluate":
            from irnlib.experiments.tables import make_table1

            if args.checkpoint and len(args.scale) > 1:
                raise CommandError("--checkpoint is for one scale: give --scale too, e.g. --scale 4")
            _device(args.device)
            for s in args.scale:
                checkpoint = args.checkpoint
                if checkpoint and not Path(checkpoint).is_file():
                    raise CommandError(f"checkpoint {checkpoint} not found")
                try:
                    table = make_table1(s, profile=args.profile, datasets=args.datasets, checkpoint=checkpoint,
                                        draws=args.draws, device=args.device, out_dir=args.out)  # fmt: skip
                except ValueError as err:  # e.g. a checkpoint of another scale, an unknown dataset
                    raise CommandError(str(err)) from err
                print(table.markdown)
                print(f"wrote {table.md_path}, {table.csv_path}, {table.per_image_path}")
        elif args.command in ("downscale", "upscale"):
            _rescale(args, up=args.command == "upscale")
    except CommandError as err:
        print(f"irn: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the error boundary: a file the command could not read or write
        where = err.filename2 or err.filename
        print(f"irn: error: {f'{where}: ' if where else ''}{err.strerror or err}", file=sys.stderr)
        return 2
    return 0
