"""The pieces of the frame path that need no model: slot, capture, tracker, overlay, metrics."""

import time

import cv2
import numpy as np
import pytest

from device.live.capture import Capture, LatestSlot, RateCap
from device.errors import SourceError
from device.metrics import Metrics
from device.live.overlay import (UNCERTAIN_BGR, OverlayItem, OverlayRenderer, expand_quad,
                                 sample_colours)
from device.geometry import polygon_coverage, polygon_iou
from device.live.sources import ImageFolderSource, VideoSource, parse_source
from device.live.tracker import MotionTracker, transform


def test_latest_slot_keeps_newest_and_counts_replaced():
    slot = LatestSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True
    assert slot.put(3) is True
    assert slot.take(timeout=0) == 3
    assert slot.dropped == 2
    assert slot.take(timeout=0.01) is None


def test_metrics_percentiles_and_counters():
    metrics = Metrics()
    for ms in range(1, 101):
        metrics.observe("stage", float(ms))
    metrics.count("drops", 3)
    snap = metrics.snapshot()
    assert snap["counters"] == {"drops": 3}
    assert snap["latency_ms"]["stage"]["count"] == 100
    assert snap["latency_ms"]["stage"]["p50"] == pytest.approx(50.5)
    assert snap["latency_ms"]["stage"]["max"] == 100.0


def _textured(h=360, w=640, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), (3, 3), 0)


def test_tracker_recovers_camera_motion_and_chains_it():
    base = _textured(540, 960)
    tracker = MotionTracker(scale=0.5)
    shifts = [(0, 0), (6, -3), (12, -5), (20, -2)]
    for i, (dx, dy) in enumerate(shifts):
        frame = base[100 + dy:460 + dy, 100 + dx:740 + dx].copy()
        tracker.update(i, frame)
    # content at frame 0's (300, 200) is at (300 - 20, 200 + 2) in frame 3
    mapped = transform(np.float32([[300, 200]]), tracker.forward(0))
    assert np.allclose(mapped, [[280, 202]], atol=1.0)


def test_sample_colours_finds_plate_and_text():
    frame = np.full((120, 300, 3), 40, np.uint8)
    cv2.rectangle(frame, (20, 20), (280, 100), (20, 140, 20), -1)  # green plate
    cv2.putText(frame, "AUSGANG", (40, 80), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (255, 255, 255), 3)
    fg, bg = sample_colours(frame, np.float32([[35, 35], [265, 35], [265, 90], [35, 90]]))
    assert bg == (20, 140, 20)
    assert min(fg) > 200


def test_overlay_covers_region_with_background_and_draws_text():
    frame = np.full((120, 300, 3), 40, np.uint8)
    polygon = np.float32([[30, 30], [270, 40], [270, 95], [30, 90]])
    out = OverlayRenderer().render(frame, [OverlayItem(polygon, "EXIT", (255, 255, 255),
                                                       (20, 140, 20))])
    mask = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, np.round(expand_quad(polygon, 0.04, 0.18)).astype(np.int32), 255)
    inside = out[mask > 0]
    assert (inside == (20, 140, 20)).all(axis=1).mean() > 0.5  # plate colour
    assert (inside.min(axis=1) > 200).mean() > 0.05            # white text strokes
    near = cv2.dilate(mask, np.ones((3, 3), np.uint8))           # antialiased edge
    assert (out[near == 0] == 40).all()                          # outside untouched
    assert (frame == 40).all()                                   # input not modified


def test_an_uncertain_translation_gets_an_amber_outline_and_a_sure_one_none():
    frame = np.full((120, 300, 3), 40, np.uint8)
    polygon = np.float32([[30, 30], [270, 40], [270, 95], [30, 90]])

    def amber_pixels(uncertain: bool) -> int:
        out = OverlayRenderer().render(frame, [OverlayItem(polygon, "EXIT", (255, 255, 255),
                                                           (20, 140, 20), uncertain=uncertain)])
        distance = np.abs(out.astype(int) - np.array(UNCERTAIN_BGR)).sum(axis=2)
        return int((distance < 60).sum())   # antialiased: near the amber colour

    assert amber_pixels(True) > 100 and amber_pixels(False) == 0


