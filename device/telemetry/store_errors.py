"""The telemetry store's errors: every failure of the store is a TelemetryError kind, never a
bare sqlite3 or OS error (see device/telemetry/store.py for the tree); `store_error` maps one."""

from __future__ import annotations

import errno
import functools
import os
import sqlite3
from pathlib import Path
from typing import Any, Callable, TypeVar

from device.errors import StoreCorruptError, TelemetryError

BUSY_TIMEOUT_S = 10.0         # how long a statement waits for another process's lock


# --- errors ------------------------------------------------------------------------------------

class StoreUnavailableError(TelemetryError):
    """The store is not corrupt but cannot be used now (full, read-only, locked, I/O error):
    retry later. Never a reason to quarantine the file."""


class StoreFullError(StoreUnavailableError):
    """The file system holding the store is full."""


class StoreAccessError(StoreUnavailableError):
    """The store (or its directory, WAL or file system) is read-only or not accessible."""


class StoreBusyError(StoreUnavailableError):
    """Another process held a lock on the store longer than the busy timeout."""


_CORRUPT_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
_ACCESS_CODES = {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN,
                 sqlite3.SQLITE_AUTH}
_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
_READONLY_DBMOVED = sqlite3.SQLITE_READONLY | (4 << 8)
_BAD_PATH_ERRNOS = {errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG,
                    errno.ELOOP, errno.EINVAL}
_MESSAGE_KINDS = (("malformed", "corrupt"), ("not a database", "corrupt"),
                  ("disk is full", "full"), ("readonly", "access"),
                  ("unable to open", "access"), ("locked", "busy"), ("disk i/o", "io"))


def _sqlite_kind(exc: BaseException) -> str:
    """corrupt, full, access, busy, io or other."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        primary = code & 0xFF
        if primary in _CORRUPT_CODES:
            return "corrupt"
        if primary == sqlite3.SQLITE_FULL:
            return "full"
        if code == _READONLY_DBMOVED:
            return "moved"
        if primary in _ACCESS_CODES:
            return "access"
        if primary in _BUSY_CODES:
            return "busy"
        if primary == sqlite3.SQLITE_IOERR:
            return "io"
        return "other"
    text = str(exc).lower()
    return next((kind for needle, kind in _MESSAGE_KINDS if needle in text), "other")


def store_error(exc: BaseException, what: str, path: Path | None = None) -> TelemetryError:
    """The TelemetryError kind for a sqlite3 or OS error, with a message saying what it is."""
    if isinstance(exc, TelemetryError):
        return exc
    where = f" ({path})" if path is not None else ""
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return StoreFullError(f"{what}: the file system is full{where}: {exc}")
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return StoreAccessError(f"{what}: no write access (permissions or a read-only "
                                    f"file system){where}: {exc}")
        if exc.errno in _BAD_PATH_ERRNOS:        # configuration, not a passing condition
            return TelemetryError(f"{what}: the path cannot hold a store (a file where a "
                                  f"folder should be?){where}: {exc}")
        return StoreUnavailableError(f"{what}: {exc}")
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    detail = f"{exc} [{name}]"
    kind = _sqlite_kind(exc)
    if kind == "io" and path is not None:
        free = fs_free(path)
        if free is not None and free < 256 * 1024:
            kind = "full"      # SQLite reports some writes on a full disk as I/O errors
    if kind == "corrupt":
        return StoreCorruptError(f"{what}: the file is corrupt: {detail}")
    if kind == "full":
        return StoreFullError(f"{what}: the file system is full{where}: {detail}; the store "
                              "is kept as it is and retried when there is room")
    if kind in ("access", "moved"):
        return StoreAccessError(f"{what}: the store is read-only or not accessible (check the "
                                f"permissions of the file, its directory and the file "
                                f"system){where}: {detail}; it is not corrupt and is kept")
    if kind == "busy":
        return StoreBusyError(f"{what}: locked by another process for over "
                              f"{BUSY_TIMEOUT_S:.0f} s{where}: {detail}")
    if kind == "io":
        return StoreUnavailableError(f"{what}: I/O error{where}: {detail}")
    return TelemetryError(f"{what}: {detail}")


_F = TypeVar("_F", bound=Callable[..., Any])


def _translated(what: str) -> Callable[[_F], _F]:
    """Methods raise TelemetryError kinds, never sqlite3 or OS errors."""
    def wrap(method: _F) -> _F:
        @functools.wraps(method)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:   # a TelemetryStore
            try:
                return method(self, *args, **kwargs)
            except (sqlite3.Error, OSError) as exc:
                error = store_error(exc, f"telemetry store: {what}", self.path)
                self._file.after_error(exc)
                raise error from exc
        return call  # type: ignore[return-value]
    return wrap


def fs_free(path: Path) -> int | None:
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize
