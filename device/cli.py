"""`edgelens`: the glasses' command. Subcommands live in `device/commands/`, one module each,
each with `register(subparsers)` that adds its parser and sets `func=run(args, config)`."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys
import threading

import device.commands
from device import __version__, config, logs
from device.errors import EdgelensError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgelens",
        description="Sign translation for AR glasses: read, translate and overlay signs "
                    "on-device (int8 TFLite), offline-first.")
    parser.add_argument("--version", action="version", version=f"edgelens {__version__}")
    parser.add_argument("--config", metavar="FILE",
                        help="TOML config file (default: built-in defaults; see "
                             "'edgelens config show')")
    parser.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="override [logging] level")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(device.commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):  # shared helpers, not commands
            continue
        module = importlib.import_module(f"device.commands.{info.name}")
        module.register(subparsers)
    _add_global_options(subparsers)
    return parser


def _add_global_options(subparsers) -> None:
    """Let --config / --log-level also follow the subcommand (`edgelens run --config F`)."""
    for sub in subparsers.choices.values():
        sub.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                         help="TOML config file")
        sub.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                         default=argparse.SUPPRESS, help="override [logging] level")
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                _add_global_options(action)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # the modules are loaded: Ctrl-C is a KeyboardInterrupt again (run() handles it)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        cfg = config.load(args.config)
    except EdgelensError as exc:
        print(f"edgelens: {exc}", file=sys.stderr)
        return 2
    logs.setup(level=args.log_level or cfg.logging.level, file=cfg.logging.file,
               max_bytes=cfg.logging.max_bytes, backups=cfg.logging.backups)
    try:
        return int(args.func(args, cfg) or 0)
    except EdgelensError as exc:
        print(f"edgelens: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:            # `edgelens config show | head`: the reader left
        _silence_stdout()
        return 0


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush does
    not raise a second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
