"""Issue 11, items 3 and 4: a full disk, a read-only store and a locked store, on real small
file systems (tmpfs mounts: these tests need root and are skipped without it) and real
processes.

3. With the store's file system full, the writer's error log went through the telemetry log
   handler back into the writer's own queue (616,694 log lines in 25 s), SIGTERM took 10 s,
   and on a 2 MB file system the WAL filled it and the store never recovered.
4. Every sqlite3.DatabaseError was taken for corruption: a full disk at start, a read-only
   store or a lock moved a healthy database (with unsent rows) aside as "corrupt".
"""

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from device.telemetry import (Record, Recorder, StoreAccessError, StoreBusyError,
                              StoreFullError, TelemetryLogHandler, TelemetryStore)
from device.telemetry import recorder_writer as recorder_module
from device.telemetry import store_errors as store_module
from fixtures_broker import config_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def small_fs(tmp_path):
    """A factory for tmpfs mounts of a given size (unmounted at the end)."""
    mounts: list[Path] = []

    def mount(size: str, name: str = "fs") -> Path:
        where = tmp_path / name
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755",
                               "tmpfs", str(where)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small file system ({done.stderr.strip()}); needs root")
        mounts.append(where)
        return where

    yield mount
    for where in reversed(mounts):
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _fill(fs: Path) -> Path:
    """Take every free block of the file system."""
    filler = fs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 16, 4096, 512, 1):
            block = b"\0" * size
            while True:
                try:
                    if os.write(fd, block) < size:
                        break
                except OSError:
                    break
    finally:
        os.close(fd)
    assert os.statvfs(fs).f_bavail == 0
    return filler


def _settings(fs: Path, **telemetry):
    cfg = config_for(fs.parent, None, telemetry={"db_path": str(fs / "telemetry.sqlite"),
                                                 **telemetry})
    return cfg.telemetry


def _logs(n: int, start: int = 0) -> list[Record]:
    return [Record("log", 1, 1, {"severity": "INFO", "event": "frame", "i": start + i,
                                 "pad": "p" * 100}) for i in range(n)]


