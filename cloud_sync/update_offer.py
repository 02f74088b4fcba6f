"""Taking or refusing an offered model update: what the device does with a desired state once
it is parsed. `OfferSteps` is a part of `UpdateAgent` (cloud_sync/update_agent.py), kept apart
like `InstallSteps` (cloud_sync/update_install.py): it applies the control fields (halt, canary,
signed or not: update_policy.check_control), judges the offer (update_policy.judge_offer),
records an accepted one in the replay memory, audits it and starts its job — a switch to a
version still in the store, or a download (cloud_sync/update_fetch.py) — or refuses it with the
reason (audit record `update_refused`, state `refused`).

What a refusal reports comes from a message that may be hostile: the version only when it is
MAJOR.MINOR.PATCH (else `invalid`), the reason cut to 300 characters, and at most one
`update_refused` audit a minute per model and reason (the ones folded in go out as one record
with their count, `repeated`), so forged offers can neither grow the retained status past the
broker's message size limit nor fill the telemetry store with audit records.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from cloud_sync import update_protocol as proto
from cloud_sync.errors import PayloadError
from cloud_sync.signing import SignatureError
from cloud_sync.update_download import RefusedUpdate, describe_os_error
from cloud_sync.update_install import Job
from cloud_sync.update_policy import check_control, judge_offer

log = logging.getLogger(__name__)

INVALID_VERSION = "invalid"     # reported for an offered version that is not MAJOR.MINOR.PATCH
_MAX_REASON = 300               # characters of a refusal's reason in the status and the audit
_MAX_ROLLOUT = 128
_REFUSAL_AUDIT_EVERY_S = 60.0   # one update_refused audit per model and reason in this time
_REFUSAL_KEYS = 8               # (model, reason) pairs held at once; more share one entry


def reported_version(manifest: Any) -> str | None:
    """The offered version as the device reports it (status, audit, log): the manifest's own
    when it passes check_version, None when it has none, INVALID_VERSION for anything else
    (whatever its size or type)."""
    version = manifest.get("version") if isinstance(manifest, dict) else None
    if version is None:
        return None
    try:
        return proto.check_version(version)
    except PayloadError:
        return INVALID_VERSION


def _bounded(text: Any, limit: int) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


class OfferSteps:
    """The offer half of UpdateAgent (which provides store, settings, group, device, trusted,
    memory, audit, stats, jobs, fetch, _refusals, _set, _active and _noisy; InstallSteps
    provides _switch and _after_install)."""

    def _consider(self, name: str, body: dict[str, Any]) -> None:
        desired = proto.check_desired(body)
        rollout, stage = desired.rollout, desired.stage
        manifest = body.get("manifest")
        if not isinstance(manifest, dict) or not isinstance(manifest.get("update"), dict):
            raise PayloadError("desired state lacks a manifest with an update block")
        signed = self._control(name, body, desired, manifest)
        version = manifest.get("version")
        job = self.jobs.get(name)
        downloading = job is not None and job.state == "downloading"
        if downloading and not signed and (job.signed_control or (
                stage == "halted" and job.rollout == rollout)):
            # unsigned control fields can delay a download that has not started (as clearing
            # the retained message can), never stop or take over one under way
            self.stats.ignored_unsigned_control += 1
            self._noisy(f"unsigned-{name}", logging.WARNING,
                        "unsigned desired state ignored: the download under way goes on",
                        {"model": name, "stage": stage, "rollout": rollout,
                         "download_version": job.version, "download_rollout": job.rollout})
            return
        if stage == "halted":
            if downloading and job.rollout == rollout:
                self.jobs.pop(name)
                self._set(name, "halted", version=job.version, rollout=rollout)
            return
        if stage == "canary" and self.device not in desired.canaries:
            return
        if job is not None and job.rollout == rollout and job.version == version:
            return                       # the same desired state again (retained, reconnect)
        try:
            self._accept(name, body, manifest, signed)
        except (RefusedUpdate, SignatureError, PayloadError) as exc:
            self._refuse(name, rollout, manifest, str(exc))

    def _control(self, name: str, body: dict[str, Any], desired: proto.Desired,
                 manifest: dict[str, Any]) -> bool:
        """True for a valid signed control block (recorded at once: an older one can never be
        acted on again), False for none; BadControl otherwise (update_policy.check_control)."""
        memory = self.memory.load()
        issued = check_control(name, body, desired, manifest, self.group, self.trusted,
                               memory["control"].get(name, 0))
        if issued is None:
            return False
        if issued > memory["control"].get(name, 0):
            memory["control"][name] = issued
            try:
                self.memory.save(memory)
            except OSError as exc:
                log.error("control block not recorded: an older one could be replayed until "
                          "it is", extra={"model": name, "error": describe_os_error(exc)})
        return True

    def _accept(self, name: str, body: dict, manifest: dict, signed: bool = False) -> None:
        """Judge the offer (update_policy.judge_offer, no side effects); only an offer that
        passed every check is recorded (replay memory), audited and started."""
        memory = self.memory.load()
        active = self._active(name)
        offer = judge_offer(name, body, manifest, self.trusted, memory, active,
                            self.settings.max_artifact_bytes, signed)
        if offer is None:
            return
        memory["issued"][name] = offer.issued_ns
        try:
            self.memory.save(memory)
        except OSError as exc:
            raise RefusedUpdate(f"cannot record the update in {self.memory.path} (replay "
                                f"protection): {describe_os_error(exc)}") from exc
        job = Job(body, name, offer.version, str(body.get("rollout", "")), previous=active,
                  signed_control=signed)
        self.jobs[name] = job
        self.audit("update_offered", {"model": name, "version": offer.version,
                                      "key_id": offer.key_id, "rollout": job.rollout,
                                      "rollback": offer.rollback})
        if offer.version == active:
            self._after_install(job)
            return
        if offer.version in self.store.versions(name):
            self._switch(job)            # still in the store (rollback, or a kill after rename)
            return
        self.fetch.start(job, body, offer)

    def _refuse(self, name: str, rollout: str, manifest: dict, reason: str) -> None:
        version = reported_version(manifest)
        rollout, reason = _bounded(rollout, _MAX_ROLLOUT), _bounded(reason, _MAX_REASON)
        self.stats.refused += 1
        self._audit_refusal(name, {"model": name, "version": version, "rollout": rollout,
                                   "reason": reason})
        job = self.jobs.get(name)
        if job is not None and job.rollout == rollout and job.version == version:
            self.jobs.pop(name)          # a refused offer leaves another job under way alone
        self._set(name, "refused", version=version, rollout=rollout, reason=reason)

    def _audit_refusal(self, name: str, fields: dict[str, Any]) -> None:
        """`update_refused` (and its log line) at most once a minute per model and reason
        (`_REFUSAL_KEYS` pairs at once; more share one entry); a refusal within that minute is
        folded in and counted (`stats.refusals_folded`), and _flush_refusals writes one record
        for the folded ones with their count (`repeated`) and the last one's fields."""
        now = time.monotonic()
        self._flush_refusals(now)
        key = (name, fields["reason"])
        if key not in self._refusals and len(self._refusals) >= _REFUSAL_KEYS:
            key = ("", "")
        held = self._refusals.get(key)
        if held is not None:
            held["folded"] += 1
            held["fields"] = fields
            self.stats.refusals_folded += 1
            return
        self._refusals[key] = {"at": now, "folded": 0, "fields": fields}
        log.warning("update refused", extra=fields)
        self.audit("update_refused", fields)

    def _flush_refusals(self, now: float) -> None:
        """Refusals folded in over a minute that ended: one `update_refused` for them, with
        their count (`repeated`) and the last one's fields (starting a new minute)."""
        for key, held in list(self._refusals.items()):
            if now - held["at"] < _REFUSAL_AUDIT_EVERY_S:
                continue
            if not held["folded"]:
                del self._refusals[key]
                continue
            fields = {**held["fields"], "repeated": held["folded"]}
            self._refusals[key] = {"at": now, "folded": 0, "fields": held["fields"]}
            log.warning("update refused", extra=fields)
            self.audit("update_refused", fields)
