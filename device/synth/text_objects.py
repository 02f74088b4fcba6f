"""The text-carrying objects of generated scenes: laid out flat, then warped into the frame.

`lay_out` draws one object of a kind in `OBJECT_KINDS` (sign, plate, label, poster, screen,
painted text) flat: 1-4 lines rendered by `device.synth.lines` in one style of the split's
fonts, on its own surface, with each line's box. `place` warps it with a random rotation and
perspective into a free part of the frame and returns the lines' quads: the flat boxes mapped
through the same homography as the pixels, so the ground truth is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from device.synth import lines, vocab
from device.synth.backgrounds import value_noise

OBJECT_KINDS = ("sign", "plate", "label", "poster", "screen", "painted")


@dataclass(frozen=True)
class Layout:
    canvas: np.ndarray      # float32 BGR, the flat object
    alpha: np.ndarray       # float32 [h, w] coverage of the object (1 = opaque)
    boxes: list             # [(x0, y0, x1, y1)] line boxes in canvas coordinates
    texts: list
    fg: tuple
    bg: tuple


class _Line(NamedTuple):
    """One rendered line: its ink coverage (margin included) and its text box within it."""
    text: str
    alpha: np.ndarray
    box: tuple              # (x0, y0, x1, y1) in `alpha` coordinates
    margin: int

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]


def _text_alpha(bgr: np.ndarray, style: lines.Style) -> np.ndarray:
    """Recover the ink coverage from a line rendered by `lines.render` (fg over bg)."""
    fg, bg = np.array(style.fg, np.float32), np.array(style.bg, np.float32)
    d = fg - bg
    return np.clip(((bgr - bg) @ d) / max(float(d @ d), 1.0), 0, 1)



def lay_out(rng: np.random.Generator, split: str, kind: str) -> Layout:
    """One object of `kind`, flat: its lines in one style, padded, aligned, on its surface."""
    style = _object_style(rng, split, kind)
    n_lines = int(rng.choice([1, 1, 2, 2, 3, 4]))
    rendered = [_render_line(rng, style, first=i == 0) for i in range(n_lines)]
    heights = [r.height for r in rendered]
    widths = [r.width for r in rendered]
    pad_x = int(max(heights) * rng.uniform(0.3, 1.2))
    pad_y = int(max(heights) * rng.uniform(0.2, 0.8))
    gap = rng.uniform(0.15, 0.7)
    cw = max(widths) + 2 * pad_x
    ch = int(sum(heights) + gap * max(heights) * (n_lines - 1)) + 2 * pad_y
    canvas = _surface(rng, kind, style, ch, cw)
    align = rng.integers(3)
    ink, boxes, texts = _ink(rendered, pad_x, pad_y, gap, int(align), (ch, cw))
    canvas = canvas * (1 - ink[:, :, None]) + np.array(style.fg, np.float32) * ink[:, :, None]
    if kind == "screen":
        glow = cv2.GaussianBlur(ink, (0, 0), max(1.0, style.size / 10))
        canvas += glow[:, :, None] * np.array(style.fg, np.float32) * 0.4
        canvas[::3] *= rng.uniform(0.75, 1.0)
    alpha = ink if kind == "painted" else _outline(rng, kind, ch, cw)
    return Layout(canvas, alpha, boxes, texts, style.fg, style.bg)


def _object_style(rng: np.random.Generator, split: str, kind: str) -> lines.Style:
    """The style of an object's lines; a screen's is bright, often saturated, on dark."""
    style = lines.sample_style(rng, split)
    if kind == "screen":   # bright, often saturated text on a dark panel
        fg = tuple(int(c) for c in rng.choice([[80, 255, 255], [60, 220, 255], [255, 255, 255],
                                                [90, 255, 90], [60, 60, 255], [255, 200, 80]]))
        style = lines.Style(style.font_path, style.size, style.tracking, fg,
                            tuple(int(c) for c in rng.uniform(0, 40, 3)))
    return style


def _render_line(rng: np.random.Generator, style: lines.Style, first: bool) -> _Line:
    """One line of sampled text; the first may be a heading, larger than the rest."""
    size = style.size
    if first and rng.random() >= 0.6:   # a heading
        size = int(style.size * rng.uniform(1.2, 1.8))
    s = lines.Style(style.font_path, max(12, size), style.tracking, style.fg, style.bg)
    text = vocab.sample_text(rng)
    margin = s.size // 3
    bgr, box = lines.render(text, s, margin)
    return _Line(text, _text_alpha(bgr, s), box, margin)


def _surface(rng: np.random.Generator, kind: str, style: lines.Style, ch: int, cw: int
             ) -> np.ndarray:
    """The object's surface before the text: its background colour, a poster's or sign's
    texture, a sign's border."""
    canvas = np.empty((ch, cw, 3), np.float32)
    canvas[:] = style.bg
    if kind in ("poster", "sign") and rng.random() < 0.5:
        canvas += (value_noise(rng, ch, cw, 6)[:, :, None] - 0.5) * rng.uniform(10, 50)
    if kind == "sign" and rng.random() < 0.6:
        t = max(2, int(min(ch, cw) * rng.uniform(0.02, 0.06)))
        cv2.rectangle(canvas, (t // 2, t // 2), (cw - t // 2 - 1, ch - t // 2 - 1),
                      tuple(float(c) for c in style.fg), t)
    return canvas


def _ink(rendered: list[_Line], pad_x: int, pad_y: int, gap: float, align: int,
         shape: tuple[int, int]) -> tuple[np.ndarray, list, list]:
    """The lines' ink on a canvas of `shape`, stacked from `pad_y` down with `gap` (of the
    tallest line) between them, aligned left, centre or right (`align` 0, 1, 2) after
    `pad_x`; with each line's box and text."""
    ch, cw = shape
    tallest = max(r.height for r in rendered)
    widest = max(r.width for r in rendered)
    boxes, texts = [], []
    ink = np.zeros((ch, cw), np.float32)
    y = pad_y
    for line in rendered:
        lh, lw, alpha, margin = line.height, line.width, line.alpha, line.margin
        x = pad_x + {0: 0, 1: (widest - lw) // 2, 2: widest - lw}[align]
        ah, aw = alpha.shape
        ax0, ay0 = x - margin, y - margin
        sx0, sy0 = max(0, -ax0), max(0, -ay0)
        dx0, dy0 = ax0 + sx0, ay0 + sy0
        dx1, dy1 = min(cw, ax0 + aw), min(ch, ay0 + ah)
        region = alpha[sy0:sy0 + dy1 - dy0, sx0:sx0 + dx1 - dx0]
        ink[dy0:dy1, dx0:dx1] = np.maximum(ink[dy0:dy1, dx0:dx1], region)
        boxes.append((x, y, x + lw, y + lh))
        texts.append(line.text)
        y += lh + int(gap * tallest)
    return ink, boxes, texts


def _outline(rng: np.random.Generator, kind: str, ch: int, cw: int) -> np.ndarray:
    """Coverage of an opaque object: the whole canvas; a plate or label has rounded corners."""
    alpha = np.ones((ch, cw), np.float32)
    if kind in ("plate", "label"):
        r = int(min(ch, cw) * rng.uniform(0.05, 0.25))
        if r > 1:
            alpha[:] = 0
            cv2.rectangle(alpha, (r, 0), (cw - r - 1, ch - 1), 1.0, -1)
            cv2.rectangle(alpha, (0, r), (cw - 1, ch - r - 1), 1.0, -1)
            for cx, cy in ((r, r), (cw - r - 1, r), (r, ch - r - 1), (cw - r - 1, ch - r - 1)):
                cv2.circle(alpha, (cx, cy), r, 1.0, -1)
    return alpha


def _homography(rng: np.random.Generator, layout: Layout, width: int, height: int):
    """A rotation + perspective + placement; scale chosen for a plausible text height."""
    ch, cw = layout.alpha.shape
    line_h = min(b[3] - b[1] for b in layout.boxes)
    target = rng.uniform(9, 26) if rng.random() < 0.6 else rng.uniform(26, 60)
    scale = target / line_h
    scale = min(scale, 0.95 * width / cw, 0.95 * height / ch)
    if rng.random() < 0.6:
        angle = rng.normal(0, 6)
    else:
        angle = rng.uniform(-40, 40)
    angle = np.deg2rad(angle)
    corners = np.float32([[0, 0], [cw, 0], [cw, ch], [0, ch]])
    centred = (corners - [cw / 2, ch / 2]) * scale
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = centred @ rot.T
    size = np.abs(centred).max(axis=0) * 2
    if rng.random() < 0.7:   # perspective: keystone in x or y, plus corner jitter
        k = rng.uniform(-0.25, 0.25)
        if rng.random() < 0.5:
            dst[[1, 2], 1] *= 1 + k
            dst[[0, 3], 1] *= 1 - k
        else:
            dst[[2, 3], 0] *= 1 + k
            dst[[0, 1], 0] *= 1 - k
        dst += rng.uniform(-0.06, 0.06, (4, 2)) * size
    lo, hi = dst.min(axis=0), dst.max(axis=0)
    tx = rng.uniform(-lo[0], max(-lo[0] + 1, width - hi[0]))
    ty = rng.uniform(-lo[1], max(-lo[1] + 1, height - hi[1]))
    dst = (dst + [tx, ty]).astype(np.float32)
    return cv2.getPerspectiveTransform(corners, dst), dst


def _map_points(matrix: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(pts.reshape(-1, 1, 2).astype(np.float32), matrix).reshape(-1, 2)


def place(rng, img, occupied, layout: Layout) -> list[tuple[np.ndarray, str]] | None:
    """Warp one object into the frame where it fits and overlaps nothing; its lines or None."""
    h, w = img.shape[:2]
    for _ in range(8):
        matrix, outline = _homography(rng, layout, w, h)
        quads = [_map_points(matrix, np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
                 for x0, y0, x1, y1 in layout.boxes]
        inside = all((q[:, 0] >= 0).all() and (q[:, 0] <= w - 1).all() and
                     (q[:, 1] >= 0).all() and (q[:, 1] <= h - 1).all() for q in quads)
        if not inside:
            continue
        footprint = np.zeros((h, w), np.uint8)
        cv2.fillPoly(footprint, [np.round(outline).astype(np.int32)], 1)
        if (footprint & occupied).any():
            continue
        occupied |= cv2.dilate(footprint, np.ones((5, 5), np.uint8))
        warped = cv2.warpPerspective(layout.canvas, matrix, (w, h), flags=cv2.INTER_LINEAR)
        alpha = cv2.warpPerspective(layout.alpha, matrix, (w, h), flags=cv2.INTER_LINEAR)
        if rng.random() < 0.5:   # a soft shadow under a plate
            shadow = cv2.GaussianBlur(alpha, (0, 0), 3)
            shift = np.float32([[1, 0, rng.uniform(-4, 4)], [0, 1, rng.uniform(0, 5)]])
            shadow = cv2.warpAffine(shadow, shift, (w, h)) * rng.uniform(0.2, 0.5)
            img *= (1 - shadow)[:, :, None]
        img[:] = img * (1 - alpha[:, :, None]) + warped * alpha[:, :, None]
        return quads
    return None

