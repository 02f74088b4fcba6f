"""Render one text line and crop it the way a text detector would.

`sample_line(rng, split)` is the entry point: text from `vocab`, a font of the split's
families from `fonts`, colours, tracking and a tight or loose crop, then camera
degradations from `augment`. It returns a BGR uint8 crop and its exact text.
"""

from __future__ import annotations

import colorsys
import functools
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from device.synth import augment, fonts, vocab


@dataclass(frozen=True)
class Style:
    font_path: str
    size: int            # font size in px
    tracking: float      # extra space between characters, in em
    fg: tuple[int, int, int]
    bg: tuple[int, int, int]


@functools.lru_cache(maxsize=512)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


@functools.lru_cache(maxsize=2)
def _families(split: str) -> tuple[tuple[str, ...], ...]:
    by_family: dict[str, list[str]] = {}
    for f in fonts.fonts_for(split):
        by_family.setdefault(f.family, []).append(f.path)
    return tuple(tuple(paths) for _fam, paths in sorted(by_family.items()))


def _colour(rng: np.random.Generator, light: bool, saturated: bool) -> tuple[int, int, int]:
    hue = rng.random()
    sat = rng.uniform(0.4, 1.0) if saturated else rng.uniform(0.0, 0.15)
    val = rng.uniform(0.75, 1.0) if light else rng.uniform(0.0, 0.35)
    if saturated and not light:
        val = rng.uniform(0.2, 0.55)
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return int(b * 255), int(g * 255), int(r * 255)


def _luma(bgr: tuple[int, int, int]) -> float:
    return 0.114 * bgr[0] + 0.587 * bgr[1] + 0.299 * bgr[2]


def sample_style(rng: np.random.Generator, split: str) -> Style:
    families = _families(split)
    family = families[rng.integers(len(families))]
    path = family[rng.integers(len(family))]
    size = int(rng.integers(14, 49))
    tracking = float(rng.choice([0.0, 0.0, 0.0, rng.uniform(-0.03, 0.05), rng.uniform(0.05, 0.3)]))
    dark_text = rng.random() < 0.5
    for _ in range(20):
        fg = _colour(rng, light=not dark_text, saturated=rng.random() < 0.25)
        bg = _colour(rng, light=dark_text, saturated=rng.random() < 0.45)
        if abs(_luma(fg) - _luma(bg)) >= 70:
            break
    else:
        fg, bg = ((20, 20, 20), (235, 235, 235)) if dark_text else ((240, 240, 240), (30, 30, 30))
    return Style(path, size, tracking, fg, bg)


def render(text: str, style: Style, margin: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Draw `text` on a plate; return the float BGR image and the line box (x0, y0, x1, y1).

    The line box spans the font's ascent and descent (as a detector's box would), not the ink.
    """
    font = _font(style.font_path, style.size)
    ascent, descent = font.getmetrics()
    advances = None
    if style.tracking:
        extra = style.tracking * style.size
        advances = [font.getlength(ch) + extra for ch in text]
        width = int(np.ceil(sum(advances) - extra))
    else:
        width = int(np.ceil(font.getlength(text)))
    height = ascent + descent
    w, h = width + 2 * margin, height + 2 * margin
    image = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(image)
    if advances is None:
        draw.text((margin, margin), text, font=font, fill=255)
    else:
        x = float(margin)
        for ch, adv in zip(text, advances):
            draw.text((x, margin), ch, font=font, fill=255)
            x += adv
    alpha = np.asarray(image, dtype=np.float32)
    fg = np.array(style.fg, np.float32)
    bg = np.array(style.bg, np.float32)
    bgr = cv2.merge([alpha * ((f - b) / 255.0) + b for f, b in zip(fg, bg)])
    return bgr, (margin, margin, margin + width, margin + height)


def _crop_box(rng: np.random.Generator, box: tuple[int, int, int, int], shape) -> tuple[int, ...]:
    x0, y0, x1, y1 = box
    lh = y1 - y0
    tight = rng.random() < 0.5
    if tight:
        top, bottom = rng.uniform(-0.12, 0.1, 2) * lh
        left, right = rng.uniform(-0.02, 0.15, 2) * lh
    else:
        top, bottom = rng.uniform(0.05, 0.45, 2) * lh
        left, right = rng.uniform(0.1, 1.0, 2) * lh
    h, w = shape[:2]
    return (int(max(0, x0 - left)), int(max(0, y0 - top)),
            int(min(w, x1 + right)), int(min(h, y1 + bottom)))


def render_crop(rng: np.random.Generator, text: str, style: Style,
                degrade: bool = True, scene: bool = False) -> np.ndarray:
    """A BGR uint8 crop of `text` drawn in `style`, optionally degraded like a camera frame."""
    margin = max(4, int(style.size * 0.8))
    image, box = render(text, style, margin)
    image = augment.background(rng, image, style, box)
    if degrade:
        image, box = augment.geometric(rng, image, box, strong=scene)
    x0, y0, x1, y1 = _crop_box(rng, box, image.shape)
    crop = np.clip(image[y0:y1, x0:x1], 0, 255).astype(np.uint8)
    if degrade:
        crop = augment.photometric(rng, crop, strong=scene)
    return crop


def sample_styled_line(rng: np.random.Generator, split: str = "train",
                       scene: bool = False) -> tuple[np.ndarray, str, Style]:
    """`sample_line` that also returns the Style it drew (font, size, colours)."""
    text = vocab.sample_text(rng)
    style = sample_style(rng, split)
    if scene and _luma(style.fg) < _luma(style.bg):
        style = Style(style.font_path, style.size, style.tracking, style.bg, style.fg)
    crop = render_crop(rng, text, style, degrade=scene or rng.random() < 0.9, scene=scene)
    return crop, text, style


def sample_line(rng: np.random.Generator, split: str = "train",
                scene: bool = False) -> tuple[np.ndarray, str]:
    """(BGR uint8 crop, text) of one random line from the fonts of `split`.

    `scene=True` draws the harder, scene-like case: light text on a dark plate, stronger
    perspective and blur (used for the held-out 'scene' subset).
    """
    crop, text, _style = sample_styled_line(rng, split, scene)
    return crop, text
