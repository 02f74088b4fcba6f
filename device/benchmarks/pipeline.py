"""`edgelens bench pipeline`: the live pipeline against a naive loop, and the recognition rate
policy off (continuous) and on, in the same run.

Each measured configuration runs in a fresh process (so cold start and peak memory are its
own) on generated 640x360, 30 fps sequences paced in real time like a camera: the demo's
moving street, and the same street held still with signs that come and go
(device/benchmarks/steady.py). CPU use is the process's CPU time over wall time; the part the
simulated camera spends drawing its frames (its `read()` calls, measured with the calling
thread's CPU clock) is also reported on its own, since a real camera delivers frames without
it: `cpu_pct_without_camera` is what the glasses' software itself costs.
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

from device import config
from device.config import Config
from device.assembly import build_pipeline, load_stages, translator_in_background
from device.benchmarks.memory import _status_mb
from device.benchmarks.steady import SteadySource
from device.live.overlay import OverlayItem, OverlayRenderer, sample_colours
from device.live.sources import SyntheticSource
from device.metrics import percentiles
from device.runtime import available_backends
from device.geometry import polygon_coverage

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


def child(spec: dict) -> dict:
    """Runs inside the measured process. `spec`: mode ("pipeline" or "naive"), backend,
    sequence ("moving": the demo's street; "steady": the same street held still, a sign put up
    and taken down again), on_change (the recognition rate policy), frames, spawned_at,
    samples_dir, name; config (optional): raw config sections to run with (calibrate)."""
    import psutil

    raw = {section: dict(values) for section, values in spec.get("config", {}).items()}
    raw.setdefault("recognition", {})["on_change"] = spec["on_change"]
    cfg = config.build(raw, config.defaults_schema())
    resources: dict = {}
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_resources, args=(stop, resources), daemon=True)
    sampler.start()
    cpu0, wall0 = psutil.Process().cpu_times(), time.perf_counter()
    stages = load_stages(cfg, backend=spec["backend"], translate=(spec["mode"] == "naive"))
    source = _source(spec, cfg.source.fps)
    camera = _CameraMeter(source)
    camera0 = 0.0
    if spec["mode"] == "pipeline":
        watcher = _NewText(source)
        pipeline = build_pipeline(cfg, stages, source=source, show=watcher.show)
        watcher.pipeline = pipeline
        loading = translator_in_background(cfg, pipeline, stages, backend=spec["backend"])
        ready: dict = {}

        def translator_ready() -> None:    # CPU is measured from here: the run, not loading
            loading.join()
            ready["at"] = (psutil.Process().cpu_times(), time.perf_counter(), camera.cpu_s)

        threading.Thread(target=translator_ready, daemon=True).start()
        summary = pipeline.run()
        cpu0, wall0, camera0 = ready.get("at", (cpu0, wall0, 0.0))
        metrics = pipeline.metrics
        if metrics.histogram("frame_path") is None:
            raise RuntimeError(f"no frame reached the display: the source {source.name} "
                               f"failed ({pipeline.capture.last_error or 'no error recorded'})")
        frame_ms = metrics.histogram("frame_path").samples()
        new_ms = (metrics.histogram("new_recognition").samples()
                  if metrics.histogram("new_recognition") else np.zeros(0))
        result = {"frames": summary["frames"], "misses": summary["misses"],
                  "recognition": summary["recognition"],
                  "frame_path_ms": _percentiles(frame_ms),
                  "new_recognition_ms": _percentiles(new_ms),
                  "new_text_ms": _percentiles(watcher.latencies_ms),
                  "new_text_missed": watcher.missed(),
                  "stages_ms": {k: v for k, v in summary["latency_ms"].items()
                                if k.startswith("stage.")}}
        first_overlay = watcher.first_overlay
    else:
        cpu0, wall0, camera0 = psutil.Process().cpu_times(), time.perf_counter(), camera.cpu_s
        result, frame_ms, new_ms, first_overlay = _naive(stages, source, cfg)
    cpu1, wall1 = psutil.Process().cpu_times(), time.perf_counter()
    stop.set()
    sampler.join()
    cpu_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    result["cpu_pct"] = round(100 * cpu_s / (wall1 - wall0), 1)
    result["camera_cpu_pct"] = round(100 * (camera.cpu_s - camera0) / (wall1 - wall0), 1)
    result["cpu_pct_without_camera"] = round(
        100 * (cpu_s - (camera.cpu_s - camera0)) / (wall1 - wall0), 1)
    result["recognition_runs_per_s"] = round(
        result.get("recognition", {}).get("started", result["frames"]["displayed"])
        / (wall1 - wall0), 2)
    result["peak_rss_mb"] = resources.get("peak_rss_mb")
    result["vmhwm_mb"] = _status_mb(os.getpid()).get("VmHWM")   # the kernel's high-water mark
    result["cold_start_s"] = (round(first_overlay - spec["spawned_at"], 3)
                              if first_overlay else None)
    Path(spec["samples_dir"]).mkdir(parents=True, exist_ok=True)
    np.save(Path(spec["samples_dir"]) / f"{spec['name']}_frame.npy", frame_ms)
    np.save(Path(spec["samples_dir"]) / f"{spec['name']}_new.npy", new_ms)
    return result


class _CameraMeter:
    """The CPU time the simulated camera's `read()` takes (thread CPU clock: its pacing
    sleeps are not counted). Wraps the source's read in place."""

    def __init__(self, source):
        self.cpu_s = 0.0
        read = source.read

        def metered():
            start = time.thread_time()
            try:
                return read()
            finally:
                self.cpu_s += time.thread_time() - start
        source.read = metered


