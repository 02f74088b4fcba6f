"""Turn a text-line crop into the recognizer's input; shared by training and the runtime."""

from __future__ import annotations

import numpy as np
import cv2

LINE_HEIGHT = 32
"""The input height of the 1.x/2.x recognizers; a model's own input height wins."""
WIDTH_STEP = 32
MIN_WIDTH = 64
MAX_WIDTH = 512
DOWNSAMPLE = 4
"""The 1.x/2.x recognizers emit one timestep per DOWNSAMPLE input columns (3.x: 8)."""


def to_gray(image: np.ndarray) -> np.ndarray:
    """Accept HxW gray, HxWx1, HxWx3 BGR or HxWx4 BGRA uint8; return HxW uint8."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"expected a gray, BGR or BGRA image, got shape {image.shape}")


def max_width(line_height: int = LINE_HEIGHT) -> int:
    """The widest line at this height: MAX_WIDTH's aspect ratio, a multiple of WIDTH_STEP."""
    return MAX_WIDTH * line_height // LINE_HEIGHT // WIDTH_STEP * WIDTH_STEP


def bucket_width(height: int, width: int, line_height: int = LINE_HEIGHT) -> tuple[int, int]:
    """(scaled width, padded bucket width) for a crop of this size at `line_height`."""
    widest = max_width(line_height)
    scaled = max(1, round(width * line_height / max(height, 1)))
    scaled = min(scaled, widest)
    bucket = int(np.ceil(scaled / WIDTH_STEP) * WIDTH_STEP)
    return scaled, int(np.clip(bucket, MIN_WIDTH, widest))


def prepare_line(image: np.ndarray, line_height: int = LINE_HEIGHT) -> np.ndarray:
    """A line crop → float32 [line_height, W] in [0, 1], W a multiple of WIDTH_STEP.

    Height is scaled to `line_height` (the model's input height) keeping the aspect ratio
    (very long lines are squeezed to MAX_WIDTH at 32 px, as wide in proportion at other
    heights), contrast is stretched between the 2nd and 98th percentile, and the right side
    is padded by repeating the last column.
    """
    gray = to_gray(np.asarray(image))
    if gray.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {gray.dtype}")
    h, w = gray.shape
    if h < 2 or w < 2:
        raise ValueError(f"crop too small to hold text: {w}x{h} px")
    scaled, bucket = bucket_width(h, w, line_height)
    interp = cv2.INTER_AREA if h > line_height else cv2.INTER_LINEAR
    small = cv2.resize(gray, (scaled, line_height), interpolation=interp)
    lo, hi = percentiles_u8(small, (0.02, 0.98))
    out = np.empty((line_height, bucket), np.float32)
    line = out[:, :scaled]
    np.subtract(small, np.float32(lo), out=line, dtype=np.float32)
    np.divide(line, np.float32(max(hi - lo, 8.0)), out=line)
    np.clip(line, 0.0, 1.0, out=line)
    out[:, scaled:] = line[:, scaled - 1:scaled]         # pad by repeating the last column
    return out


def percentiles_u8(values: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """np.percentile(values, 100 * q) for each q of a uint8 array, the same numbers (numpy's
    'linear' method), from a 256-bin histogram instead of a sort: half the time of a line's
    preparation went into sorting its pixels."""
    if values.dtype != np.uint8:
        raise ValueError(f"percentiles_u8 takes uint8 values, not {values.dtype}")
    n = values.size
    counts = np.cumsum(np.bincount(values.ravel(), minlength=256))
    found = []
    for q in qs:
        virtual = (n - 1) * q
        i = int(np.floor(virtual))
        t = virtual - i
        a = float(np.searchsorted(counts, i, side="right"))      # the i-th smallest value
        b = float(np.searchsorted(counts, min(i + 1, n - 1), side="right"))
        diff = b - a                     # numpy's _lerp, rounding included
        found.append(b - diff * (1 - t) if t >= 0.5 else a + diff * t)
    return found
