"""Records into PostgreSQL two ways, measured: one multi-row INSERT … ON CONFLICT DO NOTHING
per batch against COPY into a staging table and INSERT … SELECT … ON CONFLICT DO NOTHING (the
store uses each where it was faster: store_postgres._COPY_FROM_ROWS). One transaction per
batch, as ingest commits one per MQTT message; new records, then the same batches again (all
duplicates, as after a redelivery).

    python -m cloud_sync.benchmarks.fleet_insert [--db URL] [--records N] [--json]

Without --db it starts a throwaway durable cluster (fsync on) and removes it afterwards.
"""

from __future__ import annotations

import argparse
import json
import time

from cloud_sync.fleet.localpostgres import LocalPostgres
from cloud_sync.fleet.store_postgres import PostgresFleetStore

METHODS = ("insert_values", "insert_copy")
BATCH_SIZES = (10, 100, 500)


def _rows(device: str, start: int, n: int) -> list[tuple]:
    now = time.time_ns()
    body = '{"severity":"INFO","event":"frame.done","fields":{"i":1}}'
    return [(device, s, "log", now, s, "b1", now, now, body) for s in range(start, start + n)]


def measure(url: str, records: int) -> list[dict]:
    store = PostgresFleetStore(url)
    out = []
    try:
        for size in BATCH_SIZES:
            for method in METHODS:
                device = f"{method}-{size}"
                batches = [_rows(device, i * size + 1, size) for i in range(records // size)]
                for phase in ("new", "duplicates"):
                    t0 = time.perf_counter()
                    stored = 0
                    for rows in batches:
                        with store._tx("bench") as tx:
                            stored += getattr(tx, method)(rows)
                    seconds = time.perf_counter() - t0
                    out.append({"method": method, "batch": size, "phase": phase,
                                "records": len(batches) * size, "stored": stored,
                                "records_per_s": round(len(batches) * size / seconds)})
    finally:
        store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="postgresql:// URL (default: a throwaway cluster)")
    parser.add_argument("--records", type=int, default=20_000, help="records per case")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    server = None
    url = args.db
    if url is None:
        server = LocalPostgres(durable=True).start()
        url = server.create_database("bench_insert")
    try:
        results = measure(url, args.records)
    finally:
        if server:
            server.stop()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{'method':15} {'batch':>5} {'phase':10} {'records/s':>10}")
        for r in results:
            print(f"{r['method']:15} {r['batch']:>5} {r['phase']:10} {r['records_per_s']:>10}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
