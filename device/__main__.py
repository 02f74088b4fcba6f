"""`python -m device` and the `edgelens` command: Ctrl-C while the modules load ends quietly."""

import sys


def run() -> int:
    try:
        from device.cli import main
    except KeyboardInterrupt:
        return 130
    return main()


if __name__ == "__main__":
    sys.exit(run())
