"""Command line of the kit: ``python -m irnlib <command>`` (also installed as ``irn``).

Commands
--------
reproduce   the main job: notebooks 00 → 04 executed in order by papermill
train       train IRN (the paper's objective); same as ``python -m irnlib.train``
evaluate    measure the paper's Table 1 rows for a checkpoint (as notebook 02 does)
downscale   IRN-downscale an image (or a folder of images) to a lossless PNG
upscale     restore an IRN-downscaled PNG (or a folder of them) to full size

Rescaling files is :mod:`irnlib.app.rescale`. Expected failures (bad input, an output that
cannot be written, a device that is not there) end as one line
``irn: error: ...`` and exit status 2 (see ``tests/BAD_INPUTS.md``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from irnlib import train
from irnlib.app.pipeline import PipelineError, reproduce
from irnlib.app.rescale import (
    CommandError,
    command_device,
    rescale,
)
from irnlib.app.values import float_in_range, int_in_range
from irnlib.data.folders import resolve_dataset_names
from irnlib.experiments.table1_job import make_table1
from irnlib.protocol.profiles import PROFILES
from irnlib.runtime.paths import results_root
from irnlib.runtime.threads import apply_thread_policy

__all__ = ["main"]  # rescaling files: irnlib.app.rescale


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


def _require_writable(folder: Path, option: str) -> None:
    """Refuse, before any work, a results folder that cannot be created or written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".irn-write-check-"):
            pass
    except OSError as err:
        raise CommandError(
            f"{option} {folder}: cannot write there ({err.strerror or err}); "
            "choose a writable folder (or set IRN_RESULTS)"
        ) from None


# --------------------------------------------------------------------------------------
# the parser
# --------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="irn",
        description="IRN reproducibility kit (Invertible Image Rescaling, Xiao et al., ECCV 2020): "
        "run the notebook pipeline, train, evaluate, and rescale your own images.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_reproduce(sub)
    sub.add_parser(
        "train",
        add_help=False,
        help="train IRN (see `irn train --help`)",
        description="Train IRN; all arguments go to `python -m irnlib.train`.",
    ).add_argument("args", nargs=argparse.REMAINDER)
    _add_evaluate(sub)
    _add_rescale(sub, "downscale", "IRN-downscale an image to a lossless PNG")
    _add_rescale(sub, "upscale", "restore an IRN-downscaled PNG to full size")
    return parser


MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a 64-bit seed
MAX_DRAWS = 100  # the paper draws 5; more is only slower
MAX_TEMPERATURE = 10.0  # z beyond ten standard deviations is far outside anything IRN was trained on


def _checked(check, text: str, low, high):
    """Apply :mod:`irnlib.app.values`'s ``check``; argparse prints its message as a usage error."""
    try:
        return check(text, low, high)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text}: {err}") from None


def seed_value(text: str) -> int:
    """``--seed``: an integer in 0..MAX_SEED."""
    return _checked(int_in_range, text, 0, MAX_SEED)


def temperature_value(text: str) -> float:
    """``--temperature``: a finite number in 0..MAX_TEMPERATURE (nan and inf wrote black images)."""
    return _checked(float_in_range, text, 0.0, MAX_TEMPERATURE)


def draws_value(text: str) -> int:
    """``--draws``: how many draws of z per image, 1..MAX_DRAWS."""
    return _checked(int_in_range, text, 1, MAX_DRAWS)


def _add_reproduce(sub) -> None:
    p = sub.add_parser(
        "reproduce",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="run the whole notebook pipeline (00 → 04) with papermill",
        description="Execute notebooks 00 → 04 in order with one profile; executed copies go to "
        "results/executed/, tables to results/tables/, figures to results/figures/.",
    )
    p.add_argument(
        "--profile",
        default="smoke",
        choices=list(PROFILES),
        help="smoke: CPU, embedded photographs, minutes (default); paper: GPU, DIV2K, official checkpoints",
    )
    p.add_argument("--results", metavar="DIR", help="results folder (default results/ or $IRN_RESULTS)")


