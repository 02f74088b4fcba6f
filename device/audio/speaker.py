"""The speaker: which translations are said, when, and what happens while the wearer speaks.

The frame path calls `seen` (a region shows a translation) and `gone` (it left the view); both
take a lock and touch a dict, nothing more. One thread synthesizes and plays: a bounded queue
where the newest utterance pushes out the oldest, an utterance whose sign left the view before
playback is dropped, and while the wearer speaks (the microphone's voice-activity detector)
queued speech waits and playing speech fades down. Every drop, wait and duration is counted in
the pipeline's metrics (and so in the telemetry the sync agent ships):

    audio_spoken, audio_dropped (= _stale + _gone + _waited), audio_ducked, audio_errors,
    audio_underflows (the output ran dry mid-utterance), audio_repeats_skipped;
    audio_synthesis (ms), audio_shown_to_start (ms: translation shown → sound at the output,
    the stream's output latency included).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from device.audio.output import open_input, open_output
from device.audio.soundtrack import SoundTrack
from device.audio.vad import VadSettings, VoiceActivity
from device.audio.voice import open_voice
from device.config import Config
from device.errors import AudioError
from device.metrics import Metrics

log = logging.getLogger(__name__)

MODES = ("off", "new", "on-request")


@dataclass(frozen=True)
class SpeakerSettings:
    speak: str = "new"
    queue_size: int = 2
    repeat_after_s: float = 30.0
    max_wait_s: float = 5.0
    duck_gain: float = 0.15


@dataclass
class Utterance:
    region_id: int
    text: str
    shown_at: float          # perf_counter when the translation was first shown


class Speaker:
    def __init__(self, settings: SpeakerSettings, metrics: Metrics, voice, player=None,
                 soundtrack=None, vad: VoiceActivity | None = None):
        """`player`: a device.audio.output.Player, or None (no sound device); `soundtrack`: a
        device.audio.soundtrack.SoundTrack that also gets everything said, or None."""
        self.settings, self.metrics, self.voice = settings, metrics, voice
        self.player, self.soundtrack, self.vad = player, soundtrack, vad
        self.listener = None                     # the microphone stream, when ducking
        self._lock = threading.Lock()
        self._queue: deque[Utterance] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._visible: dict[int, str] = {}       # region id → translation shown now
        self._announced: set[int] = set()
        self._said: dict[str, float] = {}        # text → when it was last said
        self._newest: int | None = None
        self.wearer_speaking = threading.Event()
        self._playing: Utterance | None = None
        self._ducked_this: bool = False
        self.last_started: float | None = None   # time.monotonic() of the last playback start
        self._thread = threading.Thread(target=self._run, name="speaker", daemon=True)

    # -- the frame path's calls (cheap, never block on audio) ------------------------------
    def seen(self, region_id: int, text: str, via: str) -> None:
        """A region shows `text`; `via` 'ocr' means untranslated (never said)."""
        if via == "ocr" or not text.strip():
            return
        with self._lock:
            self._visible[region_id] = text
            self._newest = region_id
            if region_id in self._announced or self.settings.speak != "new":
                return
            self._announced.add(region_id)
            self._enqueue(Utterance(region_id, text, time.perf_counter()))

    def gone(self, region_id: int) -> None:
        with self._lock:
            self._visible.pop(region_id, None)
            self._announced.discard(region_id)

    def request(self) -> bool:
        """Say the newest translation in view again (mode 'on-request', or a repeat); False
        when none is in view."""
        with self._lock:
            text = self._visible.get(self._newest) if self._newest is not None else None
            if text is None:
                return False
            self._said.pop(text, None)
            self._enqueue(Utterance(self._newest, text, time.perf_counter()))
        return True

    def _enqueue(self, utterance: Utterance) -> None:          # under self._lock
        if len(self._queue) >= self.settings.queue_size:
            self._queue.popleft()                               # stale: the newest wins
            self._drop("stale")
        self._queue.append(utterance)
        self._wake.set()

    def _drop(self, reason: str) -> None:
        self.metrics.count("audio_dropped")
        self.metrics.count(f"audio_dropped_{reason}")

    # -- the microphone (PortAudio's input thread) ------------------------------------------
    def on_mic(self, block) -> None:
        speaking = self.vad.feed(block)
        if speaking == self.wearer_speaking.is_set():
            return
        if speaking:
            self.wearer_speaking.set()
            if self.player is not None:
                self.player.duck(self.settings.duck_gain)
            if self._playing is not None and not self._ducked_this:
                self._ducked_this = True
                self.metrics.count("audio_ducked")
            log.debug("wearer speaking: speech ducked")
        else:
            self.wearer_speaking.clear()
            if self.player is not None:
                self.player.duck(1.0)
            self._wake.set()

    # -- the speaker thread ----------------------------------------------------------------
    def start(self) -> "Speaker":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self.listener is not None:
            self.listener.close()
        if self.player is not None:
            self.player.close()

    def _take(self) -> Utterance | None:
        with self._lock:
            utterance = self._queue.popleft() if self._queue else None
            if not self._queue:
                self._wake.clear()
            return utterance

    def _in_view(self, utterance: Utterance) -> str | None:
        """The translation its region shows now (a better one may have replaced the first),
        or None when the sign left the view."""
        with self._lock:
            return self._visible.get(utterance.region_id)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.1)
            utterance = self._take()
            if utterance is None:
                continue
            try:
                self._say(utterance)
            except AudioError as exc:
                self.metrics.count("audio_errors")
                log.warning("an utterance could not be spoken", extra={"error": str(exc)})
            except Exception:         # one bad utterance must not silence the rest
                self.metrics.count("audio_errors")
                log.exception("speaker failed on an utterance")

    def _say(self, utterance: Utterance) -> None:
        text = self._in_view(utterance)
        if text is None:
            self._drop("gone")
            return
        utterance.text = text
        with self._lock:
            last = self._said.get(text)
        if last is not None and time.perf_counter() - last < self.settings.repeat_after_s:
            self.metrics.count("audio_repeats_skipped")   # the same sign, seen again soon
            return
        t0 = time.perf_counter()
        speech = self.voice.synthesize(utterance.text)
        self.metrics.observe("audio_synthesis", (time.perf_counter() - t0) * 1000)
        if not self._wait_for_wearer(utterance):
            return
        if self._in_view(utterance) is None:  # the sign left while it was synthesized/waiting
            self._drop("gone")
            return
        self._play(utterance, speech)

    def _wait_for_wearer(self, utterance: Utterance) -> bool:
        """Wait while the wearer speaks; False (dropped) after max_wait_s or at stop."""
        if not self.wearer_speaking.is_set():
            return True
        self.metrics.count("audio_ducked")
        deadline = time.perf_counter() + self.settings.max_wait_s
        while self.wearer_speaking.is_set() and not self._stop.is_set():
            if time.perf_counter() >= deadline:
                self._drop("waited")
                return False
            self._stop.wait(0.02)
        return not self._stop.is_set()

    def _play(self, utterance: Utterance, speech) -> None:
        try:
            self._play_through(utterance, speech)
        finally:
            self._playing = None

    def _play_through(self, utterance: Utterance, speech) -> None:
        with self._lock:
            self._said[utterance.text] = time.perf_counter()
            if len(self._said) > 256:
                self._said.pop(min(self._said, key=self._said.get))
        self._playing, self._ducked_this = utterance, False
        self.last_started = time.monotonic()
        latency_s = 0.0
        if self.player is not None:
            self.player.play(speech.pcm, speech.rate)
            latency_s = self.player.latency_s
        if self.soundtrack is not None:     # placed at the displayed frame it started on
            self.soundtrack.add(self.metrics.counter("frames_displayed"), speech)
        self.metrics.observe("audio_shown_to_start",
                             (time.perf_counter() - utterance.shown_at + latency_s) * 1000)
        self.metrics.count("audio_spoken")
        log.info("spoken", extra={"region": utterance.region_id, "seconds":
                                  round(speech.seconds, 2)})
        if self.player is not None:
            underflows = self.player.underflows
            give_up = time.perf_counter() + speech.seconds + 2.0
            while not self.player.done.wait(0.05) and not self._stop.is_set():
                if time.perf_counter() > give_up:        # the device stopped taking samples
                    self.player.cut()
                    raise AudioError("the audio output stopped playing mid-utterance")
            if self.player.underflows > underflows:
                self.metrics.count("audio_underflows", self.player.underflows - underflows)
        else:                           # no device: keep the pace of real speech
            self._stop.wait(speech.seconds)


def build_speaker(cfg: Config, metrics: Metrics) -> Speaker | None:
    """The speaker `[audio]` asks for, or None (speech off, or no way to be heard). No sound
    device is one warning line, never an error: the pipeline runs without audio."""
    a = cfg.audio
    if a.speak == "off":
        return None
    try:
        voice = open_voice(a.voice_engine, a.voice, a.words_per_minute)
    except AudioError as exc:
        log.warning("no voice; running without speech", extra={"error": str(exc)})
        return None
    player = None
    soundtrack = SoundTrack(cfg.source.fps) if a.soundtrack else None
    try:
        player = open_output(a.output_device, voice.rate, a.fade_ms, a.output_latency_ms)
    except AudioError as exc:
        log.warning("nothing is played, the soundtrack is still written" if soundtrack
                    else "running without speech", extra={"error": str(exc)})
    if player is None and soundtrack is None:
        return None
    settings = SpeakerSettings(a.speak, a.queue_size, a.repeat_after_s, a.max_wait_s,
                               a.duck_gain)
    vad = VoiceActivity(VadSettings(a.vad_min_dbfs, a.vad_start_ms, a.resume_after_ms))
    speaker = Speaker(settings, metrics, voice, player, soundtrack, vad)
    if a.duck and player is not None:
        try:
            speaker.listener = open_input(speaker.on_mic, a.input_device)
        except AudioError as exc:
            log.warning("speech is not ducked while the wearer speaks",
                        extra={"error": str(exc)})
    return speaker
