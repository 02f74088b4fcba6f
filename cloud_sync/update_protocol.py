"""The model-update wire protocol: topics, the desired-state and chunk messages, and the checks
on names a device writes to disk. Shared by the fleet (update_delivery) and the device
(update_agent). `P` is [mqtt] topic_prefix.

| topic                            | direction      | retained | payload                       |
|----------------------------------|----------------|----------|-------------------------------|
| P/_group/<group>/desired/<model> | fleet → group  | yes      | desired state (JSON, signed)  |
| P/<device>/update/request        | device → fleet | no       | JSON: chunks wanted           |
| P/<device>/update/chunk          | fleet → device | no       | header length, JSON header,   |
|                                  |                |          | chunk bytes (see encode_chunk)|
| P/<device>/update/status         | device → fleet | yes      | JSON: state per model         |

Desired state: {"v": 1, "rollout", "group", "stage": "canary"|"all"|"halted", "canaries": [...],
"manifest": {...the version's manifest.json... , "update": {"chunk_size", "files": [{"file",
"size_bytes", "sha256", "chunks": [sha256, ...]}], "rollback": bool, "issued_ns"}},
"signature": {"key_id", "signature"}}. The signature covers the whole "manifest" object.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cloud_sync.errors import PayloadError

GROUP_LEVEL = "_group"
UPDATE = "update"
STATES = ("offered", "downloading", "verified", "installed", "healthy", "rolled_back",
          "refused", "halted")
# files of a version directory that never travel: written by the device itself
LOCAL_FILES = ("manifest.json", "HEALTH.json")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_VERSION = re.compile(r"^\d{1,6}\.\d{1,6}\.\d{1,6}$")
_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_FILE_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$")
_HEADER = struct.Struct(">H")


def desired_topic(prefix: str, group: str, model: str) -> str:
    return f"{prefix}/{GROUP_LEVEL}/{check_group(group)}/desired/{check_model_name(model)}"


def device_update_topic(prefix: str, device: str, leaf: str) -> str:
    return f"{prefix}/{device}/{UPDATE}/{leaf}"


def check_group(group: str) -> str:
    if not isinstance(group, str) or not _GROUP.match(group):
        raise PayloadError(f"group {group!r}: use 1-64 of A-Z a-z 0-9 _ . -")
    return group


def check_model_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise PayloadError(f"model name {name!r} is not a store name (a-z 0-9 _ -)")
    return name


def check_version(version: Any) -> str:
    if not isinstance(version, str) or not _VERSION.match(version):
        raise PayloadError(f"version {version!r} is not MAJOR.MINOR.PATCH")
    return version


def check_file_name(name: Any) -> str:
    """A relative POSIX path of plain parts: no '..', no absolute path, no backslash, no
    hidden or local (manifest/HEALTH) files. PayloadError otherwise."""
    if not isinstance(name, str) or not name or len(name) > 255:
        raise PayloadError(f"file name {name!r} is empty or too long")
    if name.startswith("/") or "\\" in name or "\x00" in name:
        raise PayloadError(f"file name {name!r} is absolute or has a backslash or NUL")
    parts = PurePosixPath(name).parts
    if any(part in ("..", ".") for part in name.split("/")) or len(parts) > 4:
        raise PayloadError(f"file name {name!r} would leave the version directory")
    if not all(_FILE_PART.match(part) for part in parts):
        raise PayloadError(f"file name {name!r} has a part that is not a plain name")
    if name in LOCAL_FILES:
        raise PayloadError(f"file name {name!r} is written by the device, not sent")
    return name


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


# --- building an update manifest (fleet side) --------------------------------------------------

def version_files(directory: Path) -> list[Path]:
    """The files of a version directory that travel (sorted); refuses links."""
    files = []
    for path in sorted(Path(directory).rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if path.is_symlink():
            raise PayloadError(f"{path} is a link; a model version must hold plain files")
        if path.is_dir() or relative in LOCAL_FILES or relative.startswith("."):
            continue
        files.append(path)
    return files


def describe_file(path: Path, relative: str, chunk_size: int) -> dict[str, Any]:
    whole = hashlib.sha256()
    chunks = []
    size = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            whole.update(block)
            chunks.append(hashlib.sha256(block).hexdigest())
            size += len(block)
    return {"file": relative, "size_bytes": size, "sha256": whole.hexdigest(),
            "chunks": chunks}


def update_manifest(directory: Path, chunk_size: int, rollback: bool = False,
                    shadow: bool = False) -> dict[str, Any]:
    """manifest.json of a version plus the `update` block that gets signed with it.
    `shadow`: install as a challenger (models/<name>/SHADOW), never as the active version."""
    directory = Path(directory)
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    check_model_name(manifest.get("name"))
    check_version(manifest.get("version"))
    files = [describe_file(p, check_file_name(p.relative_to(directory).as_posix()), chunk_size)
             for p in version_files(directory)]
    manifest["update"] = {"chunk_size": chunk_size, "files": files, "rollback": rollback,
                          "issued_ns": time.time_ns()}
    if shadow:
        manifest["update"]["shadow"] = True
    return manifest


# --- chunk messages --------------------------------------------------------------------------

@dataclass(frozen=True)
class ChunkHeader:
    rollout: str
    name: str
    version: str
    file: str
    index: int


def encode_chunk(header: ChunkHeader, data: bytes) -> bytes:
    head = json.dumps(header.__dict__, separators=(",", ":")).encode()
    return _HEADER.pack(len(head)) + head + data


def decode_chunk(payload: bytes) -> tuple[ChunkHeader, bytes]:
    """PayloadError for anything that is not a well-formed chunk message."""
    if len(payload) < _HEADER.size:
        raise PayloadError("chunk message shorter than its header length")
    (size,) = _HEADER.unpack_from(payload)
    head = payload[_HEADER.size:_HEADER.size + size]
    if len(head) != size:
        raise PayloadError("chunk message truncated inside its header")
    try:
        fields = json.loads(head)
        header = ChunkHeader(str(fields["rollout"]), str(fields["name"]),
                             str(fields["version"]), str(fields["file"]), int(fields["index"]))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise PayloadError(f"chunk header is not valid: {exc}") from exc
    return header, payload[_HEADER.size + size:]


def parse_json(payload: bytes, what: str, limit: int) -> dict[str, Any]:
    if len(payload) > limit:
        raise PayloadError(f"{what} of {len(payload)} bytes is over the limit of {limit}")
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(f"{what} is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise PayloadError(f"{what} must be a JSON object")
    return body
