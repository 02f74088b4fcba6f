"""The benchmarks' one warm-up-and-time loop (`device.metrics.time_calls`): what it calls, in
which order, what it returns; nothing here depends on how fast the machine is."""

import time

import pytest

from device.metrics import percentiles, time_calls


class _Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, item):
        self.calls.append(item)
        return item.upper()


def test_warm_up_calls_come_first_and_are_not_timed():
    call = _Recorder()
    got: list = []
    samples = time_calls(call, ["a", "b", "c"], runs=5, warmup=2, results=got)
    assert call.calls == ["a", "b", "a", "b", "c", "a", "b"]     # 2 warm-ups, then 5 timed
    assert len(samples) == 5
    assert got == ["A", "B", "C", "A", "B"]                      # the timed calls' results only
    assert all(isinstance(ms, float) and ms >= 0 for ms in samples)


def test_one_pass_over_the_inputs_by_default():
    call = _Recorder()
    samples = time_calls(call, ("x", "y", "z"))
    assert call.calls == ["x", "x", "y", "z"]                    # one warm-up by default
    assert len(samples) == 3


def test_no_warm_up_and_more_runs_than_inputs():
    call = _Recorder()
    samples = time_calls(call, ["only"], runs=4, warmup=0)
    assert call.calls == ["only"] * 4
    assert len(samples) == 4


def test_samples_are_milliseconds():
    # a call that sleeps 2 ms lasts at least that long, whatever the machine
    samples = time_calls(lambda _: time.sleep(0.002), [None], runs=2, warmup=0)
    assert all(ms >= 1.0 for ms in samples)
    assert set(percentiles(samples)) == {"p50", "p95"}


def test_no_inputs_is_an_error_not_an_empty_measurement():
    with pytest.raises(ValueError):
        time_calls(_Recorder(), [], runs=3)
