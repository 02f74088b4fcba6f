"""The line recognizer's Keras architecture (training side; TensorFlow imported lazily).

A fully convolutional CRNN-style network with a Conv1D-style head:

    [B, 32, W, 1] -> conv stack (height 32 -> 2, width W -> W/4)
                  -> valid (2, 1) conv collapses the height          [B, 1, W/4, C]
                  -> residual depthwise-separable 1xk convs, dilated  (context along the line)
                  -> 1x1 conv to NUM_CLASSES logits -> softmax        [B, 1, W/4, 121]

Nothing depends on W, so one converted model runs at any width the runtime resizes it to.
"""

from __future__ import annotations

from device.stages.charset import NUM_CLASSES
from device.stages.text_line import DOWNSAMPLE, LINE_HEIGHT

ARCHS = {
    # 1.0.0: 0.29 M parameters, trained on synthetic lines only
    "small": {"convs": (16, 48, 96, 128), "head": 192, "dilations": (1, 2, 4, 1)},
    # 2.0.0: about 3x the compute, for real camera text (blur, clutter, tiny glyphs)
    "medium": {"convs": (32, 64, 128, 192), "head": 256, "dilations": (1, 2, 4, 8, 1)},
}
DEFAULT_ARCH = "medium"
TEACHER_ARCH = "ppocr-tiny"
"""3.0.0: PP-OCRv6 tiny's recognizer rebuilt in Keras (calibration.training.ppocr_rec), its
weights the initial weights, fine-tuned to our charset and data."""


def geometry(arch: str) -> tuple[int, int]:
    """(input line height, input columns per output timestep) of an architecture."""
    if arch == TEACHER_ARCH:
        from calibration.training import ppocr_rec
        return ppocr_rec.HEIGHT, ppocr_rec.DOWNSAMPLE
    return LINE_HEIGHT, DOWNSAMPLE


def build(width: int | None = None, batch_size: int | None = None, softmax: bool = True,
          arch: str = DEFAULT_ARCH):
    """Keras model; `softmax=False` returns logits (for CTC training), same weights."""
    if arch == TEACHER_ARCH:
        from calibration.training import ppocr_rec
        return ppocr_rec.build(width, batch_size, softmax)
    import tensorflow as tf
    from tensorflow.keras import layers

    def conv(x, filters, kernel, name, padding="same"):
        x = layers.Conv2D(filters, kernel, padding=padding, use_bias=False, name=name)(x)
        x = layers.BatchNormalization(name=name + "_bn")(x)
        return layers.ReLU(name=name + "_relu")(x)

    def sep(x, filters, kernel, name, dilation=(1, 1)):
        x = layers.DepthwiseConv2D(kernel, padding="same", dilation_rate=dilation,
                                   use_bias=False, name=name + "_dw")(x)
        x = layers.BatchNormalization(name=name + "_dwbn")(x)
        x = layers.ReLU(name=name + "_dwrelu")(x)
        return conv(x, filters, 1, name + "_pw")

    spec = ARCHS[arch]
    c1, c2, c3, c4 = spec["convs"]
    head = spec["head"]
    inp = layers.Input((LINE_HEIGHT, width, 1), batch_size=batch_size, name="line")
    x = conv(inp, c1, 3, "c1")                        # 32 x W
    x = layers.MaxPool2D(2, name="p1")(x)             # 16 x W/2
    x = conv(x, c2, 3, "c2")
    x = layers.MaxPool2D(2, name="p2")(x)             # 8 x W/4
    x = conv(x, c3, 3, "c3")
    if arch != "small":
        x = sep(x, c3, 3, "c3b")
    x = layers.MaxPool2D((2, 1), name="p3")(x)        # 4 x W/4
    x = sep(x, c4, 3, "c4")
    x = layers.MaxPool2D((2, 1), name="p4")(x)        # 2 x W/4
    x = conv(x, head, (2, 1), "collapse", padding="valid")  # 1 x W/4
    for i, d in enumerate(spec["dilations"]):
        y = sep(x, head, (1, 5), f"h{i}", dilation=(1, d))
        x = layers.Add(name=f"h{i}_add")([x, y])
    x = layers.Dropout(0.1, name="drop")(x)
    logits = layers.Conv2D(NUM_CLASSES, 1, name="logits")(x)
    out = layers.Softmax(axis=-1, name="probs")(logits) if softmax else logits
    return tf.keras.Model(inp, out, name="recognizer")
