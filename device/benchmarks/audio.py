"""`edgelens bench audio`: the 200 ms budget of spoken translations, in its parts.

  * synthesis: sign translations through each voice (espeak-ng library and command; Flite
    from Debian as a peer when it is installed), p50/p95 per utterance;
  * output: on the default sound device, from `Player.play` to the callback taking the first
    samples (pickup), plus the latency PortAudio reports for the stream (buffer to the DAC);
  * frame path: the live pipeline on the generated street (real models, paced at 30 fps), its
    frame-path p50/p95 with speech off and with the voice kept busy, alternating in one run.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time

import numpy as np

from device import config
from device.config import Config
from device.assembly import build_pipeline, load_stages
from device.audio.output import open_output
from device.audio.voice import EspeakCommand, EspeakLibrary
from device.errors import AudioError
from device.live.sources import SyntheticSource
from device.metrics import percentiles, time_calls

PHRASES = ("Emergency exit", "Emergency exit on the left", "No smoking", "Toilets",
           "Platform 2", "Keep the door closed", "Opening hours Mon-Fri 9:00-18:00",
           "Cash desk", "Staff only", "Caution, wet floor", "Exit", "Underground car park")


def _stats(values_ms) -> dict:
    return {**percentiles(values_ms, (50, 95), digits=2), "n": len(list(values_ms))}


def synthesis(repeats: int) -> dict:
    """Every phrase `repeats` times in turn through each voice, the first call included
    (no warm-up)."""
    results = {}
    runs = repeats * len(PHRASES)
    for engine in (EspeakLibrary(), EspeakCommand()):
        speeches: list = []
        times = time_calls(engine.synthesize, PHRASES, runs=runs, warmup=0, results=speeches)
        seconds = [speech.seconds for speech in speeches]
        results[engine.name] = {**_stats(times), "speech_s_mean": round(float(np.mean(seconds)),
                                                                        2)}
    flite = shutil.which("flite")
    if flite:
        with tempfile.TemporaryDirectory() as tmp:
            def say(phrase: str) -> None:
                subprocess.run([flite, "-voice", "slt", "-t", phrase, "-o", f"{tmp}/f.wav"],
                               check=True, capture_output=True, timeout=30)
            results["flite-slt-command"] = _stats(time_calls(say, PHRASES, runs=runs, warmup=0))
    return results


def output(count: int) -> dict:
    """Pickup and reported latency of the default output device; {"error"} without one."""
    voice = EspeakLibrary()
    speech = voice.synthesize("Exit")
    try:
        player = open_output("", voice.rate)
    except AudioError as exc:
        return {"error": str(exc)}
    pickup = []
    try:
        for _ in range(count):
            t0 = time.perf_counter()
            player.play(speech.pcm, speech.rate)
            player.done.wait(10)
            if player.picked_up_at is not None:
                pickup.append((player.picked_up_at - t0) * 1000)
        reported_ms = player.latency_s * 1000
        underflows = player.underflows
    finally:
        player.close()
    total = [p + reported_ms for p in pickup]
    return {"pickup_ms": _stats(pickup), "reported_latency_ms": round(reported_ms, 2),
            "play_to_dac_ms": _stats(total), "underflows": underflows}


def _keep_talking(speaker, stop: threading.Event) -> None:
    """Ask for the newest translation again every 0.3 s: the voice never rests."""
    while not stop.wait(0.3):
        speaker.request()


def frame_path(pairs: int, frames: int) -> dict:
    base = config.defaults()
    stages = load_stages(base)
    samples: dict[str, list[float]] = {"off": [], "speaking": []}
    spoken = 0
    with tempfile.TemporaryDirectory() as tmp:
        for _pair in range(pairs):
            for mode in ("off", "speaking"):
                raw = base.as_dict()
                if mode == "speaking":
                    raw["audio"] = {**raw["audio"], "speak": "new", "repeat_after_s": 0.0,
                                    "soundtrack": f"{tmp}/said.wav"}
                cfg = config.build(raw, config.defaults_schema())
                source = SyntheticSource(seed=7, fps=30.0, frames=frames, realtime=True)
                pipeline = build_pipeline(cfg, stages, source=source)
                stop = threading.Event()
                if pipeline.speech is not None:
                    threading.Thread(target=_keep_talking, args=(pipeline.speech, stop),
                                     daemon=True).start()
                pipeline.run()
                stop.set()
                samples[mode] += list(pipeline.metrics.histogram("frame_path").samples())
                spoken += pipeline.metrics.counter("audio_spoken")
    return {mode: _stats(values) for mode, values in samples.items()} | \
        {"utterances_spoken": spoken}


def run(cfg: Config, json_out: bool = False, quick: bool = False) -> dict:
    results = {"synthesis_ms": synthesis(2 if quick else 5),
               "output": output(5 if quick else 20),
               "frame_path_ms": frame_path(1 if quick else 2, 90 if quick else 300)}
    if not json_out:
        print(report(results))
    return results


def report(results: dict) -> str:
    lines = ["synthesis (ms per utterance)        p50      p95    n"]
    for name, s in results["synthesis_ms"].items():
        lines.append(f"  {name:30s} {s['p50']:7.2f}  {s['p95']:7.2f}  {s['n']:3d}")
    out = results["output"]
    if "error" in out:
        lines.append(f"output: {out['error']}")
    else:
        lines += [f"output: pickup p50 {out['pickup_ms']['p50']} ms, p95 "
                  f"{out['pickup_ms']['p95']} ms; reported stream latency "
                  f"{out['reported_latency_ms']} ms; play→DAC p95 "
                  f"{out['play_to_dac_ms']['p95']} ms; underflows {out['underflows']}"]
    fp = results["frame_path_ms"]
    lines.append(f"frame path p50/p95: speech off {fp['off']['p50']}/{fp['off']['p95']} ms "
                 f"(n={fp['off']['n']}), speaking {fp['speaking']['p50']}/"
                 f"{fp['speaking']['p95']} ms (n={fp['speaking']['n']}, "
                 f"{fp['utterances_spoken']} utterances)")
    return "\n".join(lines)