def test_polygon_coverage_is_the_share_of_a_inside_b():
    plate = np.float32([[0, 0], [100, 0], [100, 40], [0, 40]])
    upper_line = np.float32([[10, 5], [90, 5], [90, 18], [10, 18]])
    assert polygon_coverage(upper_line, plate) == pytest.approx(1.0)
    assert polygon_iou(upper_line, plate) < 0.3          # what IoU says of one line of two
    half_out = upper_line + np.float32([50, 0])
    assert polygon_coverage(half_out, plate) == pytest.approx(0.5, abs=0.01)
    assert polygon_coverage(upper_line + np.float32([200, 0]), plate) == 0.0
    assert polygon_coverage(np.zeros((4, 2), np.float32), plate) == 0.0


def test_polygon_iou():
    a = np.float32([[0, 0], [10, 0], [10, 10], [0, 10]])
    b = a + np.float32([5, 0])
    assert polygon_iou(a, a) == pytest.approx(1.0)
    assert polygon_iou(a, b) == pytest.approx(50 / 150)


def test_bad_source_uris_say_what_is_expected():
    with pytest.raises(SourceError, match="expected webcam:N"):
        parse_source("camera")
    with pytest.raises(SourceError, match="webcam needs a number"):
        parse_source("webcam:front")


def _write_video(path, frames=20):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (160, 120))
    for i in range(frames):
        writer.write(np.full((120, 160, 3), i * 10 % 255, np.uint8))
    writer.release()


def test_video_source_reads_every_frame_then_ends(tmp_path):
    path = tmp_path / "clip.mp4"
    _write_video(path)
    source = VideoSource(str(path), realtime=False)
    source.open()
    frames = 0
    while source.read() is not None:
        frames += 1
    assert frames == 20


def test_capture_counts_drops_when_consumer_is_slow(tmp_path):
    path = tmp_path / "clip.mp4"
    _write_video(path, frames=60)
    metrics = Metrics()
    capture = Capture(VideoSource(str(path), realtime=False), metrics).start()
    capture.ended.wait(10)
    taken = 0
    while capture.slot.take(timeout=0) is not None:
        taken += 1
    assert metrics.counter("frames_captured") == 60
    assert taken == 1  # nobody consumed: only the newest frame is kept
    assert metrics.counter("frames_dropped") == 59


def test_rate_cap_holds_a_faster_camera_to_the_configured_rate():
    cap = RateCap(20.0)                       # a 30 fps camera, capped at 20
    kept = [k for k in range(90) if cap.admit(k / 30)]
    assert 59 <= len(kept) <= 61               # 3 s at 20 fps
    assert max(np.diff(kept)) == 2             # never two frames in a row skipped
    jittery = RateCap(30.0)                    # a camera at the cap, with arrival jitter
    rng = np.random.default_rng(0)
    assert all(jittery.admit(k / 30 + rng.uniform(-0.004, 0.004)) for k in range(90))
    stalled = RateCap(10.0)                    # after a 1 s stall: no burst to catch up
    assert stalled.admit(0.0)
    admitted = [t for t in np.arange(1.0, 2.0, 1 / 30) if stalled.admit(t)]
    assert len(admitted) <= 11
    uncapped = RateCap(0.0)                                      # 0: no cap
    assert all(uncapped.admit(t) for t in (0.0, 0.0, 0.001, 0.002))


class _FastCamera:
    """A camera that delivers frames faster than asked (the seam a webcam would fill)."""
    name, realtime, live = "camera:fake", True, True

    def __init__(self, fps: float):
        self.fps = fps

    def open(self) -> None:
        pass

    def read(self) -> np.ndarray:
        time.sleep(0.002)
        return np.zeros((36, 64, 3), np.uint8)

    def close(self) -> None:
        pass


def test_capture_skips_and_counts_the_frames_a_camera_delivers_beyond_the_cap():
    metrics = Metrics()
    start = time.perf_counter()
    capture = Capture(_FastCamera(fps=10.0), metrics).start()
    time.sleep(0.5)
    capture.stop()
    elapsed = time.perf_counter() - start
    assert metrics.counter("frames_over_rate") > 0
    assert 1 <= metrics.counter("frames_captured") <= elapsed * 10 + 2


