"""``python -m irnlib <command>``: see :mod:`irnlib.app.cli` (also installed as ``irn``)."""

import sys

from irnlib.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
