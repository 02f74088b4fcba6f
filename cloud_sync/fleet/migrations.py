"""The fleet database's schema as numbered steps, for SQLite and PostgreSQL alike.

Each `Migration` is applied once, in its own transaction together with its row in
`schema_version` (version, name, applied_ns), so a step is either wholly there or not at all.
Several ingest workers may start at once: on PostgreSQL the steps run under a transaction-level
advisory lock, on SQLite under `BEGIN IMMEDIATE`, and a step already recorded is skipped. A
database newer than this code is refused (FleetStoreError), never written to.

A new step goes at the end with the next number and both dialects; a released step is never
edited. Step 1 is written with IF NOT EXISTS so that SQLite files made before versioning
(the same tables, no `schema_version`) take it as a no-op.

Index plan for PostgreSQL (records grow by millions a day): the primary key (device, seq) is
the idempotency key every insert checks; (device, kind, ts_ns) serves every status query (one
device, one kind, a time window); a BRIN index on ts_ns (a few pages for millions of rows, as
ts_ns follows the order rows arrive in) serves retention (`prune`). Not time partitions:
PostgreSQL requires a partitioned table's unique keys to include the partition key, and ts_ns
(re-dated from the boot's smallest clock offset) or received_ns can differ between two
deliveries of the same record, so (device, seq) could no longer be unique and a redelivered
record could be stored twice. Text keys use the "C" collation: byte order, as SQLite sorts,
and cheaper btree comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloud_sync.errors import FleetStoreError


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


SCHEMA_VERSION_DDL = ("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                      "name TEXT NOT NULL, applied_ns BIGINT NOT NULL)")

# PostgreSQL: a record body as jsonb, or NULL when the stored text is not JSON (the views read
# rows another writer may have stored, as SQLite's json_valid guard does). jsonb refuses the
# escape \u0000 that JSON text may hold: such a body is read with it taken out.
_PG_TRY_JSONB = """
CREATE OR REPLACE FUNCTION edgelens_jsonb(body text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    RETURN body::jsonb;
EXCEPTION WHEN others THEN
    BEGIN
        RETURN replace(body, '\\u0000', '')::jsonb;
    EXCEPTION WHEN others THEN
        RETURN NULL;
    END;
END $$"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "records, devices, boots, workers, refused", sqlite=(
        """CREATE TABLE IF NOT EXISTS records (
            device TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
            wall_ns INTEGER NOT NULL, mono_ns INTEGER NOT NULL, boot_id TEXT NOT NULL,
            ts_ns INTEGER NOT NULL, received_ns INTEGER NOT NULL, body TEXT NOT NULL,
            PRIMARY KEY (device, seq))""",
        "CREATE INDEX IF NOT EXISTS records_by_kind ON records(device, kind, ts_ns)",
        """CREATE TABLE IF NOT EXISTS devices (
            device TEXT PRIMARY KEY, online INTEGER, availability_ns INTEGER,
            last_seen_ns INTEGER, status TEXT, status_ns INTEGER)""",
        """CREATE TABLE IF NOT EXISTS boots (
            device TEXT NOT NULL, boot_id TEXT NOT NULL, offset_ns INTEGER NOT NULL,
            PRIMARY KEY (device, boot_id))""",
        """CREATE TABLE IF NOT EXISTS workers (
            worker TEXT PRIMARY KEY, messages INTEGER NOT NULL DEFAULT 0,
            records INTEGER NOT NULL DEFAULT 0, duplicates INTEGER NOT NULL DEFAULT 0,
            dropped INTEGER NOT NULL DEFAULT 0, updated_ns INTEGER)""",
        """CREATE TABLE IF NOT EXISTS refused (
            device TEXT NOT NULL, reason TEXT NOT NULL, n INTEGER NOT NULL DEFAULT 0,
            last_ns INTEGER, PRIMARY KEY (device, reason))""",
    ), postgres=(
        """CREATE TABLE IF NOT EXISTS records (
            device TEXT COLLATE "C" NOT NULL, seq BIGINT NOT NULL, kind TEXT NOT NULL,
            wall_ns BIGINT NOT NULL, mono_ns BIGINT NOT NULL, boot_id TEXT NOT NULL,
            ts_ns BIGINT NOT NULL, received_ns BIGINT NOT NULL, body TEXT NOT NULL,
            PRIMARY KEY (device, seq))""",
        "CREATE INDEX IF NOT EXISTS records_by_kind ON records(device, kind, ts_ns)",
        """CREATE TABLE IF NOT EXISTS devices (
            device TEXT COLLATE "C" PRIMARY KEY, online INTEGER, availability_ns BIGINT,
            last_seen_ns BIGINT, status TEXT, status_ns BIGINT)""",
        """CREATE TABLE IF NOT EXISTS boots (
            device TEXT COLLATE "C" NOT NULL, boot_id TEXT COLLATE "C" NOT NULL,
            offset_ns BIGINT NOT NULL, PRIMARY KEY (device, boot_id))""",
        """CREATE TABLE IF NOT EXISTS workers (
            worker TEXT COLLATE "C" PRIMARY KEY, messages BIGINT NOT NULL DEFAULT 0,
            records BIGINT NOT NULL DEFAULT 0, duplicates BIGINT NOT NULL DEFAULT 0,
            dropped BIGINT NOT NULL DEFAULT 0, updated_ns BIGINT)""",
        """CREATE TABLE IF NOT EXISTS refused (
            device TEXT COLLATE "C" NOT NULL, reason TEXT COLLATE "C" NOT NULL,
            n BIGINT NOT NULL DEFAULT 0, last_ns BIGINT, PRIMARY KEY (device, reason))""",
        _PG_TRY_JSONB,
    )),
    Migration(2, "records by time, for retention", sqlite=(
        "CREATE INDEX IF NOT EXISTS records_by_time ON records(ts_ns)",
    ), postgres=(
        "CREATE INDEX IF NOT EXISTS records_by_time ON records USING brin (ts_ns)",
    )),
)

LATEST = MIGRATIONS[-1].version


def pending(applied: set[int], where: str) -> list[Migration]:
    """The steps still to apply; FleetStoreError for a database newer than this code."""
    newest = max(applied, default=0)
    if newest > LATEST:
        raise FleetStoreError(f"{where} has schema version {newest}; this edgelens knows up to "
                              f"{LATEST}: upgrade edgelens before using it")
    return [m for m in MIGRATIONS if m.version not in applied]
