"""The telemetry batch on the wire: zlib-compressed JSON.

    {"v": 1, "device": "glasses-7", "boot_id": "...", "sent_wall_ns": 0, "sent_mono_ns": 0,
     "records": [[seq, kind, wall_ns, mono_ns, boot_id, {body}], ...]}

`sent_*` are the device's clocks when the batch was built; with the receive time they let the
fleet re-date records of a device whose wall clock is wrong (see fleet_store).

A record row that cannot be read (not six fields, a seq or clock that is no 64-bit integer, a
boot id that is no string, an unknown kind, a body that is no object) does not cost its batch:
`decode` hands it on in `Batch.refused` as (its seq when that is usable, else None, the reason),
for the fleet store to count, and the rest of the batch is stored.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any, Sequence

from cloud_sync.errors import PayloadError
from cloud_sync.json_input import within_depth
from device.telemetry.records import KINDS, StoredRecord

VERSION = 1
CONTENT_TYPE = "application/x-edgelens-batch+zlib"
MAX_DEPTH = 64      # batch, records, a record, its body: 4; record bodies are shallow


@dataclass(frozen=True)
class Batch:
    device: str
    boot_id: str
    sent_wall_ns: int
    sent_mono_ns: int
    records: list[tuple[int, str, int, int, str, dict[str, Any]]]
    # rows decode could not read: (seq, or None when it is unusable, reason)
    refused: list[tuple[int | None, str]] = field(default_factory=list)


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
    """PayloadError for anything that is not a well-formed batch of at most max_bytes (never
    ValueError, OverflowError or RecursionError: the caller counts and drops it)."""
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(payload, max_bytes + 1)
    except zlib.error as exc:
        raise PayloadError(f"batch is not zlib data: {exc}") from exc
    if len(raw) > max_bytes or inflater.unconsumed_tail:
        raise PayloadError(f"batch inflates beyond {max_bytes} bytes")
    try:
        doc = json.loads(raw)
    except RecursionError as exc:
        raise PayloadError("batch is nested too deeply") from exc
    except ValueError as exc:   # not JSON, not UTF-8, or an integer of over 4300 digits
        raise PayloadError(f"batch is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("v") != VERSION:
        version = doc.get("v") if isinstance(doc, dict) else doc
        raise PayloadError(f"batch version is {_short(version)}, expected {VERSION}")
    if not within_depth(doc, MAX_DEPTH):
        raise PayloadError(f"batch is nested more than {MAX_DEPTH} deep")
    try:
        batch = Batch(_text(doc["device"]), _text(doc["boot_id"]), _int(doc["sent_wall_ns"]),
                      _int(doc["sent_mono_ns"]), [])
        rows = doc["records"]
        if not isinstance(rows, list):
            raise TypeError(f"records is {_short(rows)}, not a list")
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise PayloadError(f"batch is missing or has a bad field: {_short(exc)}") from exc
    for row in rows:
        record, refusal = _record(row)
        if record is not None:
            batch.records.append(record)
        else:
            batch.refused.append(refusal)
    return batch


def receipt(seqs: Sequence[int]) -> bytes:
    """The fleet's receipt for a committed batch: its sequence numbers as [first, last]
    ranges, {"v": 1, "seqs": [[1, 500], [731, 731]]}. A seq below 1 (a device holds none) is
    left out: `parse_receipt` would refuse the whole receipt for it."""
    ranges: list[list[int]] = []
    for seq in sorted({s for s in seqs if s > 0}):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1][1] = seq
        else:
            ranges.append([seq, seq])
    return json.dumps({"v": VERSION, "seqs": ranges}, separators=(",", ":")).encode()


MAX_RECEIPT_SEQS = 100_000      # a batch holds at most [sync] batch_records (<= 50,000)


def parse_receipt(payload: bytes, max_bytes: int) -> list[int]:
    """The sequence numbers a receipt confirms; PayloadError for anything else (too large,
    not JSON, ranges that are not [first <= last] integers, more than MAX_RECEIPT_SEQS)."""
    if len(payload) > max_bytes:
        raise PayloadError(f"receipt of {len(payload)} bytes is over {max_bytes}")
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise PayloadError(f"receipt is not JSON: {_short(exc)}") from exc
    if not isinstance(doc, dict) or doc.get("v") != VERSION or \
            not isinstance(doc.get("seqs"), list):
        raise PayloadError(f"receipt is not a v{VERSION} receipt: {_short(doc)}")
    seqs: list[int] = []
    try:
        for pair in doc["seqs"]:
            first, last = (_int(v) for v in pair)
            if not 0 < first <= last or len(seqs) + last - first >= MAX_RECEIPT_SEQS:
                raise ValueError(f"range {_short(pair)}")
            seqs.extend(range(first, last + 1))
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"receipt has a bad range: {_short(exc)}") from exc
    return seqs


Record = tuple[int, str, int, int, str, dict[str, Any]]


def _record(row: Any) -> tuple[Record, None] | tuple[None, tuple[int | None, str]]:
    """(the record, None), or (None, (its seq or None, the reason it cannot be read))."""
    if not isinstance(row, list) or len(row) != 6:
        return None, (None, "record.schema")
    seq, kind, wall_ns, mono_ns, boot_id, body = row
    if not _is_int(seq):
        return None, (None, "record.seq")
    if not (_is_int(wall_ns) and _is_int(mono_ns)):
        return None, (seq, "record.clock")
    if not isinstance(boot_id, str):
        return None, (seq, "record.boot_id")
    if not (isinstance(kind, str) and kind in KINDS and isinstance(body, dict)):
        return None, (seq, "record.schema")
    return (seq, kind, wall_ns, mono_ns, boot_id, body), None


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and abs(value) < 1 << 63


def _int(value: Any) -> int:
    """A JSON integer (a float such as 1e999, a string or a bool is not one)."""
    if not _is_int(value):
        raise ValueError(f"{_short(value)} is not a 64-bit integer")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{_short(value)} is not a string")
    return value


def _short(value: Any) -> str:
    """repr() cut to 120 characters, safe for any decoded JSON (deep nesting included)."""
    try:
        return f"{value!r:.120}"
    except (RecursionError, ValueError):
        return f"<{type(value).__name__}>"
