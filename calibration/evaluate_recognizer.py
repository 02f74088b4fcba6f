"""Accuracy and latency of a recognizer .tflite on the held-out (unseen-font) line sets.

    .venv/bin/python -m calibration.evaluate_recognizer models/recognizer/1.0.0/recognizer.tflite

Reads every crop through `device.stages.recognizer.Recognizer` (prepare_line → resized interpreter →
greedy CTC), so the numbers are the ones the glasses get. Latency is the interpreter alone
at the model's own input width (W=256) and the whole `read()` per crop, 1 thread.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from calibration.metrics import latency_summary, text_scores  # noqa: E402
from calibration.training.recognizer_data import heldout_set  # noqa: E402
from device.metrics import time_calls  # noqa: E402
from device.stages.recognizer import Recognizer  # noqa: E402
from device.runtime import TFLiteModel, available_backends  # noqa: E402

TEST_LINES = 1000
SCENE_LINES = 300


def read_all(recognizer: Recognizer, crops) -> tuple[list[str], list[float]]:
    """Every crop's text and read() time (ms), after one warm-up read of the first crop
    (it builds the interpreter for that width)."""
    lines: list = []
    times = time_calls(recognizer.read, crops, results=lines)
    return [line.text for line in lines], times


def invoke_latency(path: str, backend: str, runs: int = 300, threads: int = 1) -> dict:
    """p50/p95 ms of one interpreter call at the model's own input shape."""
    model = TFLiteModel(path, backend=backend, num_threads=threads)
    spec = model.inputs[0]
    x = np.random.default_rng(0).random(spec.shape, dtype=np.float32)
    times = time_calls(model.run, [x], runs=runs, warmup=20)
    return {**latency_summary(times), "threads": threads, "input": list(spec.shape)}


def evaluate(path: str, backends=None, sets=None) -> dict:
    """{backend: {set: scores + read latency}, 'latency': {backend: invoke latency}}."""
    backends = backends or available_backends()
    sets = sets or {"unseen_fonts": heldout_set(TEST_LINES),
                    "unseen_fonts_scene": heldout_set(SCENE_LINES, scene=True)}
    report: dict = {"model": str(path), "results": {}, "latency_ms": {}}
    for backend in backends:
        recognizer = Recognizer(path, backend=backend, num_threads=1)
        report["results"][backend] = {}
        for name, (crops, truths) in sets.items():
            preds, times = read_all(recognizer, crops)
            report["results"][backend][name] = {**text_scores(preds, truths),
                                                "read_ms": latency_summary(times)}
        report["latency_ms"][backend] = invoke_latency(path, backend)
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="+", help=".tflite files")
    p.add_argument("--backend", action="append", help="litert / tflite (default: all)")
    args = p.parse_args(argv)
    sets = {"unseen_fonts": heldout_set(TEST_LINES),
            "unseen_fonts_scene": heldout_set(SCENE_LINES, scene=True)}
    for path in args.model:
        print(json.dumps(evaluate(path, args.backend, sets), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
