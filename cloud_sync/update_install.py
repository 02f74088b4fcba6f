"""Install, health and rollback: the steps of an update after its download is complete.

`InstallSteps` is a part of `UpdateAgent` (cloud_sync/update_agent.py), kept apart so the wire
(MQTT, the inbox, status) and the pure accept/refuse policy (cloud_sync/update_policy.py) read on
their own: verify and rename into the store, switch ACTIVE (or SHADOW for a challenger), wait for
the health verdict (the pipeline's, or this process's own precheck), mark good and prune, or roll
back to the previous good version and set the failed one aside.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from cloud_sync.update_download import Download, RefusedUpdate, describe_os_error
from device.errors import EdgelensError
from device.modelstore import install
from device.modelstore.health import precheck
from device.modelstore.pointers import clear_shadow, set_shadow
from device.modelstore.store import MANIFEST, read_manifest

log = logging.getLogger(__name__)


@dataclass
class Job:
    desired: dict[str, Any]
    name: str
    version: str
    rollout: str
    state: str = "offered"
    download: Download | None = None
    requested: set = field(default_factory=set)
    requested_at: float = 0.0
    health_deadline: float = 0.0
    previous: str | None = None
    bad_chunks: dict = field(default_factory=dict)
    requested_on: int = -1
    signed_control: bool = False        # started by a desired state whose control was signed

    @property
    def shadow(self) -> bool:
        """A challenger (shadow mode): installed and named by SHADOW, never made active."""
        return self.desired.get("manifest", {}).get("update", {}).get("shadow") is True


class InstallSteps:
    """The install/health/rollback half of UpdateAgent (which provides store, settings, cfg,
    health, memory, audit, _set and _refuse)."""

    def _install(self, job: Job) -> None:
        d = job.download
        try:
            d.verify()
            manifest = {k: v for k, v in job.desired["manifest"].items() if k != "update"}
            (d.directory / MANIFEST).write_text(json.dumps(manifest, indent=2))
            read_manifest(d.directory, job.name, job.version)
        except (RefusedUpdate, EdgelensError, OSError, ValueError) as exc:
            d.discard()
            reason = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
            self._refuse(job.name, job.rollout, job.desired["manifest"], reason)
            return
        self._set(job.name, "verified", version=job.version, rollout=job.rollout)
        try:
            install.pin_active(self.store, job.name)
            install.install_staged(self.store, d.directory, job.name, job.version)
        except OSError as exc:
            if job.version not in self.store.versions(job.name):
                d.discard()
                self._refuse(job.name, job.rollout, job.desired["manifest"],
                             f"install failed: {describe_os_error(exc)}")
                return
        d.finish()
        self._switch(job)

    def _switch(self, job: Job) -> None:
        version = self.store.get(job.name, job.version)
        problems = version.check_files()
        if problems:
            self._refuse(job.name, job.rollout, job.desired["manifest"],
                         "installed files fail their checks: " + "; ".join(problems))
            return
        if job.shadow:               # a challenger: ACTIVE stays as it is
            set_shadow(self.store, job.name, job.version)
            self.audit("model_shadowed", {"model": job.name, "version": job.version,
                                          "active": job.previous, "rollout": job.rollout})
            self._after_install(job)
            return
        install.set_active(self.store, job.name, job.version)
        self.audit("model_activated", {"model": job.name, "version": job.version,
                                       "previous": job.previous, "rollout": job.rollout})
        self._after_install(job)

    def _after_install(self, job: Job) -> None:
        job.state = "installed"
        job.health_deadline = time.monotonic() + self.settings.health_timeout_s
        self._set(job.name, "installed", version=job.version, rollout=job.rollout,
                  **({"shadow": True} if job.shadow else {}))
        if self.settings.health_source == "agent" or job.shadow:
            self._judge_here(job)    # the pipeline judges only what it swaps in, not shadows

    def _judge_here(self, job: Job) -> None:
        directory = self.store.root / job.name / job.version
        if install.read_health(directory) is None:
            try:
                verdict = precheck(self.store.get(job.name, job.version),
                                   self.cfg.runtime.backend, self.health)
            except Exception as exc:  # noqa: BLE001 - a check that cannot run is failed
                verdict = {"healthy": False, "checks": {},
                           "reason": f"health check could not run: {type(exc).__name__}: "
                                     f"{exc}"[:500]}
            verdict["judge"] = "sync-agent"
            install.write_health(directory, verdict)

    def _check_health(self, job: Job, now: float) -> None:
        verdict = install.read_health(self.store.root / job.name / job.version)
        if verdict is None:
            if now >= job.health_deadline:
                log.warning("no health verdict from the pipeline in time; checking here",
                            extra={"model": job.name, "version": job.version,
                                   "timeout_s": self.settings.health_timeout_s})
                self._judge_here(job)
            return
        if verdict.get("healthy") is True and job.shadow:
            # a healthy challenger is not a rollback target: GOOD and pruning are left alone
            self.audit("model_healthy", {"model": job.name, "version": job.version,
                                         "rollout": job.rollout, "shadow": True,
                                         "checks": verdict.get("checks", {})})
            job.state = "healthy"
            self._set(job.name, "healthy", version=job.version, rollout=job.rollout,
                      shadow=True, checks=verdict.get("checks", {}))
            return
        if verdict.get("healthy") is True:
            install.mark_good(self.store, job.name, job.version)
            removed = install.prune(self.store, job.name, self.settings.keep_good)
            self.audit("model_healthy", {"model": job.name, "version": job.version,
                                         "rollout": job.rollout, "removed": removed,
                                         "checks": verdict.get("checks", {})})
            job.state = "healthy"
            self._set(job.name, "healthy", version=job.version, rollout=job.rollout,
                      checks=verdict.get("checks", {}))
            return
        self._roll_back(job, str(verdict.get("reason", "unhealthy")))

    def _roll_back(self, job: Job, reason: str) -> None:
        if job.shadow:               # an unhealthy challenger: stop shadowing, set it aside
            clear_shadow(self.store, job.name)
            self._set_aside_failed(job, reason, shadow=True)
            return
        target = install.previous_good(self.store, job.name, job.version) or job.previous
        if target is None or target == job.version or target not in self.store.versions(
                job.name):
            log.error("model version is unhealthy and there is no previous version to go "
                      "back to", extra={"model": job.name, "version": job.version,
                                        "reason": reason})
            job.state = "unhealthy"
            self._set(job.name, "unhealthy", version=job.version, rollout=job.rollout,
                      reason=reason)
            return
        install.set_active(self.store, job.name, target)
        self._set_aside_failed(job, reason, audit={"to": target}, status={"active": target})

    def _set_aside_failed(self, job: Job, reason: str, shadow: bool = False,
                          audit: dict | None = None, status: dict | None = None) -> None:
        """Keep a failed version aside for inspection, remember it, audit and report it."""
        aside = install.set_aside(self.store, job.name, job.version)
        memory = self.memory.load()
        memory["failed"].setdefault(job.name, []).append(job.version)
        try:
            self.memory.save(memory)
        except OSError as exc:
            log.error("failed version not recorded: a later offer of it would be installed "
                      "again", extra={"model": job.name, "version": job.version,
                                      "error": describe_os_error(exc)})
        flag = {"shadow": True} if shadow else {}
        self.audit("model_rolled_back", {"model": job.name, "version": job.version, **flag,
                                         **(audit or {}), "reason": reason,
                                         "kept_at": str(aside), "rollout": job.rollout})
        job.state = "rolled_back"
        self._set(job.name, "rolled_back", version=job.version, rollout=job.rollout,
                  reason=reason, **flag, **(status or {}))
