"""The recognition rate policy: full rate while the view changes, a low rate once it is steady
and read. Driven frame by frame with made-up capture times (no clock, no machine speed): a real
MotionTracker on real images, results handed back the frame after they were asked for."""

import cv2
import numpy as np
import pytest

from device.live.capture import Frame
from device.live.rate import RatePolicy, RateSettings, change_level, corner_shift, small_view
from device.live.recognition import RecognitionResult
from device.live.tracker import MotionTracker

FPS = 30.0
JITTER = [(0, 0), (1, 0), (1, 1), (0, 1), (-1, 0), (0, -1)]    # hand shake, pixels


def _wall(seed=3, h=540, w=960):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), (3, 3), 0)


def _with_sign(wall):
    """The wall with a sign put up at world (300, 200)."""
    wall = wall.copy()
    cv2.rectangle(wall, (300, 200), (560, 270), (20, 140, 20), -1)
    cv2.putText(wall, "AUSGANG", (315, 252), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (255, 255, 255), 3)
    return wall


def _view(wall, dx, dy):
    return wall[100 + dy:460 + dy, 100 + dx:740 + dx].copy()


class Driver:
    """The frame path's use of the policy: tracker, decide, then the results of the frames
    offered on the previous frame come back (complete unless told otherwise)."""

    def __init__(self, **settings):
        self.tracker = MotionTracker(scale=0.5)
        self.policy = RatePolicy(RateSettings(**settings), self.tracker)
        self.pending: list[Frame] = []
        self.index = 0
        self.complete = True
        self.unread = 0

    def step(self, image):
        frame = Frame(self.index, image, captured=self.index / FPS)
        self.index += 1
        self.tracker.update(frame.index, frame.image)
        reason = self.policy.decide(frame)
        for done in self.pending:                       # the worker was quick
            self.policy.on_result(RecognitionResult(done.index, done.captured, done.captured,
                                                    (), {}, complete=self.complete,
                                                    unread=self.unread))
        self.pending = [frame] if reason is not None else []
        return reason


def _steady(driver, wall, frames):
    return [driver.step(_view(wall, *JITTER[driver.index % len(JITTER)]))
            for _ in range(frames)]


def test_steady_view_is_rechecked_at_the_low_rate_only():
    driver = Driver(steady_rate_hz=2.0)
    reasons = _steady(driver, _wall(), 120)                 # 4 s of a hand-held, still view
    assert reasons[:2] == ["unsettled", "unsettled"]        # until the first result is back
    offered = [i for i, r in enumerate(reasons) if r is not None]
    assert {r for r in reasons[2:]} <= {None, "steady"}, reasons
    gaps = np.diff(offered[1:])
    assert set(gaps) <= {15, 16}, offered                   # 2 Hz at 30 fps
    assert len(offered) <= 2 + 8


def test_new_text_in_a_steady_view_is_offered_at_once():
    driver = Driver(steady_rate_hz=2.0)
    wall = _wall()
    assert set(_steady(driver, wall, 40)[2:]) <= {None, "steady"}
    signed = _with_sign(wall)
    first = driver.step(_view(signed, *JITTER[driver.index % len(JITTER)]))
    assert first == "changed"                     # the very frame the sign appears on
    after = _steady(driver, signed, 30)           # read (complete) on that frame: steady again
    assert set(after[1:]) <= {None, "steady"}, after
    assert after.count(None) >= 25


def test_moving_view_runs_at_full_rate():
    driver = Driver(steady_rate_hz=2.0)
    wall = _wall()
    _steady(driver, wall, 30)
    reasons = [driver.step(_view(wall, 3 * i, i)) for i in range(1, 41)]   # a slow pan
    assert all(r is not None for r in reasons[2:]), reasons   # every frame from the third
    assert reasons[5:].count("moving") == len(reasons[5:])
    # it stops: the view settles and the rate falls again
    still = [driver.step(_view(wall, 120 + dx, 40 + dy)) for dx, dy in JITTER * 5]
    assert still[-20:].count(None) >= 15, still


def test_an_incomplete_result_keeps_the_full_rate():
    driver = Driver(steady_rate_hz=2.0)
    driver.complete = False                       # regions skipped for the deadline
    reasons = _steady(driver, _wall(), 30)
    assert reasons == ["unsettled"] * 30


