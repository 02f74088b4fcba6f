"""Spoken translations without a sound device: the voice, voice activity on a recorded voice,
the speaker's queue and the live path's calls into it, the soundtrack of `demo --speak`."""

import shutil
import subprocess
import time

import numpy as np
import pytest

from device import config
from device.audio.soundtrack import SoundTrack, mux
from device.audio.speaker import Speaker, SpeakerSettings
from device.audio.vad import VadSettings, VoiceActivity
from device.audio.voice import EspeakCommand, EspeakLibrary, open_voice, read_wav
from device.errors import AudioError, ConfigError
from device.live.capture import Frame
from device.live.pipeline import FramePathSettings, Pipeline
from device.live.recognition import Budgets, RecognitionResult, RecognitionWorker, \
    RecognizedLine
from device.metrics import Metrics

from audio_helpers import envelope, require_audio_stack


@pytest.fixture(scope="module")
def voice():
    require_audio_stack()
    return EspeakLibrary()


def _resampled_16k(speech) -> np.ndarray:
    from device.audio.output import resample
    return resample(speech.pcm, speech.rate, 16_000)


def test_both_espeak_forms_speak_the_same_text(voice):
    command = EspeakCommand()
    for engine in (voice, command):
        speech = engine.synthesize("Emergency exit on the left")
        assert speech.rate == 22_050
        assert 1.0 < speech.seconds < 3.0, engine.name
        assert np.abs(speech.pcm).max() > 5000, engine.name    # not silence
    assert open_voice("auto").name == "espeak-ng-library"


def test_a_voice_that_does_not_exist_is_one_clear_error(voice):
    with pytest.raises(AudioError, match="no voice 'xx-nonexistent'"):
        EspeakLibrary("xx-nonexistent")
    EspeakLibrary()          # and the library is usable again afterwards


def test_read_wav_refuses_what_is_not_a_wav():
    with pytest.raises(AudioError, match="not a usable WAV"):
        read_wav(b"RIFF-nonsense")


def test_voice_activity_follows_a_recorded_voice(voice, tmp_path):
    path = tmp_path / "wearer.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "one two three four five"], check=True)
    pcm = _resampled_16k(read_wav(path.read_bytes()))
    silence = np.zeros(16_000, np.int16)
    stream = np.concatenate([silence, pcm, silence])
    vad = VoiceActivity(VadSettings(resume_after_ms=400))
    states = [vad.feed(stream[i:i + 320]) for i in range(0, len(stream) - 319, 320)]
    t = np.arange(len(states)) * 0.02
    voiced = envelope(pcm) > 300
    first, last = 1.0 + np.flatnonzero(voiced)[0] * 0.02, 1.0 + np.flatnonzero(voiced)[-1] * 0.02
    assert not any(s for s, ts in zip(states, t) if ts < 1.0)              # quiet before
    assert all(s for s, ts in zip(states, t) if first + 0.2 < ts < last)   # speaking throughout
    assert not states[-1]                                                   # resumes after
    released = t[max(i for i, s in enumerate(states) if s)]
    assert last < released < last + 0.7


def test_voice_activity_ignores_hum_and_quiet_noise():
    rng = np.random.default_rng(0)
    t = np.arange(16_000 * 2) / 16_000
    hum = (3000 * np.sin(2 * np.pi * 50 * t)).astype(np.int16)       # mains hum, loud
    hiss = rng.normal(0, 40, len(t)).astype(np.int16)                # quiet room
    for signal in (hum, hiss):
        vad = VoiceActivity()
        assert not any(vad.feed(signal[i:i + 320]) for i in range(0, len(signal) - 319, 320))


def _same_speech(said: np.ndarray, expected: np.ndarray) -> bool:
    """espeak-ng is not sample-exact from call to call (its filters keep state): the same
    utterance means the same length within 3% and 20 ms loudness envelopes that correlate
    above 0.9."""
    if len(expected) == 0 or abs(len(said) - len(expected)) > 0.03 * len(expected):
        return False

    def loudness(pcm):
        n = 441
        frames = pcm[:len(pcm) // n * n].astype(float).reshape(-1, n)
        return np.sqrt((frames ** 2).mean(axis=1))

    a, b = loudness(said), loudness(expected)
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1]) > 0.9


def _speaker(voice, **settings) -> tuple[Speaker, Metrics, SoundTrack]:
    metrics, track = Metrics(), SoundTrack(fps=30)
    speaker = Speaker(SpeakerSettings(**settings), metrics, voice, player=None, soundtrack=track)
    return speaker, metrics, track


def _wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.01)
    return predicate()


