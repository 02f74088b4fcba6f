"""Logging: structured JSON lines to a rotating file, readable text to the console."""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import time

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def record_fields(record: logging.LogRecord) -> dict:
    """A log record's structured fields: what the call passed as `extra=`."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


def fields_text(record: logging.LogRecord) -> str:
    """The fields as ` k=v` pairs for a console line ("" without fields)."""
    return "".join(f" {k}={v}" for k, v in record_fields(record).items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, severity, event, logger, fields."""

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record)
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                  + f".{int(record.msecs):03d}Z",
            "severity": record.levelname,
            "event": record.getMessage(),
            "logger": record.name,
            "fields": fields,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """`level message k=v ...`; with `timestamps` (long-running operator processes) the time
    and the logger's name first."""

    def __init__(self, timestamps: bool = False):
        super().__init__()
        self.timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname.lower():7s} {record.getMessage()}{fields_text(record)}"
        if self.timestamps:
            line = f"{self.formatTime(record)} {record.name}: {line}"
        return line


def setup(level: str = "INFO", file: str = "", max_bytes: int = 10_000_000,
          backups: int = 3, timestamps: bool = False) -> None:
    """Console (and JSON file) logging. Called again (SIGHUP reload), it replaces only the
    handlers it installed itself: others (the telemetry log handler) stay. A log file that
    cannot be opened is reported on the console and the program goes on without it."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_edgelens_setup", False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    console = logging.StreamHandler()
    console.setFormatter(ConsoleFormatter(timestamps))
    console._edgelens_setup = True
    root.addHandler(console)
    if file:
        try:
            rotating = logging.handlers.RotatingFileHandler(
                file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        except OSError as exc:
            logging.getLogger(__name__).error(
                "log file unavailable; logging to the console only",
                extra={"file": file, "error": f"{type(exc).__name__}: {exc}"})
        else:
            rotating.setFormatter(JsonFormatter())
            rotating._edgelens_setup = True
            root.addHandler(rotating)
    for noisy in ("PIL", "matplotlib", "paho", "urllib3", "h5py", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # OpenCV prints its own lines (an unreadable file, a missing camera) that we report in one
    # clear line: silent, unless DEBUG is asked for. Only where OpenCV is loaded already: the
    # sync agent never loads it.
    cv2 = sys.modules.get("cv2")
    try:
        if cv2 is not None:
            cv2.setLogLevel(4 if level == "DEBUG" else 0)   # 0 silent, 4 info
    except (ImportError, AttributeError):
        pass
