"""The device side of model updates, inside edgelens-sync: learn the desired version, fetch only
missing chunks, verify, install atomically, wait for the health verdict, roll back on failure.

Messages arrive on paho's network thread and are only queued there; everything else runs on
this agent's own thread (`run(stop)`). The running model is never touched until a version is
complete, verified and renamed into the store; a refusal leaves it serving and writes an audit
record (`update_refused`) with the reason. States reported on P/<device>/update/status:
offered, downloading (percent), verified, installed, healthy, rolled_back (reason), refused.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud_sync import update_protocol as proto
from cloud_sync.errors import LinkError, PayloadError
from cloud_sync.signing import SignatureError, TrustedKeys
from cloud_sync.update_download import Download, RefusedUpdate, plan_files
from device import model_install as install
from device.errors import EdgelensError, TelemetryError
from device.model_health import HealthSettings, precheck
from device.model_store import MANIFEST, ModelStore
from device.shadow import SHADOWED_STAGES, clear_shadow, set_shadow
from device.telemetry.records import Clock, Record
from device.telemetry.store import TelemetryStore

log = logging.getLogger(__name__)

_MAX_DESIRED_BYTES = 4 * 1024 * 1024
_STATUS_EVERY_S = 0.5
_BAD_CHUNK_LIMIT = 3        # copies of one chunk that fail their hash before we give up


class AuditSink:
    """Audit records into the device's telemetry store (the sync agent sends them on)."""

    def __init__(self, telemetry: Any):
        self.settings = telemetry
        self._store: TelemetryStore | None = None
        self._clock = Clock()

    def __call__(self, action: str, fields: dict[str, Any]) -> None:
        log.info("audit %s %s", action, fields)
        if not self.settings.enabled:
            return
        try:
            if self._store is None:
                self._store = TelemetryStore.open(self.settings.db_path, self.settings,
                                                  quarantine=False)
            wall, mono = self._clock.now()
            self._store.insert([Record("audit", wall, mono, {"action": action, **fields})])
        except (TelemetryError, OSError) as exc:
            log.error("audit record %s not stored: %s", action, exc)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


@dataclass
class UpdateStats:
    ignored_malformed: int = 0
    ignored_foreign: int = 0
    ignored_unexpected_chunk: int = 0
    ignored_bad_chunk: int = 0
    chunks_received: int = 0
    bytes_received: int = 0
    requests_sent: int = 0


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

    @property
    def shadow(self) -> bool:
        """A challenger (shadow mode): installed and named by SHADOW, never made active."""
        return self.desired.get("manifest", {}).get("update", {}).get("shadow") is True


