"""The download side of a model update on the device: ask the fleet for the chunks a version
still lacks (a window at a time, and again after a timeout or a reconnect), stage the ones that
arrive (update_download.Download), give up on a chunk that keeps failing its signed hash or on a
staging directory that cannot be written, and report the progress. `ChunkFetcher` is owned by
UpdateAgent (cloud_sync/update_agent.py), which decodes the chunk messages, matches them to the
job downloading that version and hands them over; a complete download goes on to the agent's
install step.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Protocol

from cloud_sync.errors import LinkError
from cloud_sync.update_download import Download, RefusedUpdate, describe_os_error
from cloud_sync.update_install import Job
from cloud_sync.update_policy import Offer
from cloud_sync.update_protocol import ChunkHeader

log = logging.getLogger(__name__)

BAD_CHUNK_LIMIT = 3        # copies of one chunk that fail their hash before we give up


class FetchCounters(Protocol):
    """The agent's counters a ChunkFetcher adds to (update_agent.UpdateStats)."""
    ignored_bad_chunk: int
    chunks_received: int
    bytes_received: int
    requests_sent: int


class ChunkFetcher:
    """The downloads of the agent's jobs. It calls back into the agent for the rest:
    `report(name, state, quiet=False, **fields)` records and reports a model's state
    (UpdateAgent._set), `refuse(name, rollout, manifest, reason)` refuses the update
    (UpdateAgent._refuse) and `install(job)` takes a complete download on
    (InstallSteps._install)."""

    def __init__(self, link: Any, settings: Any, staging: Path, request_topic: str,
                 stats: FetchCounters, report: Callable[..., None],
                 refuse: Callable[[str, str, dict, str], None],
                 install: Callable[[Job], None]):
        self.link, self.settings, self.staging = link, settings, staging
        self.request_topic, self.stats = request_topic, stats
        self._report, self._refuse, self._install = report, refuse, install

    def start(self, job: Job, body: dict, offer: Offer) -> None:
        """Open (or resume) the download of an accepted offer in the staging directory and
        ask for its first chunks; RefusedUpdate when it cannot be staged."""
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
        self._report(job.name, "downloading", version=job.version, rollout=job.rollout,
                     progress=self.progress(job))
        if job.download.complete:
            self._install(job)
        else:
            job.state = "downloading"
            self.request(job)

    def request(self, job: Job) -> None:
        """Ask for the next window of missing chunks (one request per file)."""
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
                self.link.publish(self.request_topic, json.dumps(body).encode(), qos=1)
                self.stats.requests_sent += 1
            except LinkError as exc:
                log.debug("chunk request not sent", extra={"error": str(exc)})

    def overdue(self, job: Job, now: float) -> bool:
        """True when the job's last request was sent before the link's latest reconnect or
        went unanswered for [updates] request_timeout_s: time to ask again."""
        return job.requested_on != self.link.connects \
            or now - job.requested_at > self.settings.request_timeout_s

    def receive(self, job: Job, header: ChunkHeader, data: bytes) -> None:
        """A chunk for this job's download: staged when it is one we lack and matches its
        signed hash, then the version installed once complete or more chunks asked for."""
        try:
            written = job.download.write(header.file, header.index, data)
        except OSError as exc:
            self._staging_failed(job, exc)
            return
        if not written:
            self.stats.ignored_bad_chunk += 1
            if job.download.corrupt(header.file, header.index, data):
                self._corrupt_chunk(job, header)
            return
        self.stats.chunks_received += 1
        self.stats.bytes_received += len(data)
        job.requested.discard((header.file, header.index))
        self._report(job.name, "downloading", version=job.version, rollout=job.rollout,
                     progress=self.progress(job), quiet=True)
        if job.download.complete:
            self._install(job)
        elif not job.requested:
            self.request(job)

    def _corrupt_chunk(self, job: Job, header: ChunkHeader) -> None:
        """A chunk we want whose bytes fail its signed hash or size: fetched again at once,
        until BAD_CHUNK_LIMIT copies failed; then the download is discarded and refused."""
        job.bad_chunks[(header.file, header.index)] = \
            job.bad_chunks.get((header.file, header.index), 0) + 1
        if job.bad_chunks[(header.file, header.index)] >= BAD_CHUNK_LIMIT:
            job.download.discard()
            self._refuse(job.name, job.rollout, job.desired["manifest"],
                         f"{header.file} chunk {header.index} does not match its "
                         f"signed hash or size ({BAD_CHUNK_LIMIT} copies): corrupt, "
                         "truncated or tampered artifact")
            return
        job.requested.discard((header.file, header.index))
        if not job.requested:
            self.request(job)     # fetch the bad one again at once

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
    def progress(job: Job) -> float:
        """Percent of the version's bytes staged so far (one decimal)."""
        total = job.download.total_bytes or 1
        return round(100.0 * job.download.received_bytes / total, 1)
