"""Spoken translations through a real audio path: PortAudio → ALSA → PulseAudio null sinks,
recorded back from the sink's monitor (see tests/audio_helpers.py); the wearer's voice is a
recording of espeak-ng played into the microphone sink. The `pulse` fixture comes from
tests/audio_helpers.py (a pytest plugin, see conftest.py)."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from device.audio.voice import EspeakLibrary
from device.audio.output import resample

from audio_helpers import RATE, Scenario, espeak_wav, loud_span, require_audio_stack

pytestmark = pytest.mark.slow    # real processes and a sound server: not in `scripts/test --fast`

SIGN = "Emergency exit on the left"
LONG = "Please keep this door closed at all times because the alarm will sound at once"


def _expected_span(text: str) -> float:
    speech = EspeakLibrary().synthesize(text)
    first, last = loud_span(resample(speech.pcm, speech.rate, RATE))
    return last - first


def _speak_config(**extra) -> str:
    lines = ['[audio]', 'speak = "new"'] + [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def test_a_new_translation_is_heard_for_about_its_length(pulse, tmp_path):
    recording = pulse.record("heard")
    scenario = Scenario(pulse.env, _speak_config(duck=False), tmp_path)
    assert scenario.ready["player"] is True
    scenario.ask("start")
    scenario.ask(f"seen 1 {SIGN}")
    done = scenario.ask("wait-spoken 1")
    recording.wait_heard()                       # rendered whole before the stream closes
    log = scenario.close()
    samples = recording.stop()
    assert done["ok"], log
    span = loud_span(samples)
    assert span is not None, "nothing was played"
    # about its length: a loaded CPU may starve the stream for a moment (counted)
    assert span[1] - span[0] == pytest.approx(_expected_span(SIGN), abs=0.25)
    counters = done["metrics"]["counters"]
    assert counters["audio_spoken"] == 1 and set(counters) <= {"audio_spoken",
                                                               "audio_underflows"}
    assert done["metrics"]["latency_ms"]["audio_synthesis"]["count"] == 1


def test_a_sign_gone_before_playback_leaves_the_output_silent(pulse, tmp_path):
    recording = pulse.record("silent")
    scenario = Scenario(pulse.env, _speak_config(duck=False), tmp_path)
    assert scenario.ready["player"] is True
    scenario.ask(f"seen 1 {SIGN}")
    scenario.ask("gone 1")                       # the wearer turned away first
    scenario.ask("start")
    done = scenario.ask("wait-idle")
    time.sleep(0.5)                              # long enough for playback to have begun
    answer = scenario.ask("metrics")
    scenario.close()
    samples = recording.stop()
    assert done["ok"]
    assert answer["metrics"]["counters"] == {"audio_dropped": 1, "audio_dropped_gone": 1}
    assert len(samples) > 0.3 * RATE, "the monitor recorded nothing at all"
    assert loud_span(samples, threshold=30) is None


def test_queued_speech_waits_while_the_wearer_speaks(pulse, tmp_path):
    voice = espeak_wav(tmp_path / "wearer.wav", "one two three four five six seven eight")
    recording = pulse.record("waited")
    scenario = Scenario(pulse.env, _speak_config(resume_after_ms=500), tmp_path)
    assert scenario.ready["listener"] is True
    scenario.ask("start")
    wearer = pulse.play_into_mic(voice)
    assert scenario.ask("wait-wearer")["ok"], "the microphone never heard the wearer"
    seen = scenario.ask(f"seen 1 {SIGN}")          # shown while the wearer is mid-sentence
    wearer.wait(timeout=30)
    done = scenario.ask("wait-spoken 1")
    recording.wait_heard()
    scenario.close()
    samples = recording.stop()
    assert done["ok"]
    assert done["metrics"]["counters"]["audio_ducked"] == 1
    # shown while the wearer spoke, said only after the speaker heard them stop (the times
    # are the speaker's own: a loaded machine may start or hear the recorded voice late)
    stopped = max(t for t, gain in done["ducks"] if gain >= 1.0)
    # (the speaker may resume between the microphone thread clearing "speaking" and noting
    # its fade back up: a few ms, hence the 50 ms)
    assert seen["t"] < stopped <= done["last_started"] + 0.05
    span = loud_span(samples)
    assert span is not None and span[1] - span[0] == pytest.approx(_expected_span(SIGN),
                                                                   abs=0.25)


def _longest_ducked(ducks: list, until: float) -> tuple[float, float]:
    """The longest span the speaker held the player faded down (fades on time.monotonic())."""
    spans, down_at = [], None
    for t, gain in ducks + [(until, 1.0)]:
        if gain < 1.0 and down_at is None:
            down_at = t
        elif gain >= 1.0 and down_at is not None:
            spans.append((down_at, t))
            down_at = None
    return max(spans, key=lambda span: span[1] - span[0])


def test_playing_speech_fades_down_while_the_wearer_speaks_and_comes_back(pulse, tmp_path):
    voice = espeak_wav(tmp_path / "wearer.wav", "one two three four five six")
    recording = pulse.record("faded")
    scenario = Scenario(pulse.env, _speak_config(duck_gain=0.1, fade_ms=100,
                                                 resume_after_ms=400), tmp_path)
    scenario.ask("start")
    scenario.ask(f"seen 1 {LONG}, and the doors will lock when the last train has left")
    while (started := scenario.ask("metrics")["last_started"]) is None:
        time.sleep(0.02)
    time.sleep(max(0.0, started + 1.2 - time.monotonic()))
    pulse.play_into_mic(voice).wait(timeout=30)         # ~1.7 s of voice; the notice is ~7 s
    done = scenario.ask("wait-spoken 1")
    scenario.close()
    samples = recording.stop()
    assert done["ok"] and done["metrics"]["counters"]["audio_ducked"] == 1
    # Windows from when the speaker faded (its own clock), not from when this test started the
    # voice: a loaded machine may start the voice or hear it late, and the fade follows the
    # hearing. The recording is aligned on the utterance's onset (the output latency is the
    # same throughout one stream).
    down, up = (t - started for t in _longest_ducked(done["ducks"], time.monotonic()))
    assert up - down > 1.0, done["ducks"]     # held down through the wearer's six words
    level = np.sqrt(np.convolve(samples.astype(float) ** 2, np.ones(800) / 800, "same"))
    onset, end = loud_span(samples)

    def loudest(a, b):
        return level[int((onset + a) * RATE):int((onset + b) * RATE)].max()

    assert end - onset > up + 0.8, "the notice ended before the fade came back up"
    before = loudest(0.0, down)
    during = loudest(down + 0.3, up - 0.1)
    after = loudest(up + 0.3, min(up + 1.5, end - onset))
    assert during < 0.3 * before            # faded down (to 0.1 of full level)
    assert after > 0.6 * before             # and back up once the wearer stopped


def test_no_audio_device_is_one_warning_and_the_pipeline_runs_without_speech(tmp_path):
    """A headless box (ALSA has no device at all) and a broken ALSA setup (the sound server is
    gone): one warning line, the simulator finishes its frames, exit 0."""
    require_audio_stack()
    config_path = tmp_path / "speak.toml"
    config_path.write_text(_speak_config())
    broken = tmp_path / "broken.conf"
    broken.write_text('pcm.!default { type pulse server "unix:/nonexistent/socket" }\n')
    empty = tmp_path / "empty.conf"
    empty.write_text("# no devices\n")
    for alsa in (str(empty), f"/usr/share/alsa/alsa.conf:{broken}"):
        env = {**__import__("os").environ, "ALSA_CONFIG_PATH": alsa}
        done = subprocess.run(
            [sys.executable, "-m", "device", "--config", str(config_path), "simulate",
             "--source", "synthetic:3", "--headless", "--frames", "20", "--fast",
             "--no-translate", "--json"],
            env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        warnings = [line for line in done.stderr.splitlines() if "audio" in line.lower()]
        assert len(warnings) == 1, done.stderr
        assert warnings[0].startswith("warning running without speech error=no usable audio "
                                      "output: "), warnings[0]
        assert "ALSA lib" not in done.stderr
        summary = json.loads(done.stdout)
        assert summary["frames"]["captured"] == 20 and summary["frames"]["displayed"] > 0


@pytest.mark.slow
def test_demo_speak_plays_writes_and_muxes_what_it_said(pulse, tmp_path):
    """The whole live path: generated signs → translation shown → spoken on the (null-sink)
    device, written to demo.wav and muxed into demo.mp4."""
    import shutil
    from device.audio.voice import read_wav
    recording = pulse.record("demo")
    out = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "device", "demo", "--speak", "--frames", "150",
                           "--out", str(out), "--json"], env=pulse.env, capture_output=True,
                          text=True, timeout=300)
    time.sleep(0.3)
    heard = recording.stop()
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    audio = summary["outputs"]["audio"]
    assert audio["utterances"] >= 1 and summary["counters"]["audio_spoken"] == audio["utterances"]
    said = read_wav((out / "demo.wav").read_bytes())
    assert said.seconds == pytest.approx(summary["frames"]["displayed"] / 30.0, abs=0.2) or \
        said.seconds > summary["frames"]["displayed"] / 30.0     # the last one may run past
    assert loud_span(resample(said.pcm, said.rate, RATE)) is not None
    assert loud_span(heard) is not None, "the device played nothing"
    assert "warning" not in done.stderr.lower()
    if shutil.which("ffprobe") is None:
        assert audio["muxed"] is False and audio["reason"] == "FFmpeg is not installed"
        return
    assert audio["muxed"] is True
    streams = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type",
                              "-of", "csv=p=0", str(out / "demo.mp4")], capture_output=True,
                             text=True, check=True).stdout.split()
    assert sorted(streams) == ["audio", "video"]
