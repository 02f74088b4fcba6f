"""The recorder's journal: every record is on disk before the call that made it returns.

The recorder queues records in memory and its writer inserts them into SQLite every
`flush_interval_s`; a process killed in between (SIGKILL, the OOM killer) used to lose what was
queued. The journal closes that gap: `append` copies each record into a segment file of
`<db>.journal/` mapped with MAP_SHARED, so it is in the kernel's page cache (which outlives the
process, not a power cut) when the call returns. A copy into a mapping, unlike write(2), does
not let go of the GIL, so the caller never waits for the writer thread to hand it back. Each
segment's blocks are reserved with posix_fallocate before it is mapped: a full disk fails
there (counted, the record stays queued in memory) instead of as SIGBUS on a page. At the next
start `Journal.open` reads back the records no store commit has covered yet and the recorder
inserts them first.

Exactly once: each record carries a journal sequence number (`jseq`, growing across restarts).
The store inserts a record's jseq into its `journaled` table in the same transaction as the
record and skips a replayed record whose jseq is there, so a crash between a commit and the
deletion of its segment duplicates nothing. A sealed segment is deleted once every record in it
is committed (or dropped from the full queue).

Entry layout: `u32 length | u64 jseq | u32 crc32(jseq bytes + payload) | payload`, payload the
JSON `[kind, wall_ns, mono_ns, boot_id, body]`. A torn or corrupt tail (the process died inside a
write, or the file was damaged: length or CRC wrong) ends the reading of that segment; an intact
entry that is not a record is skipped. Both are counted, never trusted.

One process journals a store: the directory is held with flock on `<db>.journal/lock`. A
second recorder on the same store runs without a journal (warned once). Journal write errors
(full disk) are counted, never logged from the caller's thread (a log line would come back
here through the telemetry log handler); the record stays queued in memory as before.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import re
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<IQI")              # length, jseq, crc; length 0: the end
_SEGMENT = re.compile(r"\A(\d{20})\.seg\Z")   # named by the first jseq it may hold
SEGMENT_BYTES = 128 * 1024                   # reserved per segment (sealed when full)...
ROTATE_S = 10.0                              # ...or at this age (when it holds anything)
_MAX_ENTRY = SEGMENT_BYTES - _HEADER.size    # a longer record is not journaled (counted)


@dataclass(frozen=True, slots=True)
class Entry:
    jseq: int
    kind: str
    wall_ns: int
    mono_ns: int
    boot_id: str
    body: Any


@dataclass
class _Segment:
    path: Path
    first: int
    last: int = 0                 # the highest jseq written to it (0: none yet)
    outstanding: int = 0          # records in it not committed or dropped yet


@dataclass
class JournalStats:
    appended: int = 0
    replayed: int = 0
    write_errors: int = 0
    corrupt: int = 0              # torn or damaged entries skipped while reading back
    segments_deleted: int = 0
    last_error: str = ""
    errors_reported: int = field(default=0, repr=False)


def encode(kind: str, wall_ns: int, mono_ns: int, boot_id: str, body_text: str) -> bytes:
    """A record's payload, around its body's JSON text (the text the store inserts, so a
    body is encoded once; built outside any lock). `kind` is one of records.KINDS and
    `boot_id` the kernel's (hex and dashes): neither needs JSON escaping."""
    return f'["{kind}",{wall_ns:d},{mono_ns:d},"{boot_id}",{body_text}]'.encode()


