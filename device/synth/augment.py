"""Camera degradations for rendered text: geometry, light, blur, noise, compression.

Images are float32 or uint8 BGR numpy arrays; every function takes a numpy Generator.
"""

from __future__ import annotations

import cv2
import numpy as np


def background(rng: np.random.Generator, image: np.ndarray, style, box) -> np.ndarray:
    """Texture the plate: a colour gradient, stripes of a neighbouring line, or plain."""
    h, w = image.shape[:2]
    r = rng.random()
    if r < 0.35:
        # linear gradient of the plate brightness, text colour untouched where ink is
        gx = np.linspace(-1, 1, w, dtype=np.float32)[None, :] * rng.uniform(-1, 1)
        gy = np.linspace(-1, 1, h, dtype=np.float32)[:, None] * rng.uniform(-1, 1)
        image = image + (gx + gy)[:, :, None] * rng.uniform(5, 35)
    elif r < 0.45:
        # an edge of the plate or a rule line above / below the text
        x0, y0, x1, y1 = box
        colour = np.array(style.fg, np.float32)
        thick = int(rng.integers(1, max(2, (y1 - y0) // 8) + 1))
        if rng.random() < 0.5:
            y = int(rng.integers(0, max(1, y0 - thick)))
        else:
            y = int(rng.integers(min(h - 1, y1), h))
        image[y:y + thick, :] = colour
    if rng.random() < 0.3:
        image = image + rng.standard_normal((h, w, 1), dtype=np.float32) * rng.uniform(1, 6)
    return image


def geometric(rng: np.random.Generator, image: np.ndarray, box, strong: bool = False):
    """Small rotation + perspective; returns the warped image and the new axis-aligned box."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    lh = y1 - y0
    angle = np.deg2rad(rng.normal(0, 2.5 if strong else 1.2))
    jitter = (0.18 if strong else 0.08) * lh
    src = np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    dst = (src - [cx, cy]) @ rot.T + [cx, cy]
    dst = dst + rng.uniform(-jitter, jitter, (4, 2)).astype(np.float32)
    if strong and rng.random() < 0.5:  # keystone: one end of the line nearer the camera
        k = rng.uniform(-0.15, 0.15) * lh
        dst[1, 1] -= k
        dst[2, 1] += k
    matrix = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    warped = cv2.warpPerspective(image, matrix, (w, h), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
    nx0, ny0 = np.floor(dst.min(axis=0)).astype(int)
    nx1, ny1 = np.ceil(dst.max(axis=0)).astype(int)
    return warped, (max(0, nx0), max(0, ny0), min(w, nx1), min(h, ny1))


def _motion_kernel(rng: np.random.Generator, length: int) -> np.ndarray:
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    centre = (length / 2 - 0.5, length / 2 - 0.5)
    rot = cv2.getRotationMatrix2D(centre, float(rng.uniform(0, 180)), 1.0)
    kernel = cv2.warpAffine(kernel, rot, (length, length))
    return kernel / max(kernel.sum(), 1e-6)


def photometric(rng: np.random.Generator, crop: np.ndarray, strong: bool = False) -> np.ndarray:
    """Contrast, light, blur, noise and JPEG on a uint8 BGR crop."""
    img = crop.astype(np.float32)
    h, w = img.shape[:2]
    if rng.random() < 0.3:  # low contrast: pull towards the mean
        mean = img.mean()
        img = mean + (img - mean) * rng.uniform(0.3, 0.8)
    if rng.random() < 0.3:  # uneven light: a soft bright or dark spot
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        sigma = rng.uniform(0.3, 1.5) * max(h, w)
        spot = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma ** 2))
        img = img * (1 + rng.uniform(-0.5, 0.5) * spot[:, :, None])
    scale = h / 32.0
    r = rng.random()
    if r < (0.5 if strong else 0.25):
        sigma = rng.uniform(0.3, 1.6 if strong else 1.1) * scale
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    elif r < (0.7 if strong else 0.4):
        length = int(np.clip(round(rng.uniform(2, 5 if strong else 4) * scale), 2, 31))
        img = cv2.filter2D(img, -1, _motion_kernel(rng, length))
    if rng.random() < 0.5:
        img = img + rng.standard_normal(img.shape, dtype=np.float32) * rng.uniform(2, 12 if strong else 8)
    if rng.random() < 0.25:  # downscale and back up: low camera resolution
        f = rng.uniform(0.35, 0.8)
        small = cv2.resize(img, (max(2, int(w * f)), max(2, int(h * f))),
                           interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        quality = int(rng.integers(25 if strong else 35, 95))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out
