"""`edgelens bench recognizer`: the int8 recognizer against its fp32 reference on both
backends, and against Tesseract 5 called in-process on the same crops.

Data: the held-out set rendered in font families never used in training (fixed seed), and its
scene-like subset (light-on-dark plates, strong blur and perspective).
"""

from __future__ import annotations

from pathlib import Path

from calibration import peers
from calibration.evaluate_recognizer import read_all
from calibration.metrics import latency_summary, text_scores
from calibration.training.recognizer_data import heldout_set
from device.config import Config
from device.metrics import time_calls
from device.modelstore.store import ModelStore
from device.stages.recognizer import Recognizer
from device.runtime import available_backends

def _run_tesseract(crops) -> tuple[list[str], list[float]] | None:
    try:
        tesseract = peers.Tesseract(threads=1)
    except (peers.Unavailable, RuntimeError):
        return None
    texts: list[str] = []
    times = time_calls(tesseract.read, crops, warmup=0, results=texts)
    return texts, times


def run(cfg: Config, json_out: bool = False, quick: bool = False) -> dict:
    store = ModelStore.for_config(cfg)
    version = store.get(cfg.models.recognizer, cfg.models.recognizer_version or None)
    n_test, n_scene = (200, 100) if quick else (1000, 300)
    sets = {"unseen_fonts": heldout_set(n_test), "scene_like": heldout_set(n_scene, scene=True)}
    artifacts = {"int8": version.artifact}
    fp32 = [e["file"] for e in [*version.manifest.get("extra_files", []),
                                *version.manifest.get("reference_files", [])]
            if "fp32" in e["file"]]
    if fp32:
        artifacts["fp32"] = version.file(fp32[0])
    rows = []
    for backend in available_backends():
        for precision, path in artifacts.items():
            recognizer = Recognizer(path, backend=backend, num_threads=1)
            row = {"engine": f"edgelens {precision}", "backend": backend,
                   "size_bytes": Path(path).stat().st_size}
            for name, (crops, truths) in sets.items():
                texts, times = read_all(recognizer, crops)
                row[name] = {**text_scores(texts, truths), "latency_ms": latency_summary(times)}
            rows.append(row)
    tesseract_rows = {}
    for name, (crops, truths) in sets.items():
        result = _run_tesseract(crops)
        if result is not None:
            texts, times = result
            tesseract_rows[name] = {**text_scores(texts, truths),
                                    "latency_ms": latency_summary(times)}
    if tesseract_rows:
        rows.append({"engine": "tesseract 5 (deu+eng+fra, psm 7)", "backend": "tesserocr",
                     "size_bytes": None, **tesseract_rows})
    results = {"model": f"{version.name} {version.version}", "threads": 1,
               "sets": {k: len(v[1]) for k, v in sets.items()}, "rows": rows}
    if not json_out:
        print(format_table(results))
    return results


def format_table(results: dict) -> str:
    lines = [f"recognizer {results['model']}, 1 thread; held-out sets: "
             + ", ".join(f"{k} {v} lines" for k, v in results["sets"].items()), "",
             f"{'engine':34s} {'backend':9s} {'CER %':>6s} {'exact %':>7s} {'p50 ms':>7s} "
             f"{'p95 ms':>7s} | {'scene CER %':>11s} {'exact %':>7s} {'p50 ms':>7s}"]
    for row in results["rows"]:
        u, s = row["unseen_fonts"], row["scene_like"]
        lines.append(f"{row['engine']:34s} {row['backend']:9s} {u['cer_pct']:6.2f} "
                     f"{u['exact_pct']:7.2f} {u['latency_ms']['p50']:7.2f} "
                     f"{u['latency_ms']['p95']:7.2f} | {s['cer_pct']:11.2f} "
                     f"{s['exact_pct']:7.2f} {s['latency_ms']['p50']:7.2f}")
    return "\n".join(lines)
