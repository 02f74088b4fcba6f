"""calibration.graph_rewrite rewrites a trained Keras graph into XNNPACK's int8 operations
without changing what it computes (training-side: needs the `train` extra's TensorFlow)."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from calibration import graph_rewrite  # noqa: E402

layers = tf.keras.layers


def _model():
    image = layers.Input((12, 16, 3), batch_size=1)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(image)
    pooled = layers.GlobalAveragePooling2D(keepdims=True)(x)
    gate = layers.ReLU(max_value=1.0)(layers.Rescaling(0.2, offset=0.5)(layers.Conv2D(8, 1)(pooled)))
    x = layers.Add()([x, layers.Multiply()([x, gate])])
    up = layers.UpSampling2D(2, interpolation="nearest")(x)
    x = layers.Conv2DTranspose(4, 2, strides=2)(layers.Conv2D(8, 1)(up))
    out = layers.Activation("sigmoid")(layers.Conv2DTranspose(1, 2, strides=2)(x))
    model = tf.keras.Model(image, out)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def test_the_rewritten_graph_computes_the_same_map_without_the_slow_operations():
    model = _model()
    fast = graph_rewrite.for_litert(model)
    assert fast.rewrites == {"transposed_convolutions": 2, "upsamplings": 1,
                             "hard_sigmoid_gates": 1}
    kinds = {type(layer) for layer in fast.layers}
    assert layers.Conv2DTranspose not in kinds and layers.UpSampling2D not in kinds
    assert not any(type(layer) is layers.ReLU and layer.max_value == 1.0 for layer in fast.layers)
    x = np.random.default_rng(1).uniform(-1, 1, (1, 12, 16, 3)).astype(np.float32)
    want, got = model(x).numpy(), fast(x).numpy()
    assert got.shape == want.shape == (1, 96, 128, 1)
    np.testing.assert_allclose(got, want, atol=1e-5)
    # the gate's input range matters: check saturated gates (both ends) too
    np.testing.assert_allclose(fast(x * 40).numpy(), model(x * 40).numpy(), atol=1e-5)


def test_a_layer_used_twice_is_refused():
    image = layers.Input((8, 8, 2), batch_size=1)
    conv = layers.Conv2D(2, 1)
    model = tf.keras.Model(image, conv(conv(image)))
    with pytest.raises(ValueError, match="more than once"):
        graph_rewrite.for_litert(model)


def test_dynamic_range_models_keep_depthwise_kernels_in_float():
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    from calibration import quantize
    from device.runtime import TFLiteModel

    image = layers.Input((8, 32, 160), batch_size=1)
    x = layers.DepthwiseConv2D(3, padding="same")(image)      # 1440 weights: quantized
    out = layers.Conv2D(64, 1)(x)
    model = tf.keras.Model(image, out)
    data = quantize.to_dynamic(model)
    flat = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    graph = flat.subgraphs[0]
    kinds = {flatbuffer_utils.opcode_to_name(flat, op.opcodeIndex):
             graph.tensors[op.inputs[1]].type for op in graph.operators
             if flatbuffer_utils.opcode_to_name(flat, op.opcodeIndex) in
             ("DEPTHWISE_CONV_2D", "CONV_2D")}
    assert kinds == {"DEPTHWISE_CONV_2D": schema.TensorType.FLOAT32,
                     "CONV_2D": schema.TensorType.INT8}
    x = np.random.default_rng(2).uniform(-1, 1, (1, 8, 32, 160)).astype(np.float32)
    got = next(iter(TFLiteModel("dynamic.tflite", backend="litert", content=data)
                    .run(x).values()))
    np.testing.assert_allclose(got, model(x).numpy(), atol=0.05 * float(np.abs(got).max()))
