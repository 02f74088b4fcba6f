"""The stage latencies of `edgelens bench detector|recognizer|translator --quick`, cut to what an
emulated run can afford: the same timing loops on fewer inputs, 1 thread, every installed
backend. Under qemu-user the numbers say how the stages compare, not how fast a real core is.

    python scripts/arm64/bench.py [--json]
"""

from __future__ import annotations

import json
import platform
import sys
from functools import partial
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from device import config  # noqa: E402
from device.benchmarks.detector import _frames, time_detect  # noqa: E402
from device.benchmarks.translator import PHRASES  # noqa: E402
from device.metrics import percentiles, time_calls  # noqa: E402
from device.modelstore.store import ModelStore  # noqa: E402
from device.runtime import UnsafeBackendError, available_backends  # noqa: E402
from device.stages.detector import Detector, params_for  # noqa: E402
from device.stages.recognizer import Recognizer  # noqa: E402
from device.stages.translate.model import Seq2SeqModel  # noqa: E402
from device.stages.translate.tokenizer import Tokenizer  # noqa: E402
from device.stages.translate.translator import model_translate, tokenizer_path  # noqa: E402


def _ms(samples: list[float]) -> dict:
    p = percentiles(samples, (50, 95))
    return {"p50_ms": round(p["p50"], 2), "p95_ms": round(p["p95"], 2), "n": len(samples)}


def detector_rows(cfg, store: ModelStore, backend: str) -> list[dict]:
    version = store.get(cfg.detector.model, cfg.detector.version or None)
    frames = _frames(version)
    files = {"default": version.artifact}
    files.update({size: version.directory / name
                  for size, name in version.manifest.get("resolutions", {}).items()
                  if size == "320x192"})
    rows = []
    for size, path in files.items():
        detector = Detector(path, backend=backend, num_threads=1,
                            params=params_for(version.manifest, cfg.detector))
        timing = time_detect(detector, frames, runs=5)
        rows.append({"stage": f"detector {version.version} {size}", "backend": backend,
                     "p50_ms": timing["p50_ms"], "p95_ms": timing["p95_ms"],
                     "n": timing["runs"]})
    return rows


def recognizer_rows(cfg, store: ModelStore, backend: str) -> list[dict]:
    version = store.get(cfg.models.recognizer, cfg.models.recognizer_version or None)
    crops = [cv2.imread(str(version.directory / case["input"]), cv2.IMREAD_UNCHANGED)
             for case in version.manifest["golden"]]
    recognizer = Recognizer(version.artifact, backend=backend, num_threads=1)
    # every crop warms up once (one interpreter per width), then three timed passes
    times = time_calls(recognizer.read, crops, runs=3 * len(crops), warmup=len(crops))
    return [{"stage": f"recognizer {version.version} (golden lines)", "backend": backend,
             **_ms(times)}]


def translator_rows(cfg, store: ModelStore, backend: str) -> list[dict]:
    version = store.get(cfg.translator.model, cfg.translator.version or None)
    stage = f"translator {version.version} model alone (10 phrases)"
    try:
        model = Seq2SeqModel(version.artifact, backend=backend, num_threads=1)
    except UnsafeBackendError as exc:
        return [{"stage": stage, "backend": backend, "refused": str(exc)}]
    tokenizer = Tokenizer(tokenizer_path(version))
    times = time_calls(partial(model_translate, model, tokenizer), PHRASES[:10])
    return [{"stage": stage, "backend": backend, **_ms(times)}]


def main(argv: list[str]) -> int:
    cfg = config.defaults()
    store = ModelStore.for_config(cfg)
    rows = []
    for backend in available_backends():
        for part in (detector_rows, recognizer_rows, translator_rows):
            rows.extend(part(cfg, store, backend))
    if "--json" in argv:
        json.dump({"machine": platform.machine(), "rows": rows}, sys.stdout, indent=1)
        return 0
    for row in rows:
        timing = (f"p50 {row['p50_ms']:9.2f} ms  p95 {row['p95_ms']:9.2f} ms  (n={row['n']})"
                  if "refused" not in row else "refused (" + row["refused"].split(": ")[-1][:60]
                  + "...)")
        print(f"{row['stage']:45s} {row['backend']:7s} {timing}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
