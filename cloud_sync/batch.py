"""The telemetry batch on the wire: zlib-compressed JSON.

    {"v": 1, "device": "glasses-7", "boot_id": "...", "sent_wall_ns": 0, "sent_mono_ns": 0,
     "records": [[seq, kind, wall_ns, mono_ns, boot_id, {body}], ...]}

`sent_*` are the device's clocks when the batch was built; with the receive time they let the
fleet re-date records of a device whose wall clock is wrong (see fleet_store).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any, Sequence

from cloud_sync.errors import PayloadError
from device.telemetry.records import KINDS, StoredRecord

VERSION = 1
CONTENT_TYPE = "application/x-edgelens-batch+zlib"


@dataclass(frozen=True)
class Batch:
    device: str
    boot_id: str
    sent_wall_ns: int
    sent_mono_ns: int
    records: list[tuple[int, str, int, int, str, dict[str, Any]]]


def encode(device: str, boot_id: str, clocks: tuple[int, int],
           records: Sequence[StoredRecord], level: int = 6) -> bytes:
    """Bodies are spliced in as the JSON text the store already holds (no re-parsing)."""
    rows = ",".join(
        f'[{r.seq},{json.dumps(r.kind)},{r.wall_ns},{r.mono_ns},{json.dumps(r.boot_id)},{r.body}]'
        for r in records)
    head = json.dumps({"v": VERSION, "device": device, "boot_id": boot_id,
                       "sent_wall_ns": clocks[0], "sent_mono_ns": clocks[1]})
    return zlib.compress(f'{head[:-1]},"records":[{rows}]}}'.encode("utf-8"), level)


def decode(payload: bytes, max_bytes: int) -> Batch:
    """PayloadError for anything that is not a well-formed batch of at most max_bytes."""
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(payload, max_bytes + 1)
    except zlib.error as exc:
        raise PayloadError(f"batch is not zlib data: {exc}") from exc
    if len(raw) > max_bytes or inflater.unconsumed_tail:
        raise PayloadError(f"batch inflates beyond {max_bytes} bytes")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"batch is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("v") != VERSION:
        raise PayloadError(f"batch version is {doc.get('v') if isinstance(doc, dict) else doc!r}"
                           f", expected {VERSION}")
    try:
        batch = Batch(str(doc["device"]), str(doc["boot_id"]), int(doc["sent_wall_ns"]),
                      int(doc["sent_mono_ns"]), [_record(r) for r in doc["records"]])
    except (KeyError, TypeError, ValueError) as exc:
        raise PayloadError(f"batch is missing or has a bad field: {exc!r}") from exc
    return batch


def _record(row: Any) -> tuple[int, str, int, int, str, dict[str, Any]]:
    seq, kind, wall_ns, mono_ns, boot_id, body = row
    if kind not in KINDS or not isinstance(body, dict) or isinstance(seq, bool):
        raise ValueError(f"bad record {row!r:.120}")
    return int(seq), kind, int(wall_ns), int(mono_ns), str(boot_id), body
