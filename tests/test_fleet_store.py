"""The fleet store's schema steps, retention and the store factory, on SQLite and PostgreSQL
(`fleet_db`/`fleet_store` run each test on both)."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from cloud_sync import batch as batch_codec
from cloud_sync.errors import FleetStoreError
from cloud_sync.fleet import cli as fleet_cli
from cloud_sync.fleet import migrations
from cloud_sync.fleet.store import open_fleet_store
from device.telemetry.records import StoredRecord

DAY = 86_400 * 10**9
NOW = 1_800_000_000 * 10**9


def _batch(device: str, seqs: range, boot: str = "b1") -> batch_codec.Batch:
    """Records one second apart by the monotonic clock of `boot`; sent right after."""
    body = json.dumps({"severity": "INFO"})
    records = [StoredRecord(s, "log", 1, 10**12 + i * 10**9, boot, body)
               for i, s in enumerate(seqs)]
    sent_mono = 10**12 + len(seqs) * 10**9
    return batch_codec.decode(batch_codec.encode(device, boot, (NOW, sent_mono), records),
                              1 << 20)


def test_every_schema_step_is_applied_once_and_recorded(fleet_db):
    store = open_fleet_store(fleet_db)
    versions = store.execute("SELECT version, name FROM schema_version ORDER BY version")
    assert versions == [(m.version, m.name) for m in migrations.MIGRATIONS]
    store.close()
    again = open_fleet_store(fleet_db)                      # reopening applies nothing
    assert again.execute("SELECT count(*) FROM schema_version") == [
        (len(migrations.MIGRATIONS),)]
    again.close()


def test_a_database_newer_than_this_code_is_refused(fleet_db):
    store = open_fleet_store(fleet_db)
    store.execute("INSERT INTO schema_version(version, name, applied_ns) VALUES (?, ?, ?)",
                  [migrations.LATEST + 1, "from the future", 1])
    store.close()
    with pytest.raises(FleetStoreError, match=f"schema version {migrations.LATEST + 1}; "
                                              f"this edgelens knows up to {migrations.LATEST}"):
        open_fleet_store(fleet_db)


def test_a_sqlite_file_from_before_versioning_takes_the_steps_and_keeps_its_rows(tmp_path):
    db = tmp_path / "fleet.sqlite"
    conn = sqlite3.connect(db)
    for statement in migrations.MIGRATIONS[0].sqlite:       # the tables as they were made
        conn.execute(statement)
    conn.execute("INSERT INTO records VALUES ('dev-a', 7, 'log', 1, 1, 'b', 1, 1, '{}')")
    conn.commit()
    conn.close()
    store = open_fleet_store(db)
    assert store.seqs("dev-a") == [7]
    assert [v for (v,) in store.execute("SELECT version FROM schema_version")] == [1, 2]
    store.close()


@pytest.mark.postgres
def test_workers_opening_one_new_database_at_once_apply_each_step_once(postgres_url):
    stores, errors = [], []

    def open_one():
        try:
            stores.append(open_fleet_store(postgres_url))
        except FleetStoreError as exc:
            errors.append(exc)
    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(stores) == 4
    assert stores[0].execute("SELECT version FROM schema_version ORDER BY version") == [
        (m.version,) for m in migrations.MIGRATIONS]
    for store in stores:
        store.close()


def test_prune_deletes_records_older_than_the_cut_by_fleet_time(fleet_store):
    """Fleet time, not the device's wall clock (1 ns here): 10 records of 5 days ago and 5 of
    one hour ago; a cut at 2 days keeps the 5."""
    old = _batch("dev-a", range(1, 11), boot="b1")
    fleet_store.insert_batch(old, NOW - 5 * DAY, "w")
    new = _batch("dev-a", range(11, 16), boot="b2")            # rebooted since
    fleet_store.insert_batch(new, NOW - 3600 * 10**9, "w")
    assert fleet_store.prune(NOW - 2 * DAY) == 10
    assert fleet_store.seqs("dev-a") == list(range(11, 16))
    assert fleet_store.prune(NOW - 2 * DAY) == 0


def test_prune_command_reports_what_it_deleted(fleet_db, capsys):
    store = open_fleet_store(fleet_db)
    store.insert_batch(_batch("dev-a", range(1, 4)), 10**9, "w")   # 1970
    store.close()
    assert fleet_cli.main(["prune", "--db", fleet_db, "--older-than", "30"]) == 0
    assert capsys.readouterr().out == "pruned 3 records older than 30 days\n"
    check = open_fleet_store(fleet_db)
    assert check.record_count() == 0
    check.close()


def test_prune_refuses_a_retention_that_is_not_positive(fleet_db, capsys):
    assert fleet_cli.main(["prune", "--db", fleet_db, "--older-than", "0"]) == 2
    assert "--older-than must be more than 0 days" in capsys.readouterr().err


@pytest.mark.postgres
def test_a_connection_the_server_dropped_costs_one_transaction_then_the_pool_recovers(
        postgres_url):
    """PostgreSQL restarted or the connection killed: the next transaction fails with one
    line (ingest retries it, then has the broker redeliver), the pool drops that connection
    and the one after works."""
    import psycopg
    store = open_fleet_store(postgres_url)
    assert store.record_count() == 0
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                      "datname = current_database() AND pid <> pg_backend_pid()")
    with pytest.raises(FleetStoreError, match=r"^cannot run a statement in postgresql://"
                                              r"edgelens@127\.0\.0\.1:\d+/test_\d+: "):
        store.record_count()
    assert store.record_count() == 0
    store.close()
