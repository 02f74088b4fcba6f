"""`edgelens bench TARGET [--json]`: the benchmarks (speed and accuracy goals live here)."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys

from device.config import Config

DEVICE_TARGETS = {
    "detector": "device.benchmarks.detector",
    "pipeline": "device.benchmarks.pipeline",
    "shadow": "device.benchmarks.shadow",
    "audio": "device.benchmarks.audio",
    "memory": "device.benchmarks.memory",
}
# The accuracy benchmarks are evaluation code (calibration/: real photos, peers, the sign
# validation set). They are loaded by name, only when asked for, so that nothing the glasses
# run imports calibration/; tests/test_layout.py checks this is the only such place.
EVALUATION_TARGETS = {
    "ocr": "calibration.bench_ocr",
    "recognizer": "calibration.bench_recognizer",
    "translator": "calibration.bench_translation",
}
TARGETS = {**DEVICE_TARGETS, **EVALUATION_TARGETS}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="run a benchmark (ocr, recognizer, detector, translator, pipeline, shadow, "
                      "audio, memory, telemetry, faults)",
        description="Measure accuracy and latency. 'telemetry' and 'faults' run in the "
                    "edgelens-sync process (the device never imports the sync agent).")
    parser.add_argument("target", choices=sorted(TARGETS) + ["telemetry", "faults"])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--quick", action="store_true",
                        help="smaller sample sizes (a smoke run, not for reporting)")
    parser.add_argument("--peers", action="store_true",
                        help="ocr: also PP-OCRv6 tiny and small and Tesseract 5 on the same frames "
                             "(the bench extra)")
    parser.set_defaults(func=run)


def run(args, cfg: Config) -> int:
    if args.target in ("telemetry", "faults"):
        sync = shutil.which("edgelens-sync") or os.path.join(os.path.dirname(sys.executable),
                                                              "edgelens-sync")
        command = [sync, "bench", args.target] + (["--json"] if args.json else [])
        if args.quick:
            command.append("--quick")
        return subprocess.call(command)
    module = importlib.import_module(TARGETS[args.target])
    extra = {"quick": True} if args.quick else {}
    if args.target == "ocr":
        extra["peers"] = args.peers
    results = module.run(cfg, json_out=args.json, **extra)
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    return 0