def test_newest_utterance_replaces_stale_ones_and_drops_are_counted(voice):
    speaker, metrics, track = _speaker(voice, queue_size=1)
    speaker.seen(1, "Exit", "model")
    speaker.seen(2, "Toilets", "model")
    speaker.seen(3, "Emergency exit on the left", "phrasebook")
    speaker.seen(3, "Emergency exit on the left", "phrasebook")    # same sign, still in view
    speaker.start()
    try:
        assert _wait(lambda: metrics.counter("audio_spoken") == 1)
    finally:
        speaker.stop()
    assert metrics.counter("audio_dropped") == 2
    assert metrics.counter("audio_dropped_stale") == 2
    assert _same_speech(track.mix()[0], voice.synthesize("Emergency exit on the left").pcm)
    assert not _same_speech(track.mix()[0], voice.synthesize("Toilets").pcm)


def test_untranslated_text_is_never_spoken(voice):
    speaker, metrics, _track = _speaker(voice)
    speaker.seen(1, "NOTAUSGANG", "ocr")
    speaker.seen(2, "   ", "model")
    assert not speaker._queue


def test_an_utterance_whose_sign_left_is_dropped_before_playback(voice):
    speaker, metrics, track = _speaker(voice)
    speaker.seen(1, "Emergency exit on the left", "model")
    speaker.gone(1)
    speaker.start()
    try:
        assert _wait(lambda: metrics.counter("audio_dropped") == 1)
    finally:
        speaker.stop()
    assert metrics.counter("audio_dropped_gone") == 1
    assert metrics.counter("audio_spoken") == 0
    assert len(track) == 0


def test_on_request_says_only_what_is_asked_for(voice):
    speaker, metrics, track = _speaker(voice, speak="on-request")
    assert speaker.request() is False                   # nothing in view
    speaker.seen(1, "Exit", "model")
    speaker.seen(2, "Platform 2", "model")
    assert not speaker._queue
    assert speaker.request() is True
    speaker.start()
    try:
        assert _wait(lambda: metrics.counter("audio_spoken") == 1)
    finally:
        speaker.stop()
    assert _same_speech(track.mix()[0], voice.synthesize("Platform 2").pcm)


def test_synthesis_latency_and_counts_reach_the_telemetry_recorder(voice):
    class Forward:            # the recorder's interface: it aggregates what it is given
        def __init__(self):
            self.counts, self.observed = {}, {}

        def count(self, name, n):
            self.counts[name] = self.counts.get(name, 0) + n

        def observe(self, name, ms):
            self.observed.setdefault(name, []).append(ms)

    forward = Forward()
    metrics = Metrics(forward=forward)
    speaker = Speaker(SpeakerSettings(), metrics, voice, soundtrack=SoundTrack(30))
    speaker.seen(1, "Exit", "model")
    speaker.start()
    try:
        assert _wait(lambda: metrics.counter("audio_spoken") == 1)
    finally:
        speaker.stop()
    assert forward.counts["audio_spoken"] == 1
    assert len(forward.observed["audio_synthesis"]) == 1
    assert len(forward.observed["audio_shown_to_start"]) == 1


def _textured(h=360, w=640):
    import cv2
    rng = np.random.default_rng(3)
    small = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _line(text, shown, via="phrasebook"):
    polygon = np.float32([[200, 150], [440, 150], [440, 200], [200, 200]])
    return RecognizedLine(polygon, text, 0.9, shown, via, (255, 255, 255), (0, 90, 0))


def test_the_live_path_says_a_new_translation_once_and_drops_it_when_the_sign_left(voice):
    metrics = Metrics()
    worker = RecognitionWorker(None, None, None, metrics, Budgets())       # never started
    pipeline = Pipeline(None, worker, metrics, FramePathSettings(region_ttl_s=0.2, hud=False))
    speaker, _m, track = _speaker(voice)
    speaker.metrics = metrics
    pipeline.speech = speaker
    image = _textured()
    now = time.perf_counter()
    pipeline.step(Frame(0, image, now))
    worker.results.put(RecognitionResult(0, now, now, (_line("Notausgang", "Emergency exit"),),
                                         {}))
    pipeline.step(Frame(1, image, time.perf_counter()))
    for index in range(2, 5):                       # the same sign stays in view
        worker.results.put(RecognitionResult(index - 1, now, now,
                                             (_line("Notausgang", "Emergency exit"),), {}))
        pipeline.step(Frame(index, image, time.perf_counter()))
    assert len(pipeline.regions) == 1 and len(speaker._queue) == 1
    # a second sign appears and leaves the view before the speaker gets to it
    line = RecognizedLine(np.float32([[20, 20], [120, 20], [120, 50], [20, 50]]), "Kasse",
                          0.9, "Cash desk", "model", (0, 0, 0), (255, 255, 255))
    worker.results.put(RecognitionResult(4, now, now, (line,), {}))
    pipeline.step(Frame(5, image, time.perf_counter()))
    assert len(speaker._queue) == 2
    time.sleep(0.25)
    worker.results.put(RecognitionResult(5, now, now, (_line("Notausgang", "Emergency exit"),),
                                         {}))
    pipeline.step(Frame(6, image, time.perf_counter()))     # 'Kasse' expires here
    assert [r.shown_text for r in pipeline.regions] == ["Emergency exit"]
    speaker.start()
    try:
        assert _wait(lambda: metrics.counter("audio_spoken") + metrics.counter(
            "audio_dropped") == 2)
    finally:
        speaker.stop()
    assert metrics.counter("audio_spoken") == 1
    assert metrics.counter("audio_dropped_gone") == 1
    assert _same_speech(track.mix()[0], voice.synthesize("Emergency exit").pcm)


