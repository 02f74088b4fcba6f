"""The operating point a config was calibrated for: this device's identity, the check that
`edgelens run` makes at start (calibrated on another device or with other model versions?),
and writing a chosen point into a TOML config file without losing the user's other content.

`edgelens calibrate` measures and chooses (device/benchmarks/calibrate.py); this module only
knows the [calibration] block and how to put keys into a file.
"""

from __future__ import annotations

import logging
import os
import platform
import re
from pathlib import Path
from typing import Any

from device import config as config_module
from device.config import Config, _toml_value
from device.errors import ConfigError
from device.modelstore.install import write_atomic

log = logging.getLogger(__name__)


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's name from /proc/cpuinfo ("model name" on x86; on ARM the "Model"/"Hardware"
    line or the implementer/part numbers), else platform.processor()."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    for key in ("model name", "model", "hardware", "cpu model"):
        if fields.get(key):
            return fields[key]
    if fields.get("cpu part"):
        return f"implementer {fields.get('cpu implementer', '?')} part {fields['cpu part']}"
    return platform.processor() or "unknown"


def device_identity() -> dict[str, Any]:
    return {"machine": platform.machine(), "cpu_model": cpu_model(),
            "cores": os.cpu_count() or 0}


def model_list(versions: dict[str, str]) -> list[str]:
    """{"detector": "2.0.0", ...} → ["detector 2.0.0", ...] (sorted: the [calibration] form)."""
    return sorted(f"{stage} {version}" for stage, version in versions.items())


def mismatch(cfg: Config, versions: dict[str, str], identity: dict | None = None) -> list[str]:
    """Why the config's calibration does not describe this run (empty: it does, or the config
    was never calibrated). `versions`: stage → model version running now."""
    c = cfg.calibration
    if not c.date:
        return []
    here, recorded = identity or device_identity(), c.as_dict()
    reasons = [f"{key} {recorded[key]!r} here {here[key]!r}"
               for key in ("machine", "cpu_model", "cores") if recorded[key] != here[key]]
    calibrated = dict(entry.split(" ", 1) for entry in c.models if " " in entry)
    for stage, version in sorted(versions.items()):
        if stage in calibrated and calibrated[stage] != version:
            reasons.append(f"{stage} {calibrated[stage]} here {version}")
    return reasons


def warn_if_calibrated_elsewhere(cfg: Config, versions: dict[str, str]) -> list[str]:
    """Log one warning when the config's operating point was measured on another device or
    with other model versions (`edgelens run` at start); returns the reasons."""
    reasons = mismatch(cfg, versions)
    if reasons:
        log.warning("config was calibrated on another device or with other models; run "
                    "'edgelens calibrate --write' here", extra={
                        "config": cfg.origin, "calibrated": cfg.calibration.date,
                        "differences": reasons})
    return reasons


# --- writing keys into a TOML file --------------------------------------------------------

_HEADER = re.compile(r"^\s*\[([A-Za-z0-9_.-]+)\]\s*(#.*)?$")


def _key_pattern(key: str) -> re.Pattern:
    return re.compile(rf"^\s*{re.escape(key)}\s*=")


def set_keys(text: str, section: str, values: dict[str, Any], replace: bool = False) -> str:
    """`text` with `values` set in [section]: an existing `key = ...` line is replaced, a
    missing key is added after the section's last line, a missing section is appended.
    `replace`: the section's body becomes exactly `values` (its comments and other keys go).
    Only single-line values are replaced (what this module writes)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines)
                  if (m := _HEADER.match(line)) and m.group(1) == section), None)
    rendered = [f"{key} = {_toml_value(value)}" for key, value in values.items()]
    if start is None:
        body = ([""] if lines and lines[-1].strip() else []) + [f"[{section}]"] + rendered
        return "\n".join(lines + body) + "\n"
    end = next((i for i in range(start + 1, len(lines)) if _HEADER.match(lines[i])),
               len(lines))
    if replace:
        tail = [""] if end < len(lines) else []
        return "\n".join(lines[:start + 1] + rendered + tail + lines[end:]) + "\n"
    body = lines[start + 1:end]
    for key, line in zip(values, rendered):
        at = next((i for i, old in enumerate(body) if _key_pattern(key).match(old)), None)
        if at is None:
            last = max((i for i, old in enumerate(body) if old.strip()), default=-1)
            body.insert(last + 1, line)
        else:
            body[at] = line
    return "\n".join(lines[:start + 1] + body + lines[end:]) + "\n"


def write_operating_point(path: str | Path, settings: dict[str, dict[str, Any]],
                          calibration: dict[str, Any]) -> None:
    """Put the chosen settings and the [calibration] block into the config file at `path`
    (created when missing), keeping everything else in it. The result is validated before
    it replaces the file (atomically)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    config_module.parse_text(text, source=str(path))          # refuse to edit a broken file
    for section, values in settings.items():
        if values:
            text = set_keys(text, section, values)
    text = set_keys(text, "calibration", calibration, replace=True)
    config_module.parse_text(text, source=str(path))
    write_atomic(path, text.encode("utf-8"))
