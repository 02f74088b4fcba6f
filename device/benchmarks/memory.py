"""`edgelens bench memory`: peak resident memory of the two processes on the glasses.

`edgelens run` with every model (detector, recognizer, translator), the phrasebook, telemetry
into a real SQLite store and the HUD on, on the generated street; and `edgelens-sync run`
beside it on the same store, with updates on, pointed at a port where no broker listens (it
keeps reconnecting: its idle footprint). Both are real processes started as a user would;
VmHWM (the kernel's high-water mark) and VmRSS are read from /proc every 0.2 s. Goals: the
pipeline under 200 MB, the sync agent under 60 MB. The sync agent must load no vision code:
the modules it imports are listed too (a fresh interpreter importing its entry points).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from device.config import Config

GOALS_MB = {"pipeline": 200.0, "sync_agent": 60.0}
VISION = ("cv2", "PIL", "device.live", "device.stages", "device.synth")

SYNC_IMPORTS = """
import sys
import cloud_sync.sync_cli, cloud_sync.sync_agent, cloud_sync.update_agent
vision = sorted(m for m in sys.modules if m.split('.')[0] in ('cv2', 'PIL')
                or m.startswith(('device.live', 'device.stages', 'device.synth')))
print(' '.join(vision))
"""


def vision_modules_of_the_sync_agent() -> list[str]:
    """The vision modules a fresh interpreter has loaded after importing the sync agent."""
    out = subprocess.run([sys.executable, "-c", SYNC_IMPORTS], capture_output=True, text=True,
                         timeout=120, check=True)
    return out.stdout.split()


def _status_mb(pid: int) -> dict[str, float]:
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                values[key] = round(int(rest.split()[0]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return values


def _watch(process: subprocess.Popen, out: dict, stop: threading.Event) -> None:
    while not stop.wait(0.2) and process.poll() is None:
        seen = _status_mb(process.pid)
        if seen:
            out.update(seen)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(folder: Path) -> Path:
    path = folder / "edgelens.toml"
    path.write_text(
        f'[telemetry]\nenabled = true\ndb_path = "{folder / "telemetry.sqlite"}"\n'
        f'[logging]\nfile = "{folder / "edgelens.jsonl"}"\n'
        f'[source]\nuri = "synthetic:7"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {_free_port()}\n'
        f'[updates]\nenabled = true\n', encoding="utf-8")
    return path


def _command(name: str) -> str:
    return shutil.which(name) or os.path.join(os.path.dirname(sys.executable), name)


def measure(seconds: float) -> dict:
    """Run both processes for `seconds` (after the pipeline has loaded its models) and return
    their peak and last resident memory in MB."""
    with tempfile.TemporaryDirectory(prefix="edgelens-memory-") as tmp:
        config = _config(Path(tmp))
        env = {**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS",
                                                                    "1")}
        commands = {"pipeline": [_command("edgelens"), "run", "--config", str(config)],
                    "sync_agent": [_command("edgelens-sync"), "run", "--config", str(config)]}
        seen: dict[str, dict] = {name: {} for name in commands}
        stop = threading.Event()
        processes, watchers = {}, []
        for name, command in commands.items():
            processes[name] = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL, env=env)
            watcher = threading.Thread(target=_watch, args=(processes[name], seen[name], stop),
                                       daemon=True)
            watcher.start()
            watchers.append(watcher)
        log = Path(tmp) / "edgelens.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (
                log.exists() and '"service started"' in log.read_text(errors="replace")):
            time.sleep(0.2)
        time.sleep(seconds)
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        stop.set()
        for watcher in watchers:
            watcher.join()
        return {name: {"peak_mb": values.get("VmHWM"), "last_rss_mb": values.get("VmRSS"),
                       "goal_mb": GOALS_MB[name], "exit": processes[name].returncode}
                for name, values in seen.items()}


def run(cfg: Config, json_out: bool = False, quick: bool = False) -> dict:
    seconds = 5.0 if quick else 20.0
    results = {"seconds_after_start": seconds, "processes": measure(seconds),
               "sync_agent_vision_modules": vision_modules_of_the_sync_agent()}
    if not json_out:
        print(f"memory: edgelens run (all models, phrasebook, telemetry) and edgelens-sync run "
              f"beside it, {seconds:g} s after the service started")
        for name, r in results["processes"].items():
            print(f"  {name:10s} peak (VmHWM) {r['peak_mb']} MB, last {r['last_rss_mb']} MB "
                  f"(goal < {r['goal_mb']:g} MB)")
        print(f"  vision modules in the sync agent: "
              f"{', '.join(results['sync_agent_vision_modules']) or 'none'}")
    return results