class _Counter(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.telemetry = 0

    def emit(self, record):
        if record.name.startswith("device.telemetry"):
            self.telemetry += 1


@contextlib.contextmanager
def _root_logging(recorder):
    root = logging.getLogger()
    level = root.level
    counter, handler = _Counter(), TelemetryLogHandler(recorder, logging.INFO)
    root.setLevel(logging.INFO)
    root.addHandler(counter)
    root.addHandler(handler)
    try:
        yield counter
    finally:
        root.removeHandler(handler)
        root.removeHandler(counter)
        root.setLevel(level)


def _wait(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# --- 3. no storm, back-off, recovery ----------------------------------------------------------

@pytest.mark.slow
def test_a_full_disk_is_no_storm_loses_nothing_queued_and_recovers(small_fs, monkeypatch):
    monkeypatch.setattr(recorder_module, "_BACKOFF_MAX_S", 0.5)
    fs = small_fs("2m")
    s = _settings(fs, flush_interval_s=0.05)
    recorder = Recorder.open(s)
    with _root_logging(recorder) as counter:
        for i in range(200):
            recorder.log_event("INFO", "before", {"i": i})
        assert recorder.flush(10)
        filler = _fill(fs)

        start = time.monotonic()
        sent = 0
        while time.monotonic() - start < 3.0:            # the frame path carries on
            for _ in range(10):                            # ~3,000 records, ~0.4 MB
                recorder.log_event("INFO", "during", {"i": sent, "pad": "d" * 50})
                sent += 1
            time.sleep(0.01)
        stats = recorder.stats()
        assert stats.write_errors >= 2                     # it kept trying...
        assert stats.write_errors < 60                     # ...with growing delays
        assert stats.retry_in_s > 0
        assert counter.telemetry < 30, f"{counter.telemetry} log lines from telemetry"
        assert stats.overflow == 0

        filler.unlink()                                    # space returns
        assert _wait(lambda: recorder.stats().queued == 0 and recorder.stats().retry_in_s == 0,
                     15), recorder.stats()
        recorder.close()
        assert not recorder._thread.is_alive() and recorder.stats().lost == 0
    store = TelemetryStore.open(s.db_path, s)
    logs = [json.loads(r.body) for r in store.records("log")]
    assert [b["fields"]["i"] for b in logs if b["event"] == "during"] == list(range(sent))
    assert not [b for b in logs if b["logger"].startswith("device.telemetry")
                and b["event"] not in ("telemetry.recovered", "telemetry.evicted")]
    [recovered] = [b for b in logs if b["event"] == "telemetry.recovered"]
    assert recovered["fields"]["failures"] >= 2
    assert store.counters()["write_failures"] >= 2
    store.close()


def test_a_full_store_without_root_is_no_storm_either(tmp_path, monkeypatch):
    """The same without a mount (no root needed): SQLite's own limit (`PRAGMA
    max_page_count`) makes every write fail with SQLITE_FULL."""
    monkeypatch.setattr(recorder_module, "_BACKOFF_MAX_S", 0.5)
    s = config_for(tmp_path, None, telemetry={"flush_interval_s": 0.05}).telemetry
    recorder = Recorder.open(s)
    with _root_logging(recorder) as counter:
        recorder.log_event("INFO", "first")
        assert recorder.flush(10)
        db = recorder.store.db
        db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
        for i in range(3000):
            recorder.log_event("INFO", "during", {"i": i, "pad": "d" * 200})
            if i % 100 == 0:
                time.sleep(0.02)
        time.sleep(1.0)
        assert recorder.stats().write_errors >= 2
        assert counter.telemetry < 30, f"{counter.telemetry} log lines from telemetry"
        db.execute("PRAGMA max_page_count = 1000000")    # room again
        assert _wait(lambda: recorder.stats().queued == 0, 15), recorder.stats()
        recorder.close()
    store = TelemetryStore.open(s.db_path, s)
    logs = [json.loads(r.body) for r in store.records("log")]
    assert [b["fields"]["i"] for b in logs if b["event"] == "during"] == list(range(3000))
    assert store.counters()["write_failures"] >= 2
    store.close()


def test_close_during_a_full_disk_is_quick_and_counts_what_is_left(small_fs):
    fs = small_fs("2m")
    s = _settings(fs)
    recorder = Recorder.open(s)
    recorder.log_event("INFO", "first")
    assert recorder.flush(10)
    _fill(fs)
    for i in range(500):
        recorder.log_event("INFO", "late", {"i": i, "pad": "x" * 200})
    assert not recorder.flush(1.0)
    tries = recorder.stats().write_errors
    recorder.close()                                       # SIGTERM's path
    # one last try, not a wait through the back-off (no clock needed to say so)
    assert recorder.stats().write_errors - tries <= 2 and not recorder._thread.is_alive()
    # what the journal took before the disk filled is kept for the next start, not lost
    kept = recorder._journal.stats.appended - 1
    assert recorder.stats().lost == 500 - kept


def test_a_2mb_file_system_is_never_filled_by_the_store_itself(small_fs):
    """The WAL is kept to 1/8 of a small file system and the limit shrinks before the file
    system is full, so the store keeps taking writes (evicting oldest, counted)."""
    fs = small_fs("2m")
    s = _settings(fs, max_bytes=64 * 1024 * 1024)
    store = TelemetryStore.open(s.db_path, s)
    for n in range(60):                                    # ~4 MB of records
        store.insert(_logs(200, start=n * 200))
        store.enforce_limit()
        wal = Path(s.db_path + "-wal")
        assert not wal.exists() or wal.stat().st_size <= 2 * (2 * 1024 * 1024 // 8)
    frames = [json.loads(r.body) for r in store.records("log")]
    assert [b["i"] for b in frames if b["event"] == "frame"][-1] == 60 * 200 - 1
    counters = store.counters()
    assert counters["evicted.log"] > 0
    assert os.statvfs(fs).f_bavail * os.statvfs(fs).f_frsize > 200 * 1024
    store.close()


# --- 4. healthy stores are not quarantined -----------------------------------------------------

def _healthy_store(s, n=300) -> int:
    store = TelemetryStore.open(s.db_path, s)
    last = store.insert(_logs(n))
    store.close()
    return last


def _corrupt_copies(fs: Path) -> list[Path]:
    return list(fs.glob("telemetry.sqlite.corrupt-*"))


def test_a_full_disk_at_start_is_reported_retried_and_never_quarantined(small_fs, monkeypatch):
    monkeypatch.setattr(recorder_module, "_BACKOFF_MAX_S", 0.3)
    fs = small_fs("2m")
    s = _settings(fs, flush_interval_s=0.05)
    _healthy_store(s)
    filler = _fill(fs)

    with pytest.raises(StoreFullError, match="full"):
        TelemetryStore.open(s.db_path, s)
    assert not _corrupt_copies(fs)
    recorder = Recorder.open(s)                            # the pipeline starts anyway
    recorder.audit("model_activated", {"model": "m", "version": "2"})
    recorder.log_event("INFO", "while full")
    time.sleep(0.5)
    assert recorder.stats().write_errors >= 1
    filler.unlink()
    assert recorder.flush(10)
    recorder.close()

    assert not _corrupt_copies(fs)
    store = TelemetryStore.open(s.db_path, s)
    assert store.backlog() == {"audit": 1, "log": 300 + 2}   # + while full, recovered
    assert store.last_seq() == 303
    store.close()


def test_a_read_only_store_is_reported_and_kept(small_fs):
    fs = small_fs("4m")
    s = _settings(fs)
    _healthy_store(s)
    subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
    try:
        with pytest.raises(StoreAccessError, match="read-only"):
            TelemetryStore.open(s.db_path, s)
        with pytest.raises(StoreAccessError):
            TelemetryStore.open(s.db_path, s, quarantine=False)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(fs)], check=True)
    assert not _corrupt_copies(fs)
    store = TelemetryStore.open(s.db_path, s)
    assert store.backlog() == {"log": 300}
    store.close()


_LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA locking_mode = EXCLUSIVE")
conn.execute("BEGIN EXCLUSIVE")
conn.execute("INSERT INTO meta(key, value) VALUES ('locked', 'yes')")
print("locked", flush=True)
time.sleep(30)
"""


def test_a_locked_store_is_busy_not_corrupt(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.3)
    s = config_for(tmp_path, None).telemetry
    _healthy_store(s)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    locker = subprocess.Popen([sys.executable, "-c", _LOCKER, s.db_path], env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        with pytest.raises(StoreBusyError, match="locked"):
            TelemetryStore.open(s.db_path, s)
    finally:
        locker.kill()
        locker.wait()
    assert not list(tmp_path.glob("telemetry.sqlite.corrupt-*"))
    store = TelemetryStore.open(s.db_path, s)
    assert store.backlog() == {"log": 300}
    store.close()
