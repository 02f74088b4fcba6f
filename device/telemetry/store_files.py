"""The telemetry store's files handled outside SQLite (never the live database's content):
the lock file `<db>.lock`, held (flock) around opening, reopening, quarantining and side-file
updates so that two processes never set files aside under each other; the `.seq` side file
`<db>.seq`, written atomically, that holds the store's identity and its sequence reservation
(see device/telemetry/store.py); and moving a corrupt store, or a WAL that does not belong to
the file beside it, aside under a free name, where it is kept.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from device.telemetry.store_errors import store_error

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux
    fcntl = None  # type: ignore[assignment]

_HELD = threading.local()       # the lock files this thread holds, with their depth


# --- the lock file -----------------------------------------------------------------------------

class _FileLock:
    """flock on `<db>.lock` around opening, reopening, quarantining and side-file updates, so
    two processes never set files aside under each other. A separate file: locking it never
    touches the database's own POSIX locks. Re-entrant within a thread; other threads of the
    process wait like other processes do."""

    def __init__(self, path: Path):
        self.path = Path(str(path) + ".lock")
        self.fd: int | None = None
        self.nested = False

    def __enter__(self) -> "_FileLock":
        held = getattr(_HELD, "paths", None)
        if held is None:
            held = _HELD.paths = {}
        key = str(self.path)
        if held.get(key):
            held[key] += 1
            self.nested = True
            return self
        if fcntl is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                try:
                    self.fd = os.open(self.path, os.O_RDONLY)
                except OSError:
                    self.fd = None      # read-only and no lock file: nothing to serialize with
            if self.fd is not None:
                fcntl.flock(self.fd, fcntl.LOCK_EX)
        held[key] = 1
        return self

    def __exit__(self, *exc: Any) -> None:
        held = _HELD.paths
        key = str(self.path)
        held[key] -= 1
        if self.nested or held[key] > 0:
            return
        del held[key]
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# --- the .seq side file ------------------------------------------------------------------------

def _seq_file(path: Path) -> Path:
    return Path(str(path) + ".seq")


def _read_seq_file(path: Path) -> tuple[str, int, int]:
    """(store id, ceiling, highest number known handed out) from the side file; the old
    format is the ceiling alone."""
    try:
        text = _seq_file(path).read_text().strip()
    except OSError:
        return "", 0, 0
    try:
        if text.startswith("{"):
            data = json.loads(text)
            return (str(data.get("store_id") or ""), int(data.get("ceiling") or 0),
                    int(data.get("issued") or 0))
        return "", int(text or 0), 0
    except (ValueError, TypeError, AttributeError):
        return "", 0, 0


def _update_seq_file(path: Path, store_id: str | None, ceiling: int = 0, issued: int = 0,
                     sync: bool = True) -> tuple[str, int, int]:
    """Merge into the side file, under the lock file (the pipeline and the sync agent both
    write it): the ceiling and the issued mark only ever go up. Returns what it now holds."""
    with _FileLock(path):
        old = _read_seq_file(path)
        new = (old[0] if store_id is None else store_id, max(old[1], ceiling),
               max(old[2], issued))
        if new != old:
            _write_seq_file(path, new[1], new[0], new[2], sync)
    return new


def _write_seq_file(path: Path, ceiling: int, store_id: str = "", issued: int = 0,
                    sync: bool = True) -> None:
    target = _seq_file(path)
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    with open(tmp, "w") as fh:
        fh.write(json.dumps({"store_id": store_id, "ceiling": ceiling, "issued": issued})
                 + "\n")
        fh.flush()
        if sync:
            os.fsync(fh.fileno())
    os.replace(tmp, target)
    if not sync:
        return
    try:
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # pragma: no cover - some file systems cannot fsync a directory
        pass


# --- setting files aside -----------------------------------------------------------------------

def _aside_name(path: Path, tag: str) -> Path:
    """A free name beside `path` for setting it aside: NAME.TAG-TIME[-N]."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target, n = path.with_name(f"{path.name}.{tag}-{stamp}"), 1
    while target.exists():
        target = path.with_name(f"{path.name}.{tag}-{stamp}-{n}")
        n += 1
    return target


def quarantine_file(path: Path) -> Path:
    """Move a corrupt store (and its -wal/-shm) aside; returns where it went."""
    moved = _aside_name(path, "corrupt")
    try:
        os.replace(path, moved)
        for suffix in ("-wal", "-shm"):
            side = Path(str(path) + suffix)
            if side.exists():
                os.replace(side, Path(str(moved) + suffix))
    except OSError as exc:
        raise store_error(exc, f"cannot move corrupt telemetry store {path} aside",
                          path) from exc
    return moved


def _set_aside_orphans(path: Path, why: str) -> list[Path]:
    """Move a -wal/-shm that does not belong to the file at `path` aside (kept)."""
    moved = []
    for suffix in ("-wal", "-shm"):
        side = Path(str(path) + suffix)
        if not side.exists():
            continue
        target = _aside_name(side, why)
        try:
            os.replace(side, target)
        except OSError as exc:
            raise store_error(exc, f"cannot set {side} aside", path) from exc
        moved.append(target)
    return moved
