"""What a config key and a section are: name, type, default, description and the limits the
loader checks (device/config.py)."""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Key:
    name: str
    type: type
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    item_type: type | None = None  # for list keys
    pattern: str | None = None     # for str keys: the whole value must match (re.fullmatch)
    secret: bool = False           # shown as REDACTED by `config show`


@dataclass(frozen=True)
class Section:
    name: str
    description: str
    keys: tuple[Key, ...]

    def key(self, name: str) -> Key | None:
        return next((k for k in self.keys if k.name == name), None)
