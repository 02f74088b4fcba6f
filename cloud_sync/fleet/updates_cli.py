"""edgelens-fleet keygen | push | rollout status | rollout rollback (model updates, issue 6).

    edgelens-fleet keygen --out keys/fleet                 keys/fleet.key (0600) + .pub
    edgelens-fleet sign models/<name>/<version> --out V.signed.json   [--rollback] [--shadow]
    edgelens-fleet push models/<name>/<version> --group G [--canary PCT] [--signed V.signed.json]
                                                   [--wait-for-devices [SECONDS]]
    edgelens-fleet rollout status [--json]
    edgelens-fleet rollout rollback [--group G]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from cloud_sync.cli_common import dump_json, load_config, setup_logging, stop_on_signals
from cloud_sync.errors import SyncError
from cloud_sync.fleet.acl import load_groups, render_acl
from cloud_sync.fleet.delivery import UpdateServer, load_signed, signed_desired
from cloud_sync.fleet.device_input import printable
from cloud_sync.fleet.membership import NO_GROUPS_FILE
from cloud_sync.fleet.rollout import Rollout, RolloutFile, clean_status, progress_bar, summary_text
from cloud_sync.fleet.serve import RolloutService
from cloud_sync.signing import TrustedKeys, keygen
from cloud_sync.update_protocol import check_group, check_model_name, check_version
from device.modelstore.install import write_atomic
from device.modelstore.pointers import SHADOWED_STAGES


def register_keygen(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keygen", help="create the Ed25519 key that signs model updates",
                       description="Write OUT.key (the private signing key, mode 0600, never "
                                   "overwritten) and OUT.pub (the public key devices list in "
                                   "[updates] trusted_keys).")
    p.add_argument("--out", required=True, help="path stem of the two key files")
    p.set_defaults(func=cmd_keygen)


def register_acl(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("acl", help="write the broker ACL from the device groups",
                       description="Write Mosquitto's acl_file from the groups file: pattern "
                                   "rules keep every device to its own topics (by client id), "
                                   "one user block per device lets it read its own group's "
                                   "desired state only. Reload the broker (SIGHUP) afterwards.")
    p.add_argument("--config", help="edgelens TOML config ([fleet] groups_file, [mqtt] "
                                    "topic_prefix)")
    p.add_argument("--groups", help="groups file (default: [fleet] groups_file)")
    p.add_argument("--out", help="write the ACL here (atomically); default: standard output")
    p.set_defaults(func=cmd_acl)


def cmd_acl(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    source = args.groups or cfg.fleet.groups_file
    if not source:
        raise SyncError("no groups file: pass --groups or set [fleet] groups_file")
    groups = load_groups(source)
    text = render_acl(cfg.mqtt.topic_prefix, groups, source=Path(source).name)
    if not args.out:
        sys.stdout.write(text)
        return 0
    write_atomic(Path(args.out), text.encode())
    print(f"wrote {args.out}: {len(groups)} groups, {sum(map(len, groups.values()))} devices; "
          "reload the broker (SIGHUP) to apply", file=sys.stderr)
    return 0


def register_sign(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sign", help="sign a model version for a later push",
                       description="Write the signed update manifest of models/<name>/<version> "
                                   "(every file's size, sha256 and chunk hashes, signed with "
                                   "Ed25519) to a file, so that the signing key can stay on "
                                   "another machine: `push --signed FILE` serves it without "
                                   "the key. A device refuses anything signed before the last "
                                   "update it accepted, so sign shortly before pushing.")
    p.add_argument("version_dir", help="the version directory, models/<name>/<version>")
    p.add_argument("--out", required=True, help="where to write the signed manifest (JSON)")
    p.add_argument("--config", help="edgelens TOML config ([updates] signing_key, chunk_size)")
    p.add_argument("--key", help="signing key (default: [updates] signing_key)")
    p.add_argument("--rollback", action="store_true",
                   help="mark it a rollback (allowed to replace a newer installed version)")
    p.add_argument("--shadow", action="store_true",
                   help="mark it a challenger for shadow mode (never made active)")
    p.set_defaults(func=cmd_sign)


def register_push(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push", help="sign a model version and roll it out to a group",
                       description="Sign models/<name>/<version> with [updates] signing_key "
                                   "(or take a version signed earlier with --signed), "
                                   "publish the group's desired state (retained) and serve its "
                                   "chunks until the rollout is done or halted: canaries first, "
                                   "promoted when enough are healthy, halted when too many "
                                   "fail.")
    p.add_argument("version_dir", help="the version directory, models/<name>/<version>")
    p.add_argument("--group", required=True, help="the device group to update")
    p.add_argument("--shadow", action="store_true",
                   help="shadow mode: install as a challenger (models/<name>/SHADOW) that "
                        "redoes the champion's work in idle time (detector, recognizer or "
                        "translator); the active version is not changed")
    _rollout_options(p)
    p.set_defaults(func=cmd_push)


def register_rollout(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rollout", help="status or fleet-wide rollback of rollouts",
                       description="Show each device's update state with progress bars, or "
                                   "roll a group back to the version it had before the last "
                                   "rollout.")
    actions = p.add_subparsers(dest="rollout_command", required=True, metavar="ACTION")
    status = actions.add_parser("status", help="each device's state in the latest rollouts",
                                description="The latest rollout per group from the rollout "
                                            "file, one row per device with a progress bar.")
    status.add_argument("--config", help="edgelens TOML config ([updates] rollout_file)")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_rollout_status)
    back = actions.add_parser("rollback", help="put a group back on its previous version",
                              description="Sign the group's previous version as a rollback "
                                          "and roll it out to every device at once.")
    back.add_argument("--group", help="the group (default: the latest rollout's)")
    back.add_argument("--to", help="version directory to go back to (default: the previous "
                                   "version beside the pushed one)")
    _rollout_options(back, canary=False)
    back.set_defaults(func=cmd_rollout_rollback)


def _rollout_options(p: argparse.ArgumentParser, canary: bool = True) -> None:
    p.add_argument("--config", help="edgelens TOML config ([mqtt], [updates])")
    if canary:
        p.add_argument("--canary", type=float, help="percent of the group updated first "
                                                    "(default: [updates] canary_percent)")
        p.add_argument("--promote", type=float, help="promote when this percent of canaries "
                                                     "is healthy ([updates] promote_percent)")
    p.add_argument("--halt", type=float, help="halt when more than this percent failed "
                                              "([updates] halt_percent)")
    p.add_argument("--key", help="signing key (default: [updates] signing_key)")
    p.add_argument("--signed", help="a signed manifest from `edgelens-fleet sign` for this "
                                    "version: pushed as signed, no signing key needed")
    p.add_argument("--timeout", type=float, default=3600.0, help="give up after this many "
                                                                 "seconds (default 3600)")
    p.add_argument("--discover", type=float, default=1.0, help="seconds to collect device "
                                                               "status before starting")
    p.add_argument("--wait-for-devices", type=float, nargs="?", const=-1.0, default=0.0,
                   metavar="SECONDS",
                   help="when the group has no devices (none in the groups file, or none "
                        "reported on the broker while discovering), wait this long for one "
                        "(no SECONDS: up to --timeout) instead of refusing at once (exit 2)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def cmd_keygen(args: argparse.Namespace) -> int:
    stem = Path(args.out)
    kid = keygen(stem.with_suffix(".key"), stem.with_suffix(".pub"))
    print(f"signing key {stem.with_suffix('.key')} (0600), public key "
          f"{stem.with_suffix('.pub')}, key id {kid}")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    directory, name, version = _version_dir(args.version_dir)
    _check_shadowable(args.shadow, name)
    signed = signed_desired(directory, _signing_key(args, cfg), cfg.updates.chunk_size,
                            rollback=args.rollback, shadow=args.shadow)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(signed, indent=1))
    size = sum(f["size_bytes"] for f in signed["manifest"]["update"]["files"])
    print(f"signed {name} {version} ({size} bytes, key {signed['signature']['key_id']}"
          f"{', rollback' if args.rollback else ''}{', shadow' if args.shadow else ''}) "
          f"→ {out}")
    return 0


def _check_known_group(cfg, group: str) -> None:
    """A push to a group the groups file does not list would reach no device (the ACL lets
    devices read only their own group's desired state): say so before serving. Without the
    file there is no membership to push by (a device's claim is never taken)."""
    if not cfg.fleet.groups_file:
        raise SyncError(NO_GROUPS_FILE)
    groups = load_groups(cfg.fleet.groups_file)
    if group not in groups:
        raise SyncError(f"group {group!r} is not in {cfg.fleet.groups_file} (groups: "
                        f"{', '.join(sorted(groups)) or 'none'}); no device could read its "
                        "desired state")


def _check_shadowable(shadow: bool, name: str) -> None:
    if shadow and name not in SHADOWED_STAGES:
        raise SyncError(f"shadow mode runs challengers for the pipeline's stages "
                        f"({', '.join(SHADOWED_STAGES)}), not {name!r}")


def _signing_key(args: argparse.Namespace, cfg) -> str:
    key = args.key or cfg.updates.signing_key
    if not key:
        raise SyncError("no signing key: pass --key or set [updates] signing_key (or push a "
                        "version signed earlier with --signed)")
    return key


def _signed_for(args: argparse.Namespace, cfg, rollout: Rollout, directory: Path) -> dict:
    """The signed desired state: a pre-signed file checked against the directory and the
    rollout's kind, or a fresh signature."""
    if not args.signed:
        return signed_desired(directory, _signing_key(args, cfg), cfg.updates.chunk_size,
                              rollback=rollout.rollback, shadow=rollout.shadow)
    trusted = TrustedKeys.from_files(list(cfg.updates.trusted_keys))
    if not len(trusted):
        print("warning: [updates] trusted_keys is empty, so the signature of "
              f"{args.signed} is not checked here (devices check it)", file=sys.stderr)
    signed = load_signed(Path(args.signed), directory, trusted)
    update = signed["manifest"]["update"]
    for flag, wanted in (("rollback", rollout.rollback), ("shadow", rollout.shadow)):
        if bool(update.get(flag)) != wanted:
            raise SyncError(f"{args.signed} was signed {'with' if update.get(flag) else 'without'}"
                            f" --{flag}, but this is {'' if wanted else 'not '}a {flag} "
                            f"rollout: sign it again with{'' if wanted else 'out'} --{flag}")
    return signed


def _serve(args, cfg, rollout: Rollout, directory: Path) -> int:
    signed = _signed_for(args, cfg, rollout, directory)
    stop = stop_on_signals()
    wait = args.wait_for_devices
    control_key = getattr(args, "key", None) or cfg.updates.signing_key or None
    if control_key is None:
        print("edgelens-fleet: warning: no signing key (--key or [updates] signing_key): the "
              "rollout's control block goes out unsigned, and devices that have taken signed "
              f"control for {rollout.name} refuse it", file=sys.stderr, flush=True)
    server = UpdateServer(cfg, rollout, signed, RolloutFile(cfg.updates.rollout_file),
                          discover_s=args.discover, control_key=control_key,
                          require_devices=True,
                          wait_for_devices_s=args.timeout if wait < 0 else wait,
                          notify=lambda message: print(message, file=sys.stderr, flush=True))
    result = server.run(stop, args.timeout)
    print(f"rollout {result.id}: {result.stage} ({result.reason}); served "
          f"{server.stats.bytes_served} bytes in {server.stats.chunks_served} chunks")
    return 0 if result.stage == "done" else 1


def _version_dir(path: str) -> tuple[Path, str, str]:
    directory = Path(path).resolve()
    name, version = check_model_name(directory.parent.name), check_version(directory.name)
    if not (directory / "manifest.json").is_file():
        raise SyncError(f"{directory} has no manifest.json")
    return directory, name, version


def _previous_version(directory: Path, version: str) -> str | None:
    older = [p.name for p in directory.parent.iterdir()
             if p.is_dir() and (p / "manifest.json").is_file() and p.name != version]
    older = [v for v in older if tuple(map(int, v.split("."))) < tuple(map(int,
                                                                           version.split(".")))]
    return max(older, key=lambda v: tuple(map(int, v.split(".")))) if older else None


def cmd_push(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    setup_logging(cfg, args.verbose, getattr(args, "log_level", None))
    directory, name, version = _version_dir(args.version_dir)
    u = cfg.updates
    _check_shadowable(args.shadow, name)
    _check_known_group(cfg, args.group)
    rollout = Rollout(id=f"{'shadow-' if args.shadow else ''}{name}-{version}-"
                         f"{time.strftime('%Y%m%dT%H%M%S')}", shadow=args.shadow,
                      group=check_group(args.group), name=name, version=version,
                      source=str(directory), previous=_previous_version(directory, version),
                      canary_percent=u.canary_percent if args.canary is None else args.canary,
                      promote_percent=u.promote_percent if args.promote is None
                      else args.promote,
                      halt_percent=u.halt_percent if args.halt is None else args.halt)
    return _serve(args, cfg, rollout, directory)


def cmd_rollout_rollback(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    setup_logging(cfg, args.verbose, getattr(args, "log_level", None))
    last = RolloutFile(cfg.updates.rollout_file).latest(args.group)
    if last is None:
        raise SyncError("no rollout to roll back in " + cfg.updates.rollout_file)
    if args.to:
        directory, name, version = _version_dir(args.to)
    else:
        if last.previous is None:
            raise SyncError(f"rollout {last.id} recorded no previous version; pass --to")
        directory, name, version = _version_dir(str(Path(last.source).parent / last.previous))
    rollout = Rollout(id=f"rollback-{name}-{version}-{time.strftime('%Y%m%dT%H%M%S')}",
                      group=last.group, name=name, version=version, source=str(directory),
                      previous=last.version, rollback=True, canary_percent=0.0, stage="all",
                      halt_percent=cfg.updates.halt_percent if args.halt is None else args.halt)
    return _serve(args, cfg, rollout, directory)


def rollout_rows(rollout: Rollout) -> list[dict]:
    """One row per device; every device-reported field is re-checked (clean_status), so a
    rollout file written before those checks still renders."""
    rows = []
    for device in sorted(set(map(str, rollout.members)) | set(map(str, rollout.devices))):
        entry = clean_status(rollout.devices.get(device))
        state = rollout.device_state(device)
        progress = 100.0 if state in ("verified", "installed", "healthy") else \
            (entry["progress"] or 0.0) if state == "downloading" else 0.0
        served = rollout.bytes_served.get(device, 0)
        rows.append({"device": device, "canary": device in rollout.canaries,
                     "state": printable(state),         # a file written before clean_status
                     "progress": progress, "active": entry["active"],
                     "reason": entry["reason"] or "",
                     "bytes_served": served if isinstance(served, int) else 0})
    return rows


def cmd_rollout_status(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    latest: dict[str, Rollout] = {}
    for r in RolloutFile(cfg.updates.rollout_file).load():
        latest[r.group] = r
    if args.json:
        print(dump_json([{"id": r.id, "group": r.group, "model": r.name,
                          "version": r.version, "stage": r.stage, "reason": r.reason,
                          "rollback": r.rollback, "shadow": r.shadow,
                          "summary": r.tally(), "devices": rollout_rows(r)}
                         for r in latest.values()], indent=2))
        return 0
    if not latest:
        print(f"no rollouts in {cfg.updates.rollout_file}")
    for r in latest.values():
        # the summary counts every device as it is now (late ones `serve` updated included);
        # `reason` is why the stage last changed, shown unless it is the push's own count
        why = f" ({r.reason})" if r.reason and r.stage != "done" else ""
        print(printable(f"{r.id}  group {r.group}  {r.name} {r.version}"
                        f"{' (rollback)' if r.rollback else ''}"
                        f"{' (shadow)' if r.shadow else ''}"
                        f"  stage {r.stage}{why}  {summary_text(r.tally())}"))
        for row in rollout_rows(r):      # device text escaped: it cannot drive the terminal
            mark = "*" if row["canary"] else " "
            print(printable(f"  {mark}{row['device']:20} {progress_bar(row['progress'])} "
                            f"{row['state']:12} active {row['active'] or '-':8} "
                            f"{row['reason']}"))
    return 0


def register_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="keep serving chunks of finished rollouts (a service)",
                       description="Answer chunk requests from devices that come back after "
                                   "a push ended (the desired state stays retained, so they "
                                   "ask later), and record their progress in the rollout "
                                   "file. Serves a rollout while it is its group's desired "
                                   "state and no push drives it. Runs until SIGTERM/SIGINT.")
    p.add_argument("--config", help="edgelens TOML config ([mqtt], [updates] rollout_file)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    setup_logging(cfg, args.verbose, getattr(args, "log_level", None))
    service = RolloutService(cfg, RolloutFile(cfg.updates.rollout_file))
    service.run(stop_on_signals())
    print(f"served {service.stats.bytes_served} bytes in {service.stats.chunks_served} chunks")
    return 0


def register_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench-updates", help="measure model updates through a local broker",
                       description="Time to update a 2 MB version on N device processes "
                                   "(--devices, default 10), bytes re-sent after kill -9 "
                                   "mid-download, frame-path p95 beside the update. Needs "
                                   "mosquitto and models/detector/*/detector.tflite.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--devices", type=int, default=10, help="simulated devices (default 10)")
    p.add_argument("--size", type=int, default=2_000_000, help="version bytes (default 2 MB)")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    # deferred: the benchmark builds a live pipeline (OpenCV, models) the fleet tools never need
    from cloud_sync.benchmarks.updates import run
    if args.devices < 1 or args.size < 1:
        raise SyncError("--devices and --size must be at least 1")
    run(json_out=args.json, devices=args.devices, size=args.size)
    return 0


SUBCOMMANDS = [register_keygen, register_acl, register_sign, register_push, register_rollout,
               register_serve, register_bench]
