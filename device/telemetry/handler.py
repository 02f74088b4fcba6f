"""A logging.Handler that records structured log events in the telemetry store.

The event name is `extra={"event": ...}` when given, else the formatted message; structured
fields come from `extra={"fields": {...}}` - the same shape the JSON log file carries.
"""

from __future__ import annotations

import logging

from device.telemetry.recorder import Recorder

_MAX_TEXT = 4000
_FORMATTER = logging.Formatter()
# Attributes every LogRecord has; anything else came from `extra=` and is a structured field.
_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class TelemetryLogHandler(logging.Handler):
    def __init__(self, recorder: Recorder, level: int | str = logging.INFO):
        super().__init__(level)
        self.recorder = recorder

    def emit(self, record: logging.LogRecord) -> None:
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
