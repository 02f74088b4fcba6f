"""`edgelens-fleet dashboard`: serve the read-only fleet dashboard until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import errno
import logging
import socket
from urllib.parse import urlsplit, urlunsplit
from pathlib import Path

from cloud_sync.cli_common import load_config, setup_logging, stop_on_signals
from cloud_sync.errors import SyncError
from cloud_sync.fleet.dashboard.view import FleetView, ViewSettings
from cloud_sync.fleet.store import open_fleet_store

log = logging.getLogger(__name__)

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def register_dashboard(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="the fleet in a browser (read-only web page)",
                       description="Serve a read-only web page of the fleet: devices with "
                                   "online state, model versions, last seen and backlog; the "
                                   "latest rollout per group with each device's progress and "
                                   "health; frame-path p95 and deadline-miss rate over time "
                                   "per device and per model version; shadow-mode agreement; "
                                   "input refused from devices. Pages are rendered on the "
                                   "server (no script, nothing fetched from elsewhere). "
                                   "Pushing and rolling back stay in the CLI. It has no "
                                   "login: keep it on loopback or behind an authenticating "
                                   "proxy.")
    p.add_argument("--config", help="edgelens TOML config ([fleet] db, [updates] "
                                    "rollout_file)")
    p.add_argument("--db", help="fleet database (default: [fleet] db)")
    p.add_argument("--rollouts", help="rollout file (default: [updates] rollout_file)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default "
                                                       "127.0.0.1)")
    p.add_argument("--port", type=int, default=8080,
                   help="port (default 8080; 0 picks a free one, printed at start)")
    p.add_argument("--window", type=float, help="seconds behind the table's frames/s, p95 "
                                                "and miss rate (default: [fleet] "
                                                "status_window_s)")
    p.add_argument("--history", type=float, default=3600.0,
                   help="seconds of history in the plots (default 3600)")
    p.add_argument("--points", type=int, default=60,
                   help="points per plotted line: the history in this many buckets "
                        "(default 60)")
    p.add_argument("--refresh", type=int, default=15,
                   help="the page reloads itself every this many seconds (0: never; "
                        "default 15)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=cmd_dashboard)


def cmd_dashboard(args: argparse.Namespace) -> int:
    # deferred: the web stack is the optional [fleet] extra; without it, say what to install
    try:
        import uvicorn

        from cloud_sync.fleet.dashboard.app import create_app
    except ImportError as exc:
        raise SyncError(f"the dashboard needs {exc.name}: install edgelens[fleet] (pip "
                        "install -e '.[fleet]'; scripts/setup does)") from exc
    cfg = load_config(args.config)
    setup_logging(cfg, args.verbose, getattr(args, "log_level", None))
    settings = _settings(args, cfg)
    location = args.db or cfg.fleet.db
    _check_database(location)
    sock = _listen(args.host, args.port)
    store = None
    try:
        store = open_fleet_store(location)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"edgelens-fleet dashboard: http://{shown}:{port}/ (read-only; fleet store "
              f"{_without_password(location)}; Ctrl-C or SIGTERM stops it)", flush=True)
        if args.host not in _LOOPBACK:
            log.warning("the dashboard has no login and listens beyond loopback: put it "
                        "behind an authenticating proxy", extra={"host": args.host})
        config = uvicorn.Config(create_app(FleetView(store, settings)), log_config=None,
                                log_level="warning", access_log=False, lifespan="off")
        # uvicorn shuts down on SIGTERM/SIGINT, then re-raises the signal into the handler it
        # found: ours (an event no one waits on), so the process ends here with 0
        stop_on_signals()
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        if store is not None:
            store.close()
    print("dashboard stopped", flush=True)
    return 0


def _settings(args: argparse.Namespace, cfg) -> ViewSettings:
    if args.history <= 0 or not 1 <= args.points <= 1000 or args.refresh < 0:
        raise SyncError("--history must be positive, --points 1..1000, --refresh 0 or more")
    if not 0 <= args.port <= 65535:
        raise SyncError(f"--port {args.port} is not a port (0..65535)")
    return ViewSettings(window_s=args.window or cfg.fleet.status_window_s,
                        history_s=args.history, buckets=args.points,
                        rollout_file=args.rollouts or cfg.updates.rollout_file,
                        refresh_s=args.refresh)


def _without_password(location: str) -> str:
    """A database URL as it may be printed: user@host, never user:password@host."""
    parts = urlsplit(str(location))
    if not parts.password:
        return str(location)
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _check_database(location: str) -> None:
    """A SQLite fleet store must exist already: a read-only view should not create one."""
    text = str(location)
    if "://" in text and not text.startswith("sqlite://"):
        return
    path = Path(text.removeprefix("sqlite://"))
    if not path.is_file():
        raise SyncError(f"no fleet database at {path}: pass --db, or start `edgelens-fleet "
                        "ingest` first (it creates it)")


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a taken port is one clear error."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                         socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except (socket.gaierror, UnicodeError) as exc:
        sock.close()
        raise SyncError(f"cannot listen on {host!r}: {exc}") from exc
    except OSError as exc:
        sock.close()
        why = "is in use" if exc.errno == errno.EADDRINUSE else \
            f"cannot be used: {exc.strerror}"
        raise SyncError(f"{host}:{port} {why}; pick another with --host/--port") from exc
    return sock


SUBCOMMANDS = [register_dashboard]
