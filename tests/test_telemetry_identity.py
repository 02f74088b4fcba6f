"""Issue 11, item 5: the store file is not always the one we think it is.

- A WAL from another database silently replaced 2,000 records and the sequence restarted at
  51 (numbers the fleet already had).
- A store deleted or truncated while running took 10,199 records into a file that no longer
  existed, with no error.

The store checks the file's identity (st_dev/st_ino), its header and its sequence on a timer
and on errors, reopens, carries unsent records over under their own numbers, and keeps the
highest issued number in the `.seq` side file so that no number is ever handed out twice.
Real SQLite files throughout; the pipeline (recorder) and a sync-agent-like reader run as
separate processes where it matters.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from device.telemetry import Record, Recorder, TelemetryStore
from device.telemetry import recorder_writer as recorder_module
from fixtures_broker import config_for

ROOT = Path(__file__).resolve().parent.parent


def _logs(n: int, event: str = "frame", start: int = 0) -> list[Record]:
    return [Record("log", 1, 1, {"severity": "INFO", "event": event, "i": start + i})
            for i in range(n)]


def _actions(store) -> list[str]:
    return [json.loads(r.body)["action"] for r in store.records("audit")]


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT))


def _query(db: Path, sql: str) -> list:
    """What another process (the sync agent, the fleet) reads from the file."""
    code = ("import json, sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "print(json.dumps(c.execute(sys.argv[2]).fetchall())); c.close()")
    done = subprocess.run([sys.executable, "-c", code, str(db), sql], env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# --- a WAL or a file from another database ------------------------------------------------------

_OTHER_STORE_WITH_LIVE_WAL = """
import os, shutil, sys
from device.telemetry import Record, TelemetryStore
store = TelemetryStore.open(sys.argv[1])
store.insert([Record("log", 1, 1, {"severity": "INFO", "event": "other", "i": i})
              for i in range(50)])
shutil.copy(sys.argv[1] + "-wal", sys.argv[2])   # its WAL, as it is while it runs
os._exit(0)                                      # no checkpoint: the WAL stays as it was
"""


def test_a_wal_from_another_database_is_set_aside_and_no_number_is_reused(tmp_path):
    db = tmp_path / "telemetry.sqlite"
    ours = TelemetryStore.open(db)
    for n in range(4):
        ours.insert(_logs(500, start=n * 500))
    assert ours.last_seq() == 2000
    ours.close()                                   # clean stop: everything in the file
    other = tmp_path / "other" / "telemetry.sqlite"
    other.parent.mkdir()
    subprocess.run([sys.executable, "-c", _OTHER_STORE_WITH_LIVE_WAL, str(other),
                    str(db) + "-wal"], env=_env(), check=True, timeout=60)

    store = TelemetryStore.open(db, quarantine=False)     # e.g. the sync agent starts first
    assert store.backlog() == {"audit": 1, "log": 2000}
    assert _actions(store) == ["foreign_wal_set_aside"]
    assert store.insert(_logs(1, "next")) > 2000
    assert len(list(tmp_path.glob("telemetry.sqlite-wal.foreign-*"))) == 1
    store.close()
    seqs = [row[0] for row in _query(db, "SELECT seq FROM records ORDER BY seq")]
    assert len(seqs) == len(set(seqs)) == 2002


def test_a_restored_older_copy_continues_above_every_number_handed_out(tmp_path):
    db = tmp_path / "telemetry.sqlite"
    store = TelemetryStore.open(db)
    store.insert(_logs(50))
    store.close()
    shutil.copy(db, tmp_path / "backup.sqlite")
    store = TelemetryStore.open(db)
    store.insert(_logs(2000, start=50))            # the fleet has 1..2050 now
    store.close()
    shutil.copy(tmp_path / "backup.sqlite", db)    # someone restores the old copy

    store = TelemetryStore.open(db)
    assert _actions(store) == ["sequence_regressed"]
    [audit] = store.records("audit")
    assert audit.seq > 2050
    assert store.insert(_logs(1, "next")) > 2050
    store.close()


def test_another_devices_store_copied_in_is_numbered_above_ours(tmp_path):
    db = tmp_path / "telemetry.sqlite"
    store = TelemetryStore.open(db)
    store.insert(_logs(300))
    store.close()
    other = tmp_path / "other.sqlite"
    foreign = TelemetryStore.open(other)
    foreign.insert(_logs(10_000, "other"))        # further on than ours, but not ours
    foreign.close()
    os.replace(other, db)

    store = TelemetryStore.open(db)
    assert _actions(store) == ["store_identity_changed"]
    assert store.insert(_logs(1, "next")) > 10_000
    store.close()


# --- deleted or truncated while running ----------------------------------------------------------

_AGENT = """
import json, sys, threading, time
from device.telemetry import TelemetryStore
store = TelemetryStore.open(sys.argv[1], quarantine=False)
print("open", flush=True)
report = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), report.set()), daemon=True).start()
while not report.is_set():
    store.replaced()                      # what the sync agent does every few seconds
    time.sleep(0.1)
