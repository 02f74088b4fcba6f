"""TFLite export of a Keras model: fp32, and full-integer int8 post-training quantization.

TensorFlow is imported inside the functions: importing this module costs nothing, and
runtime code (device/) never imports it.

    fp32 = to_fp32(model)
    int8 = to_int8(model, lambda: ([x] for x in calibration_batches))
"""

from __future__ import annotations

import os
from typing import Callable, Iterable

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

Representative = Callable[[], Iterable[list[np.ndarray]]]
FLOAT_OPS = ("DEPTHWISE_CONV_2D",)
"""Operations whose weights `to_dynamic` keeps in float (XNNPACK runs no hybrid kernel of them)."""


def to_fp32(model) -> bytes:
    """The float reference: the Keras graph as a float32 .tflite flatbuffer."""
    import tensorflow as tf
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def to_int8(model, representative: Representative, io_int8: bool = True) -> bytes:
    """Full-integer int8 (TFLITE_BUILTINS_INT8 only); int8 input/output unless `io_int8` is
    False. `representative()` yields lists of float32 arrays shaped like the model's inputs;
    use a few hundred realistic samples (random data gives misleading scales)."""
    import tensorflow as tf
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if io_int8:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def to_dynamic(model) -> bytes:
    """Dynamic-range int8: int8 weights; activations are quantized per operation at run
    time. For graphs whose activations lose too much in full-integer int8. XNNPACK has no
    dynamic-range depthwise convolution: those kernels go back to float (`float_weights`,
    FLOAT_OPS), so that the whole graph runs in the delegate."""
    import tensorflow as tf
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return float_weights(converter.convert(), FLOAT_OPS)


def float_weights(flatbuffer: bytes, ops: tuple[str, ...]) -> bytes:
    """The model with the int8 weights of every `ops` operation of a dynamic-range model
    turned back into float32 (each value times its channel's scale: the values the
    int8 kernel used), so the operation runs as a float one."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    for graph in model.subgraphs:
        for op in graph.operators:
            if flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) not in ops:
                continue
            weights = graph.tensors[op.inputs[1]]
            q = weights.quantization
            if weights.type != schema.TensorType.INT8 or q is None or q.scale is None:
                continue
            if any(z != 0 for z in (q.zeroPoint if q.zeroPoint is not None else [])) or \
                    sum(t.buffer == weights.buffer for g in model.subgraphs for t in g.tensors) > 1:
                raise ValueError("float_weights: an asymmetric or shared int8 weight tensor")
            values = np.frombuffer(bytes(model.buffers[weights.buffer].data), np.int8)
            values = values.reshape(weights.shape).astype(np.float32)
            shape = [1] * values.ndim
            shape[q.quantizedDimension if len(q.scale) > 1 else 0] = len(q.scale)
            values *= np.asarray(q.scale, np.float32).reshape(shape)
            model.buffers[weights.buffer].data = np.frombuffer(values.tobytes(), np.uint8)
            weights.type, weights.quantization = schema.TensorType.FLOAT32, None
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def fit_width(line: np.ndarray, width: int) -> np.ndarray:
    """A prepared [H, W] line cut or edge-padded to `width` columns (as prepare_line pads)."""
    if line.shape[1] >= width:
        return line[:, :width]
    return np.pad(line, ((0, 0), (0, width - line.shape[1])), mode="edge")


def line_representative(lines: list[np.ndarray], width: int) -> Representative:
    """Calibration samples [1, H, width, 1] from prepared float lines."""
    def gen():
        for line in lines:
            yield [fit_width(line, width)[np.newaxis, :, :, np.newaxis].astype(np.float32)]
    return gen