class UpdateAgent:
    def __init__(self, cfg: Any, link: Any, device: str, audit: AuditSink | None = None):
        self.cfg, self.settings = cfg, cfg.updates
        self.link, self.device = link, device
        self.prefix = cfg.mqtt.topic_prefix
        self.group = proto.check_group(self.settings.group)
        self.store = ModelStore(cfg.models.store or None)
        self.staging = Path(self.settings.staging_dir or self.store.root / ".staging")
        self.trusted = TrustedKeys.from_files(list(self.settings.trusted_keys))
        self.health = HealthSettings.from_config(self.settings)
        self.audit = audit or AuditSink(cfg.telemetry)
        self.stats = UpdateStats()
        self.jobs: dict[str, Job] = {}
        self.models: dict[str, dict[str, Any]] = {}
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._status_topic = proto.device_update_topic(self.prefix, device, "status")
        self._request_topic = proto.device_update_topic(self.prefix, device, "request")
        self._chunk_topic = proto.device_update_topic(self.prefix, device, "chunk")
        self._status_at = 0.0
        self._status_dirty = True
        self._connects = -1
        self._memory = self.staging / "memory.json"   # last issued_ns and failed versions

    # --- wiring ------------------------------------------------------------------------------

    def subscriptions(self) -> list[str]:
        return [f"{self.prefix}/{proto.GROUP_LEVEL}/{self.group}/desired/+", self._chunk_topic]

    def owns(self, topic: str) -> bool:
        return topic.startswith(f"{self.prefix}/{proto.GROUP_LEVEL}/") or \
            topic.startswith(f"{self.prefix}/{self.device}/{proto.UPDATE}/")

    def handle(self, topic: str, payload: bytes) -> None:
        """paho's network thread: queue only."""
        self.inbox.put((topic, bytes(payload)))

    # --- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self._prepare_store()
        try:
            while not stop.is_set():
                try:
                    topic, payload = self.inbox.get(timeout=0.1)
                except queue.Empty:
                    topic = None
                if topic is not None:
                    self._dispatch(topic, payload)
                self._tick(time.monotonic())
        finally:
            self.audit.close()

    def _prepare_store(self) -> None:
        self.staging.mkdir(parents=True, exist_ok=True)
        for name in self.store.names():
            install.recover(self.store, name)
            active = install.pin_active(self.store, name)
            if active and not install.good_versions(self.store, name):
                install.mark_good(self.store, name, active)
            self.models[name] = {"state": "idle", "active": active}

    def _dispatch(self, topic: str, payload: bytes) -> None:
        try:
            if topic == self._chunk_topic:
                self._on_chunk(payload)
            elif topic.startswith(f"{self.prefix}/{proto.GROUP_LEVEL}/{self.group}/desired/"):
                model = topic.rsplit("/", 1)[1]
                if payload:
                    self._on_desired(proto.check_model_name(model), payload)
            else:
                self.stats.ignored_foreign += 1
        except PayloadError as exc:
            self.stats.ignored_malformed += 1
            log.warning("update message on %s ignored: %s", topic, exc)
        except (EdgelensError, OSError) as exc:
            log.exception("update step failed: %s", exc)

    # --- desired state -----------------------------------------------------------------------

    def _on_desired(self, name: str, payload: bytes) -> None:
        body = proto.parse_json(payload, "desired state", _MAX_DESIRED_BYTES)
        rollout, stage = str(body.get("rollout", "")), body.get("stage")
        manifest = body.get("manifest")
        if not isinstance(manifest, dict) or not isinstance(manifest.get("update"), dict):
            raise PayloadError("desired state lacks a manifest with an update block")
        version = manifest.get("version")
        if stage == "halted":
            job = self.jobs.get(name)
            if job is not None and job.rollout == rollout and job.state == "downloading":
                self.jobs.pop(name)
                self._set(name, "halted", version=job.version, rollout=rollout)
            return
        if stage == "canary" and self.device not in body.get("canaries", []):
            return
        job = self.jobs.get(name)
        if job is not None and job.rollout == rollout and job.version == version:
            return                       # the same desired state again (retained, reconnect)
        try:
            self._accept(name, body, manifest)
        except (RefusedUpdate, SignatureError, PayloadError) as exc:
            self._refuse(name, rollout, manifest, str(exc))

    def _accept(self, name: str, body: dict, manifest: dict) -> None:
        kid = self.trusted.verify(manifest, body.get("signature"))
        if manifest.get("name") != name:
            raise RefusedUpdate(f"manifest names model {manifest.get('name')!r} on the topic "
                                f"of {name!r}")
        version = proto.check_version(manifest.get("version"))
        update = manifest["update"]
        rollback = update.get("rollback") is True
        memory = self._remember()
        issued = int(update.get("issued_ns", 0))
        if issued < memory["issued"].get(name, 0):
            raise RefusedUpdate(f"replayed desired state: issued {issued} is older than the "
                                f"last accepted ({memory['issued'][name]})")
        active = self._active(name)
        if version in memory["failed"].get(name, []) and not rollback:
            return                       # failed here before: stays rolled back
        if active and proto.version_key(version) < proto.version_key(active) and not rollback:
            raise RefusedUpdate(f"version {version} is older than the installed {active} and "
                                "not marked a rollback (replayed older version?)")
        chunk_size, files = plan_files(update, self.settings.max_artifact_bytes)
        memory["issued"][name] = issued
        self._save_memory(memory)
        job = Job(body, name, version, str(body.get("rollout", "")), previous=active)
        self.jobs[name] = job
        self.audit("update_offered", {"model": name, "version": version, "key_id": kid,
                                      "rollout": job.rollout, "rollback": rollback})
        if job.shadow and name not in SHADOWED_STAGES:
            raise RefusedUpdate(f"shadow mode runs challengers for the pipeline's stages "
                                 f"({', '.join(SHADOWED_STAGES)}), not {name!r}")
        if job.shadow and version == active:
            raise RefusedUpdate(f"{name} {version} is the active version; it cannot be its own "
                                "challenger")
        if version == active:
            self._after_install(job)
            return
        if version in self.store.versions(name):
            self._switch(job)            # still in the store (rollback, or a kill after rename)
            return
        job.download = Download.open(self.staging, body, chunk_size, files)
        self._set(name, "downloading", version=version, rollout=job.rollout,
                  progress=self._progress(job))
        if job.download.complete:
            self._install(job)
        else:
            job.state = "downloading"
            self._request(job)

    def _refuse(self, name: str, rollout: str, manifest: dict, reason: str) -> None:
        version = manifest.get("version") if isinstance(manifest, dict) else None
        log.warning("update of %s to %s refused: %s", name, version, reason)
        self.audit("update_refused", {"model": name, "version": version, "rollout": rollout,
                                      "reason": reason})
        self.jobs.pop(name, None)
        self._set(name, "refused", version=version, rollout=rollout, reason=reason)

    # --- download ----------------------------------------------------------------------------

    def _request(self, job: Job) -> None:
        wanted = job.download.missing(self.settings.window_chunks)
        job.requested = set(wanted)
        job.requested_at = time.monotonic()
        job.requested_on = self.link.connects     # a reconnect since then: ask again
        by_file: dict[str, list[int]] = {}
        for file, index in wanted:
            by_file.setdefault(file, []).append(index)
        for file, indices in by_file.items():
            body = {"rollout": job.rollout, "name": job.name, "version": job.version,
                    "file": file, "chunks": indices}
            try:
                self.link.publish(self._request_topic, json.dumps(body).encode(), qos=1)
                self.stats.requests_sent += 1
            except LinkError as exc:
                log.debug("chunk request not sent: %s", exc)

    def _on_chunk(self, payload: bytes) -> None:
        header, data = proto.decode_chunk(payload)
        job = self.jobs.get(header.name)
        if job is None or job.state != "downloading" or job.rollout != header.rollout or \
                job.version != header.version:
            self.stats.ignored_unexpected_chunk += 1
            return
        if not job.download.write(header.file, header.index, data):
            self.stats.ignored_bad_chunk += 1
            if job.download.corrupt(header.file, header.index, data):
                job.bad_chunks[(header.file, header.index)] = \
                    job.bad_chunks.get((header.file, header.index), 0) + 1
                if job.bad_chunks[(header.file, header.index)] >= _BAD_CHUNK_LIMIT:
                    job.download.discard()
                    self._refuse(job.name, job.rollout, job.desired["manifest"],
                                 f"{header.file} chunk {header.index} does not match its "
                                 f"signed hash or size ({_BAD_CHUNK_LIMIT} copies): corrupt, "
                                 "truncated or tampered artifact")
                    return
                job.requested.discard((header.file, header.index))
                if not job.requested:
                    self._request(job)     # fetch the bad one again at once
            return
        self.stats.chunks_received += 1
        self.stats.bytes_received += len(data)
        job.requested.discard((header.file, header.index))
        self._set(job.name, "downloading", version=job.version, rollout=job.rollout,
                  progress=self._progress(job), quiet=True)
        if job.download.complete:
            self._install(job)
        elif not job.requested:
            self._request(job)

    @staticmethod
    def _progress(job: Job) -> float:
        total = job.download.total_bytes or 1
        return round(100.0 * job.download.received_bytes / total, 1)

    # --- install, health, rollback ---------------------------------------------------------------

    def _install(self, job: Job) -> None:
        d = job.download
        try:
            d.verify()
            manifest = {k: v for k, v in job.desired["manifest"].items() if k != "update"}
            (d.directory / MANIFEST).write_text(json.dumps(manifest, indent=2))
            install.read_manifest_as(d.directory, job.name, job.version)
        except (RefusedUpdate, EdgelensError, OSError, ValueError) as exc:
            d.discard()
            self._refuse(job.name, job.rollout, job.desired["manifest"], str(exc))
            return
        self._set(job.name, "verified", version=job.version, rollout=job.rollout)
        install.pin_active(self.store, job.name)
        install.install_staged(self.store, d.directory, job.name, job.version)
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
            verdict = precheck(self.store.get(job.name, job.version), self.cfg.runtime.backend,
                               self.health)
            verdict["judge"] = "sync-agent"
            install.write_health(directory, verdict)

    def _check_health(self, job: Job, now: float) -> None:
        verdict = install.read_health(self.store.root / job.name / job.version)
        if verdict is None:
            if now >= job.health_deadline:
                log.warning("no health verdict on %s %s from the pipeline in %.0f s; checking "
                            "here", job.name, job.version, self.settings.health_timeout_s)
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
            log.error("%s %s is unhealthy (%s) and there is no previous version to go back "
                      "to", job.name, job.version, reason)
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
        memory = self._remember()
        memory["failed"].setdefault(job.name, []).append(job.version)
        self._save_memory(memory)
        flag = {"shadow": True} if shadow else {}
        self.audit("model_rolled_back", {"model": job.name, "version": job.version, **flag,
                                         **(audit or {}), "reason": reason,
                                         "kept_at": str(aside), "rollout": job.rollout})
        job.state = "rolled_back"
        self._set(job.name, "rolled_back", version=job.version, rollout=job.rollout,
                  reason=reason, **flag, **(status or {}))

    # --- periodic ----------------------------------------------------------------------------

    def _tick(self, now: float) -> None:
        reconnected = self.link.connects != self._connects and self.link.connected
        if reconnected:
            self._connects = self.link.connects
            self._status_dirty = True
        for job in list(self.jobs.values()):
            if job.state == "downloading" and (
                    job.requested_on != self.link.connects
                    or now - job.requested_at > self.settings.request_timeout_s):
                self._request(job)
            elif job.state == "installed":
                self._check_health(job, now)
        if self._status_dirty and now - self._status_at >= _STATUS_EVERY_S:
            self._publish_status(now)

    def _set(self, name: str, state: str, quiet: bool = False, **fields: Any) -> None:
        entry = {"state": state, "active": self._active(name), "wall_ns": time.time_ns(),
                 **fields}
        self.models[name] = entry
        if not quiet:
            log.info("update %s: %s %s", name, state, {k: v for k, v in fields.items()
                                                        if k != "checks"})
        self._status_dirty = True
        if not quiet:
            self._status_at = 0.0       # state changes go out at once; progress is paced

    def status(self) -> dict[str, Any]:
        return {"device": self.device, "group": self.group, "models": self.models,
                "stats": self.stats.__dict__.copy(), "wall_ns": time.time_ns()}

    def _publish_status(self, now: float) -> None:
        try:
            self.link.publish(self._status_topic, json.dumps(self.status()).encode(), qos=1,
                              retain=True)
        except LinkError:
            return
        self._status_at, self._status_dirty = now, False

    # --- helpers -----------------------------------------------------------------------------

    def _active(self, name: str) -> str | None:
        try:
            return self.store.active_version(name)
        except EdgelensError:
            return None

    def _remember(self) -> dict[str, Any]:
        try:
            memory = json.loads(self._memory.read_text())
        except (OSError, ValueError):
            memory = {}
        memory.setdefault("issued", {})
        memory.setdefault("failed", {})
        return memory

    def _save_memory(self, memory: dict[str, Any]) -> None:
        install.write_atomic(self._memory, json.dumps(memory).encode())
