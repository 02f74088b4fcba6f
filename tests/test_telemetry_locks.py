"""Issue 11, item 1: telemetry lost in normal operation.

SQLite keeps a SHARED lock on a WAL database for as long as a connection is open; POSIX
(fcntl) locks belong to the process, and closing *any* descriptor of the file drops all of
them. When edgelens-sync's audit sink opened a second store, its header check did
`open(db).read(16)` and closed it: the agent's lock was gone, the pipeline's next stop believed
it was the last connection, checkpointed and deleted the WAL under the running agent, and
everything the agent process wrote afterwards went into an unlinked file. These tests use real
processes for the pipeline and for the reader that counts what the fleet would get.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from cloud_sync.update_agent import AuditSink
from device.telemetry import Record, TelemetryStore
from fixtures_broker import config_for

ROOT = Path(__file__).resolve().parent.parent

_PIPELINE = """
import sys
from device.telemetry import Record, TelemetryStore
store = TelemetryStore.open(sys.argv[1])
store.insert([Record("log", 1, 1, {"severity": "INFO", "event": "frame", "i": i})
              for i in range(int(sys.argv[2]))])
store.close()                       # a normal pipeline stop
"""

_COUNT = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
print(conn.execute("SELECT count(*) FROM records").fetchone()[0])
print(conn.execute("SELECT count(*) FROM records WHERE kind = 'audit'").fetchone()[0])
conn.close()
"""


def _process(code: str, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _logs(n: int, start: int = 0) -> list[Record]:
    return [Record("log", 1, 1, {"severity": "INFO", "event": "agent", "i": start + i})
            for i in range(n)]


def _db_fds(path: Path) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                count += 1
        except OSError:
            pass
    return count


def test_audit_records_in_the_sync_process_cost_no_records_when_the_pipeline_stops(tmp_path):
    cfg = config_for(tmp_path, None)
    s = cfg.telemetry
    db = Path(s.db_path)
    agent = TelemetryStore.open(db, s, quarantine=False)        # what the sync agent holds
    agent.insert(_logs(500))
    sink = AuditSink(s)                                         # the update agent's
    sink("update_offered", {"model": "recognizer", "version": "4"})
    assert sink._store.db.conn is agent.db.conn, "a second connection in the sync process"

    _process(_PIPELINE, str(db), "500")        # the pipeline starts, writes and stops

    agent.insert(_logs(2000, start=500))       # the agent process keeps going
    sink("model_activated", {"model": "recognizer", "version": "4"})
    assert Path(str(db) + "-wal").exists(), "the WAL was deleted under the running agent"

    total, audits = map(int, _process(_COUNT, str(db)).split())
    assert audits == 2
    assert total == 500 + 500 + 2000 + 2
    sink.close()
    agent.close()


def test_a_second_store_in_one_process_shares_the_connection_and_keeps_the_lock(tmp_path):
    db = tmp_path / "telemetry.sqlite"
    first = TelemetryStore.open(db)
    first.insert(_logs(10))
    second = TelemetryStore.open(db, quarantine=False)    # old code: open()/close() the file
    assert second.db.conn is first.db.conn
    assert _db_fds(db) <= 2        # the connection's, and at most one SQLite keeps for reuse

    _process(_PIPELINE, str(db), "5")
    second.insert(_logs(7, start=10))
    total, _ = map(int, _process(_COUNT, str(db)).split())
    assert total == 10 + 5 + 7

    first.close()                  # the connection stays open for `second`
    assert second.insert(_logs(1, start=17)) == 23
    second.close()
    assert _db_fds(db) == 0


def test_the_audit_sink_keeps_records_the_store_did_not_take(tmp_path, monkeypatch):
    import sqlite3

    from device.telemetry import store_errors as store_module
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.2)
    cfg = config_for(tmp_path, None)
    s = cfg.telemetry
    agent = TelemetryStore.open(s.db_path, s, quarantine=False)
    sink = AuditSink(s)
    other = sqlite3.connect(s.db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")                 # another writer holds the lock
    sink("update_offered", {"model": "m", "version": "2"})      # not stored yet: kept
    other.execute("COMMIT")
    other.close()
    sink("model_activated", {"model": "m", "version": "2"})
    assert [json.loads(r.body)["action"] for r in agent.records("audit")] == [
        "update_offered", "model_activated"]
    sink.close()
    agent.close()
