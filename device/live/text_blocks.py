"""Text lines → text blocks: the lines of one sign that belong together are translated as one
text ("Bitte nicht" / "rauchen" → "Please do not smoke"), unrelated lines stay apart.

Two read lines join one block when, in the upper line's reading frame, they run the same way
(within ~10°), their heights differ by less than 1.5x, the vertical gap between them is under
0.9 x the line height, they overlap horizontally (or share a left edge or centre within one
line height), and their text colours are alike. The block's quad is the rotated rectangle
around its lines; its text the lines' texts top to bottom (a word hyphenated at a line end is
joined by the translator's `clean`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from device.geometry import order_quad, quad_frame


@dataclass
class Line:
    polygon: np.ndarray                 # [4, 2] TL, TR, BR, BL
    text: str
    confidence: float
    foreground: tuple = (255, 255, 255)
    background: tuple = (0, 0, 0)


@dataclass
class Block:
    lines: list[Line] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(line.text for line in self.lines)

    @property
    def confidence(self) -> float:
        return min(line.confidence for line in self.lines)

    @property
    def polygon(self) -> np.ndarray:
        if len(self.lines) == 1:
            return self.lines[0].polygon
        points = np.concatenate([line.polygon for line in self.lines]).astype(np.float32)
        return order_quad(cv2.boxPoints(cv2.minAreaRect(points)))


def _colour_distance(a, b) -> float:
    return float(np.linalg.norm(np.float32(a) - np.float32(b)))


def belong_together(upper: Line, lower: Line) -> bool:
    u, n, h1 = quad_frame(upper.polygon)
    u2, _, h2 = quad_frame(lower.polygon)
    if min(h1, h2) < 1 or max(h1, h2) / min(h1, h2) > 1.5 or float(u @ u2) < 0.985:
        return False
    h = (h1 + h2) / 2
    a, b = np.asarray(upper.polygon, np.float32), np.asarray(lower.polygon, np.float32)
    gap = float((b @ n).min() - (a @ n).max())
    if gap > 0.9 * h or gap < -0.5 * h:
        return False
    ax, bx = a @ u, b @ u
    overlap = min(ax.max(), bx.max()) - max(ax.min(), bx.min())
    aligned = (abs(ax.min() - bx.min()) < h or abs(ax.mean() - bx.mean()) < h)
    if overlap <= 0 and not aligned:
        return False
    return _colour_distance(upper.foreground, lower.foreground) < 90


def group(lines: list[Line]) -> list[Block]:
    """Blocks of lines in reading order (top to bottom, then left to right)."""
    order = sorted(range(len(lines)), key=lambda i: (float(lines[i].polygon[:, 1].mean()),
                                                      float(lines[i].polygon[:, 0].min())))
    blocks: list[Block] = []
    for i in order:
        line = lines[i]
        home = None
        for block in blocks:
            if belong_together(block.lines[-1], line):
                home = block
                break
        if home is None:
            blocks.append(Block([line]))
        else:
            home.lines.append(line)
    return blocks
