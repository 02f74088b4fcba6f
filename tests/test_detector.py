import json

import cv2
import numpy as np
import pytest

from calibration.training import detector_data as dd
from device.cli import main
from device.geometry import crop_line, match_polygons, order_quad, polygon_iou
from device.stages.detector import Detector, DetectorParams, TextRegion, regions_from_map
from device.stages.recognizer import LineReading, read_regions
from device.modelstore.store import ModelStore

STORE = ModelStore()
FRAME = (640, 360)
STRIDE = (640 / 160, 360 / 96)   # frame pixels per map pixel at the shipped input size
# for perfect (training-target) maps; the shipped model's own tuned values are in its manifest
TARGET_PARAMS = DetectorParams(bin_threshold=0.5, box_threshold=0.5, unclip_ratio=0.3)


def _version():
    return STORE.get("detector")


def _map_of(quads):
    """A perfect probability map: the training target of these frame-space quads."""
    scale = np.float32([320 / 640, 192 / 360])
    return dd.target_map([q * scale for q in quads]).astype(np.float32)


def _rotated(cx, cy, w, h, degrees):
    return order_quad(cv2.boxPoints(((cx, cy), (w, h), degrees)))


def test_postprocessing_recovers_upright_and_rotated_lines():
    truth = [np.float32([[40, 40], [300, 40], [300, 76], [40, 76]]),
             _rotated(420, 230, 260, 40, -30)]
    regions = regions_from_map(_map_of(truth), FRAME, TARGET_PARAMS, STRIDE)
    assert len(regions) == 2
    assert regions[0].polygon[:, 1].mean() < regions[1].polygon[:, 1].mean()   # top to bottom
    for t, r in zip(truth, regions):
        assert polygon_iou(t, r.polygon) > 0.75
        assert np.abs(r.polygon - t).max() < 10        # same corners, same order
        assert r.score == pytest.approx(1.0)


def test_postprocessing_drops_weak_and_tiny_regions():
    prob = np.zeros((96, 160), np.float32)
    prob[10:14, 10:60] = 0.35         # above bin_threshold, below box_threshold
    prob[50, 50] = 0.9                # a single pixel: smaller than min_area
    params = DetectorParams(bin_threshold=0.3, box_threshold=0.5, unclip_ratio=0.3,
                            min_area=100.0)
    assert regions_from_map(prob, FRAME, params, STRIDE) == []


def test_order_quad_reads_along_the_long_side():
    quad = _rotated(100, 100, 120, 30, 20)       # clockwise-tilted line
    tl, tr, br, bl = quad
    assert tl[0] < tr[0] and bl[0] < br[0]
    assert np.linalg.norm(tr - tl) > np.linalg.norm(bl - tl)
    for shift in range(4):
        assert np.allclose(order_quad(np.roll(quad, shift, axis=0)), quad)


