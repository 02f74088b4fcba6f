"""Frame sources: webcam, video file, image folder, generated scenes. One module owns the camera.

A source is opened, read frame by frame (None at the end of a finite stream) and closed.
Failures raise `SourceError`; `device.live.capture` reopens with backoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from device.errors import SourceError
from device.synth.street import render_street
from device.synth.scenes import render_scene

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
MAX_IMAGE_PIXELS = 40_000_000
"""Larger images are refused before decoding (a 110 KB PNG can declare 30000x30000 px)."""


def read_image(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """A BGR uint8 image from a file, its size checked from the header before decoding.

    Raises SourceError naming what was wrong: missing, a directory, not an image, too large.
    """
    path = Path(path)
    if path.is_dir():
        raise SourceError(f"{path}: is a directory, not an image file")
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as header:      # reads the header only
            width, height = header.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise SourceError(f"{path}: not a readable image ({exc})") from None
    except Image.DecompressionBombError:
        width = height = max_pixels + 1
    if width * height > max_pixels:
        raise SourceError(f"{path}: {width}x{height} px is larger than the "
                          f"{max_pixels / 1e6:.0f} MP limit")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"{path}: not a readable image")
    return image


def letterbox(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` scaled to fit width x height (aspect kept), centred on black."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    scale = min(width / w, height / h)
    nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    out = np.zeros((height, width, 3), np.uint8)
    x0, y0 = (width - nw) // 2, (height - nh) // 2
    out[y0:y0 + nh, x0:x0 + nw] = resized
    return out


class FrameSource(Protocol):
    name: str
    fps: float
    realtime: bool  # a live camera paces itself; files may be paced by the reader

    def open(self) -> None: ...
    def read(self) -> np.ndarray | None: ...
    def close(self) -> None: ...


class _VideoCaptureSource:
    """What a camera and a video file share: one cv2.VideoCapture, opened by the subclass."""

    name: str
    _capture = None

    def _grab(self) -> tuple[bool, np.ndarray | None]:
        if self._capture is None:
            raise SourceError(f"{self.name}: not open")
        return self._capture.read()

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class WebcamSource(_VideoCaptureSource):
    realtime = True
    live = True

    def __init__(self, index: int, fps: float = 30.0, width: int = 640, height: int = 360):
        self.name, self.index, self.fps = f"webcam:{index}", index, fps
        self.width, self.height = width, height
        self._capture = None

    def open(self) -> None:
        capture = cv2.VideoCapture(self.index)
        if not capture.isOpened():
            raise SourceError(f"{self.name}: camera cannot be opened (unplugged or busy?)")
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        capture.set(cv2.CAP_PROP_FPS, self.fps)   # a request; Capture caps what comes
        self._capture = capture

    def read(self) -> np.ndarray | None:
        ok, frame = self._grab()
        if not ok:
            raise SourceError(f"{self.name}: camera stopped delivering frames")
        return frame


class VideoSource(_VideoCaptureSource):
    def __init__(self, path: str, realtime: bool = True):
        self.name, self.path, self.realtime = f"video:{path}", path, realtime
        self.fps = 30.0
        self._capture = None
        self._position = 0
        self._frames = 0

    def open(self) -> None:
        if Path(self.path).is_dir():
            raise SourceError(f"{self.name}: is a directory (use images:DIR for a folder)")
        if not Path(self.path).is_file():
            raise SourceError(f"{self.name}: no such file")
        capture = cv2.VideoCapture(self.path)
        if not capture.isOpened():
            raise SourceError(f"{self.name}: cannot decode (not a video, or corrupt)")
        self.fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        self._frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if self._position:
            capture.set(cv2.CAP_PROP_POS_FRAMES, self._position)
        self._capture = capture

    def read(self) -> np.ndarray | None:
        ok, frame = self._grab()
        if not ok:
            if self._frames and self._position < self._frames - 1:
                raise SourceError(f"{self.name}: decoding failed at frame {self._position} of "
                                  f"{self._frames} (truncated file?)")
            return None
        self._position += 1
        return frame


class ImageFolderSource:
    """The images of a folder in name order, each letterboxed to one frame size (the first
    image's unless `frame_size` is given), so that the pipeline sees one camera."""

    def __init__(self, directory: str, fps: float = 2.0, loop: bool = False,
                 frame_size: tuple[int, int] | None = None, dwell_s: float = 0.0):
        self.name, self.directory, self.fps, self.loop = f"images:{directory}", directory, fps, loop
        self.frame_size = frame_size
        # each image is shown for dwell_s (as a camera held still would see it), long enough
        # to be read, translated and overlaid; `scene` counts the images shown so far
        self.dwell_frames = max(1, int(round(dwell_s * fps)))
        self.scene = 0
        self._held: np.ndarray | None = None
        self._held_left = 0
        self.realtime = True
        self._paths: list[Path] = []
        self._next = 0

    def open(self) -> None:
        folder = Path(self.directory)
        if folder.is_file() and folder.suffix.lower() in IMAGE_SUFFIXES:
            self._paths = [folder]          # one photo, held like a folder's images
            return
        if folder.is_file():
            raise SourceError(f"{self.name}: is a file, not a directory (use video:PATH for "
                              "one video, or a folder of images)")
        if not folder.is_dir():
            raise SourceError(f"{self.name}: no such directory")
        self._paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._paths:
            raise SourceError(f"{self.name}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")

    def read(self) -> np.ndarray | None:
        if self._held is not None and self._held_left > 0:
            self._held_left -= 1
            return self._held
        image = self._read_next()
        if image is not None:
            self.scene += 1
            self._held, self._held_left = image, self.dwell_frames - 1
        return image

    def _read_next(self) -> np.ndarray | None:
        while True:
            if self._next >= len(self._paths):
                if not self.loop:
                    return None
                self._next = 0
            path = self._paths[self._next]
            self._next += 1
            try:
                image = read_image(path)
            except SourceError as exc:
                raise SourceError(f"{self.name}: cannot use {path.name}: "
                                  f"{str(exc).split(': ', 1)[-1]}") from None
            if self.frame_size is None:
                self.frame_size = (image.shape[1], image.shape[0])
            return letterbox(image, *self.frame_size)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class TruthLine:
    polygon: np.ndarray  # float32 [4, 2] in frame coordinates
    text: str


class SyntheticSource:
    """A moving, shaking camera over a generated wall of signs, with ground truth per frame.

    The world is a larger generated image ('street': German signs on a wall; 'scene': the
    detector's random-text test scenes); each frame is a perspective view of it along a
    smooth path with hand shake. `truth()` gives the text lines of the last frame read.
    """

    def __init__(self, seed: int = 0, width: int = 640, height: int = 360, fps: float = 30.0,
                 frames: int = 0, realtime: bool = True, world: str = "street"):
        self.name = f"synthetic:{seed}"
        self.seed, self.width, self.height, self.fps = seed, width, height, fps
        self.frames, self.realtime, self.world = frames, realtime, world
        self._world = None
        self._index = 0

    def open(self) -> None:
        if self._world is None:
            rng = np.random.default_rng(self.seed)
            size = dict(width=int(self.width * 1.5), height=int(self.height * 1.5))
            if self.world == "street":  # German signs on a wall
                self._world = render_street(rng, **size)
            elif self.world == "scene":  # the detector's held-out random-text scenes
                self._world = render_scene(rng, split="test", **size)
            else:
                raise SourceError(f"{self.name}: unknown world {self.world!r}")

    def view(self, index: int) -> np.ndarray:
        """Homography world → frame at frame `index`: a slow pan, zoom and roll plus shake."""
        t = index / self.fps
        rng = np.random.default_rng((self.seed, index))
        world_h, world_w = self._world.image.shape[:2]
        margin_x, margin_y = (world_w - self.width) / 2, (world_h - self.height) / 2
        cx = world_w / 2 + 0.8 * margin_x * np.sin(0.35 * t) + rng.normal(0, 1.5)
        cy = world_h / 2 + 0.6 * margin_y * np.sin(0.23 * t + 1.0) + rng.normal(0, 1.5)
        angle = np.deg2rad(4.0 * np.sin(0.3 * t) + rng.normal(0, 0.2))
        zoom = 1.0 + 0.08 * np.sin(0.2 * t)
        cos, sin = np.cos(angle) * zoom, np.sin(angle) * zoom
        to_origin = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], float)
        rotate = np.array([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]], float)
        tilt = np.array([[1, 0, 0], [0, 1, 0], [2e-4 * np.sin(0.5 * t), 1e-4 * np.cos(0.4 * t), 1]])
        to_frame = np.array([[1, 0, self.width / 2], [0, 1, self.height / 2], [0, 0, 1]], float)
        return to_frame @ tilt @ rotate @ to_origin

    def read(self) -> np.ndarray | None:
        if self._world is None:
            raise SourceError(f"{self.name}: not open")
        if self.frames and self._index >= self.frames:
            return None
        homography = self.view(self._index)
        frame = cv2.warpPerspective(self._world.image, homography, (self.width, self.height),
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        self._index += 1
        return frame

    def truth_at(self, index: int) -> tuple[TruthLine, ...]:
        """The text lines of frame `index` (the n-th frame read, from 0) in its coordinates."""
        homography = self.view(index)
        truth = []
        for line in self._world.lines:
            points = cv2.perspectiveTransform(line.polygon.reshape(-1, 1, 2).astype(np.float64),
                                              homography).reshape(-1, 2).astype(np.float32)
            truth.append(TruthLine(points, line.text))
        return tuple(truth)

    def close(self) -> None:
        pass


def parse_source(uri: str, fps: float = 30.0, realtime: bool = True, seed: int = 0,
                 frames: int = 0, image_dwell_s: float = 0.0) -> FrameSource:
    """'webcam:0', 'video:PATH', 'images:DIR' or 'synthetic[:SEED]'."""
    kind, _, rest = uri.partition(":")
    if kind == "webcam":
        try:
            return WebcamSource(int(rest or 0), fps=fps)
        except ValueError:
            raise SourceError(f"bad source {uri!r}: webcam needs a number, e.g. webcam:0") from None
    if kind == "video" and rest:
        if Path(rest).suffix.lower() in IMAGE_SUFFIXES:   # a photo: held, not one frame
            return ImageFolderSource(rest, fps=min(fps, 30.0), dwell_s=image_dwell_s or 4.0)
        return VideoSource(rest, realtime=realtime)
    if kind == "images" and rest:
        return ImageFolderSource(rest, fps=min(fps, 30.0), dwell_s=image_dwell_s)
    if kind == "synthetic":
        try:
            seed = int(rest) if rest else seed
        except ValueError:
            raise SourceError(f"bad source {uri!r}: synthetic takes a seed number") from None
        return SyntheticSource(seed=seed, fps=fps, frames=frames, realtime=realtime)
    raise SourceError(f"bad source {uri!r}: expected webcam:N, video:PATH, images:DIR or "
                      "synthetic[:SEED]")
