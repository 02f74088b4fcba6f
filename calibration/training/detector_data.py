"""Generated scenes for the text detector: training sets, targets, calibration and test sets.

Scene `i` of a set is drawn from `numpy.random.default_rng([seed, i])`, so any subset can be
regenerated exactly in any process. Training scenes use seed `TRAIN_SEED` and split 'train';
held-out scenes use `TEST_SEED` and split 'test' (held-out fonts and background styles);
validation scenes (for tuning thresholds) use `VAL_SEED` and split 'train'.

No TensorFlow here: used by the trainer, the quantizer and the evaluator alike.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import cv2
import numpy as np

from device.stages.detector import INPUT_SIZE, OUTPUT_STRIDE
from device.synth import fonts, scenes, vocab

TRAIN_SEED = 20261122
VAL_SEED = 777001
CALIB_SEED = 424242
TEST_SEED = 990013
FRAME_SIZE = (640, 360)
SHRINK_RATIO = 0.7
"""DB shrink: polygon offset inward by area * (1 - r^2) / perimeter (r^2 ≈ 0.5: about half the
line height remains as the kernel the model predicts; the detector unclips it back)."""


def scene_for(seed: int, index: int, split: str) -> scenes.Scene:
    rng = np.random.default_rng([seed, index])
    return scenes.render_scene(rng, width=FRAME_SIZE[0], height=FRAME_SIZE[1], split=split)


def _worker_init() -> None:
    cv2.setNumThreads(1)
    fonts.discover()
    vocab.dictionary_words()


def _render_input(job: tuple[int, int, str]) -> tuple[np.ndarray, list[np.ndarray]]:
    seed, index, split = job
    scene = scene_for(seed, index, split)
    w, h = INPUT_SIZE
    image = cv2.resize(scene.image, (w, h), interpolation=cv2.INTER_AREA)
    scale = np.float32([w / FRAME_SIZE[0], h / FRAME_SIZE[1]])
    return image, [line.polygon * scale for line in scene.lines]


def generate(seed: int, count: int, split: str, workers: int = 2,
             start: int = 0, progress: bool = True) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """Model-input images [count, H, W, 3] uint8 and each scene's line quads (input coords)."""
    jobs = [(seed, start + i, split) for i in range(count)]
    images, polys = [], []
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=count, desc=f"scenes {split}", unit="scene")
    _worker_init()   # font discovery once, before forking: workers inherit its cache
    if workers > 1:
        with mp.get_context("fork").Pool(workers, initializer=_worker_init) as pool:
            for image, quads in pool.imap(_render_input, jobs, chunksize=16):
                images.append(image)
                polys.append(quads)
                if bar:
                    bar.update()
    else:
        for job in jobs:
            image, quads = _render_input(job)
            images.append(image)
            polys.append(quads)
            if bar:
                bar.update()
    if bar:
        bar.close()
    return np.stack(images), polys


def save(path: Path, images: np.ndarray, polys: list[list[np.ndarray]]) -> None:
    counts = np.array([len(p) for p in polys], np.int32)
    flat = np.concatenate([np.stack(p) for p in polys if p] or [np.zeros((0, 4, 2))])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, images=images, counts=counts, quads=flat.astype(np.float32))
    tmp.replace(path)


def load(path: Path) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    with np.load(path) as data:
        images, counts, flat = data["images"], data["counts"], data["quads"]
    polys, offset = [], 0
    for n in counts:
        polys.append(list(flat[offset:offset + n]))
        offset += n
    return images, polys


def cached(path: Path, seed: int, count: int, split: str, workers: int = 2):
    """Load a generated set from `path`, generating (and saving) it first when missing."""
    if path.exists():
        images, polys = load(path)
        if len(images) == count:
            return images, polys
    # a smaller set of the same seed is a prefix of this one: generate only the rest
    smaller = [p for p in path.parent.glob(path.name.replace(f"_{count}.npz", "_*.npz"))
               if p.stem.rsplit("_", 1)[-1].isdigit() and int(p.stem.rsplit("_", 1)[-1]) < count]
    images, polys = np.zeros((0, INPUT_SIZE[1], INPUT_SIZE[0], 3), np.uint8), []
    if smaller:
        best = max(smaller, key=lambda p: int(p.stem.rsplit("_", 1)[-1]))
        images, polys = load(best)
    if len(images) < count:
        more, more_polys = generate(seed, count - len(images), split, workers=workers,
                                    start=len(images))
        images, polys = np.concatenate([images, more]), polys + more_polys
    save(path, images, polys)
    return images, polys


# --- targets -----------------------------------------------------------------------------------

def shrink_quad(quad: np.ndarray, distance: float) -> np.ndarray:
    """Offset every edge of a convex quad inward by `distance` (vertices: intersections)."""
    q = quad.astype(np.float64)
    x, y = q[:, 0], q[:, 1]
    area = 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))
    sign = 1.0 if area >= 0 else -1.0
    edges = np.roll(q, -1, axis=0) - q
    lengths = np.linalg.norm(edges, axis=1, keepdims=True)
    normals = sign * np.stack([-edges[:, 1], edges[:, 0]], axis=1) / np.maximum(lengths, 1e-9)
    starts = q + distance * normals
    out = np.empty_like(q)
    for i in range(4):
        a0, da = starts[i - 1], edges[i - 1]
        b0, db = starts[i], edges[i]
        det = da[0] * (-db[1]) - da[1] * (-db[0])
        if abs(det) < 1e-9:
            out[i] = b0
            continue
        rhs = b0 - a0
        t = (rhs[0] * (-db[1]) - rhs[1] * (-db[0])) / det
        out[i] = a0 + t * da
    return out.astype(np.float32)


def quad_shrink_distance(quad: np.ndarray, ratio: float = SHRINK_RATIO) -> float:
    area = abs(cv2.contourArea(quad.astype(np.float32)))
    perimeter = cv2.arcLength(quad.astype(np.float32), True)
    distance = area * (1 - ratio ** 2) / max(perimeter, 1e-6)
    # keep at least ~1 output pixel of kernel across the line's short side
    short = min(np.linalg.norm(quad[1] - quad[2]), np.linalg.norm(quad[0] - quad[3]))
    return float(min(distance, max(0.0, (short - OUTPUT_STRIDE) / 2)))


def target_map(quads: list[np.ndarray]) -> np.ndarray:
    """uint8 [H/stride, W/stride] kernel map (1 inside every shrunk line) for input-space quads."""
    w, h = INPUT_SIZE
    out = np.zeros((h // OUTPUT_STRIDE, w // OUTPUT_STRIDE), np.uint8)
    for quad in quads:
        kernel = shrink_quad(quad, quad_shrink_distance(quad))
        pts = (kernel / OUTPUT_STRIDE - 0.5) * 16   # pixel centres, 4 fractional bits
        cv2.fillPoly(out, [np.round(pts).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return out


def target_maps(polys: list[list[np.ndarray]]) -> np.ndarray:
    return np.stack([target_map(p) for p in polys])
