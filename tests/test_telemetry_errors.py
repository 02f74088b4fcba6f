"""Issue 14 (store part): TelemetryStore methods raise the store's own documented error kinds
(TelemetryError, StoreCorruptError, StoreUnavailableError and its kinds), never a bare
sqlite3 error that callers would have to catch as Exception. Real SQLite files, a real lock
held by another connection and pages damaged by another process."""

import sqlite3
import subprocess
import sys

import pytest

from device.errors import StoreCorruptError, TelemetryError
from device.telemetry import Record, StoreBusyError, StoreFullError, TelemetryStore
from device.telemetry import store_errors as store_module
from device.telemetry.store import store_error


def _logs(n: int, pad: int = 0) -> list[Record]:
    return [Record("log", 1, 1, {"severity": "INFO", "event": "e", "i": i, "pad": "x" * pad})
            for i in range(n)]


def test_writes_while_another_connection_holds_the_lock_raise_store_busy(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.2)
    db = tmp_path / "telemetry.sqlite"
    store = TelemetryStore.open(db)
    store.max_bytes = 1024 * 1024
    store.insert(_logs(3000, pad=400))                   # over its limit
    store.mark_sent([1, 2, 3])
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        calls = {"bump": lambda: store.bump({"overflow": 1}),
                 "prune_sent": lambda: store.prune_sent(0),
                 "enforce_limit": store.enforce_limit,
                 "mark_sent": lambda: store.mark_sent([4]),
                 "insert": lambda: store.insert(_logs(1)),
                 "set_meta": lambda: store.set_meta("k", "v")}
        for name, call in calls.items():
            with pytest.raises(StoreBusyError, match="locked"):
                call()
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.bump({"overflow": 1})                          # and it works again
    assert store.counters() == {"overflow": 1}
    store.close()


_SMASH = """
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
size = os.fstat(fd).st_size
for offset in range(4096 * 3, size - 4096, 4096):
    os.pwrite(fd, b"\\xff" * 64, offset)
os.close(fd)
"""


def test_reads_of_damaged_pages_raise_store_corrupt(tmp_path):
    db = tmp_path / "telemetry.sqlite"
    store = TelemetryStore.open(db)
    store.insert(_logs(2000, pad=300))
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.db.execute("PRAGMA cache_size = 1")
    store.db.execute("PRAGMA shrink_memory")
    subprocess.run([sys.executable, "-c", _SMASH, str(db)], check=True, timeout=60)
    calls = {"unsent": lambda: store.unsent(5000, 1 << 30),
             "backlog": store.backlog,
             "records": store.records,
             "oldest_unsent_wall_ns": store.oldest_unsent_wall_ns,
             "prune_sent": lambda: store.prune_sent(0)}
    for name, call in calls.items():
        with pytest.raises(StoreCorruptError):
            call()
    store.close()


def test_a_missing_table_is_a_telemetry_error(tmp_path):
    db = tmp_path / "telemetry.sqlite"
    store = TelemetryStore.open(db)
    other = sqlite3.connect(db)
    other.execute("DROP TABLE counters")
    other.commit()
    other.close()
    with pytest.raises(TelemetryError, match="counters"):
        store.counters()
    with pytest.raises(TelemetryError):
        store.bump({"overflow": 1})
    store.close()


def test_error_kinds_and_messages():
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode, full.sqlite_errorname = sqlite3.SQLITE_FULL, "SQLITE_FULL"
    assert isinstance(store_error(full, "cannot write"), StoreFullError)
    corrupt = sqlite3.DatabaseError("database disk image is malformed")
    corrupt.sqlite_errorcode, corrupt.sqlite_errorname = sqlite3.SQLITE_CORRUPT, "SQLITE_CORRUPT"
    assert isinstance(store_error(corrupt, "cannot read"), StoreCorruptError)
    assert isinstance(store_error(OSError(28, "No space left on device"), "x"), StoreFullError)
    error = store_error(sqlite3.OperationalError("attempt to write a readonly database"), "x")
    assert "read-only" in str(error) and "not corrupt" in str(error)
    assert not isinstance(error, StoreCorruptError)
