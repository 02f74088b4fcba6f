"""Every config key of edgelens, with its default and what it means, grouped by subsystem:

  live          runtime, models, source, display, pipeline, recognition, detector, recognizer
  language      translator, audio
  service       logging, telemetry, calibration
  connectivity  mqtt, sync, updates, fleet

`SCHEMA` is the one schema (in this order `edgelens config show` prints it); `device/config.py`
builds and checks a config against it, and `device/config_types.py` is generated from it.
`RENAMED` lists keys that moved: an old name is still accepted, with a warning, for one release.
"""

from device.config_schema.connectivity import FLEET, MQTT, SYNC, UPDATES
from device.config_schema.keys import Key, Section
from device.config_schema.language import AUDIO, TRANSLATOR
from device.config_schema.live import (DETECTOR, DISPLAY, MODELS, PIPELINE, RECOGNITION,
                                       RECOGNIZER, RUNTIME, SOURCE)
from device.config_schema.service import CALIBRATION, LOGGING, TELEMETRY

SCHEMA: tuple[Section, ...] = (
    RUNTIME, MODELS, SOURCE, DISPLAY, PIPELINE, RECOGNITION, DETECTOR, RECOGNIZER,
    TRANSLATOR, AUDIO,
    LOGGING, TELEMETRY, CALIBRATION,
    MQTT, SYNC, UPDATES, FLEET,
)

RENAMED: dict[tuple[str, str], tuple[str, str]] = {
    ("pipeline", "min_confidence"): ("recognizer", "min_confidence"),
    ("translator", "min_ocr_confidence"): ("recognizer", "min_confidence"),
    ("pipeline", "translate_budget_ms"): ("translator", "budget_ms"),
}
"""(old section, old key) → (section, key) it moved to (accepted until 3.0, with a warning)."""

__all__ = ["SCHEMA", "RENAMED", "Key", "Section", "AUDIO", "CALIBRATION", "DETECTOR", "DISPLAY",
           "FLEET", "LOGGING", "MODELS", "MQTT", "PIPELINE", "RECOGNITION", "RECOGNIZER",
           "RUNTIME", "SOURCE", "SYNC", "TELEMETRY", "TRANSLATOR", "UPDATES"]
