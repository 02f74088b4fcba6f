"""edgelens-fleet: the fleet side.

    edgelens-fleet ingest --db fleet.sqlite     an ingest worker (start several: they share)
    edgelens-fleet status [--json]              one row per device

Subcommands register through SUBCOMMANDS (a function that adds its parser); later issues add
keygen, push and rollout there.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable

from cloud_sync.cli_common import dump_json, load_config, setup_logging, stop_on_signals
from cloud_sync.fleet_ingest import FleetIngest
from cloud_sync.fleet_store import open_fleet_store
from device.errors import EdgelensError

Register = Callable[[argparse._SubParsersAction], None]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="edgelens TOML config ([mqtt], [fleet])")
    parser.add_argument("--db", help="fleet database (default: [fleet] db)")


def register_ingest(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="run one ingest worker until SIGTERM/SIGINT",
                       description="Subscribe to every device's telemetry through the MQTT 5 "
                                   "shared subscription $share/GROUP/PREFIX/+/telemetry and "
                                   "store batches idempotently by (device, seq). Several "
                                   "workers with the same group split the load.")
    _common(p)
    p.add_argument("--group", help="shared-subscription group (default: [fleet] share_group)")
    p.add_argument("--worker-id", help="this worker's name (default: host-pid); also its "
                                       "MQTT session")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=cmd_ingest)


def register_status(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="one row per device",
                       description="Per device: online, last seen, backlog (from its status "
                                   "topic), frames/s, p95 latency per path (n-weighted mean of "
                                   "per-second p95s over the window), deadline-miss rate "
                                   "(frame_deadline_misses per frames_captured), model "
                                   "versions, errors in the last hour; in shadow mode "
                                   "the challenger, its agreement with the champion, its p95 "
                                   "and the share of lines it skipped. Below the table: input "
                                   "refused from devices, counted per device and reason.")
    _common(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--window", type=float, help="seconds of metrics behind frames/s, p95 and "
                                                "miss rate (default: [fleet] status_window_s)")
    p.set_defaults(func=cmd_status)


SUBCOMMANDS: list[Register] = [register_ingest, register_status]

from cloud_sync import fleet_updates_cli  # noqa: E402  keygen, push, rollout (issue 6)

SUBCOMMANDS += fleet_updates_cli.SUBCOMMANDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgelens-fleet",
                                     description="Fleet side of edgelens: ingest device "
                                                 "telemetry, show the fleet.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in SUBCOMMANDS:
        register(sub)
    return parser


def cmd_ingest(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if args.group:
        from device.config import build
        from device.config_schema import SCHEMA
        raw = cfg.as_dict()
        raw["fleet"]["share_group"] = args.group
        cfg = build(raw, SCHEMA, cfg.origin)
    setup_logging(cfg, args.verbose)
    stop = stop_on_signals()
    store = open_fleet_store(args.db or cfg.fleet.db)
    try:
        FleetIngest(cfg, store, args.worker_id).run(stop)
    finally:
        store.close()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    store = open_fleet_store(args.db or cfg.fleet.db)
    try:
        rows = store.device_rows(time.time_ns(), args.window or cfg.fleet.status_window_s)
        refused = store.refused()
    finally:
        store.close()
    if args.json:
        print(dump_json([r.as_dict() for r in rows], indent=2))
        return 0
    print(f"{'device':20} {'online':6} {'last seen':20} {'backlog':>7} {'fps':>6} "
          f"{'miss':>6} {'err/h':>5}  p95 ms / models")
    for r in rows:
        online = "-" if r.online is None else ("yes" if r.online else "no")
        p95 = " ".join(f"{k}={v}" for k, v in r.p95_ms.items())
        models = " ".join(f"{k}={v}" for k, v in r.models.items())
        if r.shadow:
            s = r.shadow
            agree = "-" if s["agreement"] is None else f"{100 * s['agreement']:.1f}%"
            models += (f" shadow={s['model'] or '?'} agree={agree} pairs={s['pairs']} "
                       f"p95={_n(s['p95_ms'])}ms skipped={100 * s['skipped_share']:.1f}%")
        print(f"{r.device:20} {online:6} {r.last_seen or '-':20} {_n(r.backlog):>7} "
              f"{_n(r.frames_per_s):>6} {_n(r.miss_rate):>6} {r.errors_last_hour:>5}  "
              f"{p95} {models}".rstrip())
    if refused:
        print("refused input (records or messages, by reason): " + "; ".join(
            f"{device} " + " ".join(f"{k}={n}" for k, n in reasons.items())
            for device, reasons in refused.items()))
    return 0


def _n(value) -> str:
    return "-" if value is None else str(value)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EdgelensError as exc:
        print(f"edgelens-fleet: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
