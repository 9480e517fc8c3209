"""Command line: ``python -m irnlib <command>`` (also installed as ``irn``)."""

from __future__ import annotations

import argparse


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="irn", description="IRN reproducibility kit")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reproduce", help="run the whole notebook pipeline with papermill")
    rep.add_argument("--profile", default="smoke", choices=["smoke", "paper"])
    args = parser.parse_args(argv)
    if args.command == "reproduce":
        from .pipeline import reproduce

        reproduce(args.profile)


if __name__ == "__main__":
    main()
