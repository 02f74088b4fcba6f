"""edgelens-fleet: the fleet side.

    edgelens-fleet broker --dev [--dir D]       a development broker, logins and configs
    edgelens-fleet ingest --db fleet.sqlite     an ingest worker (start several: they share;
                                                --db postgresql://… for several machines)
    edgelens-fleet status [--json]              one row per device

Subcommands register through SUBCOMMANDS (a function that adds its parser); later issues add
keygen, push and rollout there. `--config FILE` and `--log-level` go before or after the
subcommand (as with `edgelens`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable

from cloud_sync.cli_common import (LOG_LEVELS, add_global_options, dump_json, load_config,
                                 setup_logging, silence_stdout, stop_on_signals)
from cloud_sync.errors import SyncError
from cloud_sync.fleet.dev_fleet import DevFleet
from cloud_sync.fleet.device_input import printable
from cloud_sync.fleet.ingest import FleetIngest
from cloud_sync.fleet.store import open_fleet_store
from device import __version__, logs
from device.config import build
from device.config_schema import SCHEMA
from device.errors import EdgelensError

Register = Callable[[argparse._SubParsersAction], None]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="edgelens TOML config ([mqtt], [fleet])")
    parser.add_argument("--db", help="fleet database: a SQLite path or a postgresql:// URL "
                                     "(default: [fleet] db)")


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


def register_broker(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("broker", help="a development broker with logins and configs (--dev)",
                       description="--dev: start a local Mosquitto for development in the "
                                   "foreground: plain MQTT on 127.0.0.1, persistence on, "
                                   "logins per listener as in deploy/mosquitto.conf (devices "
                                   "on --port, the fleet on --fleet-port), the ACL written "
                                   "from DIR/groups.toml, throwaway logins for the fleet and "
                                   "N devices. Writes DIR/device-1.toml ... and "
                                   "DIR/fleet.toml and prints them; Ctrl-C or SIGTERM stops "
                                   "the broker. Production brokers: deploy/mosquitto.conf.")
    p.add_argument("--dev", action="store_true",
                   help="the development setup (the only one this command makes)")
    p.add_argument("--port", type=int, default=1883,
                   help="device listener on 127.0.0.1 (default 1883)")
    p.add_argument("--fleet-port", type=int, default=0,
                   help="fleet listener on 127.0.0.1 (default: --port + 1)")
    p.add_argument("--dir", default="edgelens-dev",
                   help="folder for the broker's data, logins, groups and configs "
                        "(default ./edgelens-dev; reused when started again)")
    p.add_argument("--devices", type=int, default=1,
                   help="device logins and configs to make: device-1 ... device-N "
                        "(default 1)")
    p.set_defaults(func=cmd_broker)


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


SUBCOMMANDS: list[Register] = [register_broker, register_ingest, register_status]

from cloud_sync.fleet import updates_cli as fleet_updates_cli  # noqa: E402  keygen, push, rollout (issue 6)

SUBCOMMANDS += fleet_updates_cli.SUBCOMMANDS

from cloud_sync.fleet import store_cli as fleet_store_cli  # noqa: E402  prune, bench-ingest (issue 16)

SUBCOMMANDS += fleet_store_cli.SUBCOMMANDS

from cloud_sync.fleet.dashboard import cli as fleet_dashboard_cli  # noqa: E402  dashboard (issue 16)

SUBCOMMANDS += fleet_dashboard_cli.SUBCOMMANDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgelens-fleet",
                                     description="Fleet side of edgelens: ingest device "
                                                 "telemetry, show the fleet, sign and roll "
                                                 "out model updates.")
    parser.add_argument("--version", action="version", version=f"edgelens-fleet {__version__}")
    parser.add_argument("--config", metavar="FILE",
                        help="edgelens TOML config (default: built-in defaults)")
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="override [logging] level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in SUBCOMMANDS:
        register(sub)
    add_global_options(sub)
    return parser


def cmd_broker(args: argparse.Namespace) -> int:
    if not args.dev:
        raise SyncError("only the development broker is made here: `edgelens-fleet broker "
                        "--dev`; a production broker is configured from "
                        "deploy/mosquitto.conf")
    stop = stop_on_signals()
    fleet = DevFleet(Path(args.dir), port=args.port, fleet_port=args.fleet_port,
                     devices=args.devices)
    fleet.check_ports()
    texts = fleet.prepare()
    for who in texts:                  # every config written must load
        load_config(str(fleet.config_file(who)))
    broker = fleet.broker()
    broker.start()
    try:
        _print_dev(fleet, texts, broker.pid)
        while not stop.wait(0.5):
            if not broker.running:
                print(f"edgelens-fleet: mosquitto exited; its log: {broker.log_file}",
                      file=sys.stderr)
                return 1
    finally:
        broker.stop()
    print("broker stopped", flush=True)
    return 0


def _print_dev(fleet, texts: dict[str, str], pid: int | None) -> None:
    d = fleet.directory
    rel = os.path.relpath(d)
    rel = d if rel.startswith("..") else rel
    first = fleet.device_ids[0]
    others = [str(fleet.config_file(x)) for x in fleet.device_ids[1:]]
    print(f"edgelens development broker: plain MQTT on {fleet.host} (no TLS), persistence in "
          f"{fleet.broker_dir}; throwaway logins, not for production.\n"
          f"  devices: {fleet.host}:{fleet.port} (user name = device id)   fleet: "
          f"{fleet.host}:{fleet.fleet_port} (user 'fleet')\n"
          f"  groups: {fleet.groups_file} (ACL written from it: {fleet.broker_dir}/"
          "edgelens.acl)\n")
    print(f"# {fleet.config_file(first)}\n{texts[first]}")
    if others:
        print(f"# the other devices: {', '.join(others)}\n")
    print(f"# {fleet.config_file('fleet')}\n{texts['fleet']}")
    steps = [(f"edgelens-fleet keygen --out {rel}/keys/fleet", "once: the update signing key"),
             (f"edgelens-sync run --config {rel}/{first}.toml", "the device's sync agent"),
             (f"edgelens run --config {rel}/{first}.toml", "the device's pipeline"),
             (f"edgelens-fleet ingest --config {rel}/fleet.toml", "the fleet's telemetry")]
    width = max(len(command) for command, _ in steps)
    print("next (keygen first; the others run until Ctrl-C, each in its own terminal):\n" +
          "".join(f"  {command:{width}}  # {what}\n" for command, what in steps) +
          "  walkthrough: cloud_sync/README.md, \"Five minutes: a broker, a device, an "
          "update\"\n")
    print(f"broker ready (mosquitto pid {pid}); Ctrl-C or SIGTERM stops it", flush=True)


def cmd_ingest(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if args.group:
        raw = cfg.as_dict()
        raw["fleet"]["share_group"] = args.group
        cfg = build(raw, SCHEMA, cfg.origin)
    setup_logging(cfg, args.verbose, args.log_level)
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
        # device text (model names, versions, paths): escaped, so it cannot drive the terminal
        print(printable(f"{r.device:20} {online:6} {r.last_seen or '-':20} {_n(r.backlog):>7} "
                        f"{_n(r.frames_per_s):>6} {_n(r.miss_rate):>6} "
                        f"{r.errors_last_hour:>5}  {p95} {models}".rstrip()))
    if refused:
        print(printable("refused input (records or messages, by reason): " + "; ".join(
            f"{device} " + " ".join(f"{k}={n}" for k, n in reasons.items())
            for device, reasons in refused.items())))
    return 0


def _n(value) -> str:
    return "-" if value is None else str(value)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.log_level:                 # commands that set up logging themselves redo it
        logs.setup(args.log_level, timestamps=True)
    try:
        code = args.func(args)
        sys.stdout.flush()             # a reader that left shows here, not at exit
        return code
    except EdgelensError as exc:
        print(f"edgelens-fleet: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:            # `edgelens-fleet rollout status | head -1`
        silence_stdout()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
