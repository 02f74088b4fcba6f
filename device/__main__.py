"""`python -m device` and the `edgelens` command: Ctrl-C while the modules load ends quietly."""

import os
import signal
import sys


def _quit_while_loading(signum, frame) -> None:
    # an interrupt inside a C extension's import (numpy) surfaces as an ImportError with a
    # traceback, not as KeyboardInterrupt: leave at once instead, nothing has started yet
    os._exit(130)


def run() -> int:
    signal.signal(signal.SIGINT, _quit_while_loading)   # device.cli restores the default
    try:
        # deferred: the SIGINT handler above must be in place before the modules load
        from device.cli import main
        return main()        # the commands' modules load while the parser is built
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(run())
