"""A street wall with German signs: the world the demo and the pipeline tests look at.

Unlike `scenes` (random text for training the detector), these are real sign phrases in
held-out fonts on clean plates, so the demo shows translations a wearer would meet and the
tests can check the whole chain against known text.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from device.errors import SourceError
from device.synth import fonts
from device.synth.scenes import Scene, SceneLine

SIGN_TEXTS = (
    ("AUSGANG",), ("EINGANG",), ("NOTAUSGANG",), ("EINFAHRT", "FREIHALTEN"),
    ("RAUCHEN", "VERBOTEN"), ("BITTE", "KLINGELN"), ("GESCHLOSSEN",), ("GEÖFFNET",),
    ("APOTHEKE",), ("BÄCKEREI",), ("BAHNHOF",), ("PARKEN", "VERBOTEN"), ("ZIEHEN",),
    ("DRÜCKEN",), ("KASSE",), ("TOILETTEN",), ("BAUSTELLE",), ("UMLEITUNG",), ("POLIZEI",),
    ("VORSICHT", "STUFE"), ("Ausgang",), ("Bahnhof",), ("Apotheke",), ("Zutritt verboten",),
)

PLATES = (  # (plate BGR, text BGR)
    ((40, 110, 20), (255, 255, 255)),     # green escape-route sign
    ((120, 60, 10), (255, 255, 255)),     # blue
    ((235, 235, 235), (20, 20, 20)),      # white
    ((20, 200, 240), (10, 10, 10)),       # yellow
    ((30, 30, 180), (255, 255, 255)),     # red
    ((30, 30, 30), (240, 240, 240)),      # black
)


def _wall(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    base = rng.integers(90, 180, 3).astype(np.float32)
    noise = cv2.resize(rng.normal(0, 1, (height // 16 + 1, width // 16 + 1)).astype(np.float32),
                       (width, height), interpolation=cv2.INTER_CUBIC)
    fine = rng.normal(0, 6, (height, width)).astype(np.float32)
    wall = base[None, None, :] + (noise * 14 + fine)[..., None]
    for y in range(0, height, int(rng.integers(28, 44))):  # mortar lines
        wall[y:y + 2] *= 0.8
    return np.clip(wall, 0, 255).astype(np.uint8)


# Bold faces of the recognizer's held-out families (device.synth.fonts.HELD_OUT_FAMILIES),
# named directly: scanning every installed font for coverage takes seconds at start-up.
SIGN_FONTS = (
    "/usr/share/fonts/truetype/lato/Lato-Bold.ttf",
    "/usr/share/fonts/opentype/linux-libertine/LinLibertine_RB.otf",
    "/usr/share/fonts/truetype/comfortaa/Comfortaa-Bold.ttf",
    "/usr/share/fonts/truetype/firacode/FiraCode-Bold.ttf",
)


def _font(rng: np.random.Generator, size: int) -> ImageFont.FreeTypeFont:
    candidates = [p for p in SIGN_FONTS if Path(p).is_file()]
    if not candidates:  # another distribution: any held-out font that covers the charset
        candidates = [f.path for f in fonts.fonts_for("test")]
    if not candidates:  # a minimal system (the glasses): any font that covers the charset
        candidates = [f.path for f in fonts.discover()]
    if not candidates:
        raise SourceError("no font to draw the synthetic street's signs: install "
                          "fonts-dejavu-core (or the held-out families, scripts/setup)")
    return ImageFont.truetype(candidates[int(rng.integers(len(candidates)))], size)


def _sign(rng, lines: tuple[str, ...], size: int):
    """(BGR plate image, [(box x0, y0, x1, y1), text], plate colour, text colour)."""
    plate, ink = PLATES[int(rng.integers(len(PLATES)))]
    font = _font(rng, size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    boxes = [probe.textbbox((0, 0), text, font=font) for text in lines]
    pad_x, pad_y, gap = int(size * 0.6), int(size * 0.45), int(size * 0.35)
    width = max(b[2] - b[0] for b in boxes) + 2 * pad_x
    height = sum(b[3] - b[1] for b in boxes) + gap * (len(lines) - 1) + 2 * pad_y
    image = Image.new("RGB", (width, height), plate[::-1])
    draw = ImageDraw.Draw(image)
    draw.rectangle((3, 3, width - 4, height - 4), outline=ink[::-1], width=max(2, size // 12))
    found, y = [], pad_y
    for text, box in zip(lines, boxes):
        x = (width - (box[2] - box[0])) // 2
        draw.text((x - box[0], y - box[1]), text, font=font, fill=ink[::-1])
        margin = size * 0.12
        found.append(((x - margin, y - margin, x + box[2] - box[0] + margin,
                       y + box[3] - box[1] + margin), text))
        y += box[3] - box[1] + gap
    return np.asarray(image)[:, :, ::-1].copy(), found, plate, ink


def render_street(rng: np.random.Generator, width: int = 960, height: int = 540,
                  signs: int = 3) -> Scene:
    """A wall with `signs` German signs side by side, each slightly rotated."""
    image = _wall(rng, height, width)
    picks = rng.choice(len(SIGN_TEXTS), size=signs, replace=False)
    slot = width / signs
    lines: list[SceneLine] = []
    for i, pick in enumerate(picks):
        size = int(rng.integers(height // 20, height // 13))
        sign, found, plate, ink = _sign(rng, SIGN_TEXTS[pick], size)
        scale = min(1.0, (slot * 0.85) / sign.shape[1])
        sh, sw = int(sign.shape[0] * scale), int(sign.shape[1] * scale)
        sign = cv2.resize(sign, (sw, sh), interpolation=cv2.INTER_AREA)
        cx = slot * (i + 0.5) + rng.uniform(-0.05, 0.05) * slot
        cy = height * rng.uniform(0.35, 0.65)
        angle = rng.uniform(-6, 6)
        matrix = cv2.getRotationMatrix2D((sw / 2, sh / 2), angle, 1.0)
        matrix[:, 2] += (cx - sw / 2, cy - sh / 2)
        warped = cv2.warpAffine(sign, matrix, (width, height))
        mask = cv2.warpAffine(np.full((sh, sw), 255, np.uint8), matrix, (width, height))
        image[mask > 127] = warped[mask > 127]
        for (x0, y0, x1, y1), text in found:
            quad = np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]) * scale
            quad = cv2.transform(quad[None], matrix)[0]
            lines.append(SceneLine(quad.astype(np.float32), text, ink, plate))
    image = cv2.GaussianBlur(image, (3, 3), 0.6)
    return Scene(image=image, lines=tuple(lines), background_style="street")
