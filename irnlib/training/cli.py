"""The training command line: ``python -m irnlib.train`` (also under ``torchrun``) and ``irn train``.

Running it::

    python -m irnlib.train --profile smoke                       # a few minutes on a CPU
    python -m irnlib.train --profile paper scale=2 device=cuda   # the paper's run
    torchrun --nproc_per_node=4 -m irnlib.train --profile paper  # DDP, same code
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import torch.distributed as dist

from irnlib.protocol import profiles
from irnlib.training.config import TrainConfig, make_config, parse_overrides
from irnlib.training.errors import SettingsError, TrainingError
from irnlib.training.loop import train

__all__ = ["main", "command"]


def _parser() -> argparse.ArgumentParser:
    """The arguments of ``python -m irnlib.train``."""
    parser = argparse.ArgumentParser(
        prog="python -m irnlib.train",
        description="Train IRN (the paper's objective). Any TrainConfig field can be set as field=value.",
    )
    parser.add_argument("--profile", default="smoke", choices=sorted(profiles.PROFILES))
    parser.add_argument("--fresh", action="store_true", help="start afresh instead of resuming the run")
    parser.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    parser.add_argument("overrides", nargs="*", metavar="field=value", help="e.g. scale=2 iterations=1000 device=cuda")
    return parser


def main(argv=None) -> Path:
    """Command line: ``python -m irnlib.train [--profile P] [--fresh] [field=value ...]``.

    Also the entry point under ``torchrun --nproc_per_node=N -m irnlib.train ...``. A bad setting
    exits through argparse (status 2, with the usage line); :func:`command` prints it as one line.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = make_config(args.profile, **parse_overrides(args.overrides))
    except SettingsError as err:
        parser.error(str(err))
    return _run(args, config)


def _run(args: argparse.Namespace, config: TrainConfig) -> Path:
    """Train as ``config`` says (or print it, with ``--print-config``); returns the run folder."""
    if args.print_config:
        print(json.dumps(dataclasses.asdict(config), indent=2))
        return config.run_dir
    try:
        run_dir = train(config, resume=not args.fresh)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run folder: {run_dir}")
    return run_dir


def command(argv=None, prefix: str = "error") -> int:
    """:func:`main` inside the training error boundary; returns the exit status.

    An expected failure (:class:`TrainingError`: a setting outside its range, an unknown dataset,
    an unusable ``init_from``, an unreadable ``last.pt``, changed settings on resume, a missing
    device, a malformed ``IRN_THREADS``, a busy or unwritable run folder, a full disk, divergence)
    is printed as one line ``<prefix>: <message>`` on stderr, without a traceback.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``).
    prefix : str
        ``"error"`` for ``python -m irnlib.train``, ``"irn: error"`` for ``irn train``.

    Returns
    -------
    int
        0 on success, else the error's :attr:`TrainingError.exit_status` (2, or 3 for divergence).
        An unknown option exits through argparse (status 2).
    """
    args = _parser().parse_args(argv)
    try:
        _run(args, make_config(args.profile, **parse_overrides(args.overrides)))
    except TrainingError as err:
        print(f"{prefix}: {err}", file=sys.stderr)
        return err.exit_status
    return 0
