"""The recorder's journal (device/telemetry/journal.py): a record handed to the recorder survives
a SIGKILL of the process, and is stored exactly once after the next start. Real processes, real
SIGKILLs, real SQLite files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from device import config
from device.telemetry.journal import Journal, encode
from device.telemetry.recorder import Recorder
from device.telemetry.store import TelemetryStore

ROOT = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent("""
    import sys, time
    from device import config
    from device.telemetry import journal
    from device.telemetry.recorder import Recorder
    journal.SEGMENT_BYTES = int(sys.argv[5])     # small segments: sealed and deleted often
    cfg = config.parse_text(sys.argv[1])
    recorder = Recorder.open(cfg.telemetry)
    start = int(sys.argv[2])
    for i in range(start, start + 100_000):
        recorder.log_event("INFO", "tick", {"i": i})
        if sys.argv[4] == "audit" and i % 7 == 0:
            recorder.audit("mark", {"i": i})    # wakes the writer: a commit at once
        print(i, flush=True)                 # handed over: it must not be lost
        time.sleep(float(sys.argv[3]))
""")


def _settings(db: Path, *, journal: bool = True, flush_s: float = 0.5, batch: int = 1000):
    text = (f'[telemetry]\ndb_path = "{db}"\njournal = {str(journal).lower()}\n'
            f"flush_interval_s = {flush_s}\nbatch_size = {batch}\nsystem_metrics = false\n")
    return text, config.parse_text(text).telemetry


def _run_and_kill(text: str, start: int, after: int, pause_s: float, audit: bool = False
                  ) -> int:
    """A child that records ticks from `start` (and an audit record every 7th with `audit`);
    SIGKILLed once it handed over `after` of them. The last tick it reported handed over."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, text, str(start), str(pause_s),
                              "audit" if audit else "-", "2048"],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    last = start - 1
    try:
        for line in child.stdout:
            last = int(line)
            if last >= start + after - 1:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert last >= start + after - 1, child.stderr.read()
    return last


def _ticks(db: Path) -> list[int]:
    store = TelemetryStore.open(db)
    try:
        return [json.loads(r.body)["fields"]["i"] for r in store.records("log")
                if json.loads(r.body)["event"] == "tick"]
    finally:
        store.close()


def _reopen(settings) -> None:
    """The next start: inserts what the journal kept, then a clean stop."""
    recorder = Recorder.open(settings)
    assert recorder.flush(30)
    recorder.close()


def test_a_sigkill_loses_nothing_the_recorder_was_handed(tmp_path):
    """The writer never commits in the child (a 60 s flush interval): without the journal
    every tick is lost; with it, every tick comes back at the next start, once."""
    db = tmp_path / "t.sqlite"
    text, settings = _settings(db, flush_s=60.0, batch=100_000)
    last = _run_and_kill(text, 0, 300, 0.0)
    assert _ticks(db) == []                                   # nothing committed by the child
    _reopen(settings)
    ticks = _ticks(db)
    assert sorted(ticks) == list(range(len(ticks))) and len(ticks) >= last + 1
    assert not list((tmp_path / "t.sqlite.journal").glob("*.seg"))   # all done, deleted

    plain = tmp_path / "plain.sqlite"
    text, settings = _settings(plain, journal=False, flush_s=60.0, batch=100_000)
    _run_and_kill(text, 0, 300, 0.0)
    _reopen(settings)
    assert _ticks(plain) == []            # the gap the journal closes: all 300+ were lost


@pytest.mark.slow
def test_kills_at_any_moment_of_the_commit_cycle_lose_and_duplicate_nothing(tmp_path):
    """Eight children, each killed while its writer commits every 10 ms and the journal
    deletes segments: after each next start every handed-over tick is stored exactly once."""
    db = tmp_path / "t.sqlite"
    text, settings = _settings(db, flush_s=0.01, batch=7)
    start, handed = 0, set()
    for round_ in range(8):
        last = _run_and_kill(text, start, 40 + 13 * round_, 0.001, audit=True)
        handed |= set(range(start, last + 1))
        _reopen(settings)
        ticks = _ticks(db)
        assert len(ticks) == len(set(ticks)), "a tick was stored twice"
        missing = set(range(start, last + 1)) - set(ticks)
        assert not missing, f"round {round_}: lost {sorted(missing)[:10]}"
        start = max(ticks) + 1
    assert handed <= set(_ticks(db))
    store = TelemetryStore.open(db)
    audits = [json.loads(r.body)["i"] for r in store.records("audit")]
    store.close()
    assert len(audits) == len(set(audits)), "an audit record was stored twice"
    assert {i for i in handed if i % 7 == 0} <= set(audits)


