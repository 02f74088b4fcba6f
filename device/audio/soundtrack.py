"""What was said, laid on the video's timeline: a WAV beside the recording, muxed into the MP4
when FFmpeg is there (`edgelens demo --speak`).

Each utterance is placed at the displayed frame on which it started (frame / fps), or right
after the previous one when they would overlap, as a listener heard them.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import wave
from pathlib import Path

import numpy as np

from device.errors import AudioError

log = logging.getLogger(__name__)


class SoundTrack:
    def __init__(self, fps: float):
        self.fps = fps
        self._lock = threading.Lock()
        self._parts: list[tuple[int, object]] = []     # (displayed frame, Speech)

    def add(self, frame: int, speech) -> None:
        with self._lock:
            self._parts.append((frame, speech))

    def __len__(self) -> int:
        return len(self._parts)

    def mix(self, frames: int = 0, rate: int | None = None) -> tuple[np.ndarray, int]:
        """The whole track as int16 at `rate` (the voice's own when None), at least `frames`
        video frames long."""
        with self._lock:
            parts = list(self._parts)
        rate = rate or (parts[0][1].rate if parts else 22_050)
        placed, end = [], 0
        for frame, speech in parts:
            start = max(int(round(frame / self.fps * rate)), end)
            placed.append((start, speech.pcm))
            end = start + len(speech.pcm)
        length = max(end, int(round(frames / self.fps * rate)))
        track = np.zeros(length, np.int16)
        for start, pcm in placed:
            track[start:start + len(pcm)] = pcm
        return track, rate

    def write(self, path: str | Path, frames: int = 0) -> Path:
        track, rate = self.mix(frames)
        path = Path(path)
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(rate)
            wav.writeframes(track.tobytes())
        return path


def mux(video: str | Path, audio: str | Path) -> bool:
    """Put `audio` into `video` (copied video stream, AAC audio, cut to the video's length);
    False when FFmpeg is not installed, AudioError when it fails."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return False
    video = Path(video)
    muxed = video.with_name(video.stem + ".muxing" + video.suffix)
    command = [ffmpeg, "-loglevel", "error", "-y", "-i", str(video), "-i", str(audio),
               "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac",
               "-shortest", str(muxed)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AudioError(f"ffmpeg could not mux the audio: {exc}") from exc
    if done.returncode != 0:
        muxed.unlink(missing_ok=True)
        reason = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise AudioError(f"ffmpeg could not mux the audio: {reason}")
    os.replace(muxed, video)
    return True
