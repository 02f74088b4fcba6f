"""Training samples for the 2.x line detector: real photos and generated scenes, cropped.

No TensorFlow here: used by scripts/train_line_detector.py and the packager
(calibration/package_line_detector.py: BatchNorm re-estimation and int8 calibration).
"""

from __future__ import annotations

from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

from calibration.training import detector_data as dd
from calibration import real_data

CROP = 320
"""Training crops are CROP x CROP pixels of a frame at a random scale."""
STRIDE = 4
"""Input pixels per probability-map pixel."""
SHRINK_RATIO = 0.6
"""DB shrink of a line into the kernel the model predicts (the detector unclips it back)."""


# --- samples -----------------------------------------------------------------------------------

def kernel_and_mask(shape_hw, quads, ignore, stride=STRIDE, ratio=SHRINK_RATIO):
    """uint8 kernel map and float32 loss mask at 1/stride for input-space quads."""
    h, w = shape_hw[0] // stride, shape_hw[1] // stride
    kernel = np.zeros((h, w), np.uint8)
    mask = np.ones((h, w), np.float32)
    for quad in quads:
        q = quad.astype(np.float32)
        area = abs(cv2.contourArea(q))
        perimeter = cv2.arcLength(q, True)
        short = min(np.linalg.norm(q[1] - q[2]), np.linalg.norm(q[0] - q[3]))
        if short < 3:                       # unreadably small: neither text nor background
            ignore = list(ignore) + [q]
            continue
        d = min(area * (1 - ratio ** 2) / max(perimeter, 1e-6), max(0.0, (short - stride) / 2))
        k = dd.shrink_quad(q, d)
        pts = (k / stride - 0.5) * 16
        cv2.fillPoly(kernel, [np.round(pts).astype(np.int32)], 1, shift=4)
    for quad in ignore:
        pts = (np.asarray(quad, np.float32) / stride - 0.5) * 16
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 0.0, shift=4)
    return kernel, mask


def _blur(image, rng):
    r = rng.random()
    if r < 0.15:
        k = int(rng.integers(1, 3)) * 2 + 1
        return cv2.GaussianBlur(image, (k, k), 0)
    if r < 0.3:
        length = int(rng.integers(3, 9))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        angle = float(rng.uniform(0, 180))
        rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle, 1.0)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        kernel /= max(kernel.sum(), 1e-6)
        return cv2.filter2D(image, -1, kernel)
    return image


def reflect(image, other, rng):
    """`image` seen through glass: a defocused, mirrored crop of another photo laid over it
    at 15-40 % (shop windows, display cases, a bus's windows). The text stays text."""
    h, w = image.shape[:2]
    oh, ow = other.shape[:2]
    y0, x0 = int(rng.integers(0, max(1, oh - h + 1))), int(rng.integers(0, max(1, ow - w + 1)))
    layer = cv2.resize(other[y0:y0 + h, x0:x0 + w], (w, h))[:, ::-1]
    k = int(rng.integers(1, 4)) * 2 + 1
    layer = cv2.GaussianBlur(layer, (k, k), 0).astype(np.float32)
    alpha = float(rng.uniform(0.15, 0.4))
    out = image.astype(np.float32) * (1 - alpha) + layer * alpha
    return np.clip(out, 0, 255).astype(np.uint8)


def sample_crop(frame, quads, ignore, rng, stride: int = STRIDE, ratio: float = SHRINK_RATIO,
                glass=None):
    """A random CROP x CROP crop of a frame at a random scale, with its target and mask at
    1/stride (kernels shrunk by `ratio`). With `glass` (a photo), the crop is seen through a
    window that reflects it (`reflect`)."""
    scale = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
    h, w = frame.shape[:2]
    sw, sh = max(CROP, int(round(w * scale))), max(CROP, int(round(h * scale)))
    sx, sy = sw / w, sh / h
    image = cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_AREA if scale < 1 else
                       cv2.INTER_LINEAR)
    # prefer crops that hold text: centre on a random line half of the time
    if quads and rng.random() < 0.5:
        c = quads[int(rng.integers(len(quads)))].mean(axis=0) * [sx, sy]
        x0 = int(np.clip(c[0] - rng.uniform(0.2, 0.8) * CROP, 0, sw - CROP))
        y0 = int(np.clip(c[1] - rng.uniform(0.2, 0.8) * CROP, 0, sh - CROP))
    else:
        x0, y0 = int(rng.integers(0, sw - CROP + 1)), int(rng.integers(0, sh - CROP + 1))
    image = image[y0:y0 + CROP, x0:x0 + CROP]
    shift = np.float32([x0, y0])
    q = [np.asarray(p, np.float32) * [sx, sy] - shift for p in quads]
    ig = [np.asarray(p, np.float32) * [sx, sy] - shift for p in ignore]
    if glass is not None:
        image = reflect(image, glass, rng)
    image = _blur(image, rng)
    if rng.random() < 0.8:                   # exposure and contrast of another camera
        alpha, beta = rng.uniform(0.6, 1.4), rng.uniform(-40, 40)
        image = np.clip(image.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)
    if rng.random() < 0.2:
        image = np.clip(image + rng.normal(0, rng.uniform(2, 10), image.shape), 0,
                        255).astype(np.uint8)
    kernel, mask = kernel_and_mask((CROP, CROP), q, ig, stride, ratio)
    return image, kernel, mask


def load_data(scenes: int, directory: Path, workers: int = 2, smoke: bool = False):
    """(real training frames, generated scenes): each [(frame, quads, ignore quads)]."""
    photos = real_data.detector_frames("train")
    if smoke:
        photos = photos[:32]
    path = directory / f"scenes_{dd.TRAIN_SEED}_{scenes}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            images, counts, flat = z["images"], z["counts"], z["quads"]
    else:
        dd._worker_init()
        jobs = list(range(scenes))
        with get_context("fork").Pool(workers, initializer=dd._worker_init) as pool:
            scenes = pool.map(_render_scene, jobs, chunksize=8)
        images = np.stack([s[0] for s in scenes])
        counts = np.array([len(s[1]) for s in scenes], np.int32)
        flat = np.concatenate([np.stack(s[1]) for s in scenes if len(s[1])]).astype(np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path.with_suffix(".tmp.npz"), images=images, counts=counts, quads=flat)
        path.with_suffix(".tmp.npz").replace(path)
    synth, offset = [], 0
    for image, n in zip(images, counts):
        synth.append((image, list(flat[offset:offset + n]), []))
        offset += n
    return photos, synth


def _render_scene(index):
    scene = dd.scene_for(dd.TRAIN_SEED, index, "train")
    return scene.image, [line.polygon for line in scene.lines]


# --- German sign plates composited onto real photos -----------------------------------------------

