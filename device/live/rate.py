"""When the recognition path runs: at full rate while the view changes, at a low rate once it
is steady and every region was read (the overlay keeps following by tracking meanwhile).

The signals are what the frame path has anyway, so deciding costs well under a millisecond:

  * **moving**: the tracker's per-frame homographies over the last `motion_frames` frames move
    the frame's corners by more than `motion_px` on average (hand shake stays below);
  * **drift**: since the frame of the last complete result the view moved by more than
    `drift_px`: new area, maybe new text, came in;
  * **changed**: that frame, warped to now by the tracker and compared with the current one at
    quarter size, differs by more than `change_level` levels in the mean or the spread of a
    colour channel in some inner cell of a 16x9 grid: text appeared (or went) where the camera
    did not move — a door opened, a sign was put up. Text replaced by other text of the same
    size, colour and density can pass unseen; the steady re-check reads it within
    1 / `steady_rate_hz`.

Until a complete result (`RecognitionResult.complete`: nothing skipped for the deadline or the
region limit) comes back for a frame seen after the last change, every frame is offered to the
worker, as without the policy; regions read below the confidence floor get a few more tries at
full rate first (`UNREAD_TRIES`: text caught mid-blur, or clutter that never reads). Time is
the frames' own capture times, so tests drive the policy with made-up frames and no clock.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

import cv2
import numpy as np

from device.live.capture import Frame
from device.live.recognition import RecognitionResult
from device.live.tracker import MotionTracker

HALVINGS = 2                # the change measure runs on the frame halved this many times,
DIFF_SCALE = 0.5 ** HALVINGS  # i.e. at this size
GRID = (16, 9)              # cells of the change measure (columns, rows)
UNREAD_TRIES = 3            # results with unread regions that keep the full rate after a change


@dataclass(frozen=True)
class RateSettings:
    on_change: bool = True        # False: recognize continuously (every frame the worker takes)
    steady_rate_hz: float = 2.0
    motion_px: float = 6.0
    motion_frames: int = 5
    drift_px: float = 16.0
    change_level: float = 20.0

    @classmethod
    def from_config(cls, section) -> "RateSettings":
        return cls(**{name: getattr(section, name) for name in cls.__dataclass_fields__})


@dataclass
class _Reference:
    index: int                    # the frame the last complete result was read on
    image: np.ndarray             # that frame at DIFF_SCALE


def corner_shift(homography: np.ndarray, width: int, height: int) -> float:
    """Mean distance (pixels) the frame's four corners move under `homography`."""
    corners = np.float64([[0, 0], [width, 0], [width, height], [0, height]])
    moved = cv2.perspectiveTransform(corners.reshape(-1, 1, 2), homography).reshape(-1, 2)
    return float(np.linalg.norm(moved - corners, axis=1).mean())


def small_view(image: np.ndarray) -> np.ndarray:
    """A frame as `change_level` compares it: at DIFF_SCALE, float32, lightly blurred (so the
    warp's own interpolation smoothing does not count as change on sharp text)."""
    small = image
    for _ in range(HALVINGS):  # the same box average as one resize by DIFF_SCALE, and
        # OpenCV's 2x area path is about 3x cheaper than its 4x one on a colour 640x360 frame
        small = cv2.resize(small, (max(1, round(small.shape[1] / 2)),
                                   max(1, round(small.shape[0] / 2))),
                           interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small.astype(np.float32), (3, 3), 0)


