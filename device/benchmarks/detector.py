"""`edgelens bench detector`: latency of text detection on the golden scenes of the store.

Times `Detector.detect` (resize + int8 model + post-processing) on the 640x360 golden frames
of the active detector, for each installed backend at 1 and 2 threads.
"""

from __future__ import annotations

import cv2
import numpy as np

from device.stages.detector import Detector, params_for
from device.errors import ModelStoreError
from device.metrics import percentiles, time_calls
from device.modelstore.store import ModelStore
from device.runtime import available_backends

RUNS = 50
WARMUP = 5


def _frames(version) -> list[np.ndarray]:
    frames = []
    for case in version.manifest["golden"]:
        image = cv2.imread(str(version.directory / case["input"]), cv2.IMREAD_COLOR)
        if image is not None:
            frames.append(image)
    if not frames:
        raise ModelStoreError(f"{version.name} {version.version}: no readable golden frames")
    return frames


def time_detect(detector: Detector, frames: list[np.ndarray], runs: int = RUNS) -> dict:
    times = time_calls(detector.detect, frames, runs=runs, warmup=WARMUP)
    ps = percentiles(times, (50, 95), digits=2)
    return {"p50_ms": ps["p50"], "p95_ms": ps["p95"],
            "mean_ms": round(float(np.mean(times)), 2), "runs": runs}


def run(config, json_out: bool = False, quick: bool = False) -> dict:
    """Latency rows per backend and thread count; printed as a table unless `json_out`
    (then the caller prints the returned dict). `quick`: 10 runs each instead of 50."""
    store = ModelStore.for_config(config)
    version = store.get(config.detector.model, config.detector.version or None)
    frames = _frames(version)
    result = {"model": f"{version.name} {version.version}",
              "frame": f"{frames[0].shape[1]}x{frames[0].shape[0]}", "results": []}
    files = {"default": version.artifact}
    files.update({size: version.directory / name
                  for size, name in version.manifest.get("resolutions", {}).items()})
    for backend, (size, path) in ((b, f) for b in available_backends() for f in files.items()):
        for threads in (1, 2):
            detector = Detector(path, backend=backend, num_threads=threads,
                                params=params_for(version.manifest, config.detector))
            row = {"backend": backend, "threads": threads, "resolution": size,
                   **time_detect(detector, frames, runs=10 if quick else RUNS)}
            result["results"].append(row)
            if not json_out:
                print(f"detector {size:8s} {backend:7s} {threads} thread(s): p50 {row['p50_ms']:7.2f} ms  "
                      f"p95 {row['p95_ms']:7.2f} ms")
    return result