def _icon(rng, size: int, colour) -> np.ndarray:
    """A pictogram-like mark (arrow, disc with a bar, ring, square symbol), uint8 mask."""
    mask = np.zeros((size, size), np.uint8)
    s = size
    kind = int(rng.integers(4))
    if kind == 0:       # arrow
        pts = np.float32([[0.1, 0.4], [0.55, 0.4], [0.55, 0.15], [0.95, 0.5], [0.55, 0.85],
                          [0.55, 0.6], [0.1, 0.6]]) * s
        if rng.random() < 0.5:
            pts[:, 0] = s - pts[:, 0]
        if rng.random() < 0.3:
            pts = pts[:, ::-1].copy()
        cv2.fillPoly(mask, [pts.astype(np.int32)], 255)
    elif kind == 1:     # prohibition disc
        cv2.circle(mask, (s // 2, s // 2), int(s * 0.45), 255, max(2, s // 10))
        cv2.line(mask, (int(s * 0.2), int(s * 0.2)), (int(s * 0.8), int(s * 0.8)), 255,
                 max(2, s // 10))
    elif kind == 2:     # ring with a dot (info / pictogram head)
        cv2.circle(mask, (s // 2, s // 2), int(s * 0.45), 255, -1)
        cv2.circle(mask, (s // 2, int(s * 0.3)), max(1, int(s * 0.12)), 0, -1)
        cv2.rectangle(mask, (int(s * 0.42), int(s * 0.48)), (int(s * 0.58), int(s * 0.8)), 0, -1)
    else:               # stick figure
        cv2.circle(mask, (s // 2, int(s * 0.18)), max(1, int(s * 0.12)), 255, -1)
        t = max(2, s // 9)
        cv2.line(mask, (s // 2, int(s * 0.3)), (s // 2, int(s * 0.62)), 255, t)
        cv2.line(mask, (s // 2, int(s * 0.62)), (int(s * 0.3), int(s * 0.95)), 255, t)
        cv2.line(mask, (s // 2, int(s * 0.62)), (int(s * 0.7), int(s * 0.95)), 255, t)
        cv2.line(mask, (int(s * 0.25), int(s * 0.42)), (int(s * 0.75), int(s * 0.42)), 255, t)
    return mask


def sign_plate(rng) -> tuple[np.ndarray, list[np.ndarray]]:
    """A generated sign: 1-3 German/English/French lines with tight leading, sometimes a
    pictogram beside them and a border; (BGR uint8 plate, line quads in plate pixels)."""
    from device.synth import lines as synth_lines
    from device.synth import vocab
    style = synth_lines.sample_style(rng, "train")
    n = int(rng.choice([1, 1, 2, 2, 3]))
    rendered = []
    for _ in range(n):
        text = vocab.sample_text(rng)[:28].strip() or "Ausgang"
        alpha, _box = synth_lines.render(text, synth_lines.Style(
            style.font_path, style.size, style.tracking, (255, 255, 255), (0, 0, 0)), 0)
        rendered.append(alpha[:, :, 0])
    lh = max(a.shape[0] for a in rendered)
    leading = float(rng.uniform(1.0, 1.35)) * lh
    pad = int(rng.uniform(0.3, 1.0) * lh)
    icon = int(rng.random() < 0.5)
    icon_size = int(min(n * leading, 2.2 * lh)) if icon else 0
    gap = int(rng.uniform(0.4, 1.2) * lh) if icon else 0
    text_w = max(a.shape[1] for a in rendered)
    width = pad * 2 + text_w + icon_size + gap
    height = int(pad * 2 + (n - 1) * leading + lh)
    plate = np.zeros((height, width, 3), np.float32) + np.float32(style.bg)
    ink = np.zeros((height, width), np.float32)
    icon_left = rng.random() < 0.5
    x_text = pad + (icon_size + gap if icon and icon_left else 0)
    quads = []
    for k, a in enumerate(rendered):
        y = int(pad + k * leading)
        ink[y:y + a.shape[0], x_text:x_text + a.shape[1]] = np.maximum(
            ink[y:y + a.shape[0], x_text:x_text + a.shape[1]], a[:height - y, :width - x_text])
        quads.append(np.float32([[x_text, y], [x_text + a.shape[1], y],
                                 [x_text + a.shape[1], y + a.shape[0]], [x_text, y + a.shape[0]]]))
    if icon:
        mark = _icon(rng, max(icon_size, 4), style.fg).astype(np.float32)
        x_icon = pad if icon_left else pad + text_w + gap
        y_icon = max(0, (height - mark.shape[0]) // 2)
        region = ink[y_icon:y_icon + mark.shape[0], x_icon:x_icon + mark.shape[1]]
        region[:] = np.maximum(region, mark[:region.shape[0], :region.shape[1]])
    ink /= 255.0
    plate = plate * (1 - ink[..., None]) + np.float32(style.fg) * ink[..., None]
    if rng.random() < 0.5:
        t = max(2, int(lh * 0.12))
        cv2.rectangle(plate, (t // 2, t // 2), (width - 1 - t // 2, height - 1 - t // 2),
                      tuple(float(c) for c in style.fg), t)
    if rng.random() < 0.3:              # glare
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.2, 0.6) * max(width, height)
        glow = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)) * rng.uniform(60, 160)
        plate = plate + glow[..., None]
    return np.clip(plate, 0, 255).astype(np.uint8), quads


def composite(frame, quads, ignore, rng, plates: int = 1):
    """Paste generated sign plates onto a real frame (perspective, scale: line height 8-50 px)
    where they cover no labelled text; returns (frame, quads, ignore) with the new lines."""
    out = frame.copy()
    quads, h, w = list(quads), frame.shape[0], frame.shape[1]
    for _ in range(plates):
        plate, plate_quads = sign_plate(rng)
        lh = float(plate_quads[0][3, 1] - plate_quads[0][0, 1])
        scale = float(np.exp(rng.uniform(np.log(8), np.log(50)))) / max(lh, 1)
        ph, pw = plate.shape[0] * scale, plate.shape[1] * scale
        if pw > 0.9 * w or ph > 0.9 * h:
            continue
        x0, y0 = rng.uniform(0, w - pw), rng.uniform(0, h - ph)
        corners = np.float32([[x0, y0], [x0 + pw, y0], [x0 + pw, y0 + ph], [x0, y0 + ph]])
        centre = corners.mean(axis=0)
        angle = np.deg2rad(rng.normal(0, 8))
        rot = np.float32([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        corners = (corners - centre) @ rot.T + centre
        corners += rng.normal(0, 0.06 * min(pw, ph) + 1, corners.shape).astype(np.float32)
        src = np.float32([[0, 0], [plate.shape[1], 0], [plate.shape[1], plate.shape[0]],
                          [0, plate.shape[0]]])
        matrix = cv2.getPerspectiveTransform(src, corners.astype(np.float32))
        box = cv2.boundingRect(corners.astype(np.float32))
        if any(_rects_overlap(box, cv2.boundingRect(np.float32(q))) for q in quads + list(ignore)):
            continue
        warped = cv2.warpPerspective(plate, matrix, (w, h), flags=cv2.INTER_AREA)
        mask = cv2.warpPerspective(np.ones(plate.shape[:2], np.float32), matrix, (w, h))
        out = (out * (1 - mask[..., None]) + warped * mask[..., None]).astype(np.uint8)
        for q in plate_quads:
            quads.append(cv2.perspectiveTransform(q[None], matrix)[0].astype(np.float32))
    return out, quads, list(ignore)


def _rects_overlap(a, b) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


# --- a compact training set for a lent GPU (calibration/training/line_detector_torch.py) ----------------

GPU_FRAME = (512, 288)
"""Frames are stored at 0.8x the glasses' 640x360 (the size of what travels is limited)."""


def export_gpu_set(path: Path, scenes: int = 200, seed: int = 11, quality: int = 80) -> dict:
    """The real training photos (60 % with German sign plates composited in) and `scenes`
    generated scenes at GPU_FRAME, as JPEG bytes, with full-resolution kernel and loss-mask
    maps (bit-packed) in one .npz; returns the counts."""
    rng = np.random.default_rng(seed)
    photos = real_data.detector_frames("train")
    images, kernels, masks = [], [], []
    w, h = GPU_FRAME
    with np.load(path.parent / f"scenes_{dd.TRAIN_SEED}_900.npz") as z:
        scene_images, counts, flat = z["images"][:scenes], z["counts"], z["quads"]
    synth, offset = [], 0
    for image, n in zip(scene_images, counts[:scenes]):
        synth.append((image, list(flat[offset:offset + n]), []))
        offset += n
    for k, (frame, quads, ignore) in enumerate(list(photos) + synth):
        if k < len(photos) and rng.random() < 0.6:
            frame, quads, ignore = composite(frame, quads, ignore, rng,
                                             plates=int(rng.integers(1, 4)))
        sx, sy = w / frame.shape[1], h / frame.shape[0]
        small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        q = [np.asarray(p, np.float32) * [sx, sy] for p in quads]
        ig = [np.asarray(p, np.float32) * [sx, sy] for p in ignore]
        kernel, mask = kernel_and_mask((h, w), q, ig, stride=1)
        ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
        images.append(np.frombuffer(jpeg.tobytes(), np.uint8))
        kernels.append(np.packbits(kernel > 0))
        masks.append(np.packbits(mask > 0))
    offsets = np.cumsum([0] + [len(b) for b in images])
    np.savez_compressed(path, jpeg=np.concatenate(images), offsets=offsets,
                        kernels=np.stack(kernels),
                        masks=np.stack(masks), shape=np.int32([h, w]))
    return {"photos": len(photos), "scenes": len(synth), "bytes": path.stat().st_size}
