"""Where shown frames go: a window (the simulator), an .mp4 recorder, snapshots."""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from device.errors import ConfigError
from device.metrics import Metrics

log = logging.getLogger(__name__)


def has_display() -> bool:
    """True when a window can be opened (an X/Wayland display is set and OpenCV has a GUI)."""
    import os
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        cv2.namedWindow("edgelens-probe", cv2.WINDOW_NORMAL)
        cv2.destroyWindow("edgelens-probe")
        return True
    except cv2.error:
        return False


VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v"}


def check_record_path(path: str | Path) -> Path:
    """The recording target, checked before anything runs: a writable file with a video
    suffix in an existing folder. Raises ConfigError saying what is wrong."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"--record {path}: is a directory; give a file such as "
                          f"{path / 'edgelens.mp4'}")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ConfigError(f"--record {path}: unknown video type {path.suffix or '(none)'!r}; "
                          f"use one of {', '.join(sorted(VIDEO_SUFFIXES))}")
    if not path.parent.is_dir():
        raise ConfigError(f"--record {path}: the folder {path.parent} does not exist")
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise ConfigError(f"--record {path}: cannot write there ({exc.strerror})") from None
    return path


class VideoRecorder:
    """Encodes frames on its own thread; a full queue drops the frame (counted), never blocks,
    and neither does close() (the thread may have stopped on an encoder error)."""

    def __init__(self, path: str | Path, fps: float, metrics: Metrics, queue_size: int = 16):
        self.path, self.fps, self.metrics = str(path), fps, metrics
        self.failed: str | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._writer = None
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def write(self, image: np.ndarray) -> None:
        try:
            self._queue.put_nowait(image)
        except queue.Full:
            self.metrics.count("record_dropped")

    def _run(self) -> None:
        while True:
            image = self._queue.get()
            if image is None:
                break
            if self._writer is None:
                h, w = image.shape[:2]
                self._writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*"mp4v"),
                                               self.fps, (w, h))
                if not self._writer.isOpened():
                    self.failed = f"the encoder cannot write {self.path}"
                    log.error("cannot write video", extra={"path": self.path})
                    self._writer = None
                    break
            self._writer.write(image)
            self.metrics.count("frames_recorded")
        if self._writer is not None:
            self._writer.release()

    def close(self) -> None:
        while True:
            try:
                self._queue.put_nowait(None)
                break
            except queue.Full:                 # the thread is gone or behind: make room
                try:
                    self._queue.get_nowait()
                    self.metrics.count("record_dropped")
                except queue.Empty:
                    pass
        self._thread.join(timeout=30)


def _with_line(image: np.ndarray, text: str) -> np.ndarray:
    """A copy of `image` with one line of text at its bottom edge."""
    out = image.copy()
    h = out.shape[0]
    cv2.rectangle(out, (0, h - 22), (out.shape[1], h), (0, 0, 0), -1)
    cv2.putText(out, text, (6, h - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out


class Display:
    """Hands each shown frame to a window and/or a recorder; handles the simulator's keys:
    q/Esc quit, space pause, h HUD on/off, s snapshot."""

    WINDOW = "edgelens"

    def __init__(self, metrics: Metrics, window: bool = False, record: str = "",
                 fps: float = 30.0, snapshot_dir: str = "snapshots"):
        self.window = window
        self.recorder = VideoRecorder(record, fps, metrics) if record else None
        self.snapshot_dir = Path(snapshot_dir)
        self.snapshots: list[Path] = []
        self.pipeline = None  # set by the caller for pause/HUD keys
        self.paused_s = 0.0   # how long the last pause lasted (the pipeline leaves it out)

    def snapshot(self, image: np.ndarray, name: str | None = None) -> Path:
        """Save a shown frame into [display] snapshot_dir; without `name` the file is named
        by the time it was taken and never overwrites an earlier one."""
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        if name is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path, k = self.snapshot_dir / f"snapshot-{stamp}.png", 1
            while path.exists():
                k += 1
                path = self.snapshot_dir / f"snapshot-{stamp}-{k}.png"
        else:
            path = self.snapshot_dir / name
        cv2.imwrite(str(path), image)
        self.snapshots.append(path)
        return path

    KEYS = "keys: q quit  space pause  h HUD  s snapshot"

    def __call__(self, image: np.ndarray, frame) -> bool:
        if self.recorder is not None:
            self.recorder.write(image)
        if not self.window:
            return True
        hud = self.pipeline is not None and self.pipeline.settings.hud
        cv2.imshow(self.WINDOW, _with_line(image, self.KEYS) if hud else image)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            return False
        if key == ord("s"):
            path = self.snapshot(image)
            log.info("snapshot", extra={"path": str(path)})
            print(f"snapshot: {path}")
        if key == ord("h") and self.pipeline is not None:
            self.pipeline.settings.hud = not self.pipeline.settings.hud
        if key == ord(" "):
            return self._pause(image)
        return True

    def _pause(self, image: np.ndarray) -> bool:
        """Hold the frame with PAUSED on it until space (go on) or q/Esc (quit); a stop
        request (Ctrl-C, SIGTERM) ends the pause too. The capture thread keeps only the
        newest frame meanwhile; the time paused is not counted as latency."""
        started = time.perf_counter()
        cv2.imshow(self.WINDOW, _with_line(image, "PAUSED - space: go on, q: quit"))
        stop = getattr(self.pipeline, "stop_event", None)
        try:
            while stop is None or not stop.is_set():
                key = cv2.waitKey(50) & 0xFF
                if key in (ord(" "), ord("q"), 27):
                    return key == ord(" ")
            return False
        finally:
            self.paused_s = time.perf_counter() - started

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
        if self.window:
            cv2.destroyAllWindows()
