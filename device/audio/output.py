"""The one module that owns sound I/O (PortAudio through `sounddevice`): the audio
counterpart of `device.runtime`.

`open_output` gives a `Player`: one output stream whose callback plays one utterance at a time,
with a gain that ramps (ducking fades it down and back up). `open_input` gives a `Listener`:
one input stream (the glasses' microphone) handing 20 ms blocks of 16 kHz mono int16 to a
callback. Every PortAudio failure (no library, no device, a broken ALSA setup) becomes an
`AudioError` with one line that says what is wrong; nothing else imports `sounddevice`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import subprocess
import sys
import threading
import time
from typing import Callable

import numpy as np

from device.errors import AudioError

log = logging.getLogger(__name__)

INPUT_RATE = 16_000          # what the voice-activity detector wants
INPUT_BLOCK = 320            # 20 ms at 16 kHz


_ALSA_ERROR_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                                      ctypes.c_int, ctypes.c_char_p)
_quiet_handler = _ALSA_ERROR_HANDLER(lambda *_args: None)


def _quiet_alsa() -> None:
    """alsa-lib prints each probe that fails while PortAudio enumerates devices ("ALSA lib
    pcm.c:…"); those failures reach the caller as one AudioError line instead."""
    path = ctypes.util.find_library("asound")
    if path is None:
        return
    try:
        ctypes.CDLL(path).snd_lib_error_set_handler(_quiet_handler)
    except (OSError, AttributeError):
        pass


_PROBE = "import sounddevice"
_probed: str | None = None


def _probe(timeout_s: float = 15.0) -> None:
    """Initialize PortAudio once in a child process first: with a missing or empty ALSA
    configuration PortAudio aborts the whole process (an assertion in its ALSA host), and a
    sound server that does not answer can block it. Either becomes an AudioError here."""
    global _probed
    if _probed == "ok":
        return
    if _probed is None:
        try:
            done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True,
                                  text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _probed = f"PortAudio did not start within {timeout_s:g} s (a hung sound server?)"
        except OSError as exc:
            _probed = f"could not check the sound system: {exc}"
        else:
            if done.returncode == 0:
                _probed = "ok"
                return
            lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
            if done.returncode < 0:
                _probed = (f"PortAudio crashed reading the ALSA setup (signal "
                           f"{-done.returncode}); check ALSA_CONFIG_PATH and asound.conf")
            else:
                _probed = lines[-1] if lines else f"PortAudio failed (exit {done.returncode})"
    raise AudioError(_probed)


def _sounddevice():
    """`sounddevice`, imported on first use (it initializes PortAudio and enumerates ALSA
    devices once per process), after a probe in a child process said that is safe."""
    _probe()
    _quiet_alsa()
    try:
        import sounddevice
    except OSError as exc:       # the PortAudio library itself is missing
        raise AudioError(f"PortAudio is not installed ({exc}): apt-get install libportaudio2") \
            from exc
    except Exception as exc:     # sounddevice.PortAudioError from Pa_Initialize
        raise AudioError(f"PortAudio could not start: {str(exc).splitlines()[0]}") from exc
    return sounddevice


def _device(spec: str) -> int | str | None:
    """'' → the default device; digits → a device index; else a (part of a) device name."""
    if not spec:
        return None
    return int(spec) if spec.isdigit() else spec


def resample(pcm: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Linear resampling of mono int16 (speech does not need better for a few seconds)."""
    if rate == target or len(pcm) == 0:
        return pcm
    n = max(1, int(round(len(pcm) * target / rate)))
    x = np.linspace(0, len(pcm) - 1, n)
    return np.interp(x, np.arange(len(pcm)), pcm.astype(np.float32)).astype(np.int16)


class Player:
    """One output stream; `play` starts an utterance, `done` tells it ended (or was cut)."""

    def __init__(self, stream, rate: int, fade_ms: float):
        self._stream, self.rate = stream, rate
        self._lock = threading.Lock()
        self._pcm = np.zeros(0, np.float32)
        self._pos = 0
        self.gain, self.target_gain = 1.0, 1.0
        self._step = 1.0 / max(1.0, fade_ms * rate / 1000.0)   # gain change per sample
        self.done = threading.Event()
        self.done.set()
        self.underflows = 0
        self.picked_up_at: float | None = None   # perf_counter when the callback took the
                                                 # first samples of the current utterance

    @property
    def latency_s(self) -> float:
        """The stream's output latency as PortAudio reports it (buffering to the DAC)."""
        return float(self._stream.latency)

    def play(self, pcm: np.ndarray, rate: int) -> None:
        samples = resample(pcm, rate, self.rate).astype(np.float32) / 32768.0
        with self._lock:
            self._pcm, self._pos = samples, 0
            self.picked_up_at = None
            self.done.clear()

    def cut(self) -> None:
        with self._lock:
            self._pcm, self._pos = np.zeros(0, np.float32), 0
            self.done.set()

    def duck(self, gain: float) -> None:
        """Fade towards `gain` (1.0: full level) over the configured fade time."""
        self.target_gain = gain

    def _callback(self, out, frames, _time, status) -> None:
        if status.output_underflow:
            self.underflows += 1
        with self._lock:
            chunk = self._pcm[self._pos:self._pos + frames]
            if self._pos == 0 and len(chunk):
                self.picked_up_at = time.perf_counter()
            self._pos += len(chunk)
            finished = self._pos >= len(self._pcm)
        gains = self._ramp(frames)
        out[:, 0] = 0.0
        out[:len(chunk), 0] = chunk * gains[:len(chunk)]
        if finished and not self.done.is_set():
            self.done.set()

    def _ramp(self, frames: int) -> np.ndarray:
        start, target = self.gain, self.target_gain
        direction = 1.0 if target >= start else -1.0
        ramp = start + direction * self._step * np.arange(1, frames + 1)
        ramp = np.minimum(ramp, target) if direction > 0 else np.maximum(ramp, target)
        self.gain = float(ramp[-1])
        return ramp.astype(np.float32)

    def close(self) -> None:
        self.cut()
        try:
            self._stream.stop()
            self._stream.close()
        except Exception as exc:       # a device that vanished: closing must not raise
            log.debug("audio output close failed", extra={"error": str(exc)})


def _sound_system(what: str, direction: str, device: str):
    """sounddevice, or AudioError "no usable <what>: ..." when it cannot load or, with no
    `device` named, the sound system has no default `direction` ("output"/"input") device."""
    try:
        sd = _sounddevice()
    except AudioError as exc:
        raise AudioError(f"no usable {what}: {exc}") from exc
    if not device and sd.default.device[1 if direction == "output" else 0] < 0:
        raise AudioError(f"no usable {what}: the sound system has no {direction} device")
    return sd


def open_output(device: str = "", rate: int = 22_050, fade_ms: float = 150.0,
                latency_ms: float = 50.0) -> Player:
    """Open and start the output stream; AudioError (one line) when there is no usable
    device. Tries `rate`, then the device's own default rate (resampling then happens here).
    `latency_ms`: the buffer PortAudio keeps ahead of the DAC (less: sooner, but a busy CPU
    underflows it; each underflow is counted)."""
    sd = _sound_system("audio output", "output", device)
    player = None
    last: Exception | None = None
    for attempt in (rate, None):
        try:
            if attempt is None:
                info = sd.query_devices(_device(device), "output")
                attempt = int(info["default_samplerate"])
            player = Player(None, attempt, fade_ms)
            stream = sd.OutputStream(samplerate=attempt, channels=1, dtype="float32",
                                     device=_device(device), latency=latency_ms / 1000,
                                     callback=player._callback)
            stream.start()
            player._stream = stream
            return player
        except (sd.PortAudioError, ValueError, OSError) as exc:
            last = exc
    raise AudioError(f"no usable audio output{f' {device!r}' if device else ''}: "
                     f"{str(last).splitlines()[0] if last else 'unknown'}") from last


class Listener:
    """One input stream: `on_block(int16 samples)` per 20 ms block, on PortAudio's thread."""

    def __init__(self, stream):
        self._stream = stream

    def close(self) -> None:
        try:
            self._stream.stop()
            self._stream.close()
        except Exception as exc:
            log.debug("audio input close failed", extra={"error": str(exc)})


def open_input(on_block: Callable[[np.ndarray], None], device: str = "") -> Listener:
    """Open and start the microphone stream at 16 kHz mono; AudioError when there is none."""
    sd = _sound_system("microphone", "input", device)

    def callback(indata, _frames, _time, _status) -> None:
        try:
            on_block(indata[:, 0].copy())
        except Exception:          # the detector must never kill PortAudio's thread
            log.exception("voice activity callback failed")

    try:
        stream = sd.InputStream(samplerate=INPUT_RATE, blocksize=INPUT_BLOCK, channels=1,
                                dtype="int16", device=_device(device), callback=callback)
        stream.start()
    except (sd.PortAudioError, ValueError, OSError) as exc:
        raise AudioError(f"no usable microphone{f' {device!r}' if device else ''}: "
                         f"{str(exc).splitlines()[0]}") from exc
    return Listener(stream)
