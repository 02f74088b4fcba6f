"""The telemetry store against real SQLite files: round trip, sequence numbers, priorities,
the disk limit's eviction order, and quarantine of corrupt files."""

import json

import pytest

from device.errors import StoreCorruptError
from device.telemetry import Clock, Record, TelemetryStore
from fixtures_broker import config_for


class FixedClock(Clock):
    def __init__(self):
        super().__init__(boot_id="boot-A")
        self.t = 1_000

    def now(self):
        self.t += 1
        return 1_700_000_000_000_000_000 + self.t, self.t


def _settings(tmp_path, **telemetry):
    return config_for(tmp_path, None, telemetry=telemetry).telemetry


def _open(tmp_path, **telemetry):
    s = _settings(tmp_path, **telemetry)
    return TelemetryStore.open(s.db_path, s, clock=FixedClock())


def _rec(kind, body, t=5):
    return Record(kind, 1_700_000_000_000_000_000 + t, t, body)


def test_insert_and_read_back_whole_records(tmp_path):
    store = _open(tmp_path)
    last = store.insert([_rec("log", {"severity": "INFO", "event": "a", "fields": {"n": 1}}),
                         _rec("metric", {"counts": {"frames_captured": 30}}, t=6)])
    assert last == 2
    assert [(r.seq, r.kind, r.wall_ns, r.mono_ns, r.boot_id, json.loads(r.body))
            for r in store.records()] == [
        (1, "log", 1_700_000_000_000_000_005, 5, "boot-A",
         {"severity": "INFO", "event": "a", "fields": {"n": 1}}),
        (2, "metric", 1_700_000_000_000_000_006, 6, "boot-A",
         {"counts": {"frames_captured": 30}})]
    assert store.backlog() == {"log": 1, "metric": 1}
    store.close()


def test_unsent_comes_audit_and_errors_first_then_by_age(tmp_path):
    store = _open(tmp_path)
    store.insert([_rec("metric", {"m": 1}), _rec("log", {"severity": "INFO"}),
                  _rec("prediction", {"p": 1}), _rec("log", {"severity": "ERROR"}),
                  _rec("audit", {"action": "model_installed"}), _rec("feedback", {"f": 1})])
    order = [(r.seq, r.kind) for r in store.unsent(100, 1 << 20)]
    assert order == [(5, "audit"), (4, "log"), (6, "feedback"), (2, "log"),
                     (3, "prediction"), (1, "metric")]
    assert [r.seq for r in store.unsent(2, 1 << 20, skip=[5])] == [4, 6]
    store.mark_sent([5, 4])
    assert [r.seq for r in store.unsent(100, 1 << 20)] == [6, 2, 3, 1]
    assert store.backlog() == {"feedback": 1, "log": 1, "metric": 1, "prediction": 1}
    store.close()


def test_unsent_respects_the_byte_limit_but_never_returns_nothing(tmp_path):
    store = _open(tmp_path)
    store.insert([_rec("log", {"x": "a" * 5000}) for _ in range(3)])
    assert len(store.unsent(100, 6000)) == 1
    assert len(store.unsent(100, 100)) == 1
    assert len(store.unsent(100, 20000)) == 3
    store.close()


def test_sequence_numbers_continue_after_reopen(tmp_path):
    store = _open(tmp_path)
    store.insert([_rec("log", {}) for _ in range(3)])
    store.close()
    store = _open(tmp_path)
    assert store.insert([_rec("log", {})]) == 4
    store.close()


def test_a_second_opener_that_found_the_new_file_empty_does_not_jump_the_sequence(tmp_path):
    """Pipeline and sync agent start together: both may see an empty new file. The one that
    gets to its start-up check second must not move the other's running sequence up by a
    whole reservation block (seen as 53 -> 100053 under load)."""
    first = _open(tmp_path)
    first.insert([_rec("log", {}) for _ in range(52)])
    second = _open(tmp_path)
    second._start_sequence_above_ceiling()  # what it does when it found the file empty
    assert first.insert([_rec("log", {})]) == 53
    first.close()
    second.close()


def test_garbage_file_is_quarantined_kept_and_audited(tmp_path):
    s = _settings(tmp_path)
    path = tmp_path / "telemetry.sqlite"
    path.write_bytes(b"this is not sqlite at all" * 100)
    store = TelemetryStore.open(s.db_path, s, clock=FixedClock())
    moved = list(tmp_path.glob("telemetry.sqlite.corrupt-*"))
    assert len(moved) == 1
    assert moved[0].read_bytes() == b"this is not sqlite at all" * 100
    audits = [json.loads(r.body) for r in store.records("audit")]
    assert audits == [{"action": "store_quarantined", "path": str(path),
                       "moved_to": str(moved[0]),
                       "reason": f"{path} does not start with the SQLite header"}]
    store.close()


