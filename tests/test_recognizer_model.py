"""The committed recognizer: int8 contract, golden crops read exactly, any width works."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.stages.charset import NUM_CLASSES
from device.stages.ctc import greedy_decode
from calibration.metrics import edit_distance
from device.modelstore.golden import run_golden
from device.modelstore.store import ModelStore
from device.runtime import TFLiteModel, available_backends
from device.stages.recognizer import Recognizer
from device.stages.text_line import prepare_line

ROOT = Path(__file__).resolve().parent.parent
STORE = ModelStore(ROOT / "models")


def downsample(version) -> int:
    """Input columns per output timestep: 4 (1.x/2.x) or 8 (3.x), as the manifest says."""
    outputs = version.manifest["signatures"]["serving_default"]["outputs"][0]["shape"]
    inputs = version.manifest["signatures"]["serving_default"]["inputs"][0]["shape"]
    return inputs[2] // outputs[-2]


@pytest.fixture(scope="module")
def version():
    if "recognizer" not in STORE.names():
        pytest.skip("no recognizer in the store yet")
    return STORE.get("recognizer")


def test_artifact_is_small_int8_with_the_runtime_contract(version):
    assert version.manifest["quantization"] in ("int8-full", "int8-dynamic")
    assert version.artifact.stat().st_size <= 2 * 1024 * 1024
    model = TFLiteModel(version.artifact, backend="auto")
    (inp,), (out,) = model.inputs, model.outputs
    height = Recognizer(version.artifact).line_height
    assert inp.shape == (1, height, 256, 1)
    # 1.x/2.x CRNNs: 32 px, a timestep per 4 columns; 3.x (PP-OCRv6 tiny's net): 48 px, 8
    assert out.shape[-1] == NUM_CLASSES and out.shape[-2] == 256 // {32: 4, 48: 8}[height]
    assert downsample(version) == {32: 4, 48: 8}[height]   # the manifest says the same
    if version.manifest["quantization"] == "int8-full":
        assert inp.dtype == out.dtype == "int8"
        assert inp.scale == pytest.approx(1 / 255) and inp.zero_point == -128
    else:   # int8 weights, float tensors at the edges
        assert inp.dtype == out.dtype == "float32"
    probs = model.run(np.full(inp.shape, 0.5, np.float32))[out.name]
    # softmax over the classes; each of the 121 int8 outputs rounds by up to half a step
    # (1/512), so their sum may sit up to ~0.12 below 1
    assert np.allclose(probs.sum(-1), 1.0, atol=0.12)


@pytest.mark.parametrize("backend", available_backends())
def test_int8_model_reads_its_golden_crops_exactly(version, backend):
    results = run_golden(version, backend)
    assert len(results) >= 6
    assert [r.got for r in results] == [r.expected for r in results]


@pytest.mark.parametrize("width", [128, 512])
def test_width_resized_int8_reads_what_the_float_reference_reads(version, width):
    int8 = TFLiteModel(version.artifact, backend="litert", num_threads=1)
    fp32 = TFLiteModel(version.file("recognizer_fp32.tflite"), backend="litert", num_threads=1)
    height = Recognizer(version.artifact).line_height
    agree = total = edits = chars = 0
    for case in version.manifest["golden"]:
        line = prepare_line(cv2.imread(str(version.directory / case["input"])), height)
        if line.shape[1] < width:
            line = np.pad(line, ((0, 0), (0, width - line.shape[1])), mode="edge")
        x = line[np.newaxis, :, :width, np.newaxis]
        q = next(iter(int8.run_resized(x).values()))
        f = next(iter(fp32.run_resized(x).values()))
        assert q.shape[-2] == width // downsample(version)
        read_q = greedy_decode(q.reshape(-1, NUM_CLASSES))[0]
        read_f = greedy_decode(f.reshape(-1, NUM_CLASSES))[0]
        edits += edit_distance(read_q, read_f)
        chars += max(len(read_f), 1)
        agree += int((q.argmax(-1) == f.argmax(-1)).sum())
        total += q.shape[-2]
    # nearly the same text (a letter may flip where a crop is cut mid-word); single
    # timesteps may also differ where blank and letter are close
    assert edits <= 0.03 * chars
    assert agree / total >= 0.95


def test_export_checked_keras_against_both_tflite_models_at_every_width(version):
    checks = version.manifest["accuracy"]["width_checks"]
    assert set(checks) == {"128", "256", "512"}
    for result in checks.values():
        assert result["fp32_max_abs_diff"] < 1e-3
        assert result["int8_argmax_agreement_pct"] >= 97


def test_manifest_reports_int8_within_half_a_point_of_fp32(version):
    accuracy = version.manifest["accuracy"]
    for backend, sets in accuracy["int8"].items():
        for name, scores in sets.items():
            assert scores["cer_pct"] <= accuracy["fp32"][backend][name]["cer_pct"] + 0.5, \
                json.dumps([backend, name])


def test_one_interpreter_resized_in_place_reads_as_fresh_ones_do_from_two_threads():
    from concurrent.futures import ThreadPoolExecutor
    version = STORE.get("recognizer")
    height = version.manifest["signatures"]["serving_default"]["inputs"][0]["shape"][1]
    rng = np.random.default_rng(5)
    inputs = [rng.random((1, height, w, 1)).astype(np.float32) for w in (96, 160, 256, 128)]
    want = [next(iter(TFLiteModel(version.artifact, backend="litert", num_threads=1)
                      .run_resized(x).values())) for x in inputs]
    model = TFLiteModel(version.artifact, backend="litert", num_threads=1)

    def read(order):
        return [(i, next(iter(model.run_resized(inputs[i]).values()))) for i in order]

    orders = [[0, 1, 2, 3, 1, 0] * 5, [3, 2, 1, 0, 2, 3] * 5]
    with ThreadPoolExecutor(2) as pool:
        for results in pool.map(read, orders):
            for i, got in results:
                assert np.array_equal(got, want[i])