def _source(spec: dict, fps: float):
    """The run's sequence at `fps` (`[source] fps`: 30 unless calibrate verifies a cap)."""
    if spec["sequence"] == "steady":
        return SteadySource(seed=7, fps=fps, frames=spec["frames"], realtime=True)
    return SyntheticSource(seed=7, fps=fps, frames=spec["frames"], realtime=True)


class _NewText:
    """The display sink of a measured run: when the first overlay was shown and, on the steady
    sequence, from the capture of the frame a sign went up on to the first shown frame with a
    new region on it, at least half inside the plate (what the wearer waits for; a line of a
    two-line sign counts, which an IoU with the whole plate missed)."""

    def __init__(self, source):
        self.source, self.pipeline = source, None
        self.first_overlay: float | None = None
        self.latencies_ms: list[float] = []
        self._done = 0                          # events measured or given up
        self._before: set[int] | None = None    # region ids shown when the event was first seen

    def show(self, image, frame) -> bool:
        regions = self.pipeline.regions
        if self.first_overlay is None and regions:
            self.first_overlay = time.time()
        events = getattr(self.source, "events", [])
        if len(events) > self._done + 1:        # the next sign went up: this one was missed
            self._done, self._before = len(events) - 1, None
        if len(events) == self._done:
            return True
        event = events[self._done]
        if frame.index < event.first_frame:
            self._before = {r.id for r in regions}
            return True
        before = self._before or set()
        if any(r.id not in before and polygon_coverage(r.polygon, event.polygon) > 0.5
               for r in regions):
            self.latencies_ms.append((time.perf_counter() - event.captured) * 1000)
            self._done, self._before = self._done + 1, None
        return True

    def missed(self) -> int:
        return len(getattr(self.source, "events", [])) - len(self.latencies_ms)


def _naive(stages, source, cfg: Config):
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
            if not reading.text or reading.confidence < cfg.recognizer.min_confidence:
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


def _spawn(spec: dict) -> dict:
    spec = {**spec, "spawned_at": time.time()}
    code = ("import json; from device.benchmarks.pipeline import child; "
            f"print('RESULT' + json.dumps(child({spec!r})))")
    # as the edgelens command runs (device.__main__.single_threaded_blas)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, env=env)
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


