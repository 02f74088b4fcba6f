"""Greedy CTC decoding of per-timestep class probabilities, in numpy."""

from __future__ import annotations

import numpy as np

from device.stages.charset import BLANK, decode


def run_starts(best: np.ndarray) -> np.ndarray:
    """Where each run of equal best classes starts (the best path's runs)."""
    return np.flatnonzero(np.r_[True, best[1:] != best[:-1]])


def greedy_decode(probs: np.ndarray) -> tuple[str, float, np.ndarray]:
    """probs [T, C] → (text, confidence, per-character probabilities).

    Best path: argmax per timestep, merge repeats, drop blanks. A character's probability is
    the highest probability it reached over the timesteps it spans; the line's confidence is
    the geometric mean over its characters and over the blank steps between them, so a single
    doubtful character pulls it down without one weak blank deciding it.
    """
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 2 or probs.shape[0] == 0:
        return "", 0.0, np.zeros(0, np.float32)
    best = probs.argmax(axis=1)
    best_p = probs[np.arange(len(best)), best]
    starts = run_starts(best)
    run_class = best[starts]
    run_p = np.maximum.reduceat(best_p, starts)
    keep = run_class != BLANK
    char_p = run_p[keep]
    text = decode(run_class[keep].tolist())
    if len(run_p) == 0:
        return text, 0.0, char_p
    confidence = float(np.exp(np.mean(np.log(np.clip(run_p, 1e-6, 1.0)))))
    if not text:
        confidence = 0.0
    return text, confidence, char_p
