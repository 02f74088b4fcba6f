"""The MQTT topic map (also in cloud_sync/README.md). `P` is [mqtt] topic_prefix ("edgelens").

| topic                   | direction      | QoS | retained | payload                        |
|-------------------------|----------------|-----|----------|--------------------------------|
| P/<device>/availability | device → fleet | 1   | yes      | `online`/`offline` (last will) |
| P/<device>/telemetry    | device → fleet | 1   | no       | zlib(JSON batch), see batch.py |
| P/<device>/status       | device → fleet | 1   | yes      | JSON: backlog gauge, counters  |
| P/<device>/cmd/<name>   | fleet → device | 1   | no       | JSON object; names in COMMANDS |
| P/<device>/receipt      | fleet → device | 1   | no       | JSON: seq ranges committed     |
| P/_fleet/receipts       | fleet → device | 1   | yes      | `1`: ingest sends receipts     |

Fleet ingest workers subscribe to `$share/<group>/P/+/telemetry` (an MQTT 5 shared subscription:
each batch goes to one worker of the group) and, unshared, to `P/+/availability` and
`P/+/status` (retained messages are not delivered on shared subscriptions). After committing a
batch a worker sends the device a receipt for it, and every worker keeps `P/_fleet/receipts`
retained, so devices know to wait for receipts (cloud_sync/batch.py, `receipt`).
"""

from __future__ import annotations

import re

from cloud_sync.errors import PayloadError

AVAILABILITY = "availability"
TELEMETRY = "telemetry"
STATUS = "status"
COMMAND = "cmd"
RECEIPT = "receipt"
FLEET_LEVEL = "_fleet"      # not a device id (those start with a letter or digit)
ONLINE, OFFLINE = b"online", b"offline"
COMMANDS = ("ping",)   # commands the sync agent understands; others are logged and dropped

# \Z, not $: `$` also matches before a trailing newline
_DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def check_device_id(device: str) -> str:
    if not isinstance(device, str) or not _DEVICE_ID.match(device):
        raise PayloadError(f"device id {device!r} is not usable in a topic: use 1-64 letters, "
                           "digits, '_', '.', '-', starting with a letter or digit")
    return device


def device_topic(prefix: str, device: str, channel: str) -> str:
    return f"{prefix}/{check_device_id(device)}/{channel}"


def command_topic(prefix: str, device: str, name: str) -> str:
    return f"{prefix}/{check_device_id(device)}/{COMMAND}/{name}"


def receipts_topic(prefix: str) -> str:
    """Retained `1` while the fleet's ingest confirms what it commits."""
    return f"{prefix}/{FLEET_LEVEL}/receipts"


def shared(group: str, topic_filter: str) -> str:
    return f"$share/{group}/{topic_filter}"


def parse(prefix: str, topic: str) -> tuple[str, str, str | None]:
    """Split P/<device>/<channel>[/<name>] into (device, channel, name); PayloadError when the
    topic is not in the map."""
    parts = topic.split("/")
    if len(parts) < 3 or parts[0] != prefix or not _DEVICE_ID.match(parts[1]):
        raise PayloadError(f"unknown topic {topic!r}")
    device, channel = parts[1], parts[2]
    if channel == COMMAND and len(parts) == 4 and parts[3]:
        return device, channel, parts[3]
    if channel in (AVAILABILITY, TELEMETRY, STATUS, RECEIPT) and len(parts) == 3:
        return device, channel, None
    raise PayloadError(f"unknown topic {topic!r}")
