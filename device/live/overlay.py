"""Draw translations over signs like camera translators do: cover the original text with the
sign's own background colour, write the new text in its foreground colour, fitted to the region
and warped to its perspective. Pure: frame and regions in, new frame out (text bitmaps cached).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Bold.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSansBold.ttf",
)


UNCERTAIN_BGR = (0, 176, 255)
"""Amber outline of an uncertain translation: a word-by-word gloss, or a model answer under
[translator] uncertain_below."""


@dataclass(frozen=True)
class OverlayItem:
    polygon: np.ndarray  # float32 [4, 2]: TL, TR, BR, BL in frame coordinates
    text: str
    foreground: tuple[int, int, int]
    background: tuple[int, int, int]
    uncertain: bool = False  # a gloss or an unsure model answer: drawn with an amber outline


def expand_quad(quad: np.ndarray, along: float, across: float) -> np.ndarray:
    """Grow a TL, TR, BR, BL quad by `along` x its length at each end and `across` x its
    height on each side, in its own directions."""
    x_dir = ((quad[1] - quad[0]) + (quad[2] - quad[3])) / 2
    y_dir = ((quad[3] - quad[0]) + (quad[2] - quad[1])) / 2
    dx, dy = x_dir * along, y_dir * across
    return np.float32([quad[0] - dx - dy, quad[1] + dx - dy, quad[2] + dx + dy,
                       quad[3] - dx + dy])


def sample_colours(image: np.ndarray, polygon: np.ndarray) -> tuple[tuple, tuple]:
    """(foreground, background) BGR of the text in `polygon`: the background is the median of
    a thin ring around the region, the foreground the median of the pixels furthest from it."""
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, polygon.astype(np.int32), 255)
    ring = cv2.dilate(mask, np.ones((7, 7), np.uint8)) & ~mask
    inside = image[mask > 0].reshape(-1, 3).astype(np.float32)
    around = image[ring > 0].reshape(-1, 3).astype(np.float32)
    if len(inside) == 0:
        return (255, 255, 255), (0, 0, 0)
    background = np.median(around if len(around) else inside, axis=0)
    distance = np.linalg.norm(inside - background, axis=1)
    far = inside[distance >= np.percentile(distance, 85)]
    foreground = np.median(far, axis=0) if len(far) else 255 - background
    if np.linalg.norm(foreground - background) < 60:  # too close to read: pick black/white
        foreground = np.zeros(3) if background.mean() > 127 else np.full(3, 255.0)
    return tuple(int(c) for c in foreground), tuple(int(c) for c in background)


class OverlayRenderer:
    def __init__(self, font_path: str | None = None, cache_size: int = 64):
        path = font_path or next((p for p in FONT_CANDIDATES if Path(p).is_file()), None)
        self._font_path = path
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    def _text_bitmap(self, text: str, width: int, height: int) -> np.ndarray:
        """Coverage mask (uint8, height x width) of `text` fitted into the box."""
        key = (text, width, height)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        canvas = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(canvas)
        size = max(6, int(height * 0.8))
        while True:
            font = (ImageFont.truetype(self._font_path, size) if self._font_path
                    else ImageFont.load_default())
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            if (right - left <= width * 0.96 and bottom - top <= height * 0.9) or size <= 6:
                break
            size = max(6, int(size * min(0.92, width * 0.96 / max(right - left, 1))))
        x = (width - (right - left)) / 2 - left
        y = (height - (bottom - top)) / 2 - top
        draw.text((x, y), text, fill=255, font=font)
        bitmap = np.asarray(canvas)
        self._cache[key] = bitmap
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return bitmap

    def draw_item(self, frame: np.ndarray, item: OverlayItem) -> None:
        # Detected quads hug the glyphs; cover a little more so no stroke of the original
        # text peeks out above or below the translation.
        polygon = expand_quad(item.polygon.astype(np.float32), 0.04, 0.18)
        h, w = frame.shape[:2]
        x0, y0 = np.floor(polygon.min(axis=0)).astype(int)
        x1, y1 = np.ceil(polygon.max(axis=0)).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 < 2 or y1 - y0 < 2 or not item.text:
            return
        box_w = int(max(np.linalg.norm(polygon[1] - polygon[0]),
                        np.linalg.norm(polygon[2] - polygon[3])))
        box_h = int(max(np.linalg.norm(polygon[3] - polygon[0]),
                        np.linalg.norm(polygon[2] - polygon[1])))
        if box_w < 4 or box_h < 4:
            return
        box_w, box_h = min(box_w, 2048), min(box_h, 512)
        bitmap = self._text_bitmap(item.text, box_w, box_h)
        upright = np.float32([[0, 0], [box_w, 0], [box_w, box_h], [0, box_h]])
        local = polygon - np.float32([x0, y0])
        homography = cv2.getPerspectiveTransform(upright, local)
        roi = frame[y0:y1, x0:x1]
        cv2.fillConvexPoly(roi, np.round(local).astype(np.int32), item.background,
                           lineType=cv2.LINE_AA)
        coverage = cv2.warpPerspective(bitmap, homography, (x1 - x0, y1 - y0),
                                       flags=cv2.INTER_LINEAR)
        ys, xs = np.nonzero(coverage)
        if len(ys):
            # Inside the region the background is flat now, so blending is a lookup table.
            roi[ys, xs] = _blend_table(item.foreground, item.background)[coverage[ys, xs]]
        if item.uncertain:
            cv2.polylines(roi, [np.round(local).astype(np.int32)], True, UNCERTAIN_BGR, 1,
                          lineType=cv2.LINE_AA)

    def render(self, frame: np.ndarray, items: list[OverlayItem],
               hud: list[str] | None = None) -> np.ndarray:
        out = frame.copy()
        for item in items:
            self.draw_item(out, item)
        if hud:
            draw_hud(out, hud)
        return out


_TABLES: OrderedDict[tuple, np.ndarray] = OrderedDict()


def _blend_table(foreground: tuple, background: tuple) -> np.ndarray:
    """[256, 3] uint8: colour at coverage a = background + (foreground - background) * a."""
    key = (tuple(foreground), tuple(background))
    table = _TABLES.get(key)
    if table is None:
        alpha = np.linspace(0.0, 1.0, 256, dtype=np.float32)[:, None]
        fg, bg = np.float32(foreground), np.float32(background)
        table = _TABLES[key] = np.round(bg + (fg - bg) * alpha).astype(np.uint8)
        while len(_TABLES) > 256:
            _TABLES.popitem(last=False)
    return table


def draw_hud(frame: np.ndarray, lines: list[str]) -> None:
    height = 16 * len(lines) + 8
    width = min(frame.shape[1], 8 + 8 * max(len(line) for line in lines))
    frame[:height, :width] = (frame[:height, :width] * 0.35).astype(np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(frame, line, (6, 16 + 16 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (80, 255, 80), 1, cv2.LINE_AA)
