"""The steady-view sequence of `edgelens bench pipeline`: the demo's street held still by a
wearer who looks at it (hand shake under a pixel), with a sign that is put up and taken down
again (new text on a steady view, whose latency is measured).

Frame i shows the street through the view of the demo's frame 0, shifted by the shake; from
frame `SHOW_AT` of every `PERIOD` frames for `SHOWN` frames a sign (texts in turn) hangs in a
free spot of the view. `events` lists when each sign appeared and where it is in the frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from device.live.sources import SyntheticSource
from device.synth.street import _sign     # one plate as the street draws them

PERIOD, SHOW_AT, SHOWN = 105, 30, 45       # frames: up 1.5 s, then down 2 s (past the TTL)
TEXTS = (("NOTAUSGANG",), ("BITTE", "KLINGELN"), ("APOTHEKE",), ("PARKEN", "VERBOTEN"))


@dataclass(frozen=True)
class SignEvent:
    first_frame: int
    captured: float           # time.perf_counter() when that frame was made (as Capture stamps)
    polygon: np.ndarray       # the plate in frame coordinates (float32 [4, 2])
    text: str


class SteadySource(SyntheticSource):
    """SyntheticSource's street, held still, with signs that come and go."""

    def __init__(self, seed: int = 7, fps: float = 30.0, frames: int = 0,
                 realtime: bool = True, shake_px: float = 0.5):
        super().__init__(seed=seed, fps=fps, frames=frames, realtime=realtime)
        self.name = f"steady:{seed}"
        self.shake_px = shake_px
        self._signed: list[np.ndarray] = []
        self.events: list[SignEvent] = []

    def open(self) -> None:
        super().open()
        if not self._signed:
            rng = np.random.default_rng(self.seed + 1000)
            self._signed = [self._hang(rng, lines) for lines in TEXTS]

    def _hang(self, rng, lines: tuple[str, ...]) -> np.ndarray:
        """The world with a plate reading `lines` in the free spot of the view (below the
        street's signs, whole inside the frame)."""
        plate = _sign(rng, lines, size=self.height // 12)[0]
        spot = self._free_spot(plate.shape[1], plate.shape[0])
        to_world = np.linalg.inv(SyntheticSource.view(self, 0))
        world = self._world.image.copy()
        x0, y0 = cv2.perspectiveTransform(np.float64([[spot]]), to_world)[0, 0]
        h, w = plate.shape[:2]
        x0, y0 = int(round(x0)), int(round(y0))
        world[y0:y0 + h, x0:x0 + w] = plate
        return world

    def _free_spot(self, width: int, height: int) -> tuple[float, float]:
        """Top-left corner (frame coordinates of frame 0) of a width x height box that stays
        clear of the street's text lines and of the frame's edges."""
        lines = [cv2.perspectiveTransform(l.polygon.reshape(-1, 1, 2).astype(np.float64),
                                          SyntheticSource.view(self, 0)).reshape(-1, 2)
                 for l in self._world.lines]
        margin = 0.08 * self.width
        for y in np.arange(self.height - margin - height, margin, -8.0):
            for x in np.arange(margin, self.width - margin - width, 8.0):
                box = (x - 10, y - 10, x + width + 10, y + height + 10)
                if not any(p[:, 0].max() > box[0] and p[:, 0].min() < box[2] and
                           p[:, 1].max() > box[1] and p[:, 1].min() < box[3] for p in lines):
                    return float(x), float(y)
        raise RuntimeError("no free spot for a sign in the steady view")

    def view(self, index: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, index, 1))
        dx, dy = rng.normal(0, self.shake_px, 2)
        shake = np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], float)
        return shake @ SyntheticSource.view(self, 0)

    def read(self) -> np.ndarray | None:
        if self._world is None:
            raise RuntimeError(f"{self.name}: not open")
        index = self._index
        if self.frames and index >= self.frames:
            return None
        cycle, phase = divmod(index, PERIOD)
        shown = SHOW_AT <= phase < SHOW_AT + SHOWN
        world = self._signed[cycle % len(self._signed)] if shown else self._world.image
        image = cv2.warpPerspective(world, self.view(index), (self.width, self.height),
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if shown and phase == SHOW_AT:
            self.events.append(self._event(index, cycle))
        self._index += 1
        return image

    def _event(self, index: int, cycle: int) -> SignEvent:
        changed = np.any(self._signed[cycle % len(self._signed)] != self._world.image, axis=2)
        ys, xs = np.nonzero(changed)
        corners = np.float64([[xs.min(), ys.min()], [xs.max(), ys.min()],
                              [xs.max(), ys.max()], [xs.min(), ys.max()]])
        polygon = cv2.perspectiveTransform(corners.reshape(-1, 1, 2), self.view(index))
        return SignEvent(index, time.perf_counter(), polygon.reshape(-1, 2).astype(np.float32),
                         " ".join(TEXTS[cycle % len(TEXTS)]))
