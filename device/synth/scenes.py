"""Whole camera frames with text: signs, plates, labels, posters and screens in a cluttered scene.

`render_scene(rng, width, height, split)` is the entry point. Each text-carrying object is
laid out flat (`device.synth.text_objects`: lines rendered by `device.synth.lines`, fonts of
the split's families), then warped with a random rotation and perspective onto a procedural
background full of clutter that looks a bit like text and is not
(`device.synth.backgrounds`: stripes, barcodes, glyph-like strokes), and the whole frame goes
through the camera here: light, exposure, blur, noise and JPEG.

Ground truth is exact: every line's quad (TL, TR, BR, BL in the text's reading direction,
spanning the font's ascent and descent) is the flat layout box mapped through the same
homography as its pixels. Held-out scenes ('test') use held-out font families and
background styles that training never sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from device.synth.backgrounds import BACKGROUNDS, CLUTTER
from device.synth.text_objects import OBJECT_KINDS, lay_out, place

TRAIN_BACKGROUNDS = ("gradient", "noise", "shapes", "stripes", "bricks", "blobs")
TEST_BACKGROUNDS = ("tiles", "wood", "cells")
"""Background styles of each split; the test styles never appear in training scenes."""


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
    img = BACKGROUNDS[style](rng, height, width).astype(np.float32)
    for _ in range(int(rng.integers(0, 7))):
        CLUTTER[int(rng.integers(len(CLUTTER)))](rng, img)
    occupied = np.zeros((height, width), np.uint8)
    found: list[SceneLine] = []
    n_objects = int(rng.choice([0, 1, 1, 2, 2, 2, 3, 3, 4]))
    for _ in range(n_objects):
        kind = OBJECT_KINDS[int(rng.integers(len(OBJECT_KINDS)))]
        layout = lay_out(rng, split, kind)
        before = np.clip(img, 0, 255).astype(np.uint8) if kind == "painted" else None
        quads = place(rng, img, occupied, layout)
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
