"""One model version being downloaded into the staging directory, resumable after kill -9.

    <staging>/<name>-<version>/            the version's files, written chunk by chunk (pwrite)
    <staging>/<name>-<version>.desired     the signed desired state it came from (JSON)
    <staging>/<name>-<version>.received    one line per chunk written: "<file>\t<index>"

On resume every recorded chunk is read back and hashed against the signed chunk hash; only
chunks that match count as received (a torn write just gets fetched again). Writing raises
OSError (a full disk: ENOSPC) for the caller to refuse the update and `discard()` it; the
free space is checked up front (`check_space`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud_sync.errors import PayloadError
from cloud_sync.update_protocol import check_file_name
from device.modelstore.install import fsync_dir, write_atomic


class RefusedUpdate(PayloadError):
    """An update the device will not install; the message says why (it goes to the audit)."""


SPACE_MARGIN = 256 * 1024    # bytes kept free beyond the download (records, manifest, fsync)
_INDEX = re.compile(r"[0-9]{1,9}\Z")


def describe_os_error(exc: OSError) -> str:
    """A short reason for the status: 'no space left on device' for ENOSPC/EDQUOT."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on device"
    return exc.strerror or str(exc)


@dataclass
class FilePlan:
    file: str
    size_bytes: int
    sha256: str
    chunks: list[str]


