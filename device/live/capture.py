"""Capture on its own thread: keep only the newest frame, never block, count every drop,
reopen a failed source with exponential backoff, and hold a camera to the configured frame
rate (`RateCap`: the frames it delivers beyond it are skipped and counted)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from device.errors import SourceError
from device.metrics import Metrics
from device.live.sources import FrameSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    index: int
    image: np.ndarray
    captured: float  # time.perf_counter() at capture
    scene: int = 0   # changes when the source cuts to another view (the next image of a folder)


class LatestSlot:
    """A one-place hand-off: put() replaces an unread item (which is counted as dropped)."""

    def __init__(self):
        self._item = None
        self._cond = threading.Condition()
        self.dropped = 0
        self.closed = False

    def put(self, item) -> bool:
        """Store item; True when an unread one was replaced."""
        with self._cond:
            replaced = self._item is not None
            if replaced:
                self.dropped += 1
            self._item = item
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None):
        """The newest item, or None on timeout/close."""
        with self._cond:
            if self._item is None and not self.closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def waiting(self) -> bool:
        """Whether an unread item is there (without taking it)."""
        with self._cond:
            return self._item is not None

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class RateCap:
    """Holds a live camera to `fps` on average: a frame that arrives more than a quarter
    period before it is due is skipped (a 30 fps camera capped at 20 keeps 2 frames of 3).
    Times are the caller's, so tests drive it without a clock."""

    def __init__(self, fps: float):
        self.period = 1.0 / fps if fps > 0 else 0.0
        self._due: float | None = None

    def admit(self, now: float) -> bool:
        if not self.period:
            return True
        if self._due is not None and now < self._due - self.period / 4:
            return False
        # after a stall the schedule restarts near now instead of letting a burst through
        self._due = now + self.period if self._due is None else \
            max(self._due + self.period, now + self.period / 2)
        return True


class Capture:
    """Reads `source` on a thread into a LatestSlot until stopped or the stream ends."""

    def __init__(self, source: FrameSource, metrics: Metrics, max_backoff_s: float = 2.0):
        self.source, self.metrics = source, metrics
        self.slot = LatestSlot()
        self.max_backoff_s = max_backoff_s
        # A camera paces itself; files and generated scenes are paced here when realtime.
        self.pace = source.realtime and not getattr(source, "live", False)
        # A camera's rate is capped at the configured one (part of the operating point); the
        # frames it delivers beyond that are skipped and counted (frames_over_rate).
        self.cap = RateCap(source.fps if getattr(source, "live", False) else 0.0)
        self.ended = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._index = 0
        self.last_error: str | None = None
        # the reopen delay grows over failures and is only reset once the source has
        # delivered frames for a while (a truncated file that opens and fails at once keeps
        # backing off instead of being reopened in a tight loop)
        self._delay = 0.05
        self.state = "starting"

    def start(self) -> "Capture":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.slot.close()

    HEALTHY_FRAMES = 100
    """Frames a reopened source must deliver before its backoff starts small again."""

    def _wait_backoff(self) -> None:
        self._stop.wait(self._delay)
        self._delay = min(self._delay * 2, self.max_backoff_s)

    def _open_with_backoff(self) -> bool:
        while not self._stop.is_set():
            try:
                self.source.open()
                self.state = "running"
                return True
            except SourceError as exc:
                self.last_error = str(exc)
                self.state = "failing"
                self.metrics.count("source_open_failures")
                log.warning("source failed to open; retrying", extra={
                    "source": self.source.name, "error": str(exc), "retry_in_s": self._delay})
                self._wait_backoff()
        return False

    def _run(self) -> None:
        try:
            if not self._open_with_backoff():
                return
            period = 1.0 / self.source.fps if self.source.fps > 0 else 0.0
            next_due = time.perf_counter()
            since_open = 0
            while not self._stop.is_set():
                if self.pace and period:
                    wait = next_due - time.perf_counter()
                    if wait > 0 and self._stop.wait(wait):
                        break
                    next_due = max(next_due + period, time.perf_counter() - period)
                try:
                    image = self.source.read()
                except SourceError as exc:
                    self.last_error = str(exc)
                    self.state = "failing"
                    self.metrics.count("source_errors")
                    log.warning("source failed; reopening", extra={
                        "source": self.source.name, "error": str(exc),
                        "retry_in_s": self._delay})
                    self.source.close()
                    self._wait_backoff()
                    if not self._open_with_backoff():
                        break
                    self.metrics.count("source_reopened")
                    since_open = 0
                    continue
                since_open += 1
                if since_open == self.HEALTHY_FRAMES:
                    self._delay = 0.05
                if image is None:
                    self.state = "ended"
                    break
                if not self.cap.admit(time.perf_counter()):
                    self.metrics.count("frames_over_rate")
                    continue
                frame = Frame(self._index, image, time.perf_counter(),
                              getattr(self.source, "scene", 0))
                self._index += 1
                self.metrics.count("frames_captured")
                if self.slot.put(frame):
                    self.metrics.count("frames_dropped")
        finally:
            self.source.close()
            self.ended.set()
            self.slot.close()