def test_soundtrack_places_utterances_at_their_frames_without_overlap(tmp_path):
    class Said:
        def __init__(self, seconds, value):
            self.rate, self.pcm = 1000, np.full(int(seconds * 1000), value, np.int16)

    track = SoundTrack(fps=10)
    track.add(10, Said(0.5, 100))       # at 1.0 s
    track.add(12, Said(0.5, 200))       # at 1.2 s, but the first one is still playing
    track.add(40, Said(0.2, 300))       # at 4.0 s
    mixed, rate = track.mix(frames=50)
    assert rate == 1000 and len(mixed) == 5000
    assert (mixed[:1000] == 0).all() and (mixed[1000:1500] == 100).all()
    assert (mixed[1500:2000] == 200).all() and (mixed[2000:4000] == 0).all()
    assert (mixed[4000:4200] == 300).all() and (mixed[4200:] == 0).all()
    path = track.write(tmp_path / "said.wav", frames=50)
    assert np.array_equal(read_wav(path.read_bytes()).pcm, mixed)


def test_mux_reports_a_broken_video_in_one_line(tmp_path):
    if shutil.which("ffmpeg") is None:
        assert mux(tmp_path / "none.mp4", tmp_path / "none.wav") is False
        return
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    track = SoundTrack(10)
    track.write(tmp_path / "a.wav", frames=10)
    with pytest.raises(AudioError, match="ffmpeg could not mux the audio: ") as info:
        mux(tmp_path / "bad.mp4", tmp_path / "a.wav")
    assert "\n" not in str(info.value)


def test_audio_config_is_validated():
    assert config.defaults().audio.speak == "off"
    with pytest.raises(ConfigError, match=r"\[audio\] speak: expected one of 'off', 'new', "
                                          r"'on-request', got 'always'"):
        config.parse_text('[audio]\nspeak = "always"\n')
    with pytest.raises(ConfigError, match=r"\[audio\] duck_gain: expected a value <= 1.0"):
        config.parse_text("[audio]\nduck_gain = 2.0\n")


def test_speech_waiting_too_long_for_the_wearer_is_dropped(voice, tmp_path):
    path = tmp_path / "wearer.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "one two three four five six seven"],
                   check=True)
    pcm = _resampled_16k(read_wav(path.read_bytes()))
    metrics, track = Metrics(), SoundTrack(30)
    speaker = Speaker(SpeakerSettings(max_wait_s=0.3), metrics, voice, soundtrack=track,
                      vad=VoiceActivity(VadSettings(resume_after_ms=5000)))
    for i in range(0, len(pcm) // 2, 320):               # the wearer starts talking
        speaker.on_mic(pcm[i:i + 320])
    assert speaker.wearer_speaking.is_set()
    speaker.seen(1, "Exit", "model")
    speaker.start()
    try:
        assert _wait(lambda: metrics.counter("audio_dropped") == 1)
    finally:
        speaker.stop()
    assert metrics.counter("audio_dropped_waited") == 1
    assert metrics.counter("audio_ducked") == 1 and len(track) == 0


def test_a_better_translation_of_the_same_sign_is_said_instead_of_the_first(voice):
    speaker, metrics, track = _speaker(voice)
    speaker.seen(1, "Emergency", "gloss")                # first shown: a word-by-word gloss
    speaker.seen(1, "Emergency exit on the left", "model")   # then the model's translation
    speaker.start()
    try:
        assert _wait(lambda: metrics.counter("audio_spoken") == 1)
    finally:
        speaker.stop()
    assert metrics.counter("audio_dropped") == 0 and len(speaker._queue) == 0
    assert _same_speech(track.mix()[0], voice.synthesize("Emergency exit on the left").pcm)
