"""On-device telemetry: a bounded SQLite store fed through a bounded queue by one writer thread.

    recorder = Recorder.open(cfg.telemetry)          # opens the store, starts the writer
    recorder.count("frames_captured"); recorder.observe("latency_ms.recognize", 12.5)
    pid = recorder.prediction(Prediction(text=..., confidence=..., models={...}))
    recorder.feedback(pid, "wrong"); recorder.audit("model_activated", {...})
    logging.getLogger().addHandler(TelemetryLogHandler(recorder))
    recorder.close()                                  # flushes

The store (`TelemetryStore`) is also what the sync agent opens to read unsent records; in one
process every opener of the file shares one connection. Its methods raise `TelemetryError`
kinds only: `StoreCorruptError` (quarantined by the pipeline), `StoreUnavailableError` and its
kinds `StoreFullError`, `StoreAccessError`, `StoreBusyError` (healthy, retry later).
"""

from device.errors import StoreCorruptError, TelemetryError
from device.telemetry.handler import TelemetryLogHandler
from device.telemetry.recorder import Recorder
from device.telemetry.recorder_front import RecorderStats
from device.telemetry.records import (EVICTION_TIERS, KINDS, Clock, ModelRef, Prediction, Record,
                                      StoredRecord)
from device.telemetry.store import (StoreAccessError, StoreBusyError, StoreFullError,
                                    StoreUnavailableError, TelemetryStore)

__all__ = ["Clock", "EVICTION_TIERS", "KINDS", "ModelRef", "Prediction", "Record",
           "Recorder", "RecorderStats", "StoreAccessError", "StoreBusyError",
           "StoreCorruptError", "StoreFullError", "StoreUnavailableError", "StoredRecord",
           "TelemetryError", "TelemetryLogHandler", "TelemetryStore"]
