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
"signature": {"key_id", "signature"}, "control": {...}, "control_signature": {...}}. The
signature covers the whole "manifest" object; the control signature covers what the device acts
on besides it (`control_document`: rollout, group, model, stage, canaries, the manifest's
sha256 and when it was issued), so the control fields are bound to that signed manifest.
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
from cloud_sync.json_input import parse_json
from cloud_sync.signing import canonical, load_private, sign

GROUP_LEVEL = "_group"
UPDATE = "update"
STATES = ("offered", "downloading", "verified", "installed", "healthy", "rolled_back",
          "refused", "halted")
# files of a version directory that never travel: written by the device itself
LOCAL_FILES = ("manifest.json", "HEALTH.json")

STAGES = ("canary", "all", "halted")
MAX_CANARIES = 100_000

# \Z, not $: `$` also matches before a trailing newline ("detector\n" is not a name)
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\Z")
_VERSION = re.compile(r"[0-9]{1,6}\.[0-9]{1,6}\.[0-9]{1,6}\Z")
_GROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_FILE_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}\Z")
_ROLLOUT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}\Z")
_HEADER = struct.Struct(">H")
_HEADER_LIMIT = (1 << 16) - 1


def desired_topic(prefix: str, group: str, model: str) -> str:
    return f"{prefix}/{GROUP_LEVEL}/{check_group(group)}/desired/{check_model_name(model)}"


def device_update_topic(prefix: str, device: str, leaf: str) -> str:
    return f"{prefix}/{device}/{UPDATE}/{leaf}"


def check_group(group: str) -> str:
    if not isinstance(group, str) or not _GROUP.match(group):
        raise PayloadError(f"group {group!r:.80}: use 1-64 of A-Z a-z 0-9 _ . -")
    return group


def check_model_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise PayloadError(f"model name {name!r:.80} is not a store name (a-z 0-9 _ -)")
    return name


def check_version(version: Any) -> str:
    if not isinstance(version, str) or not _VERSION.match(version):
        raise PayloadError(f"version {version!r:.40} is not MAJOR.MINOR.PATCH")
    return version


def check_rollout_id(rollout: Any) -> str:
    if not isinstance(rollout, str) or not _ROLLOUT.match(rollout):
        raise PayloadError(f"rollout id {rollout!r:.80} is not 1-128 of A-Z a-z 0-9 _ . : + -")
    return rollout


def check_file_name(name: Any) -> str:
    """A relative POSIX path of plain parts: no '..', no absolute path, no backslash, no
    hidden or local (manifest/HEALTH) files. PayloadError otherwise."""
    if not isinstance(name, str) or not name or len(name) > 255:
        raise PayloadError(f"file name {name!r:.80} is empty or too long")
    if name.startswith("/") or "\\" in name or "\x00" in name:
        raise PayloadError(f"file name {name!r:.80} is absolute or has a backslash or NUL")
    parts = PurePosixPath(name).parts
    if any(part in ("..", ".") for part in name.split("/")) or len(parts) > 4:
        raise PayloadError(f"file name {name!r:.80} would leave the version directory")
    if not all(_FILE_PART.match(part) for part in parts):
        raise PayloadError(f"file name {name!r:.80} has a part that is not a plain name")
    if name in LOCAL_FILES:
        raise PayloadError(f"file name {name!r:.80} is written by the device, not sent")
    return name


# --- building an update manifest (fleet side) --------------------------------------------------

def version_files(directory: Path) -> list[Path]:
    """The files of a version directory that travel (sorted); refuses links. Files the
    manifest lists as `reference_files` (fp32 references used by benchmarks) stay behind:
    an update carries only what the glasses run."""
    try:
        manifest = json.loads((Path(directory) / "manifest.json").read_text(encoding="utf-8"))
        reference = {e["file"] for e in manifest.get("reference_files", [])
                     if isinstance(e, dict) and isinstance(e.get("file"), str)}
    except (OSError, ValueError, AttributeError, TypeError):
        reference = set()
    files = []
    for path in sorted(Path(directory).rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if path.is_symlink():
            raise PayloadError(f"{path} is a link; a model version must hold plain files")
        if (path.is_dir() or relative in LOCAL_FILES or relative.startswith(".")
                or relative in reference):
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
    fields = parse_json(head, "chunk header", _HEADER_LIMIT, depth=1)
    index = fields.get("index")
    strings = [fields.get(k) for k in ("rollout", "name", "version", "file")]
    if not all(isinstance(v, str) for v in strings) or isinstance(index, bool) or \
            not isinstance(index, int) or not 0 <= index < 1 << 31:
        raise PayloadError("chunk header is not valid: rollout, name, version and file must "
                           "be strings and index a non-negative integer")
    return ChunkHeader(*strings, index), payload[_HEADER.size + size:]



# --- the desired state and its signed control block ---------------------------------------------

@dataclass(frozen=True)
class Desired:
    """The fields of a desired state the device acts on besides the signed manifest."""
    rollout: str
    stage: str
    canaries: tuple[str, ...]
    group: str | None


def check_desired(body: dict[str, Any]) -> Desired:
    """Types and shapes of the control fields; PayloadError when one is wrong (a list where a
    string belongs, canaries that are not a list of device ids, an unknown stage)."""
    rollout = check_rollout_id(body.get("rollout"))
    stage = body.get("stage")
    if stage not in STAGES:
        raise PayloadError(f"stage {stage!r:.40} is not one of {', '.join(STAGES)}")
    canaries = body.get("canaries", [])
    # entries are not held to the device-id pattern: one odd name among the fleet's members
    # must not make the whole desired state unreadable (it matches no device anyway)
    if not isinstance(canaries, list) or len(canaries) > MAX_CANARIES or \
            not all(isinstance(c, str) and 0 < len(c) <= 256 for c in canaries):
        raise PayloadError("canaries must be a list of device ids")
    group = body.get("group")
    if group is not None:
        check_group(group)
    return Desired(rollout, stage, tuple(canaries), group)


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's canonical encoding (what its signature covers)."""
    return hashlib.sha256(canonical(manifest)).hexdigest()


def control_document(rollout: str, group: str, model: str, stage: str, canaries: list[str],
                     manifest: dict[str, Any], issued_ns: int | None = None) -> dict[str, Any]:
    """The control block a fleet signs with every desired state it publishes: the fields the
    device acts on, bound to the signed manifest by its digest, with its own issue time so an
    older control block (a replayed `halted`, or `canary` after `all`) is told apart."""
    return {"rollout": rollout, "group": group, "model": model, "stage": stage,
            "canaries": sorted(canaries), "manifest_sha256": manifest_digest(manifest),
            "version": manifest.get("version"),
            "issued_ns": time.time_ns() if issued_ns is None else issued_ns}


def desired_message(rollout: str, group: str, stage: str, canaries: list[str],
                    signed: dict[str, Any], key: Any = None) -> dict[str, Any]:
    """The retained desired-state message. With `key` (an Ed25519 private key or the path of
    one) the control fields are signed too (`control`, `control_signature`); devices then act
    on them only as signed. Without a key the message is the unsigned form (see the trust
    section of cloud_sync/README.md for what a device does with it)."""
    body = {"v": 1, "rollout": rollout, "group": group, "stage": stage,
            "canaries": list(canaries), **signed}
    if key is not None:
        if not hasattr(key, "sign"):
            key = load_private(key)
        control = control_document(rollout, group, signed["manifest"]["name"], stage,
                                   list(canaries), signed["manifest"])
        body["control"] = control
        body["control_signature"] = sign(control, key)
    return body
