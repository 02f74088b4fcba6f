"""The device side of model updates, inside edgelens-sync: learn the desired version, fetch only
missing chunks, verify, install atomically, wait for the health verdict, roll back on failure.

Messages arrive on paho's network thread and are only queued there (within a byte budget:
over it they are dropped and counted); everything else runs on this agent's own thread
(`run(stop)`). The running model is never touched until a version is complete, verified and
renamed into the store; a refusal leaves it serving and writes an audit record
(`update_refused`) with the reason (at most one a minute per model and reason: update_offer).
States reported on P/<device>/update/status: offered, downloading (percent), verified,
installed, healthy, rolled_back (reason), refused, halted; for every model in the store or
being updated, and for the last 8 others offered.

No input ends the thread: a message whose handling raises anything is dropped and counted
(`stats`), a failing periodic step is counted and retried, and should the loop itself fail it
is restarted with a backoff, counted (`restarts`, `last_error`), audited
(`update_agent_restarted`) and reported; jobs under way (a download, a version waiting for its
health verdict) carry on.

This module is the wire (subscriptions, the inbox, dispatch), the supervised loop and the state
reported; the steps live beside it: update_offer.OfferSteps takes or refuses a desired state,
update_fetch.ChunkFetcher downloads a version, update_install.InstallSteps installs it, waits
for its health verdict and rolls back.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud_sync import update_protocol as proto
from cloud_sync.errors import LinkError, PayloadError
from cloud_sync.signing import TrustedKeys
from cloud_sync.update_fetch import ChunkFetcher
from cloud_sync.update_install import InstallSteps, Job
from cloud_sync.update_memory import MEMORY_FILE, AuditSink, ReplayMemory
from cloud_sync.update_offer import OfferSteps
from cloud_sync.update_policy import BadControl
from device.errors import EdgelensError
from device.modelstore import install
from device.modelstore.health import HealthSettings
from device.modelstore.store import ModelStore

log = logging.getLogger(__name__)

_MAX_DESIRED_BYTES = 4 * 1024 * 1024
_MAX_CHUNK_MESSAGE_BYTES = 2 + (1 << 16) + 128 * 1024   # header length, header, largest chunk
_INBOX_BYTES = 16 * 1024 * 1024   # queued bytes per kind (chunks, other); more are dropped
_STATUS_EVERY_S = 0.5
_RESTART_MIN_S, _RESTART_MAX_S = 0.5, 30.0
_STABLE_S = 60.0            # a loop that ran this long starts its restart backoff afresh
_NOISY_EVERY_S = 30.0
_MAX_OTHER_MODELS = 8       # status entries of models neither in the store nor being updated


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
    refused: int = 0                    # offers and downloads refused (state refused)
    refusals_folded: int = 0            # of those, not audited on their own (one a minute)
    step_errors: int = 0                # periodic steps (requests, health checks) that failed
    restarts: int = 0                   # times the agent's loop failed and was started again
    last_error: str = ""
    chunks_received: int = 0
    bytes_received: int = 0
    requests_sent: int = 0


class UpdateAgent(OfferSteps, InstallSteps):
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
        self._refusals: dict[tuple[str, str], dict[str, Any]] = {}   # update_offer
        self.fetch = ChunkFetcher(link, self.settings, self.staging, self._request_topic,
                                  self.stats, report=self._set, refuse=self._refuse,
                                  install=self._install)

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
                try:        # refusals folded into a minute not over yet: audited with their count
                    self._flush_refusals(math.inf)
                except Exception:  # noqa: BLE001 - stopping: the audit sink closes regardless
                    log.exception("folded update refusals not audited")
                self._refusals.clear()
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

    # --- messages (the offer: update_offer.OfferSteps; the download: update_fetch) -----------

    def _on_desired(self, name: str, payload: bytes) -> None:
        self._consider(name, proto.parse_json(payload, "desired state", _MAX_DESIRED_BYTES))

    def _on_chunk(self, payload: bytes) -> None:
        """A chunk message: staged by the fetcher when it belongs to the download under way
        of that very version (rollout, name, version); counted and ignored otherwise."""
        header, data = proto.decode_chunk(payload)
        job = self.jobs.get(header.name)
        if job is None or job.state != "downloading" or job.rollout != header.rollout or \
                job.version != header.version:
            self.stats.ignored_unexpected_chunk += 1
            return
        self.fetch.receive(job, header, data)

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
                if job.state == "downloading" and self.fetch.overdue(job, now):
                    self.fetch.request(job)
                elif job.state == "installed":
                    self._check_health(job, now)
            except Exception as exc:  # noqa: BLE001 - counted, retried on the next tick
                self.stats.step_errors += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
                self._noisy(f"step-{job.name}", logging.ERROR, "update step failed",
                            {"model": job.name, "version": job.version, "state": job.state,
                             "error": self.stats.last_error}, exc_info=exc)
        if self._refusals:
            self._flush_refusals(now)
        if self._status_dirty and now - self._status_at >= _STATUS_EVERY_S:
            self._publish_status(now)

    def _set(self, name: str, state: str, quiet: bool = False, **fields: Any) -> None:
        entry = {"state": state, "active": self._active(name), "wall_ns": time.time_ns(),
                 **fields}
        self.models[name] = entry
        if name not in self.jobs:
            self._forget_other_models()
        if not quiet:
            log.info("model update state", extra={
                "model": name, "state": state,
                **{k: v for k, v in fields.items() if k != "checks"}})
        self._status_dirty = True
        if not quiet:
            self._status_at = 0.0       # state changes go out at once; progress is paced

    def _forget_other_models(self) -> None:
        """The status keeps every model in the store or being updated, and of the others
        (refused offers of models this device does not have: any name a desired topic can
        carry) only the latest `_MAX_OTHER_MODELS`, so it stays far below the broker's
        message size limit."""
        try:
            keep = set(self.store.names()) | set(self.jobs)
        except OSError:
            return
        others = sorted((n for n in self.models if n not in keep),
                        key=lambda n: self.models[n].get("wall_ns", 0))
        for name in others[:-_MAX_OTHER_MODELS]:
            del self.models[name]

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
