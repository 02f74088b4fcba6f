"""The live pipeline: capture → frame path (track + overlay, every frame) and a recognition
worker (detect → recognize → translate, on the freshest frame). Two rates, two deadlines,
every drop and miss counted."""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from device.live.capture import Capture, Frame
from device.geometry import polygon_iou
from device.metrics import Metrics
from device.live.overlay import OverlayItem, OverlayRenderer
from device.live.rate import RatePolicy, RateSettings
from device.live.recognition import RecognitionResult, RecognitionWorker
from device.live.tracker import MotionTracker, transform

log = logging.getLogger(__name__)


@dataclass
class Region:
    id: int
    polygon: np.ndarray
    text: str
    shown_text: str
    confidence: float
    via: str
    foreground: tuple
    background: tuple
    last_seen: float
    hits: int = 1
    uncertain: bool = False


@dataclass
class FramePathSettings:
    frame_budget_ms: float = 20.0
    region_ttl_s: float = 1.5
    match_iou: float = 0.3
    hud: bool = True
    rate: RateSettings = field(default_factory=RateSettings)   # when recognition runs


class Pipeline:
    def __init__(self, capture: Capture, worker: RecognitionWorker, metrics: Metrics,
                 settings: FramePathSettings, tracker: MotionTracker | None = None,
                 renderer: OverlayRenderer | None = None,
                 show: Callable[[np.ndarray, Frame], bool] | None = None):
        self.capture, self.worker, self.metrics = capture, worker, metrics
        self.settings = settings
        self.tracker = tracker or MotionTracker()
        self.rate = RatePolicy(settings.rate, self.tracker)
        self.renderer = renderer or OverlayRenderer()
        self.show = show
        self.speech = None     # device.audio.speaker.Speaker: told what is shown, what left
        self.regions: list[Region] = []
        self._ids = itertools.count(1)
        self._display_times: deque[float] = deque(maxlen=60)
        self.stop_event = threading.Event()
        self.paused = False
        self.started = time.perf_counter()
        self.first_overlay_s: float | None = None
        self.last_frame: Frame | None = None
        self.last_output: np.ndarray | None = None
        self._hud_cache: tuple | None = None
        self._scene = 0
        self._scene_start = 0        # index of the first frame of the scene shown now

    # -- frame path -------------------------------------------------------------------------
    def _merge(self, result: RecognitionResult, now: float) -> None:
        if result.frame_index < self._scene_start:      # read on the previous image
            self.metrics.count("results_previous_scene")
            return
        forward = self.tracker.forward(result.frame_index)
        if forward is None:
            self.metrics.count("results_unmappable")
            return
        self.rate.on_result(result)
        self.metrics.observe("new_recognition", (now - result.captured) * 1000)
        for line in result.lines:
            polygon = transform(line.polygon, forward)
            best, best_iou = None, self.settings.match_iou
            for region in self.regions:
                iou = polygon_iou(region.polygon, polygon)
                if iou >= best_iou:
                    best, best_iou = region, iou
            if best is None:
                self.regions.append(Region(next(self._ids), polygon, line.text, line.shown_text,
                                           line.confidence, line.via, line.foreground,
                                           line.background, now, uncertain=line.uncertain))
                self.metrics.count("regions_new")
            else:
                best.polygon, best.text, best.shown_text = polygon, line.text, line.shown_text
                best.confidence, best.via, best.last_seen = line.confidence, line.via, now
                best.uncertain = line.uncertain
                best.foreground, best.background = line.foreground, line.background
                best.hits += 1
            if self.speech is not None:
                region = best or self.regions[-1]
                self.speech.seen(region.id, region.shown_text, region.via)
        if result.lines and self.first_overlay_s is None:
            self.first_overlay_s = now - self.started

    def _expire(self, now: float, width: int, height: int) -> None:
        kept = []
        for region in self.regions:
            cx, cy = region.polygon.mean(axis=0)
            visible = -0.2 * width < cx < 1.2 * width and -0.2 * height < cy < 1.2 * height
            if now - region.last_seen <= self.settings.region_ttl_s and visible:
                kept.append(region)
            else:
                self.metrics.count("regions_expired")
                self._gone([region])
        self.regions = kept

    def _gone(self, regions: list[Region]) -> None:
        """Regions that left the view: what speech had not yet said of them is dropped."""
        if self.speech is not None:
            for region in regions:
                self.speech.gone(region.id)

    def hud_lines(self) -> list[str]:
        """The HUD text, recomputed at most twice a second (percentiles are not free)."""
        now = time.perf_counter()
        if self._hud_cache is None or now - self._hud_cache[0] >= 0.5 or \
                self._hud_cache[2] != len(self.regions):
            self._hud_cache = (now, self._hud_text(), len(self.regions))
        return self._hud_cache[1]

    def _hud_text(self) -> list[str]:
        fps = 0.0
        if len(self._display_times) >= 2:
            span = self._display_times[-1] - self._display_times[0]
            fps = (len(self._display_times) - 1) / span if span > 0 else 0.0
        frame_p95 = self.metrics.percentile("frame_path", 95)
        recog_p95 = self.metrics.percentile("recognition_path", 95)
        c = self.metrics.counter
        return [f"fps {fps:4.1f}  frame p95 {frame_p95:4.1f} ms  recog p95 {recog_p95:5.1f} ms",
                f"dropped {c('frames_dropped')}  misses frame {c('frame_deadline_misses')} "
                f"recog {c('recognition_deadline_misses')}  regions {len(self.regions)}"]

    def step(self, frame: Frame) -> np.ndarray:
        """The frame path for one frame: track, merge results, overlay, hand off."""
        start = time.perf_counter()
        if frame.scene != self._scene:      # another image: its overlay starts empty
            self._scene, self._scene_start = frame.scene, frame.index
            self._gone(self.regions)
            self.regions = []
            self.tracker.reset()
            self.rate.reset()
        motion = self.tracker.update(frame.index, frame.image)
        if self.rate.decide(frame) is None:             # steady and read: tracking only
            self.metrics.count("recognition_frames_steady")
        elif self.worker.inbox.put(frame):
            self.metrics.count("recognition_frames_skipped")
        for region in self.regions:
            region.polygon = transform(region.polygon, motion)
        while True:
            try:
                self._merge(self.worker.results.get_nowait(), time.perf_counter())
            except queue.Empty:
                break
        height, width = frame.image.shape[:2]
        self._expire(time.perf_counter(), width, height)
        items = [OverlayItem(r.polygon, r.shown_text, r.foreground, r.background,
                             uncertain=r.uncertain) for r in self.regions]
        output = self.renderer.render(frame.image, items,
                                      self.hud_lines() if self.settings.hud else None)
        elapsed_ms = (time.perf_counter() - start) * 1000
        self.metrics.observe("frame_path", elapsed_ms)
        if elapsed_ms > self.settings.frame_budget_ms:
            self.metrics.count("frame_deadline_misses")
        self.last_frame, self.last_output = frame, output
        return output

    def run(self, max_frames: int = 0) -> dict:
        """Run until the source ends, `stop_event` is set, the sink asks to quit, or
        `max_frames` frames were displayed. Returns the summary."""
        self.started = time.perf_counter()
        self.worker.start()
        if self.speech is not None:
            self.speech.start()
        self.capture.start()
        displayed = 0
        try:
            while not self.stop_event.is_set():
                frame = self.capture.slot.take(timeout=0.1)
                if frame is None:
                    if self.capture.ended.is_set():
                        break
                    continue
                output = self.step(frame)
                shown_at = time.perf_counter()
                if self.show is not None and self.show(output, frame) is False:
                    break
                now = time.perf_counter()
                paused_s = getattr(self.show, "paused_s", 0.0)   # time the user held a pause
                if paused_s:
                    self.show.paused_s = 0.0
                    self._display_times.clear()               # fps restarts after a pause
                    now = shown_at      # the pause is the user's, not the pipeline's latency
                self._display_times.append(now)
                self.metrics.observe("capture_to_display", (now - frame.captured) * 1000)
                self.metrics.count("frames_displayed")
                displayed += 1
                if max_frames and displayed >= max_frames:
                    break
        finally:
            self.capture.stop()
            self.worker.stop()
            if self.speech is not None:
                self.speech.stop()
        return self.summary()

    def summary(self) -> dict:
        snapshot = self.metrics.snapshot()
        c = snapshot["counters"]
        displayed = c.get("frames_displayed", 0)
        runs = c.get("recognition_runs_started", 0) + c.get("recognition_discarded_stale", 0)
        return {
            "frames": {"captured": c.get("frames_captured", 0), "displayed": displayed,
                       "dropped": c.get("frames_dropped", 0),
                       "over_rate": c.get("frames_over_rate", 0)},
            "recognition": {"started": c.get("recognition_runs_started", 0),
                            "finished": c.get("recognition_runs_finished", 0),
                            "discarded_late": c.get("recognition_discarded_late", 0),
                            "discarded_stale": c.get("recognition_discarded_stale", 0),
                            "degraded": c.get("recognition_degraded", 0),
                            "steady_frames": c.get("recognition_frames_steady", 0),
                            "errors": c.get("recognition_errors", 0)},
            "misses": {"frame_path": c.get("frame_deadline_misses", 0),
                       "frame_path_rate": round(c.get("frame_deadline_misses", 0)
                                                / max(displayed, 1), 4),
                       "recognition_path": c.get("recognition_deadline_misses", 0),
                       "recognition_path_rate": round(c.get("recognition_deadline_misses", 0)
                                                      / max(runs, 1), 4)},
            "first_overlay_s": (round(self.first_overlay_s, 3)
                                if self.first_overlay_s is not None else None),
            "latency_ms": snapshot["latency_ms"],
            "counters": c,
        }
