"""System metrics for the telemetry's per-second metric records: CPU %, resident memory, free
disk beside the store and temperature, sampled once per second on the writer thread."""

from __future__ import annotations

from pathlib import Path

from device.telemetry.aggregate import MetricWindow


class SystemSampler:
    """CPU %, resident memory, disk free and temperature, once per second into gauges."""

    def __init__(self, db_path: Path | None):
        import psutil
        self._psutil = psutil
        self._process = psutil.Process()
        self._db_dir = str(Path(db_path).parent) if db_path is not None else "."
        self._last = 0
        self._has_temp = hasattr(psutil, "sensors_temperatures")
        psutil.cpu_percent(None)

    def sample(self, window: MetricWindow, mono: int) -> None:
        if mono - self._last < 1_000_000_000:
            return
        self._last = mono
        ps = self._psutil
        window.gauge("cpu_percent", ps.cpu_percent(None), mono)
        window.gauge("rss_bytes", self._process.memory_info().rss, mono)
        try:
            window.gauge("disk_free_bytes", ps.disk_usage(self._db_dir).free, mono)
        except OSError:
            pass
        if self._has_temp:
            temps = ps.sensors_temperatures() or {}
            readings = [t.current for entries in temps.values() for t in entries]
            if readings:
                window.gauge("temp_c", max(readings), mono)
            else:
                self._has_temp = False
