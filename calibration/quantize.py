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
    time. For graphs whose activations lose too much in full-integer int8."""
    import tensorflow as tf
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


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