def test_journal_reads_back_what_was_not_done_and_skips_a_torn_tail(tmp_path):
    db = tmp_path / "t.sqlite"
    journal, entries = Journal.open(db)
    assert entries == []
    jseqs = [journal.append(encode("log", i, i, "boot", json.dumps({"i": i}))) for i in range(5)]
    assert jseqs == [1, 2, 3, 4, 5]
    journal.done(jseqs[:2])
    journal.close()                           # the open segment is sealed, 3 outstanding
    [segment] = (tmp_path / "t.sqlite.journal").glob("*.seg")
    with open(segment, "ab") as f:            # a write cut short by the kill
        f.write(b"\x40\x00\x00\x00\x06\x00")
    journal, entries = Journal.open(db)
    assert [e.jseq for e in entries] == [1, 2, 3, 4, 5]   # done-ness is the store's to know
    assert entries[0].body == {"i": 0} and entries[0].boot_id == "boot"
    assert journal.stats.corrupt == 1
    assert journal.append(encode("log", 9, 9, "boot", "{}")) == 6   # numbers keep growing
    journal.done(list(range(1, 7)))
    journal.close()
    assert not list((tmp_path / "t.sqlite.journal").glob("*.seg"))
    journal, entries = Journal.open(db)       # every segment gone: `next` keeps the count
    assert entries == [] and journal.append(encode("log", 1, 1, "b", "{}")) == 7
    journal.close()


def test_one_process_journals_a_store_and_a_second_recorder_runs_without(tmp_path, caplog):
    _text, settings = _settings(tmp_path / "t.sqlite")
    first = Recorder.open(settings)
    second = Recorder.open(settings)
    try:
        assert first._journal is not None and second._journal is None
        assert "held by another process" in caplog.text
        second.log_event("INFO", "from the second", {})
        assert second.flush(10)
    finally:
        second.close()
        first.close()


def test_a_store_that_cannot_be_written_keeps_the_journal_for_the_next_start(tmp_path):
    """Closing with the store refusing writes: the records are kept in the journal (not
    counted lost) and inserted by the next start."""
    db = tmp_path / "t.sqlite"
    _text, settings = _settings(db, flush_s=60.0, batch=100_000)
    recorder = Recorder.open(settings)
    for i in range(20):
        recorder.log_event("INFO", "tick", {"i": i})
    recorder.store.insert = _refuse                # what a full disk does to the insert
    recorder.close(timeout=5)
    assert recorder.stats().lost == 0
    _reopen(settings)
    assert sorted(_ticks(db)) == list(range(20))


def _refuse(records):
    from device.telemetry.store import StoreFullError
    raise StoreFullError("database or disk is full")


@pytest.mark.parametrize("payload", [b"", b"[1,2]", b'["nokind",1,2,"b",{}]',
                                     b'["log",1,2,"b","not a dict"]'])
def test_entries_that_are_not_records_are_skipped_and_counted(tmp_path, payload):
    db = tmp_path / "t.sqlite"
    journal, _ = Journal.open(db)
    journal.append(payload)
    journal.append(encode("log", 1, 1, "b", json.dumps(
        {"severity": "INFO", "event": "ok", "logger": "", "fields": {}})))
    journal.close()
    _text, settings = _settings(db)
    recorder = Recorder.open(settings)
    assert recorder.flush(10)
    corrupt = recorder._journal.stats.corrupt
    recorder.close()
    store = TelemetryStore.open(db)
    events = [json.loads(r.body)["event"] for r in store.records("log")]
    store.close()
    assert "ok" in events and corrupt >= 1
