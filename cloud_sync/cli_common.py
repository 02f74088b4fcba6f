"""What edgelens-sync and edgelens-fleet share: config loading, logging, stop on signals."""

from __future__ import annotations

import json
import logging
import signal
import threading
from typing import Any

from cloud_sync.errors import SyncError
from device.config import Config, load

NOISY = ("paho",)


def load_config(path: str | None) -> Config:
    return load(path)


def setup_logging(cfg: Config, verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else getattr(logging, cfg.logging.level)
    logging.basicConfig(level=level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (main thread only)."""
    stop = threading.Event()

    def handler(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def dump_json(value: Any, **kwargs: Any) -> str:
    """JSON for output: NaN and Infinity are not JSON, so they are refused (a named error, not
    a traceback or an unparseable document)."""
    try:
        return json.dumps(value, allow_nan=False, **kwargs)
    except ValueError as exc:
        raise SyncError(f"cannot write JSON: {exc}") from exc
