#!/usr/bin/env python
"""Evaluate the text detector: precision, recall, Hmean (IoU >= 0.5) and latency.

    .venv/bin/python calibration/evaluate_detector.py --model-dir models/detector/1.0.0 \
        [--tune] [--scenes 300] [--json runs/detector/eval.json]

Held-out scenes: seed TEST_SEED, split 'test' (held-out font families and background
styles), whole 640x360 frames through `device.stages.detector.Detector` exactly as on the device
(resize, int8 model, post-processing). `--tune` first picks the post-processing thresholds
on validation scenes (seed VAL_SEED, training distribution) for the int8 model, never on
the test scenes. Latency: `Detector.detect` (pre + model + post) on 640x360 test frames,
p50 / p95 over repeated runs, for each installed backend at 1 and 2 threads.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing as mp
import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from calibration.training import detector_data as dd  # noqa: E402
from device.benchmarks.detector import WARMUP  # noqa: E402
from device.stages.detector import Detector, DetectorParams  # noqa: E402
from device.geometry import match_polygons  # noqa: E402
from device.metrics import percentiles, time_calls  # noqa: E402
from device.runtime import available_backends  # noqa: E402


def _frame(job):
    seed, index, split = job
    scene = dd.scene_for(seed, index, split)
    return scene.image, [line.polygon for line in scene.lines]


def frames(seed: int, count: int, split: str, workers: int = 2, cache: Path | None = None):
    """Full frames and their line quads; cached as .npz when `cache` is given."""
    if cache is not None and cache.exists():
        with np.load(cache) as data:
            images, counts, flat = data["images"], data["counts"], data["quads"]
        if len(images) == count:
            truths, offset = [], 0
            for n in counts:
                truths.append(list(flat[offset:offset + n]))
                offset += n
            return images, truths
    dd._worker_init()
    jobs = [(seed, i, split) for i in range(count)]
    if workers > 1:
        with mp.get_context("fork").Pool(workers) as pool:
            results = pool.map(_frame, jobs, chunksize=8)
    else:
        results = [_frame(job) for job in jobs]
    images = np.stack([r[0] for r in results])
    truths = [r[1] for r in results]
    if cache is not None:
        dd.save(cache, images, truths)
    return images, truths


def score(found: list[list[np.ndarray]], truths: list[list[np.ndarray]], iou: float = 0.5):
    tp = sum(len(match_polygons(t, f, iou)) for t, f in zip(truths, found))
    n_found = sum(len(f) for f in found)
    n_truth = sum(len(t) for t in truths)
    precision = tp / max(n_found, 1)
    recall = tp / max(n_truth, 1)
    hmean = 2 * precision * recall / max(precision + recall, 1e-9)
    return {"precision": round(precision, 4), "recall": round(recall, 4),
            "hmean": round(hmean, 4), "true_positives": tp, "detections": n_found,
            "ground_truth_lines": n_truth, "scenes": len(truths)}


HEIGHT_BINS = ((0, 12), (12, 18), (18, 26), (26, 40), (40, 1000))


def recall_by_height(found, truths) -> dict:
    """Recall per ground-truth line height (px in the frame, mean of the two short sides)."""
    hits = {b: [0, 0] for b in HEIGHT_BINS}
    for t, f in zip(truths, found):
        matched = {i for i, _, _ in match_polygons(t, f)}
        for i, quad in enumerate(t):
            h = (np.linalg.norm(quad[3] - quad[0]) + np.linalg.norm(quad[2] - quad[1])) / 2
            for lo, hi in HEIGHT_BINS:
                if lo <= h < hi:
                    hits[(lo, hi)][0] += i in matched
                    hits[(lo, hi)][1] += 1
    return {f"{lo}-{hi}px": {"recall": round(a / max(n, 1), 3), "lines": n}
            for (lo, hi), (a, n) in hits.items()}


def evaluate(detector: Detector, images, truths, params: DetectorParams | None = None):
    found = [[r.polygon for r in detector.regions_in(detector.probability_map(image),
                                                     image.shape, params)]
             for image in images]
    return {**score(found, truths), "recall_by_height": recall_by_height(found, truths)}


def tune(detector: Detector, images, truths) -> DetectorParams:
    """Grid-search the post-processing on validation scenes (maps computed once)."""
    maps = [detector.probability_map(image) for image in images]
    best, best_h = detector.params, -1.0
    for bin_t, box_t, unclip, min_area in itertools.product(
            (0.2, 0.3, 0.4, 0.5, 0.6), (0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
            (0.0, 0.1, 0.2, 0.3, 0.4, 0.6), (30.0, 80.0, 150.0)):
        params = DetectorParams(bin_threshold=bin_t, box_threshold=box_t, unclip_ratio=unclip,
                                min_area=min_area, max_regions=detector.params.max_regions)
        if box_t < bin_t:
            continue
        found = [[r.polygon for r in detector.regions_in(m, image.shape, params)]
                 for m, image in zip(maps, images)]
        h = score(found, truths)["hmean"]
        if h > best_h:
            best, best_h = params, h
    print(f"tuned on {len(images)} validation scenes: {best} (Hmean {best_h:.4f})", flush=True)
    return best


def latency(model: Path, backend: str, threads: int, images, params, runs: int = 100):
    detector = Detector(model, backend=backend, num_threads=threads, params=params)
    times = time_calls(detector.detect, images, runs=runs, warmup=WARMUP)
    return {**percentiles(times, (50, 95), digits=2), "threads": threads,
            "input": "640x360 BGR frame (detect incl. resize and post-processing)",
            "runs": runs}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", type=Path, default=ROOT / "models" / "detector" / "1.0.0")
    p.add_argument("--scenes", type=int, default=300, help="held-out test scenes")
    p.add_argument("--val", type=int, default=200, help="validation scenes for --tune")
    p.add_argument("--tune", action="store_true", help="tune thresholds on validation scenes")
    p.add_argument("--no-latency", action="store_true")
    p.add_argument("--runs", type=int, default=100, help="latency runs per configuration")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", type=Path, default=ROOT / "runs" / "detector" / "eval.json")
    args = p.parse_args(argv)
    int8 = args.model_dir / "detector.tflite"
    fp32 = args.model_dir / "detector_fp32.tflite"
    data = ROOT / "data" / "detector"

    params = DetectorParams()
    manifest_path = args.model_dir / "manifest.json"
    if manifest_path.exists():
        saved = json.loads(manifest_path.read_text()).get("postprocessing", {}).get("params")
        if saved:
            params = DetectorParams(**saved)
    if args.tune:
        val_images, val_truths = frames(dd.VAL_SEED, args.val, "train", args.workers,
                                        data / f"valframes_{dd.VAL_SEED}_{args.val}.npz")
        params = tune(Detector(int8, num_threads=2, params=params), val_images, val_truths)

    images, truths = frames(dd.TEST_SEED, args.scenes, "test", args.workers,
                            data / f"testframes_{dd.TEST_SEED}_{args.scenes}.npz")
    report = {"params": asdict(params),
              "test_set": {"seed": dd.TEST_SEED, "split": "test", "scenes": args.scenes},
              "accuracy": {}, "latency_ms": {}}
    for name, path in (("fp32", fp32), ("int8", int8)):
        report["accuracy"][name] = evaluate(Detector(path, num_threads=2, params=params),
                                            images, truths)
        print(name, json.dumps(report["accuracy"][name]), flush=True)
    report["latency_ms_fp32"] = {}
    if not args.no_latency:
        for key, path in (("latency_ms", int8), ("latency_ms_fp32", fp32)):
            for backend in available_backends():
                for threads in (1, 2):
                    result = latency(path, backend, threads, images, params, args.runs)
                    report[key][f"{backend}-{threads}t"] = result
                    print(f"{key} {path.name} {backend} {threads} thread(s): {result}",
                          flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"report → {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