def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="measure Table 1 rows (Bicubic & Bicubic and an IRN checkpoint)",
        description="Measure the paper's Table 1 rows on the test sets present and write "
        "results/tables/table1_x{s}.{csv,md} (+ per-image CSV), next to the paper's numbers.",
    )
    p.add_argument("--scale", type=int, nargs="+", default=[2, 4], choices=[2, 4, 8], help="scales (default 2 4)")
    p.add_argument("--checkpoint", metavar="PATH", help="IRN checkpoint (one scale only; default: the profile's)")
    p.add_argument(
        "--profile",
        default="paper",
        choices=list(PROFILES),
        help="paper (default): data/pretrained/IRN_x{s}.pth on the paper's test sets; "
        "smoke: the smoke model of notebook 01 on the embedded photographs",
    )
    p.add_argument(
        "--datasets", nargs="+", metavar="NAME", help="test sets, e.g. Set5 Set14 BSD100 (default: the profile's)"
    )
    p.add_argument(
        "--draws",
        type=draws_value,
        default=None,
        help="draws of z per image (default: the profile's; smoke 2, quick and paper 5 as the paper)",
    )
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, ...")
    p.add_argument("--out", metavar="DIR", help="tables folder (default results/tables)")


def _add_rescale(sub, name: str, helptext: str) -> None:
    description = helptext + ". IN may be a folder: every image in it is processed into the folder OUT."
    if name == "upscale":
        description += (
            " The original size is read from the PNG written by `irn downscale` (or --size); "
            "the lost high frequencies are drawn as z ~ N(0, T²) with --seed, so the same seed gives "
            "the same image."
        )
    p = sub.add_parser(
        name, formatter_class=argparse.RawDescriptionHelpFormatter, help=helptext, description=description
    )
    p.add_argument("input", metavar="IN", help="image file (PNG, JPEG, ...) or folder")
    p.add_argument("output", metavar="OUT", help="output .png file, or folder when IN is a folder")
    p.add_argument("--scale", type=int, choices=[2, 4, 8], help="scale factor (checked against the checkpoint)")
    p.add_argument("--checkpoint", metavar="PATH", help="IRN checkpoint (default data/pretrained/IRN_x{scale}.pth)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, ...")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs that irn did not write")
    if name == "upscale":
        p.add_argument("--seed", type=seed_value, default=0, help=f"seed of the latent draw, 0..{MAX_SEED} (default 0)")
        p.add_argument(
            "--temperature",
            type=temperature_value,
            default=1.0,
            help=f"standard deviation of z, 0..{MAX_TEMPERATURE:g} (default 1, the paper)",
        )
        p.add_argument("--size", metavar="HxW", help="crop to this size (default: the size stored by downscale)")


def _apply_thread_policy() -> None:
    """Size torch's thread team for this machine and its load, once (``irnlib.runtime.threads``;
    ``OMP_NUM_THREADS`` or ``IRN_THREADS=<n>|auto`` override it)."""

    try:
        apply_thread_policy()
    except ValueError as err:  # a malformed IRN_THREADS
        raise CommandError(str(err)) from None


def main(argv=None) -> int:
    """Run the command line; returns the exit status (0 success, 2 bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if argv[:1] == ["train"]:  # everything after `train` belongs to irnlib.train's own parser
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
            _require_writable(results_root(args.results), "--results")
            try:
                reproduce(args.profile, results=args.results)
            except PipelineError as err:
                print(f"irn: {err}", file=sys.stderr)
                return 1
        elif args.command == "evaluate":
            if args.checkpoint and len(args.scale) > 1:
                raise CommandError("--checkpoint is for one scale: give --scale too, e.g. --scale 4")
            command_device(args.device)
            try:  # a name that is neither registered nor a folder of the data root stops here
                datasets = resolve_dataset_names(args.datasets) if args.datasets else None
            except ValueError as err:
                raise CommandError(f"--datasets: {err}") from None
            for s in args.scale:
                checkpoint = args.checkpoint
                if checkpoint and not Path(checkpoint).is_file():
                    raise CommandError(f"checkpoint {checkpoint} not found")
                try:
                    table = make_table1(
                        s,
                        profile=args.profile,
                        datasets=datasets,
                        checkpoint=checkpoint,
                        draws=args.draws,
                        device=args.device,
                        out_dir=args.out,
                    )
                except ValueError as err:  # e.g. a checkpoint of another scale, an unknown dataset
                    raise CommandError(str(err)) from err
                print(table.markdown)
                print(f"wrote {table.md_path}, {table.csv_path}, {table.per_image_path}")
        elif args.command in ("downscale", "upscale"):
            rescale(args, up=args.command == "upscale")
    except CommandError as err:
        print(f"irn: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the error boundary: a file the command could not read or write
        where = err.filename2 or err.filename
        print(f"irn: error: {f'{where}: ' if where else ''}{err.strerror or err}", file=sys.stderr)
        return 2
    return 0
