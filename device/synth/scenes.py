"""Whole camera frames with text: signs, plates, labels, posters and screens in a cluttered scene.

`render_scene(rng, width, height, split)` is the entry point. Each text-carrying object is
laid out flat (lines rendered by `device.synth.lines`, fonts of the split's families), then
warped with a random rotation and perspective onto a procedural background full of clutter
that looks a bit like text and is not (stripes, barcodes, glyph-like strokes), and the
whole frame goes through the camera: light, exposure, blur, noise and JPEG.

Ground truth is exact: every line's quad (TL, TR, BR, BL in the text's reading direction,
spanning the font's ascent and descent) is the flat layout box mapped through the same
homography as its pixels. Held-out scenes ('test') use held-out font families and
background styles that training never sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from device.synth import lines, vocab

TRAIN_BACKGROUNDS = ("gradient", "noise", "shapes", "stripes", "bricks", "blobs")
TEST_BACKGROUNDS = ("tiles", "wood", "cells")
"""Background styles of each split; the test styles never appear in training scenes."""

OBJECT_KINDS = ("sign", "plate", "label", "poster", "screen", "painted")


@dataclass(frozen=True)
class SceneLine:
    polygon: np.ndarray          # float32 [4, 2]: TL, TR, BR, BL in image coordinates
    text: str
    foreground: tuple[int, int, int]   # BGR
    background: tuple[int, int, int]   # BGR


@dataclass(frozen=True)
class Scene:
    image: np.ndarray            # uint8 BGR [height, width, 3]
    lines: tuple[SceneLine, ...]
    background_style: str


# --- backgrounds ------------------------------------------------------------------------------

def _rand_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, 3).astype(np.float32)


def _value_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    small = rng.random((max(2, cells * h // w), max(2, cells))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _two_tone(rng, field: np.ndarray) -> np.ndarray:
    a, b = _rand_colour(rng), _rand_colour(rng)
    field = np.clip(field, 0, 1)[:, :, None]
    return a * (1 - field) + b * field


def _bg_gradient(rng, h, w):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    t = (xx * np.cos(angle) + yy * np.sin(angle)) / (w + h) + 0.5
    return _two_tone(rng, t)


def _bg_noise(rng, h, w):
    field = sum(_value_noise(rng, h, w, c) * a for c, a in ((4, 0.5), (16, 0.3), (64, 0.2)))
    return _two_tone(rng, field)


def _bg_shapes(rng, h, w):
    img = np.empty((h, w, 3), np.float32)
    img[:] = _rand_colour(rng)
    for _ in range(rng.integers(5, 25)):
        colour = tuple(float(c) for c in _rand_colour(rng))
        kind = rng.integers(3)
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        size = int(rng.integers(10, max(11, w // 3)))
        if kind == 0:
            cv2.rectangle(img, (cx, cy), (cx + size, cy + int(size * rng.uniform(0.3, 2))),
                          colour, -1)
        elif kind == 1:
            cv2.circle(img, (cx, cy), size // 2, colour, -1)
        else:
            pts = rng.integers(-size, size, (3, 2)) + [cx, cy]
            cv2.fillPoly(img, [pts.astype(np.int32)], colour)
    return img


def _bg_stripes(rng, h, w):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(4, 40)
    t = (xx * np.cos(angle) + yy * np.sin(angle)) / period
    field = (np.sin(t * 2 * np.pi) > rng.uniform(-0.5, 0.5)).astype(np.float32)
    return _two_tone(rng, cv2.GaussianBlur(field, (0, 0), 0.8) * rng.uniform(0.3, 1))


def _bg_bricks(rng, h, w):
    mortar, brick = _rand_colour(rng), _rand_colour(rng)
    img = np.empty((h, w, 3), np.float32)
    img[:] = mortar
    bh = int(rng.integers(12, 40))
    bw = int(bh * rng.uniform(1.5, 3.5))
    for row, y in enumerate(range(0, h, bh)):
        offset = (bw // 2) * (row % 2)
        for x in range(-offset, w, bw):
            shade = brick * rng.uniform(0.8, 1.2)
            cv2.rectangle(img, (x + 2, y + 2), (x + bw - 2, y + bh - 2),
                          tuple(float(c) for c in shade), -1)
    return img


def _bg_blobs(rng, h, w):
    field = _value_noise(rng, h, w, int(rng.integers(6, 20)))
    return _two_tone(rng, (field > rng.uniform(0.3, 0.7)).astype(np.float32) * 0.8 +
                     _value_noise(rng, h, w, 40) * 0.2)


def _bg_tiles(rng, h, w):
    img = np.empty((h, w, 3), np.float32)
    size = int(rng.integers(15, 60))
    base = _rand_colour(rng)
    for y in range(0, h, size):
        for x in range(0, w, size):
            img[y:y + size, x:x + size] = np.clip(base * rng.uniform(0.7, 1.3), 0, 255)
    img[::size] = img[::size] * 0.5
    img[:, ::size] = img[:, ::size] * 0.5
    return img


def _bg_wood(rng, h, w):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    warp = _value_noise(rng, h, w, 5) * rng.uniform(10, 40)
    t = np.sin((yy + warp) / rng.uniform(2, 8)) * 0.5 + 0.5
    return _two_tone(rng, t * 0.6 + _value_noise(rng, h, w, 80) * 0.4)


def _bg_cells(rng, h, w):
    n = int(rng.integers(20, 80))
    pts = rng.uniform(0, 1, (n, 2)) * [w, h]
    small = np.mgrid[0:h:4, 0:w:4].reshape(2, -1).T[:, ::-1].astype(np.float32)
    d = ((small[:, None, :] - pts[None]) ** 2).sum(-1)
    label = d.argmin(1).reshape((h + 3) // 4, (w + 3) // 4)
    colours = rng.uniform(0, 255, (n, 3)).astype(np.float32)
    return cv2.resize(colours[label], (w, h), interpolation=cv2.INTER_NEAREST)


_BACKGROUNDS = {"gradient": _bg_gradient, "noise": _bg_noise, "shapes": _bg_shapes,
                "stripes": _bg_stripes, "bricks": _bg_bricks, "blobs": _bg_blobs,
                "tiles": _bg_tiles, "wood": _bg_wood, "cells": _bg_cells}


# --- clutter that looks like text but is not ---------------------------------------------------

def _barcode(rng, img):
    h, w = img.shape[:2]
    bw, bh = int(rng.integers(30, 120)), int(rng.integers(15, 60))
    x0, y0 = int(rng.integers(0, max(1, w - bw))), int(rng.integers(0, max(1, h - bh)))
    dark = tuple(float(c) for c in _rand_colour(rng) * 0.3)
    x = x0
    while x < x0 + bw:
        t = int(rng.integers(1, 4))
        if rng.random() < 0.5:
            img[y0:y0 + bh, x:x + t] = dark
        x += t + int(rng.integers(1, 4))


def _strokes(rng, img):
    """A row of glyph-like scribbles: arcs and bars with no letters in them."""
    h, w = img.shape[:2]
    size = int(rng.integers(6, 30))
    n = int(rng.integers(3, 12))
    x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
    colour = tuple(float(c) for c in _rand_colour(rng))
    thick = max(1, size // int(rng.integers(5, 10)))
    for _ in range(n):
        if rng.random() < 0.5:
            axes = (int(rng.integers(2, size // 2 + 3)), int(rng.integers(2, size // 2 + 3)))
            start = int(rng.integers(0, 360))
            cv2.ellipse(img, (x, y), axes, 0, start, start + int(rng.integers(60, 300)),
                        colour, thick)
        else:
            p = rng.integers(-size // 2, size // 2 + 1, (2, 2)) + [x, y]
            cv2.line(img, tuple(int(v) for v in p[0]), tuple(int(v) for v in p[1]), colour, thick)
        x += int(size * rng.uniform(0.6, 1.6))


def _lines_clutter(rng, img):
    h, w = img.shape[:2]
    colour = tuple(float(c) for c in _rand_colour(rng))
    y = int(rng.integers(0, h))
    for _ in range(int(rng.integers(2, 8))):
        x0 = int(rng.integers(0, w))
        cv2.line(img, (x0, y), (x0 + int(rng.integers(20, 200)), y + int(rng.integers(-5, 6))),
                 colour, int(rng.integers(1, 4)))
        y += int(rng.integers(4, 20))


def _dots(rng, img):
    h, w = img.shape[:2]
    colour = tuple(float(c) for c in _rand_colour(rng))
    cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
    step, r = int(rng.integers(5, 15)), int(rng.integers(1, 4))
    for i in range(int(rng.integers(2, 6))):
        for j in range(int(rng.integers(3, 12))):
            cv2.circle(img, (cx + j * step, cy + i * step), r, colour, -1)


_CLUTTER = (_barcode, _strokes, _lines_clutter, _dots)


# --- text objects ------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Layout:
    canvas: np.ndarray      # float32 BGR, the flat object
    alpha: np.ndarray       # float32 [h, w] coverage of the object (1 = opaque)
    boxes: list             # [(x0, y0, x1, y1)] line boxes in canvas coordinates
    texts: list
    fg: tuple
    bg: tuple


def _text_alpha(bgr: np.ndarray, style: lines.Style) -> np.ndarray:
    """Recover the ink coverage from a line rendered by `lines.render` (fg over bg)."""
    fg, bg = np.array(style.fg, np.float32), np.array(style.bg, np.float32)
    d = fg - bg
    return np.clip(((bgr - bg) @ d) / max(float(d @ d), 1.0), 0, 1)


def _layout(rng: np.random.Generator, split: str, kind: str) -> _Layout:
    style = lines.sample_style(rng, split)
    if kind == "screen":   # bright, often saturated text on a dark panel
        fg = tuple(int(c) for c in rng.choice([[80, 255, 255], [60, 220, 255], [255, 255, 255],
                                                [90, 255, 90], [60, 60, 255], [255, 200, 80]]))
        style = lines.Style(style.font_path, style.size, style.tracking, fg,
                            tuple(int(c) for c in rng.uniform(0, 40, 3)))
    n_lines = int(rng.choice([1, 1, 2, 2, 3, 4]))
    rendered = []
    for i in range(n_lines):
        size = style.size if i or rng.random() < 0.6 else int(style.size * rng.uniform(1.2, 1.8))
        s = lines.Style(style.font_path, max(12, size), style.tracking, style.fg, style.bg)
        text = vocab.sample_text(rng)
        margin = s.size // 3
        bgr, box = lines.render(text, s, margin)
        rendered.append((text, _text_alpha(bgr, s), box, margin))
    heights = [r[2][3] - r[2][1] for r in rendered]
    widths = [r[2][2] - r[2][0] for r in rendered]
    pad_x = int(max(heights) * rng.uniform(0.3, 1.2))
    pad_y = int(max(heights) * rng.uniform(0.2, 0.8))
    gap = rng.uniform(0.15, 0.7)
    cw = max(widths) + 2 * pad_x
    ch = int(sum(heights) + gap * max(heights) * (n_lines - 1)) + 2 * pad_y
    canvas = np.empty((ch, cw, 3), np.float32)
    canvas[:] = style.bg
    if kind in ("poster", "sign") and rng.random() < 0.5:
        canvas += (_value_noise(rng, ch, cw, 6)[:, :, None] - 0.5) * rng.uniform(10, 50)
    if kind == "sign" and rng.random() < 0.6:
        t = max(2, int(min(ch, cw) * rng.uniform(0.02, 0.06)))
        cv2.rectangle(canvas, (t // 2, t // 2), (cw - t // 2 - 1, ch - t // 2 - 1),
                      tuple(float(c) for c in style.fg), t)
    align = rng.integers(3)
    boxes, texts = [], []
    ink = np.zeros((ch, cw), np.float32)
    y = pad_y
    for (text, alpha, box, margin), lh, lw in zip(rendered, heights, widths):
        x = pad_x + {0: 0, 1: (max(widths) - lw) // 2, 2: max(widths) - lw}[int(align)]
        ah, aw = alpha.shape
        ax0, ay0 = x - margin, y - margin
        sx0, sy0 = max(0, -ax0), max(0, -ay0)
        dx0, dy0 = ax0 + sx0, ay0 + sy0
        dx1, dy1 = min(cw, ax0 + aw), min(ch, ay0 + ah)
        region = alpha[sy0:sy0 + dy1 - dy0, sx0:sx0 + dx1 - dx0]
        ink[dy0:dy1, dx0:dx1] = np.maximum(ink[dy0:dy1, dx0:dx1], region)
        boxes.append((x, y, x + lw, y + lh))
        texts.append(text)
        y += lh + int(gap * max(heights))
    canvas = canvas * (1 - ink[:, :, None]) + np.array(style.fg, np.float32) * ink[:, :, None]
    if kind == "screen":
        glow = cv2.GaussianBlur(ink, (0, 0), max(1.0, style.size / 10))
        canvas += glow[:, :, None] * np.array(style.fg, np.float32) * 0.4
        canvas[::3] *= rng.uniform(0.75, 1.0)
    if kind == "painted":
        alpha = ink
    else:
        alpha = np.ones((ch, cw), np.float32)
        if kind in ("plate", "label"):
            r = int(min(ch, cw) * rng.uniform(0.05, 0.25))
            if r > 1:
                alpha[:] = 0
                cv2.rectangle(alpha, (r, 0), (cw - r - 1, ch - 1), 1.0, -1)
                cv2.rectangle(alpha, (0, r), (cw - 1, ch - r - 1), 1.0, -1)
                for cx, cy in ((r, r), (cw - r - 1, r), (r, ch - r - 1), (cw - r - 1, ch - r - 1)):
                    cv2.circle(alpha, (cx, cy), r, 1.0, -1)
    return _Layout(canvas, alpha, boxes, texts, style.fg, style.bg)


def _homography(rng: np.random.Generator, layout: _Layout, width: int, height: int):
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


def _place(rng, img, occupied, layout: _Layout) -> list[tuple[np.ndarray, str]] | None:
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


# --- the camera --------------------------------------------------------------------------------

def _camera(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    img = img * rng.uniform(0.55, 1.35) + rng.uniform(-25, 25)   # exposure and offset
    img = img * rng.uniform(0.9, 1.1, 3).astype(np.float32)      # white balance
    if rng.random() < 0.5:   # uneven light: a bright or dark spot, or vignetting
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        sigma = rng.uniform(0.2, 0.8) * w
        spot = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma ** 2))
        img = img * (1 + rng.uniform(-0.6, 0.6) * spot[:, :, None])
    img = np.clip(img, 0, 255)
    if rng.random() < 0.3:
        gamma = rng.uniform(0.6, 1.6)
        img = 255 * (img / 255) ** gamma
    r = rng.random()
    if r < 0.45:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.4))
    elif r < 0.6:
        length = int(rng.integers(3, 8))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2] = 1
        rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2),
                                      float(rng.uniform(0, 180)), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        img = cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))
    if rng.random() < 0.6:
        img = img + rng.normal(0, rng.uniform(1, 9), img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 95))])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


# --- the scene ---------------------------------------------------------------------------------

def render_scene(rng: np.random.Generator, width: int = 640, height: int = 360,
                 split: str = "train") -> Scene:
    """One camera frame with 0-~8 text lines on 0-4 objects, and its exact line quads."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    styles = TRAIN_BACKGROUNDS if split == "train" else TEST_BACKGROUNDS
    style = styles[int(rng.integers(len(styles)))]
    img = _BACKGROUNDS[style](rng, height, width).astype(np.float32)
    for _ in range(int(rng.integers(0, 7))):
        _CLUTTER[int(rng.integers(len(_CLUTTER)))](rng, img)
    occupied = np.zeros((height, width), np.uint8)
    found: list[SceneLine] = []
    n_objects = int(rng.choice([0, 1, 1, 2, 2, 2, 3, 3, 4]))
    for _ in range(n_objects):
        kind = OBJECT_KINDS[int(rng.integers(len(OBJECT_KINDS)))]
        layout = _layout(rng, split, kind)
        before = np.clip(img, 0, 255).astype(np.uint8) if kind == "painted" else None
        quads = _place(rng, img, occupied, layout)
        if quads is None:
            continue
        for quad, text in zip(quads, layout.texts):
            bg = layout.bg
            if kind == "painted":
                mask = np.zeros((height, width), np.uint8)
                cv2.fillPoly(mask, [np.round(quad).astype(np.int32)], 1)
                bg = tuple(int(round(c)) for c in cv2.mean(before, mask)[:3])   # wall, not ink
            found.append(SceneLine(quad.astype(np.float32), text,
                                   tuple(int(c) for c in layout.fg), tuple(int(c) for c in bg)))
    image = _camera(rng, img)
    return Scene(image=image, lines=tuple(found), background_style=style)
