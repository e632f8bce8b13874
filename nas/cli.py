"""What every argparse command shares: how it ends.

``python -m nas.cost resnet50 | head -3`` closes the pipe while the table is still being
printed; the command then ends quietly with status 0, as Unix tools do, instead of a
``BrokenPipeError`` traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


def run(main: Callable[[], int | None]) -> int:
    """Run an argparse ``main`` and return its exit status; a reader that closed standard
    output early is not an error."""
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at /dev/null so that flush cannot
        # raise a second time (the recipe of the `signal` module's documentation).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return int(status or 0)


__all__ = ["run"]
