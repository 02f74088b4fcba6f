"""`python -m device` and the `edgelens` command: Ctrl-C while the modules load ends quietly."""

import sys


def run() -> int:
    try:
        from device.cli import main
        return main()        # the commands' modules load while the parser is built
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(run())
