"""The procedural backgrounds of generated scenes, and the clutter drawn on them.

`BACKGROUNDS` maps each background style to a function `(rng, height, width) -> float32 BGR
image`; which styles a split uses is decided in `device.synth.scenes`. `CLUTTER` holds the
functions `(rng, image)` that draw, in place, marks that look a bit like text and are not
(barcodes, glyph-like strokes, ruled lines, dot grids), so the detector learns to tell them
apart. `rand_colour` and `value_noise` are shared with the text objects.
"""

from __future__ import annotations

import cv2
import numpy as np


# --- backgrounds ------------------------------------------------------------------------------

def rand_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, 3).astype(np.float32)


def value_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    small = rng.random((max(2, cells * h // w), max(2, cells))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _two_tone(rng, field: np.ndarray) -> np.ndarray:
    a, b = rand_colour(rng), rand_colour(rng)
    field = np.clip(field, 0, 1)[:, :, None]
    return a * (1 - field) + b * field


def _bg_gradient(rng, h, w):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    t = (xx * np.cos(angle) + yy * np.sin(angle)) / (w + h) + 0.5
    return _two_tone(rng, t)


def _bg_noise(rng, h, w):
    field = sum(value_noise(rng, h, w, c) * a for c, a in ((4, 0.5), (16, 0.3), (64, 0.2)))
    return _two_tone(rng, field)


def _bg_shapes(rng, h, w):
    img = np.empty((h, w, 3), np.float32)
    img[:] = rand_colour(rng)
    for _ in range(rng.integers(5, 25)):
        colour = tuple(float(c) for c in rand_colour(rng))
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
    mortar, brick = rand_colour(rng), rand_colour(rng)
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
    field = value_noise(rng, h, w, int(rng.integers(6, 20)))
    return _two_tone(rng, (field > rng.uniform(0.3, 0.7)).astype(np.float32) * 0.8 +
                     value_noise(rng, h, w, 40) * 0.2)


def _bg_tiles(rng, h, w):
    img = np.empty((h, w, 3), np.float32)
    size = int(rng.integers(15, 60))
    base = rand_colour(rng)
    for y in range(0, h, size):
        for x in range(0, w, size):
            img[y:y + size, x:x + size] = np.clip(base * rng.uniform(0.7, 1.3), 0, 255)
    img[::size] = img[::size] * 0.5
    img[:, ::size] = img[:, ::size] * 0.5
    return img


def _bg_wood(rng, h, w):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    warp = value_noise(rng, h, w, 5) * rng.uniform(10, 40)
    t = np.sin((yy + warp) / rng.uniform(2, 8)) * 0.5 + 0.5
    return _two_tone(rng, t * 0.6 + value_noise(rng, h, w, 80) * 0.4)


def _bg_cells(rng, h, w):
    n = int(rng.integers(20, 80))
    pts = rng.uniform(0, 1, (n, 2)) * [w, h]
    small = np.mgrid[0:h:4, 0:w:4].reshape(2, -1).T[:, ::-1].astype(np.float32)
    d = ((small[:, None, :] - pts[None]) ** 2).sum(-1)
    label = d.argmin(1).reshape((h + 3) // 4, (w + 3) // 4)
    colours = rng.uniform(0, 255, (n, 3)).astype(np.float32)
    return cv2.resize(colours[label], (w, h), interpolation=cv2.INTER_NEAREST)


BACKGROUNDS = {"gradient": _bg_gradient, "noise": _bg_noise, "shapes": _bg_shapes,
                "stripes": _bg_stripes, "bricks": _bg_bricks, "blobs": _bg_blobs,
                "tiles": _bg_tiles, "wood": _bg_wood, "cells": _bg_cells}


# --- clutter that looks like text but is not ---------------------------------------------------

def _barcode(rng, img):
    h, w = img.shape[:2]
    bw, bh = int(rng.integers(30, 120)), int(rng.integers(15, 60))
    x0, y0 = int(rng.integers(0, max(1, w - bw))), int(rng.integers(0, max(1, h - bh)))
    dark = tuple(float(c) for c in rand_colour(rng) * 0.3)
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
    colour = tuple(float(c) for c in rand_colour(rng))
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
    colour = tuple(float(c) for c in rand_colour(rng))
    y = int(rng.integers(0, h))
    for _ in range(int(rng.integers(2, 8))):
        x0 = int(rng.integers(0, w))
        cv2.line(img, (x0, y), (x0 + int(rng.integers(20, 200)), y + int(rng.integers(-5, 6))),
                 colour, int(rng.integers(1, 4)))
        y += int(rng.integers(4, 20))


def _dots(rng, img):
    h, w = img.shape[:2]
    colour = tuple(float(c) for c in rand_colour(rng))
    cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
    step, r = int(rng.integers(5, 15)), int(rng.integers(1, 4))
    for i in range(int(rng.integers(2, 6))):
        for j in range(int(rng.integers(3, 12))):
            cv2.circle(img, (cx + j * step, cy + i * step), r, colour, -1)


CLUTTER = (_barcode, _strokes, _lines_clutter, _dots)