def plan_files(update: dict[str, Any], max_bytes: int) -> tuple[int, list[FilePlan]]:
    """The signed `update` block checked for shape, names and sizes; RefusedUpdate if not."""
    try:
        chunk_size = _integer(update["chunk_size"])
        raw = list(update["files"])
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise RefusedUpdate(f"update block malformed: {exc}") from exc
    if not 256 <= chunk_size <= 128 * 1024:
        raise RefusedUpdate(f"chunk size {chunk_size} outside 256 B-128 KB")
    plans, seen, total = [], set(), 0
    for entry in raw:
        try:
            name = check_file_name(entry["file"])
            plan = FilePlan(name, _integer(entry["size_bytes"]), str(entry["sha256"]),
                            [str(c) for c in entry["chunks"]])
        except PayloadError as exc:
            raise RefusedUpdate(f"unsafe file name: {exc}") from exc
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise RefusedUpdate(f"file entry malformed: {exc}") from exc
        if name.lower() in seen:
            raise RefusedUpdate(f"file {name!r} listed twice")
        seen.add(name.lower())
        if plan.size_bytes < 0 or plan.size_bytes > max_bytes:
            raise RefusedUpdate(f"file {name!r}: {plan.size_bytes} bytes is over the limit of "
                                f"{max_bytes} ([updates] max_artifact_bytes)")
        if len(plan.chunks) != max(1, -(-plan.size_bytes // chunk_size)):
            raise RefusedUpdate(f"file {name!r}: {len(plan.chunks)} chunk hashes do not fit "
                                f"{plan.size_bytes} bytes in chunks of {chunk_size}")
        total += plan.size_bytes
        plans.append(plan)
    if total > max_bytes:
        raise RefusedUpdate(f"version of {total} bytes is over the limit of {max_bytes}")
    return chunk_size, plans


def _integer(value: Any) -> int:
    """An integer from JSON: not a bool, a float or a string."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{value!r:.40} is not an integer")
    return value


@dataclass
class Download:
    staging: Path
    name: str
    version: str
    chunk_size: int
    files: list[FilePlan]
    received: dict[str, set[int]] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return self.staging / f"{self.name}-{self.version}"

    @property
    def _record(self) -> Path:
        return self.staging / f"{self.name}-{self.version}.received"

    @property
    def _desired(self) -> Path:
        return self.staging / f"{self.name}-{self.version}.desired"

    @classmethod
    def open(cls, staging: Path, desired: dict[str, Any], chunk_size: int,
             files: list[FilePlan]) -> "Download":
        """Start, or resume from what an earlier run (or a killed one) left on disk."""
        manifest = desired["manifest"]
        d = cls(Path(staging), manifest["name"], manifest["version"], chunk_size, files)
        d.staging.mkdir(parents=True, exist_ok=True)
        same = False
        if d._desired.is_file():
            try:
                old = json.loads(d._desired.read_text())
                same = old["manifest"]["update"]["files"] == manifest["update"]["files"]
            except (OSError, ValueError, KeyError, TypeError):
                same = False
        if not same:
            d.discard()
            write_atomic(d._desired, json.dumps(desired).encode())
        d.directory.mkdir(parents=True, exist_ok=True)
        d._resume()
        return d

    def _resume(self) -> None:
        self.received = {f.file: set() for f in self.files}
        plans = {f.file: f for f in self.files}
        try:
            lines = self._record.read_text().splitlines()
        except (OSError, ValueError):    # unreadable or not text: fetch everything again
            lines = []
        for line in lines:
            file, _, index = line.partition("\t")
            plan = plans.get(file)
            if plan is None or not _INDEX.match(index) or int(index) >= len(plan.chunks):
                continue
            data = self._read_chunk(plan, int(index))
            if data is not None and hashlib.sha256(data).hexdigest() == plan.chunks[int(index)]:
                self.received[file].add(int(index))

    def _read_chunk(self, plan: FilePlan, index: int) -> bytes | None:
        try:
            with open(self.directory / plan.file, "rb") as handle:
                handle.seek(index * self.chunk_size)
                return handle.read(self._chunk_len(plan, index))
        except OSError:
            return None

    def _chunk_len(self, plan: FilePlan, index: int) -> int:
        return min(self.chunk_size, plan.size_bytes - index * self.chunk_size)

    def plan(self, file: str) -> FilePlan | None:
        return next((f for f in self.files if f.file == file), None)

    def write(self, file: str, index: int, data: bytes) -> bool:
        """Store one chunk when it is one we lack and matches its signed hash; False (ignored)
        otherwise."""
        plan = self.plan(file)
        if plan is None or not 0 <= index < len(plan.chunks) or index in self.received[file]:
            return False
        if len(data) != self._chunk_len(plan, index) or \
                hashlib.sha256(data).hexdigest() != plan.chunks[index]:
            return False
        path = self.directory / plan.file
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            view, offset = memoryview(data), index * self.chunk_size
            while view:                 # pwrite may write less than asked (nearly full disk)
                written = os.pwrite(fd, view, offset)
                if written <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
                view, offset = view[written:], offset + written
        finally:
            os.close(fd)
        with open(self._record, "a") as record:
            record.write(f"{file}\t{index}\n")
        self.received[file].add(index)
        return True

    def check_space(self, margin: int = SPACE_MARGIN) -> None:
        """RefusedUpdate when the staging file system has no room for the rest of this
        download (plus `margin`)."""
        try:
            free = shutil.disk_usage(self.staging).free
        except OSError:
            return                       # unknown: the writes will tell
        needed = self.total_bytes - self.received_bytes + margin
        if free < needed:
            raise RefusedUpdate(f"no space left on device for the download: "
                                f"{self.total_bytes - self.received_bytes} more bytes needed "
                                f"in {self.staging}, {free} free")

    def corrupt(self, file: str, index: int, data: bytes) -> bool:
        """True when this is a chunk we want but its bytes do not match the signed hash or
        length (as opposed to a duplicate or an unknown chunk)."""
        plan = self.plan(file)
        return plan is not None and 0 <= index < len(plan.chunks) and \
            index not in self.received[file]

    def missing(self, limit: int) -> list[tuple[str, int]]:
        wanted = []
        for plan in self.files:
            got = self.received[plan.file]
            for index in range(len(plan.chunks)):
                if index not in got:
                    wanted.append((plan.file, index))
                    if len(wanted) >= limit:
                        return wanted
        return wanted

    @property
    def total_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)

    @property
    def received_bytes(self) -> int:
        return sum(self._chunk_len(f, i) for f in self.files for i in self.received[f.file])

    @property
    def complete(self) -> bool:
        return all(len(self.received[f.file]) == len(f.chunks) for f in self.files)

    def verify(self) -> None:
        """Whole-file size and sha256 against the signed manifest; RefusedUpdate if not."""
        for plan in self.files:
            path = self.directory / plan.file
            if path.is_symlink() or not path.is_file():
                if plan.size_bytes == 0 and not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.touch()
                else:
                    raise RefusedUpdate(f"{plan.file}: missing or not a plain file")
            size = path.stat().st_size
            if size != plan.size_bytes:
                raise RefusedUpdate(f"{plan.file}: {size} bytes, signed size "
                                    f"{plan.size_bytes} (truncated or oversized)")
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            if digest.hexdigest() != plan.sha256:
                raise RefusedUpdate(f"{plan.file}: sha256 does not match the signed hash")

    def discard(self) -> None:
        """Forget this download: staged files and its records."""
        shutil.rmtree(self.directory, ignore_errors=True)
        self._record.unlink(missing_ok=True)
        self._desired.unlink(missing_ok=True)
        if self.staging.is_dir():
            fsync_dir(self.staging)

    def finish(self) -> None:
        """After the directory was renamed into the store: drop the records."""
        self._record.unlink(missing_ok=True)
        self._desired.unlink(missing_ok=True)
