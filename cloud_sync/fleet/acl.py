"""The broker's ACL, written from the fleet's groups file (`edgelens-fleet acl`).

Mosquitto's pattern rules know a client only by its client id (%c) and user name (%u), not by
its group, so the ACL has two parts:

  * pattern rules (every client, by client id): publish only under P/<own id>/..., read only
    its own commands and chunks;
  * one `user` block per device, written from the groups file: read the desired state of its
    own group only.

The device listener sets `use_username_as_clientid true` (deploy/mosquitto.conf), so a device
cannot pick another device's client id and the two parts name the same device. Rewrite the file
whenever the groups change and send the broker SIGHUP (`systemctl reload mosquitto`): the ACL
is re-read on reload.

The groups file (TOML):

    [groups]
    pilot-berlin = ["glasses-0001", "glasses-0002"]
    staff = ["glasses-0100"]
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

from cloud_sync import topics
from cloud_sync import update_protocol as proto
from cloud_sync.errors import PayloadError, SyncError
from cloud_sync.fleet.device_input import valid_name


FLEET_USER = "fleet"
_DEVICE_WRITES = ("availability", "telemetry", "status", "update/status", "update/request")
_DEVICE_READS = ("cmd/#", "update/chunk", "receipt")


def load_groups(path: str | Path) -> dict[str, list[str]]:
    """group → device ids from a groups file; SyncError naming the problem."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SyncError(f"groups file {path}: {exc}") from exc
    table = raw.get("groups")
    if not isinstance(table, dict):
        raise SyncError(f"groups file {path}: expected a [groups] table of group = [device "
                        "ids]")
    groups: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for group, devices in table.items():
        try:
            proto.check_group(group)
            if not valid_name(group):           # matched whole: no trailing newline
                raise PayloadError(f"group {group!r}: use 1-64 of A-Z a-z 0-9 _ . -")
            if not isinstance(devices, list):
                raise PayloadError(f"group {group!r} must list device ids")
            for device in devices:
                if not isinstance(device, str):
                    raise PayloadError(f"group {group!r}: {device!r} is not a device id")
                topics.check_device_id(device)
                if not valid_name(device):
                    raise PayloadError(f"device id {device!r} is not usable in a topic")
        except PayloadError as exc:
            raise SyncError(f"groups file {path}: {exc}") from exc
        for device in devices:
            if device == FLEET_USER:
                raise SyncError(f"groups file {path}: {FLEET_USER!r} is the fleet identity, "
                                "not a device")
            if device in owner:
                raise SyncError(f"groups file {path}: {device} is in both {owner[device]!r} "
                                f"and {group!r}; a device belongs to one group")
            owner[device] = group
        groups[group] = sorted(devices)
    return groups


def enroll(path: str | Path, device: str, group: str) -> dict[str, list[str]]:
    """Put `device` in `group` in the groups file (created if missing; a device moves out of
    the group it was in), written atomically; the groups as written."""
    path = Path(path)
    groups = load_groups(path) if path.exists() else {}
    groups = {g: [d for d in members if d != device] for g, members in groups.items()}
    groups.setdefault(group, []).append(device)
    text = "[groups]\n" + "".join(f"{g} = {json.dumps(sorted(members))}\n"
                                   for g, members in sorted(groups.items()))
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)
    return load_groups(path)


def render_acl(prefix: str, groups: dict[str, list[str]], source: str = "") -> str:
    """The acl_file text for these groups (SyncError for a name that could break a line)."""
    for group, devices in groups.items():
        for name in (group, *devices):
            if not valid_name(name):
                raise SyncError(f"{name!r} cannot go into the ACL: use 1-64 of A-Z a-z 0-9 _ . -")
    lines = [
        "# edgelens broker ACL (Mosquitto 2.x acl_file). Topic map: cloud_sync/README.md.",
        f"# Written by `edgelens-fleet acl`{' from ' + source if source else ''}; do not edit: "
        "change the groups file,",
        "# write this again and reload the broker (SIGHUP).",
        "#",
        "# Devices log in with user name = device id on the device listener, which sets",
        "# use_username_as_clientid, so %c below is the device's own id. A device may publish",
        f"# only under {prefix}/<its id>/, read only its own commands and chunks and its own",
        f"# group's desired state. Only the `{FLEET_USER}` identity may publish desired state, "
        "commands and chunks.",
        "",
        "# --- the fleet (ingest workers, edgelens-fleet push/rollout/serve) ---",
        f"user {FLEET_USER}",
        f"topic readwrite {prefix}/#",
        f"topic read $share/+/{prefix}/+/telemetry",
        "",
        "# --- every client: its own topics only (by client id) ---",
    ]
    lines += [f"pattern write {prefix}/%c/{leaf}" for leaf in _DEVICE_WRITES]
    lines += [f"pattern read {prefix}/%c/{leaf}" for leaf in _DEVICE_READS]
    lines += ["# whether the fleet sends receipts (retained; only the fleet writes it)",
              f"pattern read {topics.receipts_topic(prefix)}"]
    lines += ["", "# --- each device: its own group's desired state ---"]
    for group in sorted(groups):
        for device in groups[group]:
            lines += [f"user {device}",
                      f"topic read {prefix}/{proto.GROUP_LEVEL}/{group}/desired/+"]
    return "\n".join(lines) + "\n"