def _cell_stats(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread (standard deviation) per GRID cell and channel, the outer ring of
    cells left out (new area at the frame's edge is the drift measure's job)."""
    mean = cv2.resize(image, GRID, interpolation=cv2.INTER_AREA)
    square = cv2.resize(image * image, GRID, interpolation=cv2.INTER_AREA)
    mean, square = mean[1:-1, 1:-1], square[1:-1, 1:-1]
    return mean, np.sqrt(np.maximum(square - mean * mean, 0.0))


def change_level(reference: np.ndarray, current: np.ndarray, homography: np.ndarray) -> float:
    """How much the view's content changed where the camera did not move: `reference` warped
    by `homography` (full-frame pixels) against `current` (both `small_view`s, colour or
    gray), compared per GRID cell and channel by mean and spread; the largest difference, in
    levels of 0–255. Cell statistics barely move under the tracker's sub-pixel error on fine
    texture, while a sign or text that appears changes them by tens of levels — in colour even
    where its luminance matches the wall's."""
    # no np.linalg.inv: each LAPACK call wakes an OpenBLAS thread that then spins (issue 15)
    warp = np.diag([DIFF_SCALE, DIFF_SCALE, 1.0]) @ homography @ \
        np.diag([1 / DIFF_SCALE, 1 / DIFF_SCALE, 1.0])
    warped = cv2.warpPerspective(reference, warp, (current.shape[1], current.shape[0]),
                                 flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    (mean_a, spread_a), (mean_b, spread_b) = _cell_stats(warped), _cell_stats(current)
    return float(max(np.abs(mean_a - mean_b).max(), np.abs(spread_a - spread_b).max()))


class RatePolicy:
    """Per displayed frame, after the tracker has seen it: offer it to the recognition worker,
    and why (`decide`); results go to `on_result`. Counts nothing itself: the pipeline does."""

    def __init__(self, settings: RateSettings, tracker: MotionTracker):
        self.settings, self.tracker = settings, tracker
        self._motions: deque[np.ndarray] = deque(maxlen=max(1, settings.motion_frames))
        self._offered: OrderedDict[int, np.ndarray] = OrderedDict()   # index → small frame
        self._reference: _Reference | None = None
        self._last_offered_at: float | None = None
        self._small_image: np.ndarray | None = None
        self._unread_tries = 0
        self.last_reason: str | None = None

    def reset(self) -> None:
        """A cut to another view: nothing read before it counts."""
        self._motions.clear()
        self._offered.clear()
        self._reference = None

    def decide(self, frame: Frame) -> str | None:
        """Why this frame goes to recognition ("continuous", "unsettled", "moving", "drift",
        "changed", "lost", "steady"), or None to let it pass (the view is steady and read)."""
        self._small_image = None
        self._motions.append(self.tracker.last_motion)
        reason = self._reason(frame)
        self.last_reason = reason
        if reason in ("moving", "drift", "changed", "lost"):
            self._unread_tries = 0           # new content: its unread regions get new tries
        if reason is not None:
            self._last_offered_at = frame.captured
            if self.settings.on_change:      # continuous: no reference is ever compared
                self._remember(frame)
        return reason

    def _reason(self, frame: Frame) -> str | None:
        s = self.settings
        if not s.on_change:
            return "continuous"
        if self._reference is None:
            return "unsettled"
        height, width = frame.image.shape[:2]
        window = np.eye(3)
        for motion in self._motions:
            window = motion @ window
        if corner_shift(window, width, height) > s.motion_px:
            return "moving"
        forward = self.tracker.forward(self._reference.index)
        if forward is None:
            return "lost"
        if corner_shift(forward, width, height) > s.drift_px:
            return "drift"
        current = self._small(frame.image)
        if current.shape == self._reference.image.shape and \
                change_level(self._reference.image, current, forward) > s.change_level:
            return "changed"
        if self._last_offered_at is None or \
                frame.captured - self._last_offered_at >= 1.0 / s.steady_rate_hz:
            return "steady"
        return None

    def _small(self, image: np.ndarray) -> np.ndarray:
        """The frame's small_view (computed once per frame)."""
        if self._small_image is None:
            self._small_image = small_view(image)
        return self._small_image

    def _remember(self, frame: Frame) -> None:
        self._offered[frame.index] = self._small(frame.image)
        while len(self._offered) > 32:         # the worker reads the newest; older ones go
            self._offered.popitem(last=False)

    def on_result(self, result: RecognitionResult) -> None:
        """A result shown now: a complete one settles the view at its frame; an incomplete
        one unsettles it (full rate until a complete one comes). Regions read below the
        confidence floor may be text caught mid-blur or clutter: after a change they get
        UNREAD_TRIES more reads at full rate, then only the steady re-checks."""
        small = self._offered.get(result.frame_index)
        for index in [i for i in self._offered if i <= result.frame_index]:
            del self._offered[index]
        retry = result.unread > 0 and self._unread_tries < UNREAD_TRIES
        if retry:
            self._unread_tries += 1
        if not result.complete or retry:
            self._reference = None
        elif small is not None:
            self._reference = _Reference(result.frame_index, small)