class Journal:
    """Append-only segments in one directory, held by one process (see the module doc)."""

    def __init__(self, directory: Path, lock_fd: int, next_jseq: int,
                 segments: list[_Segment], stats: JournalStats):
        self.directory = directory
        self._lock_fd = lock_fd
        self._next = next_jseq
        self._segments = segments                # sealed ones first, oldest first
        self._map: mmap.mmap | None = None
        self._open: _Segment | None = None
        self._opened_at = 0.0
        self._bytes = 0                          # used in the open segment
        self._mutex = threading.Lock()
        self.stats = stats

    # --- opening and reading back ---------------------------------------------------------

    @classmethod
    def open(cls, db_path: str | Path, committed_max: int = 0
             ) -> tuple["Journal | None", list[Entry]]:
        """The journal of the store at `db_path` and the entries found in it (oldest first),
        or (None, []) when it cannot be used (another process holds it, no such directory
        can be made): logged once, the recorder runs as before without it. `committed_max`
        is the highest jseq the store has committed (jseqs are never given out twice)."""
        directory = Path(str(db_path) + ".journal")
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock_fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            log.warning("telemetry journal unusable: records queued in memory are lost if the "
                        "process is killed", extra={"path": str(directory), "error": str(exc)})
            return None, []
        if fcntl is not None:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(lock_fd)
                log.warning("telemetry journal is held by another process: this one runs "
                            "without a journal", extra={"path": str(directory)})
                return None, []
        stats = JournalStats()
        segments, entries = [], []
        for path in sorted(directory.iterdir()):
            match = _SEGMENT.match(path.name)
            if match is None:
                continue
            found = _read_segment(path, stats)
            segment = _Segment(path, int(match.group(1)))
            if found:
                segment.last = found[-1].jseq
                segment.outstanding = len(found)
                segments.append(segment)
                entries += found
            else:
                _unlink(path)
        entries.sort(key=lambda e: e.jseq)
        stats.replayed = len(entries)
        top = max([committed_max, _read_next(directory) - 1, *(s.first for s in segments),
                   *(e.jseq for e in entries)])
        return cls(directory, lock_fd, top + 1, segments, stats), entries

    # --- writing (any thread) --------------------------------------------------------------

    def append(self, payload: bytes) -> int:
        """Write one record; its jseq, or 0 when it could not be written (counted)."""
        size = _HEADER.size + len(payload)
        with self._mutex:
            jseq = self._next
            self._next += 1
            if len(payload) > _MAX_ENTRY:
                self.stats.write_errors += 1
                self.stats.last_error = f"a record of {len(payload)} bytes is too large"
                return 0
            try:
                if self._map is not None and self._bytes + size > len(self._map):
                    self._seal()
                    if self._map is not None:    # `next` could not be written (disk full)
                        raise OSError(self.stats.last_error)
                if self._map is None:
                    self._start_segment(jseq)
            except OSError as exc:
                self.stats.write_errors += 1
                self.stats.last_error = str(exc)
                return 0
            head = _HEADER.pack(len(payload), jseq,
                                zlib.crc32(payload, zlib.crc32(_jseq(jseq))))
            at = self._bytes
            self._map[at + _HEADER.size:at + size] = payload
            self._map[at:at + _HEADER.size] = head     # the length last: the entry exists
            self._bytes += size
            self._open.last = jseq
            self._open.outstanding += 1
            self.stats.appended += 1
            return jseq

    def _start_segment(self, jseq: int) -> None:
        path = self.directory / f"{jseq:020d}.seg"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.posix_fallocate(fd, 0, SEGMENT_BYTES)     # ENOSPC here, never SIGBUS later
            self._map = mmap.mmap(fd, SEGMENT_BYTES)
        except OSError:
            os.close(fd)
            _unlink(path)
            raise
        os.close(fd)
        self._open = _Segment(path, jseq)
        self._segments.append(self._open)
        self._opened_at, self._bytes = time.monotonic(), 0

    # --- the writer thread -----------------------------------------------------------------

    def done(self, jseqs: list[int]) -> None:
        """These records are committed (or dropped): delete the sealed segments that are
        complete, and seal the open one when it is old enough (a full one is sealed by
        `append`)."""
        with self._mutex:
            for jseq in jseqs:
                segment = self._segment_of(jseq)
                if segment is not None:
                    segment.outstanding -= 1
            if self._open is not None and self._open.last and \
                    time.monotonic() - self._opened_at >= ROTATE_S:
                self._seal()
            keep = []
            for segment in self._segments:
                if segment is not self._open and segment.outstanding <= 0:   # sealed, done
                    _unlink(segment.path)
                    self.stats.segments_deleted += 1
                else:
                    keep.append(segment)
            self._segments = keep

    def oldest_live(self) -> int:
        """The lowest jseq a segment on disk may still hold (the next one when none): the
        store may forget committed jseqs below it."""
        with self._mutex:
            return min([s.first for s in self._segments], default=self._next)

    def _segment_of(self, jseq: int) -> _Segment | None:
        for segment in reversed(self._segments):
            if segment.first <= jseq:
                return segment if jseq <= max(segment.last, segment.first) else None
        return None

    def _seal(self) -> None:
        """Close the open segment, after noting the next jseq in `next` (a sealed segment
        may be deleted, and jseqs must keep growing across restarts). If `next` cannot be
        written (full disk), the segment stays open."""
        if self._open is None:
            return
        try:
            temp = self.directory / "next.tmp"
            temp.write_text(str(self._next))
            os.replace(temp, self.directory / "next")
        except OSError as exc:
            self.stats.write_errors += 1
            self.stats.last_error = f"cannot note the next journal number: {exc}"
            return
        self._map.close()
        try:
            os.truncate(self._open.path, self._bytes)      # give back the unused reservation
        except OSError:
            pass                                           # the zeros read as the end
        self._map, self._open = None, None

    def errors_to_report(self) -> tuple[int, str]:
        """Write errors since the last call (for the writer thread to log and count)."""
        with self._mutex:
            new = self.stats.write_errors - self.stats.errors_reported
            self.stats.errors_reported = self.stats.write_errors
            return new, self.stats.last_error

    def close(self) -> None:
        """Seal and release. Segments with outstanding records stay for the next start."""
        with self._mutex:
            self._seal()
            if self._map is not None:            # `next` not written: kept as it is
                self._map.close()
                self._map = None
            for segment in self._segments:
                if segment is not self._open and segment.outstanding <= 0:
                    _unlink(segment.path)
            os.close(self._lock_fd)


