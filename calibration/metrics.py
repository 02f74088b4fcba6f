"""Accuracy measures shared by the evaluations and benchmarks."""

from __future__ import annotations

from device.metrics import percentiles


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def clean(text: str) -> str:
    return " ".join(text.split())


def text_scores(predictions: list[str], truths: list[str]) -> dict:
    """Character error rate (edits / truth characters) and exact-line accuracy, in %."""
    edits = sum(edit_distance(clean(p), clean(t)) for p, t in zip(predictions, truths))
    chars = sum(len(clean(t)) for t in truths)
    exact = sum(clean(p) == clean(t) for p, t in zip(predictions, truths))
    return {"cer_pct": round(100.0 * edits / max(chars, 1), 2),
            "exact_pct": round(100.0 * exact / max(len(truths), 1), 2),
            "lines": len(truths)}


def latency_summary(samples_ms: list[float]) -> dict:
    return percentiles(samples_ms)
