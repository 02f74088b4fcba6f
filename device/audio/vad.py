"""Is the wearer speaking? Voice-activity detection on 20 ms blocks of 16 kHz microphone audio.

Each block is voiced when it is loud enough (`min_dbfs`), its zero-crossing rate is in the
range of speech (not mains hum, not hiss) and WebRTC's detector (`webrtcvad-wheels`) calls it
speech; without that package, energy and zero crossings decide alone. Hysteresis turns blocks
into a state: speaking starts after `start_ms` of voiced blocks and ends after
`resume_after_ms` without.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

BLOCK_MS = 20


@dataclass(frozen=True)
class VadSettings:
    min_dbfs: float = -45.0
    start_ms: float = 60.0
    resume_after_ms: float = 500.0
    aggressiveness: int = 2


def level_dbfs(block: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(block.astype(np.float32) ** 2))) if len(block) else 0.0
    return 20 * np.log10(max(rms, 1e-3) / 32768.0)


def zero_crossing_rate(block: np.ndarray) -> float:
    signs = np.signbit(block)
    return float(np.count_nonzero(signs[1:] != signs[:-1])) / max(1, len(block) - 1)


class VoiceActivity:
    """Feed 20 ms blocks with `feed`; `speaking` says the state after hysteresis."""

    def __init__(self, settings: VadSettings = VadSettings(), rate: int = 16_000):
        self.settings, self.rate = settings, rate
        self.speaking = False
        self._voiced_ms = 0.0
        self._quiet_ms = 0.0
        try:
            import webrtcvad
            self._webrtc = webrtcvad.Vad(settings.aggressiveness)
            self.engine = "webrtcvad"
        except ImportError:
            self._webrtc = None
            self.engine = "energy+zcr"

    def voiced(self, block: np.ndarray) -> bool:
        if level_dbfs(block) < self.settings.min_dbfs:
            return False
        if not 0.01 <= zero_crossing_rate(block) <= 0.35:    # hum below, hiss above
            return False
        if self._webrtc is not None and len(block) == self.rate * BLOCK_MS // 1000:
            return self._webrtc.is_speech(block.astype(np.int16).tobytes(), self.rate)
        return True

    def feed(self, block: np.ndarray) -> bool:
        """One block in; the speaking state out (True while the wearer speaks)."""
        ms = 1000.0 * len(block) / self.rate
        if self.voiced(block):
            self._voiced_ms += ms
            self._quiet_ms = 0.0
            if not self.speaking and self._voiced_ms >= self.settings.start_ms:
                self.speaking = True
        else:
            self._quiet_ms += ms
            if self._quiet_ms >= 2 * BLOCK_MS:       # a short gap restarts the onset count
                self._voiced_ms = 0.0
            if self.speaking and self._quiet_ms >= self.settings.resume_after_ms:
                self.speaking = False
        return self.speaking
