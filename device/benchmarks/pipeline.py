"""`edgelens bench pipeline`: the live pipeline against a naive loop, in the same run.

Each measured configuration runs in a fresh process (so cold start and peak memory are its
own) on the generated 640x360, 30 fps sequence, paced in real time like a camera.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from device.metrics import percentiles
from device.live.overlay import OverlayItem, OverlayRenderer, sample_colours
from device.runtime import available_backends

FRAMES, QUICK_FRAMES = 450, 120


def _sample_resources(stop: threading.Event, out: dict) -> None:
    import psutil
    process = psutil.Process()
    peak = 0
    while not stop.wait(0.05):
        peak = max(peak, process.memory_info().rss)
    out["peak_rss_mb"] = round(max(peak, process.memory_info().rss) / 2**20, 1)


def _percentiles(values) -> dict:
    values = list(values)
    return {**percentiles(values, (50, 95, 99), digits=2), "count": len(values)}


def child(mode: str, backend: str, frames: int, spawned_at: float, samples_dir: str) -> dict:
    """Runs inside the measured process."""
    # deferred: imported in the measured process, so its start-up and memory include them
    import psutil

    from device import config
    from device.assembly import build_pipeline, load_stages, translator_in_background
    from device.metrics import Metrics
    from device.live.sources import SyntheticSource

    cfg = config.defaults()
    resources: dict = {}
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_resources, args=(stop, resources), daemon=True)
    sampler.start()
    cpu0, wall0 = psutil.Process().cpu_times(), time.perf_counter()
    stages = load_stages(cfg, backend=backend, translate=(mode == "naive"))
    source = SyntheticSource(seed=7, fps=30.0, frames=frames, realtime=True)
    if mode == "pipeline":
        metrics = Metrics()
        first = {}

        def show(image, frame):
            if "t" not in first and pipeline.regions:
                first["t"] = time.time()
            return True

        pipeline = build_pipeline(cfg, stages, source=source, show=show, metrics=metrics)
        translator_in_background(cfg, pipeline, stages, backend=backend)
        summary = pipeline.run()
        frame_ms = metrics.histogram("frame_path").samples()
        new_ms = (metrics.histogram("new_recognition").samples()
                  if metrics.histogram("new_recognition") else np.zeros(0))
        result = {"frames": summary["frames"], "misses": summary["misses"],
                  "recognition": summary["recognition"],
                  "frame_path_ms": _percentiles(frame_ms),
                  "new_recognition_ms": _percentiles(new_ms),
                  "stages_ms": {k: v for k, v in summary["latency_ms"].items()
                                if k.startswith("stage.")}}
        first_overlay = first.get("t")
    else:
        result, frame_ms, new_ms, first_overlay = _naive(stages, source, cfg)
    cpu1, wall1 = psutil.Process().cpu_times(), time.perf_counter()
    stop.set()
    sampler.join()
    result["cpu_pct"] = round(100 * ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system))
                              / (wall1 - wall0), 1)
    result["peak_rss_mb"] = resources.get("peak_rss_mb")
    result["cold_start_s"] = (round(first_overlay - spawned_at, 3)
                              if first_overlay else None)
    np.save(Path(samples_dir) / f"{mode}_{backend}_frame.npy", frame_ms)
    np.save(Path(samples_dir) / f"{mode}_{backend}_new.npy", new_ms)
    return result


def _naive(stages, source, cfg):
    """detect + recognize (+ translate) on every frame, in order, then draw: what a simple
    loop over a buffered camera does. Frame i arrives at i / fps."""
    renderer = OverlayRenderer()
    source.open()
    budget = cfg.pipeline.frame_budget_ms
    frame_ms, new_ms, first_overlay = [], [], None
    start = time.perf_counter()
    index = 0
    while True:
        image = source.read()
        if image is None:
            break
        arrival = start + index / source.fps
        index += 1
        wait = arrival - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        t0 = time.perf_counter()
        items = []
        for region in stages.detector.detect(image)[: cfg.pipeline.max_regions]:
            reading = stages.recognizer.read(stages.crop_line(image, region.polygon))
            if not reading.text or reading.confidence < cfg.pipeline.min_confidence:
                continue
            shown = reading.text
            if stages.translator is not None:
                shown = stages.translator.translate(reading.text,
                                                    ocr_confidence=reading.confidence
                                                    ).translation or reading.text
            fg, bg = sample_colours(image, region.polygon)
            items.append(OverlayItem(region.polygon, shown, fg, bg))
        renderer.render(image, items)
        done = time.perf_counter()
        frame_ms.append((done - t0) * 1000)
        new_ms.append((done - arrival) * 1000)  # capture → shown, every frame is "new"
        if items and first_overlay is None:
            first_overlay = time.time()
    frame = np.asarray(frame_ms)
    result = {"frames": {"captured": index, "displayed": index, "dropped": 0},
              "misses": {"frame_path_rate": round(float((frame > budget).mean()), 4),
                         "recognition_path_rate": round(float(
                             (np.asarray(new_ms) > cfg.pipeline.recognition_budget_ms).mean()),
                             4)},
              "frame_path_ms": _percentiles(frame_ms), "new_recognition_ms": _percentiles(new_ms),
              "effective_fps": round(index / (time.perf_counter() - start), 1)}
    return result, frame, np.asarray(new_ms), first_overlay


def _spawn(mode: str, backend: str, frames: int, samples_dir: str) -> dict:
    spawned_at = time.time()
    code = ("import json; from device.benchmarks.pipeline import child; "
            f"print('RESULT' + json.dumps(child({mode!r}, {backend!r}, {frames}, "
            f"{spawned_at!r}, {samples_dir!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600)
    line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT")), None)
    if line is None:
        raise RuntimeError(f"benchmark child failed: {out.stderr[-2000:]}")
    return json.loads(line[len("RESULT"):])


def plot(samples_dir: str, path: str, frame_budget: float, recognition_budget: float) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, kind, budget, title in ((axes[0], "frame", frame_budget, "frame path (ms)"),
                                    (axes[1], "new", recognition_budget,
                                     "capture → shown, new recognitions (ms)")):
        for file in sorted(Path(samples_dir).glob(f"*_{kind}.npy")):
            values = np.sort(np.load(file))
            if values.size:
                label = file.stem.rsplit("_", 1)[0].replace("_", " / ")
                share = np.arange(1, values.size + 1) / values.size
                ax.step(np.maximum(values, 0.1), share, where="post", linewidth=1.5,
                        label=label)
        ax.axvline(budget, color="red", linestyle="--", label=f"budget {budget:.0f} ms")
        ax.set_xscale("log")
        ax.set_ylabel("share of events ≤ x")
        ax.axhline(0.95, color="grey", linewidth=0.5)
        ax.set_title(title + ": cumulative")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def run(cfg, json_out: bool = False, quick: bool = False, out_dir: str = "bench-out") -> dict:
    frames = QUICK_FRAMES if quick else FRAMES
    samples_dir = Path(out_dir)
    samples_dir.mkdir(parents=True, exist_ok=True)
    results = {"frames_per_run": frames, "source": "synthetic:7 640x360 @ 30 fps, real time",
               "cores": os.cpu_count(), "runs": {}}
    for backend in available_backends():
        for mode in ("pipeline", "naive"):
            results["runs"][f"{mode}/{backend}"] = _spawn(mode, backend, frames,
                                                          str(samples_dir))
    plot_path = samples_dir / "pipeline_latency.png"
    plot(str(samples_dir), str(plot_path), cfg.pipeline.frame_budget_ms,
         cfg.pipeline.recognition_budget_ms)
    results["plot"] = str(plot_path)
    if not json_out:
        print(format_table(results))
    return results


def format_table(results: dict) -> str:
    lines = [f"pipeline bench: {results['source']}, {results['frames_per_run']} frames per run, "
             f"{results['cores']} cores", "",
             "| run | frame path p50/p95/p99 ms | new recognition p50/p95/p99 ms | frame miss | "
             "recog miss | dropped | CPU % | peak RSS MB | cold start s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["runs"].items():
        f, n = r["frame_path_ms"], r["new_recognition_ms"]
        lines.append(
            f"| {name} | {f['p50']} / {f['p95']} / {f['p99']} | {n['p50']} / {n['p95']} / "
            f"{n['p99']} | {r['misses']['frame_path_rate']:.2%} | "
            f"{r['misses']['recognition_path_rate']:.2%} | {r['frames']['dropped']} | "
            f"{r['cpu_pct']} | {r['peak_rss_mb']} | {r['cold_start_s']} |")
    lines.append(f"\nplot: {results['plot']}")
    return "\n".join(lines)
