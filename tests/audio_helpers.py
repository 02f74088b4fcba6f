"""A real audio path for the audio tests: a private PulseAudio server with two null sinks,
`speaker` (what the glasses play; its monitor is recorded) and `mic` (a recorded voice is
played into it; its monitor is the default source, i.e. the glasses' microphone). ALSA is
pointed at it with a config file in a temp dir (ALSA_CONFIG_PATH), so PortAudio opens ALSA's
`default` device, which is the pulse plugin, which is this server; the server paces both
streams in real time like a sound card.

A scenario (tests/audio_scenario.py) runs in its own process per test, because PortAudio
enumerates devices once per process. Without the audio stack the tests skip, unless CI=true:
then they fail (scripts/setup installs it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RATE = 16_000           # recordings are read back at this rate
TOOLS = ("pulseaudio", "parecord", "paplay", "pacat", "pactl", "espeak-ng")
PLUGIN = Path("/usr/lib") / f"{os.uname().machine}-linux-gnu" / "alsa-lib" / \
    "libasound_module_pcm_pulse.so"


def require_audio_stack() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not PLUGIN.exists():
        missing.append(f"libasound2-plugins ({PLUGIN})")
    if missing:
        message = f"audio test stack missing: {', '.join(missing)} (run scripts/setup)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


class PulseServer:
    """A PulseAudio daemon on a unix socket in `root`; `env` routes ALSA's default to it."""

    def __init__(self, root: Path):
        self.root = root
        self.socket = root / "native"
        runtime = root / "run"
        runtime.mkdir(mode=0o700)
        (root / "default.pa").write_text(
            f"load-module module-native-protocol-unix socket={self.socket} auth-anonymous=1\n"
            "load-module module-null-sink sink_name=speaker rate=48000 channels=1\n"
            "load-module module-null-sink sink_name=mic rate=48000 channels=1\n"
            "set-default-sink speaker\nset-default-source mic.monitor\n")
        (root / "asound.conf").write_text(
            f'pcm.!default {{ type pulse server "unix:{self.socket}" }}\n'
            f'ctl.!default {{ type pulse server "unix:{self.socket}" }}\n')
        self.env = {**os.environ, "PULSE_SERVER": f"unix:{self.socket}",
                    "XDG_RUNTIME_DIR": str(runtime),
                    "ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{root / 'asound.conf'}",
                    "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        self.env.pop("PULSE_SINK", None)
        self.log = open(root / "pulseaudio.log", "w")
        self.process = subprocess.Popen(
            ["pulseaudio", "-n", "-F", str(root / "default.pa"), "--daemonize=no",
             "--exit-idle-time=-1", "--use-pid-file=no", "--system=false",
             "--disallow-exit", "--disable-shm=true"],
            env={**self.env, "HOME": str(root)}, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pulseaudio exited: {(root / 'pulseaudio.log').read_text()}")
            if subprocess.run(["pactl", "info"], env=self.env, capture_output=True,
                              timeout=5).returncode == 0:
                self._keep_running()
                return
            time.sleep(0.1)
        self.close()
        raise RuntimeError("pulseaudio did not answer within 15 s")

    def _keep_running(self) -> None:
        """A null sink with nothing playing renders nothing, so its monitor would record
        nothing until sound starts: keep a stream of silence playing into each sink, so a
        recording covers the whole test, silence included."""
        self.keepalive = [subprocess.Popen(
            ["pacat", "--playback", f"--device={sink}", "--raw", "--format=s16le",
             "--rate=16000", "--channels=1", "/dev/zero"], env=self.env)
            for sink in ("speaker", "mic")]

    def record(self, name: str, sink: str = "speaker") -> "Recording":
        return Recording(self, self.root / f"{name}.raw", f"{sink}.monitor")

    def play_into_mic(self, wav: Path) -> subprocess.Popen:
        return subprocess.Popen(["paplay", "--device=mic", str(wav)], env=self.env)

    def close(self) -> None:
        for process in getattr(self, "keepalive", []):
            process.kill()
            process.wait()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class Recording:
    """parecord of a sink's monitor into a raw 16 kHz int16 file, from start to stop."""

    def __init__(self, server: PulseServer, path: Path, source: str):
        self.path = path
        self.process = subprocess.Popen(
            ["parecord", f"--device={source}", "--raw", "--format=s16le", f"--rate={RATE}",
             "--channels=1", "--latency-msec=100", str(path)], env=server.env)
        deadline = time.monotonic() + 15        # started and delivering, before going on
        while not (path.exists() and path.stat().st_size > 0):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"parecord of {source} recorded nothing within 15 s")
            time.sleep(0.02)

    def so_far(self) -> np.ndarray:
        data = self.path.read_bytes() if self.path.exists() else b""
        return np.frombuffer(data[:len(data) // 2 * 2], np.int16)

    def wait_heard(self, quiet_after_s: float = 0.3, timeout: float = 20.0) -> bool:
        """Wait until the monitor has recorded sound and `quiet_after_s` of quiet after it:
        the player may hand its last samples to the sound server well before they are
        rendered, and closing its stream then can cut what is still buffered."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            samples = self.so_far()
            span = loud_span(samples)
            if span is not None and len(samples) / RATE - span[1] >= quiet_after_s:
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> np.ndarray:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.so_far()


def envelope(samples: np.ndarray, window_s: float = 0.02) -> np.ndarray:
    """RMS per window (int16 units)."""
    n = int(RATE * window_s)
    usable = len(samples) // n * n
    frames = samples[:usable].astype(np.float32).reshape(-1, n)
    return np.sqrt((frames ** 2).mean(axis=1))


def loud_span(samples: np.ndarray, threshold: float = 300.0, window_s: float = 0.02
              ) -> tuple[float, float] | None:
    """(first, last) second at which the recording is louder than `threshold` RMS."""
    loud = np.flatnonzero(envelope(samples, window_s) > threshold)
    if loud.size == 0:
        return None
    return loud[0] * window_s, (loud[-1] + 1) * window_s


def espeak_wav(path: Path, text: str) -> Path:
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, timeout=30)
    return path


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()


class Scenario:
    """tests/audio_scenario.py in its own process: one command per line in, JSON out."""

    def __init__(self, env: dict, config: str, tmp: Path):
        path = tmp / "scenario.toml"
        path.write_text(config)
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "audio_scenario.py"), str(path)], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.ready = self.ask("ready")

    def ask(self, command: str, timeout: float = 30.0) -> dict:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        line = _readline(self.process, timeout)
        if not line:
            self.process.kill()
            raise AssertionError(f"scenario died on {command!r}: {self.process.stderr.read()}")
        return json.loads(line)

    def close(self) -> str:
        """Stop it; its stderr (the log) is returned."""
        try:
            self.process.stdin.write("quit\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass
        try:
            _out, err = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _out, err = self.process.communicate()
            raise AssertionError(f"the scenario did not stop within 15 s: {err}")
        return err


def _readline(process: subprocess.Popen, timeout: float) -> str:
    import selectors
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    if not selector.select(timeout):
        process.kill()
        raise AssertionError(f"no answer within {timeout} s: {process.stderr.read()}")
    return process.stdout.readline()


@pytest.fixture
def pulse(tmp_path):
    require_audio_stack()
    server = PulseServer(tmp_path)
    yield server
    server.close()


if __name__ == "__main__":
    # python tests/audio_helpers.py CMD...: run CMD with ALSA's default device on a private
    # PulseAudio null sink (how BENCHMARKS.md measures `edgelens bench audio` on a box without
    # a sound card).
    import tempfile
    with tempfile.TemporaryDirectory() as directory:
        server = PulseServer(Path(directory))
        try:
            code = subprocess.call(sys.argv[1:], env=server.env)
        finally:
            server.close()
    sys.exit(code)
