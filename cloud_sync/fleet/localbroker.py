"""A Mosquitto broker on 127.0.0.1 for tests, the benchmark and `edgelens-fleet broker --dev`:
generated config, free port, stop/restart to simulate outages, kill() for a crash (SIGKILL).
Production brokers are configured by their operators (deploy/mosquitto.conf); this only mirrors
the settings edgelens relies on (persistence with a 1 s snapshot, a large offline queue, MQTT 5).
The development fleet around it (`edgelens-fleet broker --dev`) is `dev_fleet.DevFleet`.
"""

from __future__ import annotations

import base64
import ctypes
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from cloud_sync.errors import SyncError

CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((c for c in CANDIDATES if os.access(c, os.X_OK)), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port (a bind succeeds)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def password_line(username: str, password: str) -> str:
    """A Mosquitto 2 password-file line ($7$: PBKDF2-SHA512, 101 iterations, 12-byte salt),
    as `mosquitto_passwd` writes it."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101, 64)
    return (f"{username}:$7$101${base64.b64encode(salt).decode()}$"
            f"{base64.b64encode(digest).decode()}")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies (Linux prctl PR_SET_PDEATHSIG),
    so a broker started by a foreground command never outlives it, even after kill -9."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


@dataclass
class BrokerSecurity:
    """TLS files and a password file (mosquitto format) for a secured listener."""
    ca_file: Path
    cert_file: Path
    key_file: Path
    password_file: Path | None = None
    require_certificate: bool = False


@dataclass
class LocalBroker:
    workdir: Path
    port: int = 0
    security: BrokerSecurity | None = None
    extra_config: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    # logins and ACLs per listener (deploy/mosquitto.conf); must precede every security line
    per_listener_settings: bool = False
    # without `security`: whether the first listener takes clients without a login
    anonymous: bool = True
    # a foreground command's broker: its own session (Ctrl-C reaches the command, which stops
    # the broker cleanly) and SIGTERM when the command dies
    own_session: bool = False

    def __post_init__(self):
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self._proc: subprocess.Popen | None = None
        self.binary = find_mosquitto()
        if self.binary is None:
            raise SyncError("mosquitto is not installed (looked on PATH and in /usr/sbin)")

    @property
    def config_file(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def log_file(self) -> Path:
        return self.workdir / "mosquitto.log"

    def write_config(self) -> None:
        lines = [f"listener {self.port} {self.host}",
                 "persistence true", f"persistence_location {self.workdir}/",
                 # the in-memory queue is written out every second: a crash (kill -9) loses at
                 # most about the last second of acknowledged messages, as in production
                 "autosave_interval 1", "autosave_on_changes false",
                 "max_queued_messages 1000000", "max_inflight_messages 0",
                 f"log_dest file {self.log_file}", "log_type error", "log_type warning",
                 "log_type notice", "log_type information",
                 "user " + (os.environ.get("USER") or "root")]
        if self.per_listener_settings:
            lines.insert(0, "per_listener_settings true")
        sec = self.security
        if sec is None:
            lines.append("allow_anonymous " + ("true" if self.anonymous else "false"))
        else:
            lines += [f"cafile {sec.ca_file}", f"certfile {sec.cert_file}",
                      f"keyfile {sec.key_file}",
                      f"require_certificate {'true' if sec.require_certificate else 'false'}"]
            if sec.require_certificate:
                lines.append("use_identity_as_username true")
            if sec.password_file is not None:
                lines += [f"password_file {sec.password_file}", "allow_anonymous false"]
            else:
                lines.append("allow_anonymous " + ("false" if sec.require_certificate
                                                   else "true"))
        self.config_file.write_text("\n".join(lines + self.extra_config) + "\n")

    def start(self, timeout: float = 10.0) -> "LocalBroker":
        if self.running:
            return self
        self.write_config()
        extra = {"start_new_session": True, "preexec_fn": _die_with_parent} \
            if self.own_session else {}
        self._proc = subprocess.Popen([self.binary, "-c", str(self.config_file)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      **extra)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr \
                    else ""
                raise SyncError(f"mosquitto exited with {self._proc.returncode}: {err}; "
                                f"log: {self._tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise SyncError(f"mosquitto did not listen on {self.port} within {timeout} s: "
                        f"{self._tail()}")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM): mosquitto saves its persistence file."""
        if not self.running:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._proc = None

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def restart(self) -> "LocalBroker":
        self.stop()
        return self.start()

    def _tail(self) -> str:
        try:
            return self.log_file.read_text()[-2000:]
        except OSError:
            return "(no log)"