def test_unread_regions_get_three_more_reads_then_the_low_rate():
    driver = Driver(steady_rate_hz=2.0)
    driver.unread = 1                             # a region read below the confidence floor
    reasons = _steady(driver, _wall(), 40)
    assert reasons[:5] == ["unsettled"] * 5       # the first read and three more
    assert set(reasons[5:]) <= {None, "steady"}, reasons
    signed = _with_sign(_wall())                  # new content: new tries
    after = [driver.step(_view(signed, 0, 0)) for _ in range(6)]
    assert after[:4] == ["changed", "changed", "unsettled", "unsettled"], after


def test_policy_off_offers_every_frame():
    driver = Driver(on_change=False)
    assert _steady(driver, _wall(), 20) == ["continuous"] * 20


def test_the_measures_on_known_motion():
    identity = np.eye(3)
    shift = np.array([[1, 0, 5], [0, 1, -12], [0, 0, 1]], float)
    assert corner_shift(identity, 640, 360) == 0.0
    assert corner_shift(shift, 640, 360) == pytest.approx(13.0)
    small = small_view(_view(_wall(), 0, 0))
    assert change_level(small, small, identity) == 0.0
    signed = small_view(_view(_with_sign(_wall()), 0, 0))
    assert change_level(small, signed, identity) > 20


def _synthetic_view(source, index, dx, dy):
    """Frame `index` of the generated street held still (view of frame 0) and shifted by
    (dx, dy) pixels: a hand-held camera that does not pan."""
    shift = np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], float)
    return cv2.warpPerspective(source._world.image, shift @ source.view(0), (640, 360),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


@pytest.mark.slow
def test_the_pipeline_reads_a_steady_view_then_only_rechecks_it():
    """The real pipeline and models, stepped frame by frame; each offered frame is read at
    once, without a deadline (the machine's speed must not change the answer)."""
    import time

    from device import config
    from device.assembly import build_pipeline, load_stages
    from device.live.sources import SyntheticSource
    from device.metrics import Metrics

    cfg = config.defaults()
    source = SyntheticSource(seed=7)
    source.open()
    pipeline = build_pipeline(cfg, load_stages(cfg, translate=False), source=source,
                              metrics=Metrics())
    pipeline.worker.budgets.recognition_ms = 1e9
    pipeline.settings.region_ttl_s = 1e9
    base, read = time.perf_counter(), []

    def step(i, dx, dy):
        pipeline.step(Frame(i, _synthetic_view(source, i, dx, dy), captured=base + i / FPS))
        offered = pipeline.worker.inbox.take(timeout=0)
        if offered is not None:
            read.append(offered.index)
            pipeline.worker.process(offered)

    for i in range(90):                                   # 3 s held still
        step(i, *JITTER[i % len(JITTER)])
    truth = {t.text for t in source.truth_at(0)}
    assert {r.text for r in pipeline.regions} & truth, [r.text for r in pipeline.regions]
    assert len(read) <= 2 + 6, read                        # first reads, then 2 Hz
    assert pipeline.metrics.counter("recognition_frames_steady") >= 80
    steady_reads = len(read)
    for i in range(90, 120):                              # then it pans: full rate
        step(i, -4 * (i - 89), 0)
    assert len(read) - steady_reads >= 27


def test_the_benchmarks_steady_sequence_holds_still_and_puts_a_sign_up():
    from device.benchmarks.steady import PERIOD, SHOW_AT, SteadySource
    from device.live.sources import SyntheticSource
    source = SteadySource(seed=7, frames=PERIOD + SHOW_AT + 1, realtime=False)
    source.open()
    frames = [source.read() for _ in range(PERIOD + SHOW_AT + 1)]
    assert source.read() is None
    still = SyntheticSource.view(source, 0)
    for index in (0, 17, SHOW_AT, PERIOD - 1):
        assert corner_shift(source.view(index) @ np.linalg.inv(still), 640, 360) < 3.0
    assert [e.first_frame for e in source.events] == [SHOW_AT, PERIOD + SHOW_AT]
    for event in source.events:
        x0, y0 = event.polygon.min(axis=0)
        x1, y1 = event.polygon.max(axis=0)
        assert 0 < x0 < x1 < 640 and 0 < y0 < y1 < 360
        before, after = frames[event.first_frame - 1], frames[event.first_frame]
        inside = (slice(int(y0) + 2, int(y1) - 2), slice(int(x0) + 2, int(x1) - 2))
        assert np.abs(after[inside].astype(int) - before[inside]).mean() > 20
