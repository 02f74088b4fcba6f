"""`python -m device` and the `edgelens` command: Ctrl-C while the modules load ends quietly."""

import os
import signal
import sys


def single_threaded_blas() -> None:
    """One OpenBLAS thread, set before numpy loads: the pipeline does no large linear algebra,
    and numpy's OpenBLAS keeps an extra thread spinning after each small call (3x3 homography
    algebra every frame), which cost ~20 % of a core on a steady view (BENCHMARKS.md, issue
    15). An OPENBLAS_NUM_THREADS already set wins."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _quit_while_loading(signum, frame) -> None:
    # an interrupt inside a C extension's import (numpy) surfaces as an ImportError with a
    # traceback, not as KeyboardInterrupt: leave at once instead, nothing has started yet
    os._exit(130)


def run() -> int:
    signal.signal(signal.SIGINT, _quit_while_loading)   # device.cli restores the default
    single_threaded_blas()
    try:
        # deferred: the SIGINT handler above must be in place before the modules load
        from device.cli import main
        return main()        # the commands' modules load while the parser is built
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(run())
