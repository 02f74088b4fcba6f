"""Move known text regions with the camera between recognitions.

Each frame, sparse optical flow (pyramidal Lucas–Kanade) on a downscaled gray image gives the
camera's motion as a homography from the previous frame; a chain of these maps a recognition
made on an older frame forward to the current one. Signs are static in the world and far
from the wearer, so one homography per frame moves them all.
"""

from __future__ import annotations

from collections import OrderedDict

import cv2
import numpy as np

_LK = dict(winSize=(13, 13), maxLevel=2,
           criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))


def transform(polygon: np.ndarray, homography: np.ndarray) -> np.ndarray:
    points = polygon.reshape(-1, 1, 2).astype(np.float64)
    return cv2.perspectiveTransform(points, homography).reshape(-1, 2).astype(np.float32)


class MotionTracker:
    def __init__(self, scale: float = 0.5, max_corners: int = 100, history: int = 300,
                 refresh_every: int = 8):
        self.scale = scale
        self.max_corners = max_corners
        self.refresh_every = refresh_every
        self._since_refresh = 0
        self._previous: np.ndarray | None = None
        self._points: np.ndarray | None = None
        self._chain: OrderedDict[int, np.ndarray] = OrderedDict()  # frame → cumulative H
        self._history = history
        self.last_frame_index = -1
        self.last_motion = np.eye(3)
        self.last_tracked_points = 0

    def reset(self) -> None:
        """Forget the last frame (a new scene: nothing to follow across the cut)."""
        self._previous, self._points = None, None

    def _gray(self, image: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        if self.scale != 1.0:
            gray = cv2.resize(gray, None, fx=self.scale, fy=self.scale,
                              interpolation=cv2.INTER_AREA)
        return gray

    def update(self, frame_index: int, image: np.ndarray) -> np.ndarray:
        """Feed the next displayed frame; returns the homography previous → this frame."""
        gray = self._gray(image)
        motion = np.eye(3)
        kept = None
        if self._previous is not None and self._previous.shape != gray.shape:
            # a new camera or image size: nothing to follow from the last frame
            self._previous, self._points = None, None
        if self._previous is not None and self._points is not None and len(self._points) >= 8:
            moved, status, _ = cv2.calcOpticalFlowPyrLK(self._previous, gray, self._points, None,
                                                        **_LK)
            good = status.reshape(-1) == 1
            self.last_tracked_points = int(good.sum())
            if good.sum() >= 8:
                src = self._points[good].reshape(-1, 2) / self.scale
                dst = moved[good].reshape(-1, 2) / self.scale
                homography, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 2.0)
                if homography is not None:
                    motion = homography
                    kept = moved[good][inliers.reshape(-1) == 1].reshape(-1, 1, 2)
        # Corners are found again only every few frames or when too many were lost; in
        # between, the tracked ones are carried forward (finding corners costs as much as LK).
        self._since_refresh += 1
        if (kept is None or len(kept) < self.max_corners // 2
                or self._since_refresh >= self.refresh_every):
            self._points = cv2.goodFeaturesToTrack(gray, self.max_corners, 0.01, 8)
            self._since_refresh = 0
        else:
            self._points = kept.astype(np.float32)
        self._previous = gray
        previous_total = self._chain.get(self.last_frame_index, np.eye(3))
        self._chain[frame_index] = motion @ previous_total
        while len(self._chain) > self._history:
            self._chain.popitem(last=False)
        self.last_frame_index = frame_index
        self.last_motion = motion
        return motion

    def forward(self, from_frame: int) -> np.ndarray | None:
        """Homography mapping coordinates of frame `from_frame` to the latest frame."""
        if from_frame not in self._chain or self.last_frame_index not in self._chain:
            return None
        # cv2.invert, not np.linalg.inv: a LAPACK call leaves an OpenBLAS thread spinning
        # (~40 % of a core at 30 calls/s here; BENCHMARKS.md, issue 15)
        _, inverse = cv2.invert(self._chain[from_frame])
        return self._chain[self.last_frame_index] @ inverse