RUNS = (  # (mode, sequence, rate policy on): before (off) and after (on) in the same run
    ("pipeline", "moving", False), ("pipeline", "moving", True),
    ("pipeline", "steady", False), ("pipeline", "steady", True),
    ("naive", "moving", False),
)


def run(cfg: Config, json_out: bool = False, quick: bool = False,
        out_dir: str = "bench-out") -> dict:
    frames = QUICK_FRAMES if quick else FRAMES
    samples_dir = Path(out_dir)
    samples_dir.mkdir(parents=True, exist_ok=True)
    results = {"frames_per_run": frames,
               "source": "moving: synthetic:7 (the demo); steady: synthetic:7 held still, a "
                         "sign up every 3.5 s; 640x360 @ 30 fps, real time",
               "cores": os.cpu_count(), "runs": {}}
    for backend in available_backends():
        for mode, sequence, on_change in RUNS:
            policy = "" if mode == "naive" else (" on-change" if on_change else " continuous")
            name = f"{mode} {sequence}{policy}/{backend}"
            results["runs"][name] = _spawn({
                "mode": mode, "backend": backend, "sequence": sequence,
                "on_change": on_change, "frames": frames, "samples_dir": str(samples_dir),
                "name": name.replace(" ", "_").replace("/", "_")})
    results["steady_cpu_ratio"] = _ratios(results["runs"])
    results["steady_cpu_ratio_without_camera"] = _ratios(results["runs"],
                                                         "cpu_pct_without_camera")
    plot_path = samples_dir / "pipeline_latency.png"
    plot(str(samples_dir), str(plot_path), cfg.pipeline.frame_budget_ms,
         cfg.pipeline.recognition_budget_ms)
    results["plot"] = str(plot_path)
    if not json_out:
        print(format_table(results))
    return results


def _ratios(runs: dict, key: str = "cpu_pct") -> dict:
    """Per backend: steady-view CPU with the policy over without it (goal: under 1/3)."""
    ratios = {}
    for name, r in runs.items():
        if name.startswith("pipeline steady on-change/"):
            backend = name.rsplit("/", 1)[1]
            before = runs.get(f"pipeline steady continuous/{backend}", {}).get(key)
            if before:
                ratios[backend] = round(r[key] / before, 3)
    return ratios


def format_table(results: dict) -> str:
    lines = [f"pipeline bench: {results['source']}; {results['frames_per_run']} frames per "
             f"run, {results['cores']} cores", "",
             "| run | frame path p50/p95/p99 ms | new recognition p50/p95/p99 ms | new sign "
             "shown p50/p95 ms (missed) | recognitions/s | frame miss | recog miss | dropped "
             "| CPU % (without the simulated camera) | peak RSS MB (VmHWM) | cold start s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["runs"].items():
        f, n = r["frame_path_ms"], r["new_recognition_ms"]
        t = r.get("new_text_ms", {})
        sign = (f"{t['p50']} / {t['p95']} ({r['new_text_missed']})" if t.get("count")
                else "–")
        lines.append(
            f"| {name} | {f['p50']} / {f['p95']} / {f['p99']} | {n['p50']} / {n['p95']} / "
            f"{n['p99']} | {sign} | {r['recognition_runs_per_s']} | "
            f"{r['misses']['frame_path_rate']:.2%} | "
            f"{r['misses']['recognition_path_rate']:.2%} | {r['frames']['dropped']} | "
            f"{r['cpu_pct']} ({r.get('cpu_pct_without_camera', '–')}) | {r['vmhwm_mb']} | "
            f"{r['cold_start_s']} |")
    without = results.get("steady_cpu_ratio_without_camera", {})
    for backend, ratio in results.get("steady_cpu_ratio", {}).items():
        lines.append(f"\nsteady view, {backend}: CPU with the policy / without = {ratio:.2f}; "
                     f"without the simulated camera's drawing {without.get(backend, '–')} "
                     "(goal < 0.33)")
    lines.append(f"\nplot: {results['plot']}")
    return "\n".join(lines)