store.replaced()
print(json.dumps(store.backlog()), flush=True)
store.close()
"""


def _start_agent(db: Path) -> subprocess.Popen:
    agent = subprocess.Popen([sys.executable, "-c", _AGENT, str(db)], env=_env(),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert agent.stdout.readline().strip() == "open", agent.stderr.read()
    return agent


def _produce(recorder, event: str, n: int) -> None:
    for i in range(n):
        recorder.log_event("INFO", event, {"i": i})
        if i % 500 == 499:
            time.sleep(0.02)


def test_a_store_deleted_while_running_is_reopened_and_nothing_is_lost(tmp_path, monkeypatch):
    monkeypatch.setattr(recorder_module, "_FILE_CHECK_S", 0.2)
    s = config_for(tmp_path, None, telemetry={"flush_interval_s": 0.05}).telemetry
    db = Path(s.db_path)
    recorder = Recorder.open(s)
    _produce(recorder, "before", 3000)
    assert recorder.flush(10)
    agent = _start_agent(db)                      # the sync agent, another process
    before = recorder.store.last_seq()

    os.remove(db)                                  # someone cleans up (-wal/-shm stay)
    _produce(recorder, "after", 7000)
    assert recorder.flush(10)
    recorder.close()                               # checks the file one last time
    out, err = agent.communicate("report\n", timeout=60)
    assert agent.returncode == 0, err

    rows = _query(db, "SELECT seq, kind, body FROM records ORDER BY seq")
    seqs = [r[0] for r in rows]
    assert len(seqs) == len(set(seqs))
    events = [json.loads(r[2]).get("event") for r in rows if r[1] == "log"]
    assert events.count("before") == 3000 and events.count("after") == 7000
    audits = [json.loads(r[2]) for r in rows if r[1] == "audit"]
    assert {a["action"] for a in audits} == {"store_reopened"}    # by each process
    assert max(a["salvaged_unsent"] for a in audits) >= 3000   # under their own numbers
    assert max(r[0] for r in rows if r[1] == "audit") > before + 7000
    # the sync agent followed the pipeline to the new file
    backlog = json.loads(out.strip().splitlines()[-1])
    assert backlog.get("log", 0) >= 10_000


def test_a_store_truncated_while_running_is_quarantined_and_numbers_never_repeat(
        tmp_path, monkeypatch):
    monkeypatch.setattr(recorder_module, "_FILE_CHECK_S", 0.2)
    s = config_for(tmp_path, None, telemetry={"flush_interval_s": 0.05}).telemetry
    db = Path(s.db_path)
    recorder = Recorder.open(s)
    _produce(recorder, "before", 2000)
    assert recorder.flush(10)
    recorder.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")   # all of it in the file
    issued = recorder.store.last_seq()

    os.truncate(db, 0)
    _produce(recorder, "after", 3000)
    assert recorder.flush(10)
    time.sleep(1.0)
    recorder.close()

    assert len([p for p in tmp_path.glob("telemetry.sqlite.corrupt-*")
                if not p.name.endswith(("-wal", "-shm"))]) == 1
    rows = _query(db, "SELECT seq, kind, body FROM records ORDER BY seq")
    seqs = [r[0] for r in rows]
    assert len(seqs) == len(set(seqs))
    events = [json.loads(r[2]).get("event") for r in rows if r[1] == "log"]
    assert events.count("after") == 3000          # none went into the truncated file
    [reopened] = [json.loads(r[2]) for r in rows if r[1] == "audit"]
    assert reopened["action"] == "store_reopened" and "truncated" in reopened["reason"]
    fresh = [r[0] for r in rows if r[1] == "audit" or json.loads(r[2]).get("event") == "after"]
    assert min(fresh) > issued                    # numbers the fleet may have: never again