def test_damaged_pages_are_detected_and_sequence_numbers_never_repeat(tmp_path):
    s = _settings(tmp_path)
    store = TelemetryStore.open(s.db_path, s, clock=FixedClock())
    store.insert([_rec("log", {"pad": "x" * 400}) for _ in range(500)])
    last = store.last_seq()
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    path = tmp_path / "telemetry.sqlite"
    data = bytearray(path.read_bytes())
    for offset in range(4096 * 3, len(data) - 4096, 4096):   # smash page headers
        data[offset:offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))

    with pytest.raises(StoreCorruptError):
        TelemetryStore.open(s.db_path, s, quarantine=False)
    store = TelemetryStore.open(s.db_path, s, clock=FixedClock())
    [audit] = store.records("audit")
    assert json.loads(audit.body)["action"] == "store_quarantined"
    assert audit.seq > last            # the fleet's (device, seq) key stays unique
    assert len(list(tmp_path.glob("telemetry.sqlite.corrupt-*"))) == 1
    store.close()


def _fill(store, kind, count, size):
    body = {"severity": "INFO", "pad": "x" * size} if kind == "log" else {"pad": "x" * size}
    for _ in range(count // 100):
        store.insert([_rec(kind, body) for _ in range(100)])


def test_disk_limit_evicts_metrics_then_predictions_then_logs_and_counts(tmp_path):
    store = _open(tmp_path, max_bytes=1024 * 1024)
    _fill(store, "audit", 100, 200)
    _fill(store, "log", 600, 500)          # ~0.3 MB
    _fill(store, "prediction", 900, 500)   # ~0.55 MB
    _fill(store, "metric", 400, 500)       # ~0.25 MB: over the limit now
    assert store.used_bytes() > store.max_bytes

    counts = store.enforce_limit()

    assert store.used_bytes() <= store.max_bytes
    assert counts["evicted.metric"] == 400            # all metrics went first
    assert 0 < counts["evicted.prediction"] < 900     # then the oldest predictions
    assert "evicted.log" not in counts and "evicted.audit" not in counts
    assert store.counters() == counts
    remaining = store.backlog()
    assert remaining["audit"] == 100 and remaining["log"] == 600 + 1   # + the notice
    assert "metric" not in remaining
    kept = [r.seq for r in store.records("prediction")]
    assert kept == list(range(kept[0], kept[0] + len(kept)))           # oldest went first
    [notice] = [json.loads(r.body) for r in store.records("log")
                if json.loads(r.body).get("event") == "telemetry.evicted"]
    assert notice["severity"] == "WARNING"
    assert notice["fields"]["evicted"] == {"metric": 400,
                                           "prediction": counts["evicted.prediction"]}
    store.close()


def test_sent_records_are_evicted_before_any_unsent_one(tmp_path):
    store = _open(tmp_path, max_bytes=1024 * 1024)
    _fill(store, "audit", 1000, 500)
    store.mark_sent([r.seq for r in store.records()])
    _fill(store, "metric", 1200, 500)
    counts = store.enforce_limit()
    assert set(counts) == {"pruned_sent"}   # only delivered records went
    assert store.backlog() == {"metric": 1200}
    store.close()


def test_evicting_audit_records_is_never_silent(tmp_path):
    store = _open(tmp_path, max_bytes=1024 * 1024)
    _fill(store, "audit", 3000, 500)   # audit alone over the limit
    counts = store.enforce_limit()
    assert counts["evicted.audit"] > 0
    last = json.loads(store.records("audit")[-1].body)
    assert last == {"action": "audit_evicted", "count": counts["evicted.audit"],
                    "max_bytes": 1024 * 1024}
    store.close()


def test_prune_sent_drops_only_delivered_records(tmp_path):
    store = _open(tmp_path)
    store.insert([_rec("log", {}) for _ in range(4)])
    store.mark_sent([1, 2])
    assert store.prune_sent(older_than_s=0) == 2
    assert [r.seq for r in store.records()] == [3, 4]
    store.close()


def test_a_body_that_is_not_json_does_not_lose_its_batch(tmp_path):
    store = _open(tmp_path)
    loop: dict = {}
    loop["self"] = loop
    store.insert([_rec("log", {"ok": 1}), _rec("log", loop), _rec("log", {"ok": 2})])
    bodies = [json.loads(r.body) for r in store.records()]
    assert bodies[0] == {"ok": 1} and bodies[2] == {"ok": 2}
    assert bodies[1]["unencodable"].startswith("{'self'")
    store.close()