def test_crop_line_is_upright_with_the_right_aspect():
    upright = np.full((40, 200, 3), 230, np.uint8)
    upright[:, :100] = 20                         # dark left half: the start of the line
    quad = np.float32([[300, 150], [480, 210], [466, 252], [286, 192]])   # skewed, tilted
    src = np.float32([[0, 0], [200, 0], [200, 40], [0, 40]])
    frame = np.full((360, 640, 3), 128, np.uint8)
    warped = cv2.warpPerspective(upright, cv2.getPerspectiveTransform(src, quad), (640, 360))
    mask = cv2.warpPerspective(np.ones((40, 200), np.uint8), cv2.getPerspectiveTransform(src, quad),
                               (640, 360)).astype(bool)
    frame[mask] = warped[mask]
    crop = crop_line(frame, quad, pad_x=0.3, pad_y=0.2)
    h, w = crop.shape[:2]
    width = (np.linalg.norm(quad[1] - quad[0]) + np.linalg.norm(quad[2] - quad[3])) / 2
    tall = (np.linalg.norm(quad[3] - quad[0]) + np.linalg.norm(quad[2] - quad[1])) / 2
    assert w / h == pytest.approx((width + 0.6 * tall) / (1.4 * tall), rel=0.05)
    inner = crop[h // 4:3 * h // 4]
    assert inner[:, w // 8:3 * w // 8].mean() < 60 and inner[:, 5 * w // 8:7 * w // 8].mean() > 180
    assert crop_line(frame, quad, height=32).shape[0] == 32


@pytest.mark.slow
def test_int8_model_finds_the_lines_of_held_out_scenes():
    """Tolerance: over 8 held-out scenes (unseen fonts and backgrounds), at least 70 % of
    the lines are found at IoU >= 0.5 and at least 70 % of the detections are lines
    (the model card's Hmean on 300 such scenes is about 0.8)."""
    detector = Detector(_version().artifact, num_threads=2,
                        params=DetectorParams(**_version().manifest["postprocessing"]["params"]))
    truth_n = found_n = matched = 0
    for index in range(8):
        scene = dd.scene_for(555, index, "test")
        truth = [line.polygon for line in scene.lines]
        regions = detector.detect(scene.image)
        matched += len(match_polygons(truth, [r.polygon for r in regions]))
        truth_n, found_n = truth_n + len(truth), found_n + len(regions)
    assert truth_n >= 6
    assert matched / truth_n >= 0.7 and matched / max(found_n, 1) >= 0.7


def test_golden_scenes_pass():
    from device.modelstore.golden import run_golden
    results = run_golden(_version(), "auto")
    assert len(results) >= 3 and all(r.passed for r in results), results


def test_ocr_json_shape_and_unreadable_files(tmp_path, capsys):
    golden = _version().directory / _version().manifest["golden"][0]["input"]
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    code = main(["ocr", str(golden), str(broken), str(tmp_path / "missing.jpg"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [r["path"] for r in out] == [str(golden), str(broken), str(tmp_path / "missing.jpg")]
    good = out[0]
    assert set(good) == {"path", "lines", "timings_ms"}
    assert set(good["timings_ms"]) == {"detect", "recognize", "total"}
    assert len(good["lines"]) >= 2
    for line in good["lines"]:
        assert {"polygon", "text", "confidence"} <= set(line)
        assert np.array(line["polygon"]).shape == (4, 2)
    for bad in out[1:]:
        assert set(bad) == {"path", "error"} and "cannot read" in bad["error"]


def test_manifest_matches_the_files():
    version = _version()
    assert version.task == "text-detection"
    assert version.check_files() == []
    # every operating resolution the manifest offers is a file of the version (2.x ships no
    # fp32 reference: updates carry only what the glasses run)
    for name in version.manifest.get("resolutions", {}).values():
        assert version.file(name).is_file()


def test_config_defaults_are_the_tuned_postprocessing_of_the_active_model():
    from device import config
    from device.stages.detector import params_for
    from dataclasses import asdict
    tuned = _version().manifest["postprocessing"]["params"]
    assert asdict(params_for(_version().manifest, config.defaults().detector)) == tuned
    changed = config.build({"detector": {"box_threshold": 0.33}}, config.defaults_schema()).detector
    assert asdict(params_for(_version().manifest, changed)) == {**tuned, "box_threshold": 0.33}


def test_ocr_all_keeps_lines_read_as_nothing_and_the_default_drops_them():
    """`edgelens ocr --all` (min_confidence 0) keeps every region read, even as nothing; the
    threshold drops them (read_regions, shared with translate-image and the OCR bench)."""
    from device.commands.ocr import ocr_image

    class ReadsNothing:                  # the seam: a recognizer that reads every crop as ""
        def read(self, crop):
            return LineReading(text="", confidence=0.0)

    class OneRegion:
        def detect(self, image):
            return [TextRegion(np.float32([[10, 10], [150, 10], [150, 40], [10, 40]]), 0.9)]

    image = np.zeros((100, 200, 3), np.uint8)
    region = OneRegion().detect(image)[0]
    assert read_regions(ReadsNothing(), image, [region], 0.0) == []
    assert [r for r, _ in read_regions(ReadsNothing(), image, [region], 0.0,
                                       keep_empty=True)] == [region]
    assert [line["text"] for line in
            ocr_image(OneRegion(), ReadsNothing(), image, 0.0)["lines"]] == [""]
    assert ocr_image(OneRegion(), ReadsNothing(), image, 0.5)["lines"] == []


def test_int8_input_by_lookup_table_is_the_quantized_float_input():
    from device.runtime import quantize
    detector = Detector(_version().artifact, backend="litert", num_threads=1)
    spec = detector.model.inputs[0]
    assert spec.quantized
    frame = np.random.default_rng(3).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    x = detector.preprocess(frame)
    image = cv2.resize(frame, detector.input_size, interpolation=cv2.INTER_AREA)
    want = quantize(((image.astype(np.float32) - 127.5) / 127.5)[np.newaxis], spec)
    assert x.dtype == np.dtype(spec.dtype) and np.array_equal(x, want)
    # the runtime takes it as quantized: the same map as from the float input
    floats = ((image.astype(np.float32) - 127.5) / 127.5)[np.newaxis]
    assert np.array_equal(next(iter(detector.model.run(x).values())),
                          next(iter(detector.model.run(floats).values())))


def test_a_resolution_the_version_does_not_ship_runs_its_default_file_resized():
    """[detector] input_width/height beyond the shipped files: the default int8 file resized
    at load (fully convolutional), reading a golden frame as the same model run resized."""
    from dataclasses import replace
    from device import config
    from device.errors import ModelError
    from device.stages.detector import artifact_for
    version = _version()
    at = replace(config.defaults().detector, input_width=800, input_height=448)
    assert artifact_for(version, at) == (version.artifact, (800, 448))
    detector = Detector.for_version(version, at, backend="litert", num_threads=1)
    assert detector.input_size == (800, 448)
    own = Detector(version.artifact, backend="litert", num_threads=1)
    assert (detector.map_size[0] * own.input_size[0], detector.map_size[1] * own.input_size[1]) \
        == (own.map_size[0] * 800, own.map_size[1] * 448)
    frame = cv2.imread(str(version.directory / version.manifest["golden"][0]["input"]))
    resized = next(iter(own.model.run_resized(detector.preprocess(frame)).values()))
    assert np.array_equal(detector.probability_map(frame),
                          resized.reshape(detector.map_size[1], detector.map_size[0]))
    assert len(detector.detect(frame)) >= 2
    # a shipped resolution is its own file, at its own size
    shipped = next(iter(version.manifest.get("resolutions", {"x": None})))
    if "x" in shipped and shipped != "x":
        w, h = (int(v) for v in shipped.split("x"))
        path, size = artifact_for(version, replace(at, input_width=w, input_height=h))
        assert size is None and path == version.directory / version.manifest["resolutions"][shipped]
    for w, h in ((1000, 448), (800, 450), (32, 32), (3840, 2176)):
        with pytest.raises(ModelError, match="multiples of 32"):
            artifact_for(version, replace(at, input_width=w, input_height=h))


def test_every_detector_version_resizes_or_says_it_cannot():
    from dataclasses import replace
    from device import config
    from device.errors import ModelError
    at = replace(config.defaults().detector, input_width=800, input_height=448)
    outcomes = {}
    for name in STORE.versions("detector"):
        version = STORE.get("detector", name)
        try:
            detector = Detector.for_version(version, at, backend="litert", num_threads=1)
            outcomes[name] = detector.input_size
        except ModelError as exc:
            assert "cannot run at 800x448" in str(exc) and "input_width/height" in str(exc)
            outcomes[name] = "refused"
    from device.modelstore.store import version_key
    for name, outcome in outcomes.items():     # 3.0.1 made the graph free of fixed sizes
        assert outcome == ("refused" if version_key(name) < version_key("3.0.1") else (800, 448))
    assert {"2.0.0", "3.0.0", "3.0.3"} <= set(outcomes)


def _portrait_sign(width: int, height: int, size: int):
    """A portrait photo of a plate with three dark lines of bold text, and their boxes."""
    from PIL import Image, ImageDraw, ImageFont
    image = Image.new("RGB", (width, height), (70, 90, 110))
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", size)
    draw.rectangle([width * 0.08, height * 0.25, width * 0.92, height * 0.75],
                   fill=(240, 235, 220))
    truth = []
    for i, text in enumerate(("Notausgang", "Bitte freihalten", "Kein Zutritt")):
        x, y = width * 0.14, height * 0.3 + i * size * 2.2
        left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        draw.text((x, y), text, font=font, fill=(20, 20, 20))
        truth.append(np.float32([[left, top], [right, top], [right, bottom], [left, bottom]]))
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR), truth


def test_a_frame_of_another_shape_runs_at_its_own_shape():
    """keep_aspect: a 16:9 frame runs at the input's own size; a portrait or 4:3 one at its
    own shape with about as many pixels, sides multiples of 32; false: squeezed."""
    detector = Detector(_version().artifact, backend="litert", num_threads=1)
    assert detector.input_size == (640, 352)
    assert detector.input_size_for((360, 640, 3)) == (640, 352)
    assert detector.input_size_for((720, 1280)) == (640, 352)
    assert detector.input_size_for((640, 360, 3)) == (352, 640)
    assert detector.input_size_for((640, 480, 3)) == (416, 544)
    assert detector.input_size_for((3000, 4000, 3)) == (544, 416)
    assert detector.input_size_for((40, 4000, 3)) == (1920, 128)     # a strip: at the limits
    # a frame within 15 % of the input's shape runs at the input's own size, as set
    wide = Detector(_version().artifact, backend="litert", num_threads=1, input_size=(672, 352))
    assert wide.input_size_for((360, 640, 3)) == (672, 352)
    assert wide.input_size_for((480, 640, 3)) != (672, 352)
    squeezed = Detector(_version().artifact, backend="litert", num_threads=1, keep_aspect=False)
    assert squeezed.input_size_for((640, 360, 3)) == (640, 352)
    frame, _ = _portrait_sign(360, 640, 30)
    prob = detector.probability_map(frame)
    assert prob.shape == (640, 352)
    assert squeezed.probability_map(frame).shape == (352, 640)
    # the same map as the model resized at load to that size
    from dataclasses import replace
    from device import config
    at = replace(config.defaults().detector, input_width=352, input_height=640)
    loaded = Detector.for_version(_version(), at, backend="litert", num_threads=1)
    assert np.array_equal(prob, loaded.probability_map(frame))
    assert detector.input_size_for((360, 640)) == (640, 352)     # and back: its own file
    assert detector.probability_map(np.zeros((360, 640, 3), np.uint8)).shape == (352, 640)


def test_text_on_a_portrait_photo_is_found_at_its_own_shape_not_squeezed():
    """Squeezed into the 640x352 input, a 9:16 photo's lines come out flattened by 3.2x and
    the detector finds at most one as a line; at the photo's own shape it finds all three."""
    from dataclasses import replace
    from device import config
    version, at = _version(), config.defaults().detector     # with the version's own params
    kept, squeezed = (Detector.for_version(version, replace(at, keep_aspect=keep),
                                           backend="litert", num_threads=1)
                      for keep in (True, False))
    for width, height, size in ((360, 640, 30), (360, 640, 16), (720, 1280, 28)):   # 9:16
        frame, truth = _portrait_sign(width, height, size)
        found = [len(match_polygons(truth, [r.polygon for r in d.detect(frame)], 0.5))
                 for d in (kept, squeezed)]
        assert found[0] == 3 and found[1] <= 1, (width, height, found)
        for region in kept.detect(frame):   # in the photo's own coordinates
            assert (region.polygon[:, 0].max() <= width + 2
                    and region.polygon[:, 1].max() <= height + 2)


def test_a_detector_that_cannot_resize_squeezes_other_shapes():
    """Detector 2.x's graph has fixed sizes: a portrait frame is squeezed into its input, as
    before keep_aspect, and every later frame too."""
    version = STORE.get("detector", "2.0.0")
    detector = Detector(version.artifact, backend="litert", num_threads=1)
    frame, _ = _portrait_sign(360, 640, 30)
    prob = detector.probability_map(frame)
    assert prob.shape == (detector.map_size[1], detector.map_size[0])
    assert detector.input_size_for(frame.shape) == detector.input_size
    assert isinstance(detector.detect(frame), list)
