"""One TOML config for the whole product: schema with a description on every key, defaults
built in, validated once with messages that name the key, what was expected and what was given.

Keys and sections are declared in `device/config_schema/`; the typed sections and `Config`
are generated from it into `device/config_types.py`; this module is the machinery (build,
validate, load, write).
"""

from __future__ import annotations

import math
import re
import tomllib
import warnings
from pathlib import Path
from typing import Any, Iterable

from device.config_schema import RENAMED, SCHEMA, Key, Section
from device.config_types import SECTION_TYPES, Config
from device.errors import ConfigError


_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
               list: "a list"}


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _check(section: str, key: Key, value: Any) -> Any:
    where = f"[{section}] {key.name}"
    expected = _TYPE_NAMES.get(key.type, key.type.__name__)
    if key.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if key.type is not bool and isinstance(value, bool) or not isinstance(value, key.type):
        raise ConfigError(f"{where}: expected {expected}, got {_describe(value)}")
    if key.type is list and key.item_type is not None:
        for item in value:
            if not isinstance(item, key.item_type):
                raise ConfigError(f"{where}: expected a list of "
                                  f"{_TYPE_NAMES.get(key.item_type, key.item_type.__name__)}, "
                                  f"got an item {_describe(item)}")
    if key.type is float and not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {_describe(value)}")
    if key.pattern is not None and re.fullmatch(key.pattern, value) is None:
        raise ConfigError(f"{where}: {_describe(value)} is not allowed here (it must match "
                          f"{key.pattern})")
    if key.choices is not None and value not in key.choices:
        options = ", ".join(repr(c) for c in key.choices)
        raise ConfigError(f"{where}: expected one of {options}, got {_describe(value)}")
    if key.min is not None and value < key.min:
        raise ConfigError(f"{where}: expected a value >= {key.min}, got {_describe(value)}")
    if key.max is not None and value > key.max:
        raise ConfigError(f"{where}: expected a value <= {key.max}, got {_describe(value)}")
    return value


def _renamed(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """`raw` with keys that moved (RENAMED) put in their new place, a FutureWarning for each
    (shown to the user by default); where the new key is set too, the new one wins."""
    raw = {name: dict(body) if isinstance(body, dict) else body for name, body in raw.items()}
    moved: dict[tuple[str, str], str] = {}          # new key → the old key it came from
    for (old_section, old_key), (section, key) in RENAMED.items():
        body = raw.get(old_section)
        if not isinstance(body, dict) or old_key not in body:
            continue
        value = body.pop(old_key)
        target = raw.setdefault(section, {})
        message = (f"{source}: [{old_section}] {old_key} is now [{section}] {key}; the old "
                   f"name is accepted until edgelens 3.0")
        if not isinstance(target, dict):
            pass                                    # build() reports the broken section
        elif key not in target:
            target[key] = value
            moved[(section, key)] = f"[{old_section}] {old_key}"
        elif target[key] != value:
            given = moved.get((section, key), f"[{section}] {key}")
            message += (f"; its value {value!r} is ignored: {given} = {target[key]!r} is "
                        f"used")
        warnings.warn(message, FutureWarning, stacklevel=3)
    return raw


def build(raw: dict[str, Any], schema: Iterable[Section], source: str = "<dict>") -> Config:
    schema = {s.name: s for s in schema}
    raw = _renamed(raw, source)
    for name, body in raw.items():
        if name not in schema:
            known = ", ".join(sorted(schema))
            raise ConfigError(f"{source}: unknown section [{name}]; known sections: {known}")
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: [{name}] must be a table, got {_describe(body)}")
    sections = {}
    for name, section in schema.items():
        given = raw.get(name, {})
        for key_name in given:
            if section.key(key_name) is None:
                known = ", ".join(k.name for k in section.keys)
                raise ConfigError(f"{source}: unknown key [{name}] {key_name}; "
                                  f"known keys: {known}")
        try:
            values = {k.name: _check(name, k, given[k.name]) if k.name in given else k.default
                      for k in section.keys}
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        sections[name] = SECTION_TYPES[name](**values)
    return Config(**sections, origin=source)


def parse_text(text: str, schema: Iterable[Section] | None = None,
               source: str = "<text>") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    return build(raw, schema if schema is not None else defaults_schema(), source)


def load(path: str | Path | None, schema: Iterable[Section] | None = None) -> Config:
    """Load and validate a config file; None gives the built-in defaults."""
    if path is None:
        return build({}, schema if schema is not None else defaults_schema(), "<defaults>")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    return parse_text(text, schema, source=str(path))


def defaults(schema: Iterable[Section] | None = None) -> Config:
    return load(None, schema)


def defaults_schema() -> tuple[Section, ...]:
    """The whole product's schema (device.config_schema.SCHEMA)."""
    return SCHEMA


REDACTED = "<redacted>"


def to_toml(config: Config, schema: Iterable[Section] | None = None,
            redact: bool = False) -> str:
    """Render a config as commented TOML: every key with its description; `redact` shows a
    set secret (a password) as REDACTED."""
    schema = tuple(schema if schema is not None else defaults_schema())
    lines: list[str] = []
    for section in schema:
        lines += [f"# {section.description}", f"[{section.name}]"]
        values = config.sections[section.name]
        for key in section.keys:
            lines.append(f"# {key.description}")
            value = getattr(values, key.name)
            if redact and key.secret and value:
                value = REDACTED
            lines.append(f"{key.name} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)
