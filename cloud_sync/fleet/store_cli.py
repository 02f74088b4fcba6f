"""edgelens-fleet commands about the fleet store itself: retention and the ingest scale test.

    edgelens-fleet prune --older-than DAYS [--db URL]
    edgelens-fleet bench-ingest --devices N --rate R --workers W [--db URL] [--json]
"""

from __future__ import annotations

import argparse
import time

from cloud_sync.cli_common import dump_json, load_config
from cloud_sync.errors import SyncError
from cloud_sync.fleet.store import open_fleet_store

DAY_NS = 86_400 * 10**9


def register_prune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prune", help="delete records older than N days (retention)",
                       description="Delete the records whose fleet time (the device's record "
                                   "re-dated by its clock offset) is more than --older-than "
                                   "days ago, in short transactions, so it can run beside "
                                   "ingest (e.g. daily from cron or a systemd timer). Device "
                                   "rows, counters and refusals stay.")
    p.add_argument("--config", help="edgelens TOML config ([fleet] db)")
    p.add_argument("--db", help="fleet database: SQLite path or postgresql:// URL "
                                "(default: [fleet] db)")
    p.add_argument("--older-than", type=float, required=True, metavar="DAYS",
                   help="retention in days (fractions allowed)")
    p.set_defaults(func=cmd_prune)


def cmd_prune(args: argparse.Namespace) -> int:
    if not args.older_than > 0:
        raise SyncError(f"--older-than must be more than 0 days, got {args.older_than:g}")
    cfg = load_config(args.config)
    store = open_fleet_store(args.db or cfg.fleet.db)
    try:
        gone = store.prune(time.time_ns() - int(args.older_than * DAY_NS))
    finally:
        store.close()
    print(f"pruned {gone} records older than {args.older_than:g} days")
    return 0


def register_bench_ingest(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench-ingest", help="scale test: simulated devices → broker → "
                                            "ingest workers → store",
                       description="Start a local Mosquitto and W `edgelens-fleet ingest` "
                                   "processes on one shared subscription, then N simulated "
                                   "devices (lightweight publishers speaking the real batch "
                                   "format, each with its own topic, sequence and clocks) "
                                   "sending R records/s each for --seconds. Reports "
                                   "throughput, lag p50/p95/p99 from a record's creation on "
                                   "the device to the moment a query on the store sees it, "
                                   "and records lost and duplicated. Without --db: a "
                                   "throwaway PostgreSQL cluster (durable settings).")
    p.add_argument("--devices", type=int, default=1000, help="simulated devices (default 1000)")
    p.add_argument("--rate", type=float, default=1.0,
                   help="records per second per device (default 1)")
    p.add_argument("--workers", type=int, default=1, help="ingest processes (default 1)")
    p.add_argument("--db", help="fleet database (SQLite path or postgresql:// URL; it "
                                "should be empty); default: a throwaway PostgreSQL")
    p.add_argument("--seconds", type=float, default=20.0,
                   help="how long the devices send (default 20)")
    p.add_argument("--batch-interval", type=float, default=1.0,
                   help="seconds between a device's batches (default 1)")
    p.add_argument("--publishers", type=int, default=4,
                   help="MQTT connections the devices' batches go out on (default 4)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_bench_ingest)


def cmd_bench_ingest(args: argparse.Namespace) -> int:
    # deferred: the scale test's publishers and process accounting, which prune never needs
    from cloud_sync.benchmarks.fleet_ingest import BenchSettings, run_bench
    for name in ("devices", "workers", "publishers"):
        if getattr(args, name) < 1:
            raise SyncError(f"--{name} must be at least 1")
    if not (args.rate > 0 and args.seconds > 0 and args.batch_interval > 0):
        raise SyncError("--rate, --seconds and --batch-interval must be more than 0")
    result = run_bench(BenchSettings(devices=args.devices, rate=args.rate,
                                     workers=args.workers, db=args.db, seconds=args.seconds,
                                     batch_interval=args.batch_interval,
                                     publishers=args.publishers))
    if args.json:
        print(dump_json(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:24} {value}")
    return 0


SUBCOMMANDS = [register_prune, register_bench_ingest]
