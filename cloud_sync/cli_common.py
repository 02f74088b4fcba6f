"""What edgelens-sync and edgelens-fleet share: config loading, logging, stop on signals."""

from __future__ import annotations

import argparse

import json
import os
import signal
import sys
import threading
from typing import Any

from cloud_sync.errors import SyncError
from device.config import Config, load
from device import logs

def load_config(path: str | None) -> Config:
    return load(path)


def setup_logging(cfg: Config, verbose: bool = False, level_name: str | None = None) -> None:
    """edgelens-fleet's logging, through the product's one setup (device.logs.setup) at
    [logging] level; `level_name` (--log-level) overrides it, -v/--verbose means DEBUG. The
    console lines carry the time and the logger (ingest, serve and the dashboard run for days
    in a terminal or a unit), and no file is written: several fleet processes share one
    config, and one rotating file cannot be shared by processes."""
    level = "DEBUG" if verbose else level_name or cfg.logging.level
    logs.setup(level, timestamps=True)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (main thread only)."""
    stop = threading.Event()

    def handler(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def silence_stdout() -> None:
    """After a broken pipe (`edgelens-fleet rollout status | head -1`), point stdout at
    /dev/null so the interpreter's final flush does not raise a second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def dump_json(value: Any, **kwargs: Any) -> str:
    """JSON for output: NaN and Infinity are not JSON, so they are refused (a named error, not
    a traceback or an unparseable document)."""
    try:
        return json.dumps(value, allow_nan=False, **kwargs)
    except ValueError as exc:
        raise SyncError(f"cannot write JSON: {exc}") from exc


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def add_global_options(subparsers: argparse._SubParsersAction) -> None:
    """Let --config / --log-level also follow the subcommand (`edgelens-fleet push --config
    F`), as `edgelens` does. A subcommand's own --config keeps its help text; its default is
    SUPPRESS, so that it never hides a --config given before the subcommand."""
    for sub in subparsers.choices.values():
        options = {o: a for a in sub._actions for o in a.option_strings}
        for flag, kwargs in (("--config", {"metavar": "FILE", "help": "TOML config file"}),
                             ("--log-level", {"choices": LOG_LEVELS,
                                              "help": "override [logging] level"})):
            if flag in options:
                options[flag].default = argparse.SUPPRESS
            else:
                sub.add_argument(flag, default=argparse.SUPPRESS, **kwargs)
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                add_global_options(action)
