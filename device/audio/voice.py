"""The on-device voice: English text in, mono int16 PCM out, in memory, no network.

espeak-ng (Debian package `espeak-ng`) in two forms: its library through ctypes
(`EspeakLibrary`, loaded once, no process per utterance) and its command with `--stdout`
(`EspeakCommand`, a WAV read from the pipe). `open_voice` prefers the library; `edgelens bench
audio` measures both. Neither is thread-safe: one thread (the speaker's) synthesizes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import shutil
import subprocess
import threading
import wave
from dataclasses import dataclass

import numpy as np

from device.errors import AudioError

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_DONT_EXIT = 0x8000
CHARS_UTF8 = 1
POS_CHARACTER = 1
PARAM_RATE = 1
MAX_CHARS = 500          # a sign, not a book: longer text is cut


@dataclass(frozen=True)
class Speech:
    """Synthesized audio: mono int16 samples at `rate` Hz."""
    pcm: np.ndarray
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.pcm) / self.rate


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                   ctypes.c_void_p)


class EspeakLibrary:
    """libespeak-ng through ctypes, synchronous mode: espeak_Synth returns when the text is
    synthesized, handing the samples to a callback on the same thread."""

    name = "espeak-ng-library"
    _lock = threading.Lock()       # the library keeps global state: one user at a time

    def __init__(self, voice: str = "en-us", words_per_minute: int = 170):
        path = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self._lib = ctypes.CDLL(path)
        except OSError as exc:
            raise AudioError(f"libespeak-ng not found ({exc}): apt-get install espeak-ng") \
                from exc
        lib = self._lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                          ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint,
                                     ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                     ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        with self._lock:
            rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 200, None,
                                         INITIALIZE_DONT_EXIT)
            if rate <= 0:
                raise AudioError("espeak-ng could not start (its data is missing?): "
                                 "apt-get install espeak-ng")
            if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise AudioError(f"espeak-ng has no voice {voice!r}: see espeak-ng --voices")
            lib.espeak_SetParameter(PARAM_RATE, words_per_minute, 0)
        self.rate = rate
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)    # kept alive with the object

    def _collect(self, samples, count, _events) -> int:
        if count > 0 and samples:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0

    def synthesize(self, text: str) -> Speech:
        data = text[:MAX_CHARS].encode("utf-8") + b"\0"
        with self._lock:
            self._chunks = []
            self._lib.espeak_SetSynthCallback(self._callback)
            status = self._lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, CHARS_UTF8,
                                            None, None)
            chunks, self._chunks = self._chunks, []
        if status != 0:
            raise AudioError(f"espeak-ng failed to synthesize (status {status})")
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return Speech(pcm.astype(np.int16, copy=False), self.rate)


class EspeakCommand:
    """`espeak-ng --stdout`: one process per utterance, its WAV parsed in memory."""

    name = "espeak-ng-command"

    def __init__(self, voice: str = "en-us", words_per_minute: int = 170):
        self._exe = shutil.which("espeak-ng")
        if self._exe is None:
            raise AudioError("espeak-ng is not installed: apt-get install espeak-ng")
        self.voice, self.words_per_minute = voice, words_per_minute
        self.rate = self.synthesize("a").rate

    def synthesize(self, text: str) -> Speech:
        try:
            done = subprocess.run([self._exe, "-v", self.voice, "-s", str(self.words_per_minute),
                                   "--stdout", text[:MAX_CHARS]], capture_output=True,
                                  timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AudioError(f"espeak-ng failed: {exc}") from exc
        if done.returncode != 0:
            raise AudioError(f"espeak-ng failed: {done.stderr.decode(errors='replace').strip()}")
        return read_wav(done.stdout)


def read_wav(data: bytes) -> Speech:
    """A mono or stereo 16-bit WAV (bytes) as Speech; the pipe form of espeak-ng writes 0xFFFF…
    as the data size, so the frames are taken from what is there."""
    try:
        with wave.open(io.BytesIO(data)) as wav:
            if wav.getsampwidth() != 2:
                raise AudioError(f"expected 16-bit audio, got {8 * wav.getsampwidth()}-bit")
            rate, channels = wav.getframerate(), wav.getnchannels()
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise AudioError(f"not a usable WAV: {exc}") from exc
    pcm = np.frombuffer(raw[:len(raw) // (2 * channels) * 2 * channels], np.int16)
    if channels > 1:
        pcm = pcm.reshape(-1, channels)[:, 0]
    return Speech(pcm.copy(), rate)


VOICES = {"library": EspeakLibrary, "command": EspeakCommand}


def open_voice(engine: str = "auto", voice: str = "en-us", words_per_minute: int = 170):
    """The voice `engine` ('library', 'command', or 'auto': the library, else the command)."""
    if engine != "auto":
        return VOICES[engine](voice, words_per_minute)
    try:
        return EspeakLibrary(voice, words_per_minute)
    except AudioError:
        return EspeakCommand(voice, words_per_minute)
