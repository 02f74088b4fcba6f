"""The device side of model updates, inside edgelens-sync: learn the desired version, fetch only
missing chunks, verify, install atomically, wait for the health verdict, roll back on failure.

Messages arrive on paho's network thread and are only queued there (within a byte budget:
over it they are dropped and counted); everything else runs on this agent's own thread
(`run(stop)`). The running model is never touched until a version is complete, verified and
renamed into the store; a refusal leaves it serving and writes an audit record
(`update_refused`) with the reason. States reported on P/<device>/update/status: offered,
downloading (percent), verified, installed, healthy, rolled_back (reason), refused, halted.

No input ends the thread: a message whose handling raises anything is dropped and counted
(`stats`), a failing periodic step is counted and retried, and should the loop itself fail it
is restarted with a backoff, counted (`restarts`, `last_error`), audited
(`update_agent_restarted`) and reported; jobs under way (a download, a version waiting for its
health verdict) carry on.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud_sync import update_protocol as proto
from cloud_sync.errors import LinkError, PayloadError
from cloud_sync.signing import SignatureError, TrustedKeys
from cloud_sync.update_download import Download, RefusedUpdate, describe_os_error
from cloud_sync.update_install import InstallSteps, Job
from cloud_sync.update_memory import MEMORY_FILE, AuditSink, ReplayMemory
from cloud_sync.update_policy import BadControl, Offer, check_control, judge_offer
from device.errors import EdgelensError
from device.modelstore import install
from device.modelstore.health import HealthSettings
from device.modelstore.store import ModelStore

log = logging.getLogger(__name__)

_MAX_DESIRED_BYTES = 4 * 1024 * 1024
_MAX_CHUNK_MESSAGE_BYTES = 2 + (1 << 16) + 128 * 1024   # header length, header, largest chunk
_INBOX_BYTES = 16 * 1024 * 1024   # queued bytes per kind (chunks, other); more are dropped
_STATUS_EVERY_S = 0.5
_BAD_CHUNK_LIMIT = 3        # copies of one chunk that fail their hash before we give up
_RESTART_MIN_S, _RESTART_MAX_S = 0.5, 30.0
_STABLE_S = 60.0            # a loop that ran this long starts its restart backoff afresh
_NOISY_EVERY_S = 30.0


@dataclass
class UpdateStats:
    ignored_malformed: int = 0
    ignored_foreign: int = 0
    ignored_unexpected_chunk: int = 0
    ignored_bad_chunk: int = 0
    ignored_unsigned_control: int = 0   # an unsigned halt (or relabel) of a download: not done
    ignored_bad_control: int = 0        # a control block with a bad signature, or replayed
    dropped_errors: int = 0             # messages whose handling raised an unexpected error
    dropped_inbox_full: int = 0         # messages dropped because the inbox was over budget
    step_errors: int = 0                # periodic steps (requests, health checks) that failed
    restarts: int = 0                   # times the agent's loop failed and was started again
    last_error: str = ""
    chunks_received: int = 0
    bytes_received: int = 0
    requests_sent: int = 0


class UpdateAgent(InstallSteps):
    def __init__(self, cfg: Any, link: Any, device: str, audit: AuditSink | None = None):
        self.cfg, self.settings = cfg, cfg.updates
        self.link, self.device = link, device
        self.prefix = cfg.mqtt.topic_prefix
        self.group = proto.check_group(self.settings.group)
        self.store = ModelStore.for_config(cfg)
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
        self._desired_filter = f"{self.prefix}/{proto.GROUP_LEVEL}/{self.group}/desired/+"
        self._status_at = 0.0
        self._status_dirty = True
        self._connects = -1
        self.memory = ReplayMemory(self.store.root / MEMORY_FILE, self.staging / "memory.json")
        self._inbox_lock = threading.Lock()
        self._inbox_bytes = {"chunk": 0, "other": 0}
        self._resync = False        # a desired state was dropped: fetch the retained ones again
        self._prepared = False
        self._noisy_at: dict[str, float] = {}

    # --- wiring ------------------------------------------------------------------------------

    def subscriptions(self) -> list[str]:
        return [self._desired_filter, self._chunk_topic]

    def owns(self, topic: str) -> bool:
        return topic.startswith(f"{self.prefix}/{proto.GROUP_LEVEL}/") or \
            topic.startswith(f"{self.prefix}/{self.device}/{proto.UPDATE}/")

    def handle(self, topic: str, payload: bytes) -> None:
        """paho's network thread: queue only, within the inbox's byte budget (so a stalled
        agent cannot make the process grow without bound); anything else is dropped and
        counted. Never raises."""
        kind = "chunk" if topic == self._chunk_topic else "other"
        size = len(payload)
        limit = _MAX_CHUNK_MESSAGE_BYTES if kind == "chunk" else _MAX_DESIRED_BYTES
        with self._inbox_lock:
            if size > limit:
                self.stats.ignored_malformed += 1
                why = f"{size} bytes is over the limit of {limit}"
            elif self._inbox_bytes[kind] + size > _INBOX_BYTES:
                self.stats.dropped_inbox_full += 1
                self._resync = self._resync or kind == "other"
                why = f"the inbox holds {self._inbox_bytes[kind]} bytes already"
            else:
                self._inbox_bytes[kind] += size
                why = ""
        if why:
            self._status_dirty = True
            self._noisy("inbox", logging.WARNING, "update message dropped",
                        {"topic": topic, "reason": why})
            return
        self.inbox.put((topic, bytes(payload)))

    def _taken(self, topic: str, payload: bytes) -> None:
        kind = "chunk" if topic == self._chunk_topic else "other"
        with self._inbox_lock:
            self._inbox_bytes[kind] -= len(payload)

    # --- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """The agent's thread, until `stop`. The loop is supervised: if it fails it is counted,
        logged, audited and reported, and started again after a backoff (0.5 s doubling to
        30 s); jobs under way are kept and interrupted steps redone."""
        delay = _RESTART_MIN_S
        try:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    if not self._prepared:
                        self._prepare_store()
                        self._prepared = True
                    self._loop(stop)
                except Exception as exc:  # noqa: BLE001 - supervised: count, report, restart
                    if time.monotonic() - started >= _STABLE_S:
                        delay = _RESTART_MIN_S
                    self._crashed(exc, delay)
                    stop.wait(delay)
                    delay = min(2 * delay, _RESTART_MAX_S)
                    self._reconcile()
        finally:
            if stop.is_set():
                self.audit.close()

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                topic, payload = self.inbox.get(timeout=0.1)
            except queue.Empty:
                topic = None
            if topic is not None:
                self._taken(topic, payload)
                self._dispatch(topic, payload)
            self._tick(time.monotonic())

    def _crashed(self, exc: BaseException, delay: float) -> None:
        self.stats.restarts += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
        log.error("update agent loop failed; restarting it",
                  extra={"restarts": self.stats.restarts, "restart_in_s": delay,
                         "error": self.stats.last_error}, exc_info=exc)
        try:
            self.audit("update_agent_restarted", {"error": self.stats.last_error,
                                                  "restarts": self.stats.restarts})
        except Exception:  # noqa: BLE001 - reporting must not fail the restart
            log.exception("audit of the update agent's restart failed")
        self._status_dirty, self._status_at = True, 0.0
        try:
            self._publish_status(time.monotonic())
        except Exception:  # noqa: BLE001
            log.exception("status after the update agent's restart not published")

    def _reconcile(self) -> None:
        """After a failure in the middle of a step: a job that is neither downloading nor
        waiting for its health verdict (nor finished) was interrupted between steps; offer its
        desired state again, as after a restart of the process (resume, switch or judge)."""
        for name, job in list(self.jobs.items()):
            if job.state == "installed" or job.state in ("healthy", "rolled_back",
                                                         "unhealthy") or \
                    (job.state == "downloading" and job.download is not None
                     and not job.download.complete):
                continue
            self.jobs.pop(name, None)
            try:
                self._consider(name, job.desired)
            except PayloadError as exc:
                log.warning("interrupted update not resumed",
                            extra={"model": name, "version": job.version, "error": str(exc)})
            except Exception as exc:  # noqa: BLE001
                self.stats.step_errors += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.exception("interrupted update not resumed",
                              extra={"model": name, "version": job.version})

    def _prepare_store(self) -> None:
        self.staging.mkdir(parents=True, exist_ok=True)
        self.memory.migrate()
        for name in self.store.names():
            install.recover(self.store, name)
            active = install.pin_active(self.store, name)
            if active and not install.good_versions(self.store, name):
                install.mark_good(self.store, name, active)
            self.models[name] = {"state": "idle", "active": active}

    def _dispatch(self, topic: str, payload: bytes) -> None:
        """One message; nothing it holds can end the loop: malformed ones are counted as
        such, any other failure is counted (`dropped_errors`) and logged."""
        try:
            if topic == self._chunk_topic:
                self._on_chunk(payload)
            elif topic.startswith(f"{self.prefix}/{proto.GROUP_LEVEL}/{self.group}/desired/"):
                model = topic.rsplit("/", 1)[1]
                if payload:
                    self._on_desired(proto.check_model_name(model), payload)
            else:
                self.stats.ignored_foreign += 1
        except BadControl as exc:
            self.stats.ignored_bad_control += 1
            log.warning("desired state ignored", extra={"topic": topic, "error": str(exc)})
        except PayloadError as exc:
            self.stats.ignored_malformed += 1
            log.warning("update message ignored", extra={"topic": topic, "error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - one message must never stop updates
            self.stats.dropped_errors += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
            self._noisy("dispatch", logging.ERROR, "update message dropped",
                        {"topic": topic, "error": self.stats.last_error}, exc_info=exc)
            self._reconcile()
        finally:
            self._status_dirty = True    # the counters changed: reported within 0.5 s

    # --- desired state -----------------------------------------------------------------------

    def _on_desired(self, name: str, payload: bytes) -> None:
        self._consider(name, proto.parse_json(payload, "desired state", _MAX_DESIRED_BYTES))

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
        self._start_download(job, body, offer)

    def _start_download(self, job: Job, body: dict, offer: Offer) -> None:
        try:
            job.download = Download.open(self.staging, body, offer.chunk_size, offer.files)
            job.download.check_space()
        except RefusedUpdate:
            if job.download is not None:
                job.download.discard()   # free what an earlier attempt left
            raise
        except OSError as exc:
            Download(self.staging, job.name, job.version, offer.chunk_size,
                     offer.files).discard()
            raise RefusedUpdate(f"cannot stage the download in {self.staging}: "
                                f"{describe_os_error(exc)}") from exc
        self._set(job.name, "downloading", version=job.version, rollout=job.rollout,
                  progress=self._progress(job))
        if job.download.complete:
            self._install(job)
        else:
            job.state = "downloading"
            self._request(job)

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
                log.debug("chunk request not sent", extra={"error": str(exc)})

    def _on_chunk(self, payload: bytes) -> None:
        header, data = proto.decode_chunk(payload)
        job = self.jobs.get(header.name)
        if job is None or job.state != "downloading" or job.rollout != header.rollout or \
                job.version != header.version:
            self.stats.ignored_unexpected_chunk += 1
            return
        try:
            written = job.download.write(header.file, header.index, data)
        except OSError as exc:
            self._staging_failed(job, exc)
            return
        if not written:
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

    def _staging_failed(self, job: Job, exc: OSError) -> None:
        """A chunk could not be written (a full disk, mostly): give the space back and refuse
        with the reason, instead of staying 'downloading' for ever."""
        got, total = job.download.received_bytes, job.download.total_bytes
        try:
            job.download.discard()
        except OSError as discard_exc:
            log.error("staging not freed", extra={"model": job.name, "version": job.version,
                                                  "error": str(discard_exc)})
        self._refuse(job.name, job.rollout, job.desired["manifest"],
                     f"cannot write the download to {self.staging}: {describe_os_error(exc)} "
                     f"({got} of {total} bytes were staged; staging freed)")

    @staticmethod
    def _progress(job: Job) -> float:
        total = job.download.total_bytes or 1
        return round(100.0 * job.download.received_bytes / total, 1)

    # --- install, health, rollback ---------------------------------------------------------------

    # --- periodic ----------------------------------------------------------------------------

    def _tick(self, now: float) -> None:
        reconnected = self.link.connects != self._connects and self.link.connected
        if reconnected:
            self._connects = self.link.connects
            self._status_dirty = True
        if self._resync and self.link.connected and self.inbox.empty():
            self._resync = False         # a dropped desired state: the broker sends it again
            resubscribe = getattr(self.link, "resubscribe", None)
            if resubscribe is not None:
                resubscribe(self._desired_filter)
        for job in list(self.jobs.values()):
            try:
                if job.state == "downloading" and (
                        job.requested_on != self.link.connects
                        or now - job.requested_at > self.settings.request_timeout_s):
                    self._request(job)
                elif job.state == "installed":
                    self._check_health(job, now)
            except Exception as exc:  # noqa: BLE001 - counted, retried on the next tick
                self.stats.step_errors += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
                self._noisy(f"step-{job.name}", logging.ERROR, "update step failed",
                            {"model": job.name, "version": job.version, "state": job.state,
                             "error": self.stats.last_error}, exc_info=exc)
        if self._status_dirty and now - self._status_at >= _STATUS_EVERY_S:
            self._publish_status(now)

    def _set(self, name: str, state: str, quiet: bool = False, **fields: Any) -> None:
        entry = {"state": state, "active": self._active(name), "wall_ns": time.time_ns(),
                 **fields}
        self.models[name] = entry
        if not quiet:
            log.info("model update state", extra={
                "model": name, "state": state,
                **{k: v for k, v in fields.items() if k != "checks"}})
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

    def _noisy(self, key: str, level: int, event: str, fields: dict[str, Any],
               exc_info: BaseException | None = None) -> None:
        """Log a repeating problem (`event`, with `fields` as its structured fields) at most
        every 30 s (with its traceback, if any)."""
        now = time.monotonic()
        if now - self._noisy_at.get(key, -1e9) >= _NOISY_EVERY_S:
            self._noisy_at[key] = now
            log.log(level, event, extra=fields, exc_info=exc_info)

    def _remember(self) -> dict[str, Any]:
        """The replay memory as it is on disk now (update_memory.ReplayMemory)."""
        return self.memory.load()
