"""Exact rewrites of a trained Keras graph into operations that LiteRT's XNNPACK delegate runs
in int8, applied before conversion (training keeps the original graph and its weights).

An operation XNNPACK does not take runs on TFLite's single-threaded reference kernels and
cuts the graph into separate delegate partitions. Three kinds in PP-OCR's detector, each
replaced by operations that compute the same function (float outputs agree to rounding):

- a transposed convolution with kernel = stride (k x k, valid): a 1x1 convolution to k²·C_out
  channels, then depth_to_space(k) (out[k·h+a, k·w+b, o] = Σ_c x[h, w, c]·K[a, b, o, c]);
  XNNPACK's int8 transposed convolution to one channel at full resolution is slow;
- nearest upsampling by an integer k: k² copies of the channels, then depth_to_space(k);
- a hard-sigmoid gate (convolution → Rescaling(a, b) → ReLU(max 1), as
  `calibration.training.onnx_keras` writes ONNX's HardSigmoid): the convolution scaled by
  6a (bias 6a·bias + 6b), ReLU6, times 1/6 — LiteRT fuses ReLU6 into the convolution.

    model = for_litert(model)    # then calibration.quantize.to_int8(model, ...)
"""

from __future__ import annotations

import numpy as np


def _sources(layer) -> list:
    node = layer.inbound_nodes[0]
    found = node.inbound_layers
    return list(found) if isinstance(found, (list, tuple)) else [found]


def _hard_sigmoid_conv(layer, layers):
    """(conv, a, b) when `layer` is ReLU(max 1) ← Rescaling(a, b) ← a Conv2D used once."""
    if type(layer) is not layers.ReLU or layer.max_value != 1.0 or layer.threshold != 0.0 or \
            float(layer.negative_slope) != 0.0:
        return None
    scale = _sources(layer)[0]
    if type(scale) is not layers.Rescaling or len(scale.outbound_nodes) != 1:
        return None
    conv = _sources(scale)[0]
    if type(conv) is not layers.Conv2D or len(conv.outbound_nodes) != 1 or \
            conv.activation.__name__ != "linear" or not conv.use_bias or \
            tuple(conv.dilation_rate) != (1, 1) or conv.groups != 1:
        return None
    return conv, float(scale.scale), float(scale.offset)


def for_litert(model):
    """The same function as `model` (a single-input functional Keras model whose layers are
    each used once), with the rewrites above. The layers it does not rewrite are shared with
    `model` (applied again), so `model` cannot be rewritten a second time: rebuild it."""
    import tensorflow as tf
    from tensorflow.keras import layers

    def depth_to_space(x, k):
        return tf.nn.depth_to_space(x, k)

    if len(model.inputs) != 1:
        raise ValueError("for_litert: a single-input model only")
    first = model.layers[0]
    image = layers.Input(model.inputs[0].shape[1:], batch_size=model.inputs[0].shape[0],
                         name=first.name)
    shared = [layer.name for layer in model.layers[1:] if len(layer.inbound_nodes) != 1]
    if shared:
        raise ValueError(f"for_litert: layers used more than once: {shared}")
    # found before rebuilding: applying a layer again adds nodes to it
    gates = {layer.name: _hard_sigmoid_conv(layer, layers) for layer in model.layers[1:]}
    out = {first.name: image}
    pending = []                      # (new layer, weights) set once the graph is built
    count = {"transposed_convolutions": 0, "upsamplings": 0, "hard_sigmoid_gates": 0}
    for layer in model.layers[1:]:
        inputs = [out[s.name] for s in _sources(layer)]
        x = inputs[0]
        gate = gates[layer.name]
        if type(layer) is layers.Conv2DTranspose and layer.padding == "valid" and \
                tuple(layer.kernel_size) == tuple(layer.strides) and \
                layer.kernel_size[0] == layer.kernel_size[1] and \
                layer.activation.__name__ == "linear" and layer.use_bias and \
                layer.output_padding is None and tuple(layer.dilation_rate) == (1, 1):
            kernel, bias = layer.get_weights()            # [k, k, out, in]
            k, _, c_out, c_in = kernel.shape
            conv = layers.Conv2D(k * k * c_out, 1, name=f"{layer.name}_as_conv")
            y = conv(x)
            pending.append((conv, [kernel.transpose(3, 0, 1, 2).reshape(1, 1, c_in, -1),
                                   np.tile(bias, k * k)]))
            out[layer.name] = depth_to_space(y, k)
            count["transposed_convolutions"] += 1
        elif type(layer) is layers.UpSampling2D and layer.interpolation == "nearest" and \
                layer.size[0] == layer.size[1]:
            k = int(layer.size[0])
            out[layer.name] = depth_to_space(layers.Concatenate(axis=-1)([x] * (k * k)), k)
            count["upsamplings"] += 1
        elif gate is not None:
            conv, a, b = gate
            kernel, bias = conv.get_weights()
            scaled = layers.Conv2D(kernel.shape[-1], conv.kernel_size, strides=conv.strides,
                                   padding=conv.padding, name=f"{conv.name}_relu6")
            y = scaled(out[_sources(conv)[0].name])
            pending.append((scaled, [kernel * (6 * a), bias * (6 * a) + 6 * b]))
            out[layer.name] = layers.Rescaling(1.0 / 6.0)(layers.ReLU(max_value=6.0)(y))
            count["hard_sigmoid_gates"] += 1
        else:
            out[layer.name] = layer(inputs if len(inputs) > 1 else x)
    outputs = [out[name] for name in model.output_names]
    result = tf.keras.Model(image, outputs if len(outputs) > 1 else outputs[0],
                            name=f"{model.name}_litert")
    for layer, weights in pending:
        layer.set_weights([w.astype(np.float32) for w in weights])
    result.rewrites = count
    return result