def test_vanished_source_is_reopened_with_backoff(tmp_path):
    folder = tmp_path / "frames"
    metrics = Metrics()
    capture = Capture(ImageFolderSource(str(folder), fps=50), metrics, max_backoff_s=0.05)
    capture.start()
    time.sleep(0.3)  # the folder does not exist yet: open keeps failing, capture keeps trying
    assert metrics.counter("source_open_failures") >= 2
    assert "no such directory" in capture.last_error
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((20, 20, 3), np.uint8))
    frame = capture.slot.take(timeout=3)
    capture.stop()
    assert frame is not None and frame.image.shape == (20, 20, 3)


def test_unreadable_image_in_folder_is_reported_and_skipped(tmp_path):
    (tmp_path / "a.png").write_bytes(b"not a png")
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((10, 10, 3), np.uint8))
    metrics = Metrics()
    capture = Capture(ImageFolderSource(str(tmp_path), fps=100), metrics, max_backoff_s=0.01)
    capture.start()
    capture.ended.wait(5)
    capture.stop()
    assert metrics.counter("source_errors") == 1
    assert metrics.counter("frames_captured") == 1


def test_lines_cut_by_the_frame_edge_are_not_read():
    from device.geometry import whole_in_frame as _inside
    box = np.float32([[100, 100], [300, 100], [300, 130], [100, 130]])
    assert _inside(box, 640, 360)
    assert not _inside(box + np.float32([335, 0]), 640, 360)   # ends 5 px before the edge
    assert not _inside(box - np.float32([95, 0]), 640, 360)    # starts at x = 5


def test_folder_images_of_any_size_reach_the_tracker_as_one_frame_size(tmp_path):
    from device.live.tracker import MotionTracker as Tracker
    cv2.imwrite(str(tmp_path / "a.png"), np.full((360, 640, 3), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "b.png"), np.full((700, 300, 3), 160, np.uint8))
    source = ImageFolderSource(str(tmp_path), fps=100)
    source.open()
    first, second = source.read(), source.read()
    assert first.shape == second.shape == (360, 640, 3)
    tracker = Tracker()
    tracker.update(0, first)
    # a frame of another size (a new camera) resets the tracker instead of crashing LK
    assert np.allclose(tracker.update(1, np.zeros((200, 300, 3), np.uint8)), np.eye(3))


def test_an_image_declaring_a_huge_size_is_refused_before_decoding(tmp_path):
    from PIL import Image
    from device.live.sources import read_image
    from device.errors import SourceError
    path = tmp_path / "bomb.png"
    Image.new("1", (30000, 30000)).save(path)     # ~110 KB on disk, 900 MP decoded
    assert path.stat().st_size < 2_000_000
    with pytest.raises(SourceError, match="larger than the 40 MP limit"):
        read_image(path)
    with pytest.raises(SourceError, match="is a directory"):
        read_image(tmp_path)


def test_a_source_that_keeps_failing_backs_off_more_and_more(tmp_path):
    class Truncated:
        """Opens fine, fails on the first read: a truncated video."""
        name, fps, realtime = "video:truncated.mp4", 100.0, False

        def __init__(self):
            self.opened = 0

        def open(self):
            self.opened += 1

        def read(self):
            raise SourceError(f"{self.name}: decoding failed at frame 0 (truncated file?)")

        def close(self):
            pass

    source = Truncated()
    capture = Capture(source, Metrics(), max_backoff_s=0.4).start()
    time.sleep(1.5)
    capture.stop()
    # delays 0.05, 0.1, 0.2, 0.4, 0.4 ... : a handful of reopens, not hundreds
    assert 3 <= source.opened <= 7
    assert capture.state == "failing" and "truncated" in capture.last_error


def test_a_photo_given_as_a_video_is_held_like_a_folder_image(tmp_path):
    photo = tmp_path / "sign.png"
    cv2.imwrite(str(photo), np.full((360, 640, 3), 77, np.uint8))
    source = parse_source(f"video:{photo}", fps=10, image_dwell_s=0.5)
    source.open()
    frames = [source.read() for _ in range(6)]
    assert all(f is not None and f.shape == (360, 640, 3) for f in frames[:5])
    assert frames[5] is None                                  # 0.5 s at 10 fps, then the end
