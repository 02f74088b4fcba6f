"""`edgelens bench pipeline`'s own arithmetic: the simulated camera's CPU is counted apart, and
the steady-view ratios come from runs of the same backend."""

import time

import numpy as np

from device.benchmarks.pipeline import _CameraMeter, _ratios


class _Source:
    def __init__(self, busy: bool):
        self.busy, self.reads = busy, 0

    def read(self):
        self.reads += 1
        if self.busy:
            a = np.random.default_rng(0).random((300, 300))
            for _ in range(20):
                a = a @ a / 300.0
        else:
            time.sleep(0.2)             # a camera waiting for its next frame: no CPU
        return np.zeros((2, 2, 3), np.uint8)


def test_the_camera_meter_counts_the_reads_cpu_not_their_waiting():
    busy, idle = _Source(True), _Source(False)
    busy_meter, idle_meter = _CameraMeter(busy), _CameraMeter(idle)
    for source in (busy, idle):
        assert source.read().shape == (2, 2, 3)
    assert busy.reads == idle.reads == 1
    assert busy_meter.cpu_s > 0
    assert idle_meter.cpu_s < 0.1                  # 0.2 s asleep is not 0.2 s of CPU


def test_steady_ratios_pair_runs_of_one_backend():
    runs = {"pipeline steady continuous/litert": {"cpu_pct": 80.0, "cpu_pct_without_camera": 72.0},
            "pipeline steady on-change/litert": {"cpu_pct": 32.0, "cpu_pct_without_camera": 24.0},
            "pipeline steady on-change/tflite": {"cpu_pct": 10.0, "cpu_pct_without_camera": 9.0}}
    assert _ratios(runs) == {"litert": 0.4}
    assert _ratios(runs, "cpu_pct_without_camera") == {"litert": 0.333}
