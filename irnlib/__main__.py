"""``python -m irnlib <command>``: see :mod:`irnlib.cli` (also installed as ``irn``)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
