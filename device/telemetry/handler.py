"""A logging.Handler that records structured log events in the telemetry store.

The event name is `extra={"event": ...}` when given, else the formatted message; structured
fields come from `extra={"fields": {...}}` - the same shape the JSON log file carries.

Errors of the telemetry path never feed the telemetry path: records logged on the telemetry
writer thread, by `device.telemetry.*` loggers, or while this handler is already recording
(re-entry) are left to the other handlers (console, JSON log file). The recorder stores its own
notices (overflow, eviction, recovery) directly.
"""

from __future__ import annotations

import logging
import threading

from device.telemetry.recorder import Recorder
from device.telemetry.recorder_writer import is_telemetry_thread

_MAX_TEXT = 4000
_FORMATTER = logging.Formatter()
# Attributes every LogRecord has; anything else came from `extra=` and is a structured field.
_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
_TELEMETRY_LOGGERS = "device.telemetry"


def from_telemetry(record: logging.LogRecord) -> bool:
    """A log record the telemetry path produced about itself."""
    name = record.name
    return (is_telemetry_thread() or name == _TELEMETRY_LOGGERS
            or name.startswith(_TELEMETRY_LOGGERS + "."))


class TelemetryLogHandler(logging.Handler):
    def __init__(self, recorder: Recorder, level: int | str = logging.INFO):
        super().__init__(level)
        self.recorder = recorder
        self._inside = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if from_telemetry(record) or getattr(self._inside, "active", False):
            return
        self._inside.active = True
        try:
            message = record.getMessage()
            fields = {k: v for k, v in vars(record).items()
                      if k not in _STANDARD and k not in ("fields", "event")}
            fields.update(getattr(record, "fields", None) or {})
            event = getattr(record, "event", None) or message
            if event != message:
                fields.setdefault("message", message[:_MAX_TEXT])
            if record.exc_info:
                text = (self.formatter or _FORMATTER).formatException(record.exc_info)
                fields["exception"] = text[-_MAX_TEXT:]
            self.recorder.log_event(record.levelname, str(event)[:_MAX_TEXT], fields,
                                    logger=record.name, wall_ns=int(record.created * 1e9))
        except Exception:  # a logging handler must never raise into the caller
            self.handleError(record)
        finally:
            self._inside.active = False
