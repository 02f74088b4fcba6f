"""`edgelens simulate`: the desktop simulator — the live pipeline with a window or headless."""

from __future__ import annotations

import json
import signal
import threading
import time

from device.assembly import build_pipeline, load_stages, translator_in_background
from device.config import Config
from device.live.display import Display, check_record_path, has_display
from device.errors import SourceError
from device.metrics import Metrics
from device.report import format_summary
from device.live.sources import parse_source


def add_run_options(parser) -> None:
    parser.add_argument("--frames", type=int, default=0, metavar="N",
                        help="stop after N displayed frames (default: until the source ends)")
    parser.add_argument("--fast", action="store_true",
                        help="read files and generated scenes as fast as possible instead of "
                             "at their frame rate")
    parser.add_argument("--no-translate", action="store_true",
                        help="show the recognized text instead of its translation")
    parser.add_argument("--backend", choices=("auto", "litert", "tflite"),
                        help="override [runtime] backend")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate", help="run the pipeline on a source, in a window or headless",
        description="The desktop simulator: frames from SRC through detection, recognition "
                    "and translation, overlaid and shown in a window (keys: q quit, space "
                    "pause, h HUD, s snapshot) or, with --headless, recorded. Prints a summary "
                    "of frames, drops, misses and latency percentiles per stage at the end.")
    parser.add_argument("--source", metavar="SRC",
                        help="webcam:N, video:PATH, images:DIR or synthetic[:SEED] "
                             "(default: [source] uri)")
    parser.add_argument("--headless", action="store_true", help="no window")
    parser.add_argument("--record", metavar="OUT.mp4", help="write the overlaid video")
    add_run_options(parser)
    parser.set_defaults(func=run)


def install_stop_signals(stop: threading.Event) -> threading.Event:
    """Ctrl-C / SIGTERM end the run cleanly (what was made is written); the returned event
    tells that the run was interrupted."""
    interrupted = threading.Event()

    def handler(signum, _frame):
        interrupted.set()
        stop.set()
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return interrupted


def preflight(source, attempts: int = 3, wait_s: float = 0.5) -> None:
    """Open the source once before the pipeline starts: a one-shot run fails within seconds
    with one clear line instead of retrying for ever (the service keeps retrying instead)."""
    for attempt in range(attempts):
        try:
            source.open()
            return
        except SourceError:
            if attempt == attempts - 1:
                raise
            time.sleep(wait_s)
        finally:
            source.close()


def run_session(cfg: Config, args, uri: str, window: bool, record: str, snapshot_dir: str,
                snapshot_at: tuple[int, ...] = ()) -> tuple[dict, Display]:
    metrics = Metrics()
    if record:
        check_record_path(record)
    source = parse_source(uri, fps=cfg.source.fps, realtime=cfg.source.realtime and
                          not args.fast, frames=args.frames if uri.startswith("synthetic") else 0,
                          image_dwell_s=cfg.source.image_dwell_s)
    preflight(source)
    stages = load_stages(cfg, backend=args.backend, translate=False)
    display = Display(metrics, window=window, record=record, fps=source.fps,
                      snapshot_dir=snapshot_dir)
    shown = {"n": 0}

    def show(image, frame):
        shown["n"] += 1
        if shown["n"] in snapshot_at:
            display.snapshot(image, f"frame_{shown['n']:04d}.png")
        return display(image, frame)

    pipeline = build_pipeline(cfg, stages, source=source, show=show, metrics=metrics)
    if not args.no_translate:
        translator_in_background(cfg, pipeline, stages, backend=args.backend)
    display.pipeline = pipeline
    interrupted = install_stop_signals(pipeline.stop_event)
    try:
        summary = pipeline.run(max_frames=args.frames)
    finally:
        display.close()
    summary["interrupted"] = interrupted.is_set()
    summary["source"] = uri
    summary["models"] = stages.versions
    summary["backend"] = stages.recognizer.backend
    summary["regions_shown"] = [{"id": r.id, "text": r.text, "shown": r.shown_text,
                                 "via": r.via, "polygon": r.polygon.round(1).tolist()}
                                for r in pipeline.regions]
    return summary, display


def run(args, cfg: Config) -> int:
    window = cfg.display.window or not args.headless
    record = args.record or cfg.display.record
    if window and not has_display():
        print("edgelens: no display here; running headless"
              + (f", recording to {record}" if record else
                 " (nothing is shown: add --record OUT.mp4 to keep the video)"))
        window = False
    summary, display = run_session(cfg, args, args.source or cfg.source.uri, window, record,
                                   cfg.display.snapshot_dir)
    print(json.dumps(summary, indent=2, ensure_ascii=False) if args.json
          else format_summary(summary))
    if summary["interrupted"]:
        print("interrupted: the summary covers the frames shown until then")
    if record and not args.json:
        recorder = display.recorder
        if recorder is not None and recorder.failed:
            print(f"edgelens: the video was not written: {recorder.failed}")
            return 1
        print(f"wrote the overlaid video to {record}")
    return 130 if summary["interrupted"] else 0
