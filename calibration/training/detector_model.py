"""The detector network (TensorFlow/Keras; training and conversion only).

A small MobileNet-like encoder (depthwise-separable blocks down to 1/32) and an FPN-lite
decoder (nearest upsampling + 1x1 lateral adds) back to 1/2 of the input, ending in a
sigmoid probability map of text-line kernels. ReLU + BatchNorm fold into int8 convolutions.
"""

from __future__ import annotations

import tensorflow as tf

from device.stages.detector import INPUT_SIZE

L = tf.keras.layers


def _conv(x, filters, kernel=3, stride=1, name=None):
    x = L.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=name)(x)
    x = L.BatchNormalization(name=None if name is None else name + "_bn")(x)
    return L.ReLU()(x)


def _sep(x, filters, stride=1):
    x = L.DepthwiseConv2D(3, stride, padding="same", use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    return _conv(x, filters, 1)


def build(batch_size: int | None = None, width: int = 16) -> tf.keras.Model:
    w, h = INPUT_SIZE
    image = L.Input((h, w, 3), batch_size=batch_size, name="image")
    c1 = _sep(_conv(image, width, 3, 2), width)                    # 1/2
    c2 = _sep(_sep(c1, 2 * width, 2), 2 * width)                   # 1/4
    c3 = _sep(_sep(c2, 3 * width, 2), 3 * width)                   # 1/8
    c4 = _sep(_sep(_sep(c3, 4 * width, 2), 4 * width), 4 * width)  # 1/16
    c5 = _sep(_sep(c4, 6 * width, 2), 6 * width)                   # 1/32
    p = _conv(c5, 2 * width, 1)
    for lateral in (c4, c3, c2):
        p = L.Add()([L.UpSampling2D(2)(p), _conv(lateral, 2 * width, 1)])
        p = _sep(p, 2 * width)
    p = L.Add()([L.UpSampling2D(2)(p), _conv(c1, 2 * width, 1)])
    p = _sep(p, width)
    logits = L.Conv2D(1, 1, padding="same", name="logits")(p)
    prob = L.Activation("sigmoid", name="probability")(logits)
    return tf.keras.Model(image, prob, name="text_detector")


def recalibrate_batchnorm(model: tf.keras.Model, images, batch: int = 16,
                          batches: int = 40) -> None:
    """Re-estimate every BatchNorm's moving mean/variance as the plain average over `batches`
    batches of `images` (uint8 model inputs), weights untouched ("precise BN").

    The moving averages of a short, high-learning-rate run lag behind the weights; inference
    mode (and the converted model) then sees the wrong statistics.
    """
    layers = [layer for layer in model.layers if isinstance(layer, L.BatchNormalization)]
    saved = [layer.momentum for layer in layers]
    rng = tf.random.Generator.from_seed(0)
    n = len(images)
    for k in range(batches):
        for layer in layers:
            layer.momentum = k / (k + 1)
        idx = tf.sort(rng.uniform((batch,), 0, n, dtype=tf.int64))
        x = (tf.cast(tf.gather(images, idx), tf.float32) - 127.5) / 127.5
        model(x, training=True)
    for layer, momentum in zip(layers, saved):
        layer.momentum = momentum


def build_lines(input_hw: tuple[int | None, int | None] = (None, None),
                batch_size: int | None = None, width: int = 24) -> tf.keras.Model:
    """The 2.x detector: text-line kernels at 1/4 of the input, made for real camera frames.

    Fully convolutional (trained on crops, converted at each operating resolution). Two
    stride-2 steps before any wide layer keep the 640-px operating point cheap; an extra
    block at 1/8 and 1/16 and a wider FPN (48 channels) give the context real clutter needs
    (window grids, railings, foliage must stay non-text; lines with tight leading apart).
    """
    h, w = input_hw
    image = L.Input((h, w, 3), batch_size=batch_size, name="image")
    x = _conv(image, width, 3, 2)                                        # 1/2
    c2 = _sep(_sep(x, 2 * width, 2), 2 * width)                          # 1/4
    c3 = _sep(_sep(_sep(c2, 3 * width, 2), 3 * width), 3 * width)        # 1/8
    c4 = _sep(_sep(_sep(c3, 4 * width, 2), 4 * width), 4 * width)        # 1/16
    c5 = _sep(_sep(c4, 6 * width, 2), 6 * width)                         # 1/32
    f = 2 * width
    p = _conv(c5, f, 1)
    for lateral in (c4, c3, c2):
        p = L.Add()([L.UpSampling2D(2)(p), _conv(lateral, f, 1)])
        p = _sep(p, f)
    p = _sep(p, f)
    logits = L.Conv2D(1, 1, padding="same", name="logits")(p)
    prob = L.Activation("sigmoid", name="probability")(logits)
    return tf.keras.Model(image, prob, name="text_line_detector")


def epoch_checkpoints(model: tf.keras.Model, optimizer, out, keep: int, resume: bool
                      ) -> tuple[tf.Variable, tf.train.CheckpointManager]:
    """Per-epoch checkpoints of a detector training in `out`/ckpt (the newest `keep`): the
    epoch counter and its manager, restored from the newest checkpoint when `resume`."""
    epoch = tf.Variable(0, dtype=tf.int64, name="epoch")
    ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch)
    out.mkdir(parents=True, exist_ok=True)
    manager = tf.train.CheckpointManager(ckpt, str(out / "ckpt"), max_to_keep=keep)
    if resume and manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint)
        print(f"resumed from {manager.latest_checkpoint} (epoch {int(epoch)})", flush=True)
    return epoch, manager
