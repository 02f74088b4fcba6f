"""edgelens-sync: the store-and-forward sync agent beside the pipeline.

    edgelens-sync run --config edgelens.toml      sync until SIGTERM/SIGINT
    edgelens-sync status --config edgelens.toml   backlog and counters of the local store
    edgelens-sync bench [--json] [--quick]        the telemetry benchmark
    edgelens-sync bench faults [--json] [--quick] kill -9, broker crash, full disk, fuzz
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from cloud_sync.cli_common import LOG_LEVELS, add_global_options, load_config, stop_on_signals
from cloud_sync.errors import SyncError
from cloud_sync.sync_agent import SyncAgent
from device import __version__, logs
from device.errors import EdgelensError
from device.telemetry.store import TelemetryStore


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgelens-sync",
        description="Send the device's telemetry store to the fleet over MQTT "
                    "(store-and-forward, QoS 1, marked sent only after PUBACK; with a fleet "
                    "that sends receipts, delivered only after its receipt).")
    parser.add_argument("--version", action="version", version=f"edgelens-sync {__version__}")
    parser.add_argument("--config", metavar="FILE",
                        help="edgelens TOML config (default: built-in defaults)")
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="override [logging] level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the sync agent until SIGTERM/SIGINT",
                         description="Run the sync agent: publish unsent records in "
                                     "priority order, keep the availability and status "
                                     "topics current, reconnect with backoff.")
    run.add_argument("--config", help="edgelens TOML config ([telemetry], [mqtt], [sync])")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    run.set_defaults(func=cmd_run)
    status = sub.add_parser("status", help="show the local backlog and counters",
                            description="Backlog per kind, oldest unsent record, store size "
                                        "and counters (overflow, evictions) of the local "
                                        "telemetry store.")
    status.add_argument("--config", help="edgelens TOML config")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)
    bench = sub.add_parser("bench", help="measure the telemetry path (edgelens bench telemetry)",
                           description="telemetry (default): records/s into the store, sync "
                                       "records/s through a local Mosquitto with QoS 1, backlog "
                                       "drain after a 10-minute outage, frame-path p95 with and "
                                       "without sync. faults: records lost and processes "
                                       "crashed under kill -9, a broker crash, a full disk and "
                                       "fuzzed input (cloud_sync/benchmarks/faults.py; exit status 1 "
                                       "when a must-be-zero count is not). Needs the mosquitto "
                                       "binary.")
    bench.add_argument("target", nargs="?", choices=("telemetry", "faults"),
                       default="telemetry", help="what to measure (default: telemetry)")
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.add_argument("--quick", action="store_true", help="smaller runs (a smoke test)")
    bench.set_defaults(func=cmd_bench)
    add_global_options(sub)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    # the one logging setup of edgelens (console, and JSON lines to [logging] file)
    logs.setup("DEBUG" if args.verbose else args.log_level or cfg.logging.level,
               cfg.logging.file, cfg.logging.max_bytes, cfg.logging.backups)
    if cfg.sync.nice:
        os.nice(cfg.sync.nice)          # the frame path comes first on a 2-core board
    stop = stop_on_signals()
    agent = SyncAgent(cfg, store=None)
    agent.run(stop)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    store = TelemetryStore.open(cfg.telemetry.db_path, cfg.telemetry, quarantine=False)
    try:
        backlog = store.backlog()
        oldest = store.oldest_unsent_wall_ns()
        info = {"db_path": str(store.path), "last_seq": store.last_seq(),
                "used_bytes": store.used_bytes(), "max_bytes": store.max_bytes,
                "backlog": backlog, "backlog_total": sum(backlog.values()),
                "oldest_unsent_age_s": None if oldest is None
                else round((time.time_ns() - oldest) / 1e9, 1),
                "counters": store.counters()}
    finally:
        store.close()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:20} {value}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    # deferred: benchmarks (a broker, fault injection) never load in the sync agent's process
    if args.target == "faults":
        from cloud_sync.benchmarks import faults as bench_faults
        return bench_faults.main((["--json"] if args.json else []) +
                                 (["--quick"] if args.quick else []))
    from cloud_sync.benchmarks.sync import run
    run(json_out=args.json, quick=args.quick)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (EdgelensError, SyncError) as exc:
        print(f"edgelens-sync: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:            # `edgelens-sync status | head`
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
