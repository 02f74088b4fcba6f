"""Taking or refusing an offered model update: what the device does with a desired state once
it is parsed. `OfferSteps` is a part of `UpdateAgent` (cloud_sync/update_agent.py), kept apart
like `InstallSteps` (cloud_sync/update_install.py): it applies the control fields (halt, canary,
signed or not: update_policy.check_control), judges the offer (update_policy.judge_offer),
records an accepted one in the replay memory, audits it and starts its job — a switch to a
version still in the store, or a download (cloud_sync/update_fetch.py) — or refuses it with the
reason (audit record `update_refused`, state `refused`).
"""

from __future__ import annotations

import logging
from typing import Any

from cloud_sync import update_protocol as proto
from cloud_sync.errors import PayloadError
from cloud_sync.signing import SignatureError
from cloud_sync.update_download import RefusedUpdate, describe_os_error
from cloud_sync.update_install import Job
from cloud_sync.update_policy import check_control, judge_offer

log = logging.getLogger(__name__)


class OfferSteps:
    """The offer half of UpdateAgent (which provides store, settings, group, device, trusted,
    memory, audit, stats, jobs, fetch, _set, _active and _noisy; InstallSteps provides
    _switch and _after_install)."""

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
                            self.settings.max_artifact_bytes)
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
        version = manifest.get("version") if isinstance(manifest, dict) else None
        log.warning("update refused",
                    extra={"model": name, "version": version, "reason": reason})
        self.audit("update_refused", {"model": name, "version": version, "rollout": rollout,
                                      "reason": reason})
        job = self.jobs.get(name)
        if job is not None and job.rollout == rollout and job.version == version:
            self.jobs.pop(name)          # a refused offer leaves another job under way alone
        self._set(name, "refused", version=version, rollout=rollout, reason=reason)
