"""Whether a device takes an offered model update: pure decisions, no side effects.

Everything a desired state says is hostile until checked here. `check_control` verifies the
optional signed control block (who may halt, relabel or target a rollout); `judge_offer` decides
on the offer itself — signature, model name, version, replay, downgrade, shadow rules, signed
control once the model has had it — and returns what to do, or raises `RefusedUpdate` with the
reason. The agent records the replay memory and audits the offer only after the whole judgement
passed, so a refused offer leaves no trace but its refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cloud_sync import update_protocol as proto
from cloud_sync.errors import PayloadError
from cloud_sync.signing import SignatureError, TrustedKeys
from cloud_sync.update_download import RefusedUpdate, plan_files
from device.modelstore.pointers import SHADOWED_STAGES
from device.modelstore.store import version_key


class BadControl(PayloadError):
    """A desired state's control block is not signed by a trusted key, does not match the
    message and its manifest, or is older than one already acted on."""


def check_control(name: str, body: dict[str, Any], desired: proto.Desired,
                  manifest: dict[str, Any], group: str, trusted: TrustedKeys,
                  last_issued: int) -> int | None:
    """The control block's issued_ns when the desired state carries one signed by a trusted
    key that matches it (rollout, group, model, stage, canaries, manifest digest) and is not
    older than `last_issued`; None when it has none (the unsigned form); BadControl otherwise."""
    if "control" not in body and "control_signature" not in body:
        return None
    control = body.get("control")
    if not isinstance(control, dict):
        raise BadControl("control block is not an object")
    try:
        trusted.verify(control, body.get("control_signature"))
    except SignatureError as exc:
        raise BadControl(f"control block: {exc}") from exc
    expected = {"rollout": desired.rollout, "group": group, "model": name,
                "stage": desired.stage, "canaries": sorted(desired.canaries),
                "manifest_sha256": proto.manifest_digest(manifest)}
    for key, value in expected.items():
        if control.get(key) != value:
            raise BadControl(f"control block's {key} does not match the desired state "
                             f"(signed {control.get(key)!r:.80}, got {value!r:.80})")
    issued = control.get("issued_ns")
    if isinstance(issued, bool) or not isinstance(issued, int) or issued < 0:
        raise BadControl("control block's issued_ns is not a non-negative integer")
    if issued < last_issued:
        raise BadControl(f"replayed control block: issued {issued} is older than the last "
                         f"one acted on ({last_issued})")
    return issued


@dataclass(frozen=True)
class Offer:
    """An offer that passed every check: what to record and how to fetch it."""
    version: str
    key_id: str
    issued_ns: int
    rollback: bool
    shadow: bool
    chunk_size: int
    files: list


def judge_offer(name: str, body: dict[str, Any], manifest: dict[str, Any],
                trusted: TrustedKeys, memory: dict[str, Any], active: str | None,
                max_artifact_bytes: int, signed_control: bool = False) -> Offer | None:
    """The offer to take; None for one to pass over quietly (a version that failed here
    before); RefusedUpdate (or SignatureError) with the reason for one to refuse.

    `signed_control`: the desired state carries a valid signed control block. Once this
    device has taken one for the model (`memory["control"]`), an offer of it without one is
    refused: the manifest's signature does not name a group, so a manifest signed for another
    group (a rollback, a canary build) with its control block removed must not be taken."""
    kid = trusted.verify(manifest, body.get("signature"))
    if manifest.get("name") != name:
        raise RefusedUpdate(f"manifest names model {manifest.get('name')!r:.80} on the "
                            f"topic of {name!r}")
    version = proto.check_version(manifest.get("version"))
    update = manifest["update"]
    rollback = update.get("rollback") is True
    shadow = update.get("shadow") is True
    issued = update.get("issued_ns", 0)
    if isinstance(issued, bool) or not isinstance(issued, int):
        raise RefusedUpdate(f"issued_ns {issued!r:.40} is not an integer")
    if issued < memory["issued"].get(name, 0):
        raise RefusedUpdate(f"replayed desired state: issued {issued} is older than the "
                            f"last accepted ({memory['issued'][name]})")
    if version in memory["failed"].get(name, []) and not rollback:
        return None                      # failed here before: stays rolled back
    if active and version_key(version) < version_key(active) and not rollback:
        raise RefusedUpdate(f"version {version} is older than the installed {active} and "
                            "not marked a rollback (replayed older version?)")
    if not signed_control and memory["control"].get(name):
        raise RefusedUpdate(f"no signed control block, but {name}'s desired states have carried "
                            "one on this device (its control block removed: replayed from "
                            "another group or rollout?)")
    if shadow and name not in SHADOWED_STAGES:
        raise RefusedUpdate(f"shadow mode runs challengers for the pipeline's stages "
                            f"({', '.join(SHADOWED_STAGES)}), not {name!r}")
    if shadow and version == active:
        raise RefusedUpdate(f"{name} {version} is the active version; it cannot be its own "
                            "challenger")
    chunk_size, files = plan_files(update, max_artifact_bytes)
    return Offer(version, kid, issued, rollback, shadow, chunk_size, files)