def _jseq(jseq: int) -> bytes:
    return jseq.to_bytes(8, "little")


def _read_next(directory: Path) -> int:
    try:
        return max(int((directory / "next").read_text().strip()), 1)
    except (OSError, ValueError):
        return 1


def _read_segment(path: Path, stats: JournalStats) -> list[Entry]:
    """The intact entries of one segment; a torn or damaged entry ends it (counted)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        log.error("telemetry journal segment unreadable",
                  extra={"path": str(path), "error": str(exc)})
        stats.corrupt += 1
        return []
    entries, at, damaged = [], 0, False
    while at < len(data) and not damaged:
        damaged = len(data) - at < _HEADER.size
        if damaged:
            break
        length, jseq, crc = _HEADER.unpack_from(data, at)
        if length == 0 and jseq == 0 and crc == 0:
            break                                   # the reserved, never written rest
        payload = data[at + _HEADER.size:at + _HEADER.size + length]
        damaged = length > _MAX_ENTRY or len(payload) != length or \
            zlib.crc32(payload, zlib.crc32(_jseq(jseq))) != crc
        if not damaged:
            try:
                kind, wall_ns, mono_ns, boot_id, body = json.loads(payload)
                entries.append(Entry(jseq, str(kind), int(wall_ns), int(mono_ns),
                                     str(boot_id), body))
            except (ValueError, TypeError):     # intact but not a record: this one only
                stats.corrupt += 1
        at += _HEADER.size + length
    if damaged:
        stats.corrupt += 1
        log.warning("telemetry journal segment torn or damaged; the rest skipped",
                    extra={"path": str(path), "entries_read": len(entries)})
    return entries


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.error("telemetry journal segment not deleted",
                  extra={"path": str(path), "error": str(exc)})
