"""`edgelens ocr IMAGE...`: find the text lines of whole images and read each one."""

from __future__ import annotations

import json
import sys
import time

from device.commands._per_file import load_image, run_per_file
from device.commands.recognize import load_recognizer
from device.config import Config
from device.errors import ModelStoreError
from device.modelstore.store import ModelStore
from device.stages.detector import Detector
from device.stages.recognizer import read_regions


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "ocr", help="detect and read the text lines of whole images",
        description="Detect the text lines of each image with the int8 detector, cut each "
                    "line out upright and read it with the recognizer. A file that cannot be "
                    "used is reported and the others are still processed. Without a "
                    "recognizer in the store (or with --detect-only) only the regions are "
                    "reported (text and confidence null).")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    parser.add_argument("--json", action="store_true",
                        help='print a JSON list of {"path", "lines": [{"polygon", "text", '
                             '"confidence"}], "timings_ms": {"detect", "recognize", "total"}}')
    parser.add_argument("--detect-only", action="store_true", help="skip recognition")
    parser.add_argument("--all", action="store_true",
                        help="keep lines read below [recognizer] min_confidence (dropped by "
                             "default: pictograms, noise and unreadable text)")
    parser.add_argument("--backend", choices=("auto", "litert", "tflite"),
                        help="override [runtime] backend")
    parser.set_defaults(func=run)


def load_detector(cfg: Config, backend: str | None = None, num_threads: int | None = None):
    """(Detector, ModelVersion) from the store as the config names them: the version's own
    post-processing parameters with the config's set values over them, at the configured
    resolution."""
    store = ModelStore.for_config(cfg)
    version = store.get(cfg.detector.model, cfg.detector.version or None)
    detector = Detector.for_version(version, cfg.detector,
                                    backend=backend or cfg.runtime.backend,
                                    num_threads=num_threads or cfg.runtime.num_threads)
    return detector, version


def _recognizer(cfg: Config, backend: str | None):
    try:
        recognizer, _ = load_recognizer(cfg, backend=backend)
    except ModelStoreError as exc:
        print(f"edgelens: no recognizer, reporting regions only ({exc})", file=sys.stderr)
        return None
    return recognizer


def ocr_image(detector: Detector, recognizer, image, min_confidence: float = 0.0) -> dict:
    """Detect and read one BGR image: {"lines": [...], "timings_ms": {...}}; lines read with
    a confidence under `min_confidence` are left out, and with `min_confidence` 0 (`--all`)
    none, not even those read as nothing (without a recognizer: every region, with no
    text)."""
    t0 = time.perf_counter_ns()
    regions = detector.detect(image)
    t1 = time.perf_counter_ns()
    found = ([(region, None) for region in regions] if recognizer is None
             else read_regions(recognizer, image, regions, min_confidence,
                               keep_empty=min_confidence <= 0.0))
    lines = [{"polygon": [[round(float(x), 1), round(float(y), 1)] for x, y in region.polygon],
              "text": reading.text if reading else None,
              "confidence": reading.confidence if reading else None,
              "detection_score": region.score} for region, reading in found]
    t2 = time.perf_counter_ns()
    return {"lines": lines,
            "timings_ms": {"detect": round((t1 - t0) / 1e6, 2),
                           "recognize": round((t2 - t1) / 1e6, 2),
                           "total": round((t2 - t0) / 1e6, 2)}}


def run(args, cfg: Config) -> int:
    detector, _ = load_detector(cfg, backend=args.backend)
    recognizer = None if args.detect_only else _recognizer(cfg, args.backend)
    results, failures = run_per_file(
        args.images, lambda path: ocr_image(detector, recognizer, load_image(path),
                                            0.0 if args.all else cfg.recognizer.min_confidence),
        args.json)
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        for r in results:
            if "lines" not in r:
                continue
            print(f"{r['path']}: {len(r['lines'])} line(s), {r['timings_ms']['total']:.1f} ms")
            for line in r["lines"]:
                conf = "-" if line["confidence"] is None else f"{line['confidence']:.3f}"
                poly = " ".join(f"{x:.0f},{y:.0f}" for x, y in line["polygon"])
                print(f"  {conf}\t{line['text'] or ''}\t[{poly}]")
    return 1 if failures else 0
