"""`edgelens demo`: the simulator on built-in generated scenes, written to a folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from device import config
from device.config import Config
from device.audio.soundtrack import mux
from device.commands.simulate import add_run_options, run_session
from device.errors import AudioError
from device.live.display import has_display
from device.report import format_summary


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the pipeline on built-in generated signs and save the result",
        description="The main job on a built-in default: a moving, shaking camera over "
                    "generated German signs, through the whole pipeline. Writes the overlaid "
                    "video (demo.mp4), snapshot PNGs and summary.json into --out, and prints "
                    "the summary. Opens a window only with --window and a display.")
    parser.add_argument("--out", default="edgelens-demo", metavar="DIR",
                        help="output folder (default: edgelens-demo)")
    parser.add_argument("--window", action="store_true", help="also show a window")
    parser.add_argument("--seed", type=int, default=7, help="which generated scene")
    parser.add_argument("--speak", action="store_true",
                        help="say each new translation (espeak-ng, on the default sound "
                             "device when there is one) and write what was said to demo.wav "
                             "beside the video, muxed into demo.mp4 when FFmpeg is installed")
    add_run_options(parser)
    parser.set_defaults(func=run, frames=0)


def run(args, cfg: Config) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    args.frames = args.frames or 240
    window = args.window and has_display()
    snapshot_at = tuple(n for n in (30, 90, 150, 210) if n <= args.frames)
    if args.speak:
        cfg = with_speech(cfg, out / "demo.wav")
    summary, display = run_session(cfg, args, f"synthetic:{args.seed}", window,
                                   str(out / "demo.mp4"), str(out), snapshot_at=snapshot_at)
    summary["outputs"] = {"video": str(out / "demo.mp4"),
                          "snapshots": [str(p) for p in display.snapshots]}
    if args.speak:
        summary["outputs"]["audio"] = save_speech(display.pipeline, out, summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        print(format_summary(summary))
        print(f"\nshown over the signs: " + "; ".join(
            f"{r['text']!r} → {r['shown']!r}" for r in summary["regions_shown"]))
        print(f"wrote {out / 'demo.mp4'}, {len(display.snapshots)} snapshots and "
              f"{out / 'summary.json'}")
    if args.speak and not args.json:
        print(speech_line(summary["outputs"]["audio"]))
    if summary["interrupted"]:
        print("interrupted: the summary covers the frames shown until then", file=sys.stderr)
        return 130
    return 0


def with_speech(cfg: Config, soundtrack: Path):
    """`cfg` with [audio] speak = "new" and its soundtrack written to `soundtrack`."""
    raw = cfg.as_dict()
    raw["audio"] = {**raw["audio"], "speak": "new", "soundtrack": str(soundtrack)}
    return config.build(raw, config.defaults_schema(), cfg.origin)


def save_speech(pipeline, out: Path, summary: dict) -> dict:
    """demo.wav from the speaker's soundtrack, muxed into demo.mp4 when FFmpeg is there."""
    speaker = pipeline.speech if pipeline is not None else None
    if speaker is None or speaker.soundtrack is None:
        return {"wav": None, "utterances": 0, "muxed": False,
                "reason": "no voice (is espeak-ng installed?)"}
    wav = speaker.soundtrack.write(out / "demo.wav", summary["frames"]["displayed"])
    result = {"wav": str(wav), "utterances": len(speaker.soundtrack), "muxed": False,
              "reason": ""}
    try:
        result["muxed"] = mux(out / "demo.mp4", wav)
        if not result["muxed"]:
            result["reason"] = "FFmpeg is not installed"
    except AudioError as exc:
        result["reason"] = str(exc)
    return result


def speech_line(audio: dict) -> str:
    if audio["wav"] is None:
        return f"nothing was spoken: {audio['reason']}"
    where = "muxed into demo.mp4" if audio["muxed"] else f"not muxed: {audio['reason']}"
    return f"spoke {audio['utterances']} translations: {audio['wav']} ({where})"
