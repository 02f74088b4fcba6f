"""`edgelens-fleet broker --dev`: a development fleet in one folder (`DevFleet`). The shipped
config's shape (logins per listener, a device listener where the user name is the client id, a
fleet listener, the ACL `fleet_acl` renders from a groups file) on plain MQTT on 127.0.0.1, with
throwaway logins for the `fleet` identity and N devices, and the TOML configs they need; the
broker itself is a `localbroker.LocalBroker`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from cloud_sync.errors import SyncError
from cloud_sync.fleet.acl import load_groups, render_acl
from cloud_sync.fleet.localbroker import LocalBroker, password_line, port_free
from device.modelstore.store import default_root, version_key

DEV_GROUP = "dev"
FLEET_LOGIN = "fleet"


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)            # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def toml_text(sections: dict[str, dict], comment: str = "") -> str:
    lines = [f"# {line}" if line else "#" for line in comment.splitlines()]
    for name, values in sections.items():
        lines += ["" if lines else None, f"[{name}]"]
        lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
    return "\n".join(line for line in lines if line is not None) + "\n"


@dataclass
class DevFleet:
    """A development fleet in one folder: Mosquitto on 127.0.0.1 (plain MQTT, persistence on,
    logins per listener as in deploy/mosquitto.conf, the ACL rendered by fleet_acl from
    `groups.toml`), throwaway logins for `fleet` and device-1..device-N (kept in
    `credentials.json` and reused when started again), and the configs: `device-K.toml`,
    `fleet.toml`. Each device's model store (`device-K/models`) starts with the oldest
    bundled version of each model, so the newer bundled versions are updates for it."""

    directory: Path
    port: int = 1883
    fleet_port: int = 0                       # 0: port + 1
    devices: int = 1
    host: str = "127.0.0.1"
    prefix: str = "edgelens"

    def __post_init__(self):
        self.directory = Path(self.directory).resolve()
        self.fleet_port = self.fleet_port or self.port + 1
        if self.devices < 1:
            raise SyncError("--devices must be at least 1")
        if self.port == self.fleet_port:
            raise SyncError("the device and fleet listeners need two different ports")

    @property
    def device_ids(self) -> list[str]:
        return [f"device-{k}" for k in range(1, self.devices + 1)]

    @property
    def broker_dir(self) -> Path:
        return self.directory / "broker"

    @property
    def groups_file(self) -> Path:
        return self.directory / "groups.toml"

    @property
    def key_stem(self) -> Path:
        return self.directory / "keys" / "fleet"

    def config_file(self, who: str) -> Path:
        return self.directory / f"{who}.toml"

    def check_ports(self) -> None:
        for port, what in ((self.port, "device"), (self.fleet_port, "fleet")):
            if not port_free(port, self.host):
                raise SyncError(f"port {port} ({what} listener) is in use on {self.host} "
                                "(another broker, or a dev broker still running?): pass "
                                "--port N (devices; the fleet gets N+1) or --fleet-port")

    # --- files -------------------------------------------------------------------------------

    def prepare(self) -> dict[str, str]:
        """Write (or update) every file; → {name: TOML text} of the configs written."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.broker_dir.mkdir(parents=True, exist_ok=True)
        logins = self._credentials()
        groups = self._groups()
        _write_private(self.broker_dir / "passwords", "".join(
            password_line(d, logins[d]) + "\n" for d in self.device_ids))
        _write_private(self.broker_dir / "fleet.passwords",
                       password_line(FLEET_LOGIN, logins[FLEET_LOGIN]) + "\n")
        acl = render_acl(self.prefix, load_groups(self.groups_file),
                         source=self.groups_file.name)
        (self.broker_dir / "edgelens.acl").write_text(acl)
        owner = {d: g for g, members in groups.items() for d in members}
        texts = {d: self._device_toml(d, logins[d], owner.get(d, DEV_GROUP))
                 for d in self.device_ids}
        texts["fleet"] = self._fleet_toml(logins[FLEET_LOGIN])
        for who, text in texts.items():
            _write_private(self.config_file(who), text)
        for device in self.device_ids:
            self._seed_store(self.directory / device / "models")
        return texts

    def _credentials(self) -> dict[str, str]:
        path = self.directory / "credentials.json"
        try:
            logins = json.loads(path.read_text())
            if not isinstance(logins, dict):
                logins = {}
        except (OSError, ValueError):
            logins = {}
        wanted = [FLEET_LOGIN, *self.device_ids]
        changed = False
        for user in wanted:
            if not isinstance(logins.get(user), str) or not logins[user]:
                logins[user] = secrets.token_urlsafe(18)
                changed = True
        if changed:
            _write_private(path, json.dumps(logins, indent=1) + "\n")
        return logins

    def _groups(self) -> dict[str, list[str]]:
        """groups.toml as it is (edits kept), with every dev device not in a group put in
        `dev`."""
        groups: dict[str, list[str]] = {}
        if self.groups_file.is_file():
            try:
                raw = tomllib.loads(self.groups_file.read_text())
                groups = {g: list(m) for g, m in raw.get("groups", {}).items()}
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                raise SyncError(f"{self.groups_file}: {exc}") from exc
        placed = {d for members in groups.values() for d in members}
        missing = [d for d in self.device_ids if d not in placed]
        if missing or not self.groups_file.is_file():
            groups.setdefault(DEV_GROUP, [])
            groups[DEV_GROUP] += missing
            self.groups_file.write_text(toml_text(
                {"groups": groups}, "Device groups of the development fleet (edgelens-fleet "
                "broker --dev): group = [device ids].\nThe broker ACL is written from this "
                "file when the dev broker starts."))
        return groups

    def _device_toml(self, device: str, password: str, group: str) -> str:
        folder = self.directory / device
        return toml_text({
            "telemetry": {"device_id": device, "db_path": str(folder / "telemetry.sqlite")},
            "mqtt": {"host": self.host, "port": self.port, "username": device,
                     "password": password, "topic_prefix": self.prefix,
                     "reconnect_max_s": 5.0},
            "models": {"store": str(folder / "models")},
            "updates": {"group": group,
                        "trusted_keys": [str(self.key_stem.with_suffix(".pub"))]},
        }, f"{device} on the development broker (edgelens-fleet broker --dev): throwaway "
           "login, plain MQTT on\n127.0.0.1. For `edgelens-sync run --config` and "
           "`edgelens run --config` on the device.\nThe trusted key is written by "
           f"`edgelens-fleet keygen --out {self.key_stem}`.")

    def _fleet_toml(self, password: str) -> str:
        return toml_text({
            "mqtt": {"host": self.host, "port": self.fleet_port, "username": FLEET_LOGIN,
                     "password": password, "topic_prefix": self.prefix,
                     "reconnect_max_s": 5.0},
            "fleet": {"db": str(self.directory / "fleet.sqlite"),
                      "groups_file": str(self.groups_file)},
            "updates": {"signing_key": str(self.key_stem.with_suffix(".key")),
                        "rollout_file": str(self.directory / "rollouts.json")},
        }, "The fleet side of the development broker (edgelens-fleet broker --dev): "
           "throwaway login.\nFor edgelens-fleet ingest, status, push, rollout and serve "
           "(--config).")

    @staticmethod
    def _seed_store(store: Path) -> None:
        """The oldest bundled version of each model, once (a device's store is its own)."""
        if store.exists():
            return
        bundled = default_root()
        staging = store.with_name(store.name + ".seeding")
        shutil.rmtree(staging, ignore_errors=True)
        for model in sorted(p for p in bundled.iterdir() if p.is_dir()):
            versions = [p for p in model.iterdir() if (p / "manifest.json").is_file()]
            try:
                oldest = min(versions, key=lambda p: version_key(p.name), default=None)
            except ValueError:
                continue
            if oldest is not None:
                shutil.copytree(oldest, staging / model.name / oldest.name)
        staging.mkdir(parents=True, exist_ok=True)
        os.replace(staging, store)

    # --- the broker --------------------------------------------------------------------------

    def broker(self) -> LocalBroker:
        acl, folder = self.broker_dir / "edgelens.acl", self.broker_dir
        return LocalBroker(folder, port=self.port, host=self.host, per_listener_settings=True,
                           anonymous=False, own_session=True, extra_config=[
                               "use_username_as_clientid true",
                               f"password_file {folder / 'passwords'}", f"acl_file {acl}",
                               "message_size_limit 1048576",
                               f"listener {self.fleet_port} {self.host}",
                               "allow_anonymous false",
                               f"password_file {folder / 'fleet.passwords'}",
                               f"acl_file {acl}"])


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds a login)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
