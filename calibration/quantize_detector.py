#!/usr/bin/env python
"""Convert trained detector weights to TFLite: fp32 and full-integer int8 (static batch 1).

    .venv/bin/python calibration/quantize_detector.py \
        --weights runs/detector/final.weights.h5 --out models/detector/1.0.0

First the BatchNorm statistics are re-estimated on those scenes ("precise BN", weights
untouched): the moving averages of a short CPU run lag behind the weights.
Int8 calibration uses 200 generated scenes (seed CALIB_SEED, training fonts and backgrounds,
never the held-out test scenes), preprocessed exactly like `device.stages.detector.Detector`.
Input and output tensors are int8; `device.runtime` (de)quantizes them from their own scales.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from calibration.training import detector_data as dd  # noqa: E402

INT8_NAME = "detector.tflite"
FP32_NAME = "detector_fp32.tflite"


def representative(images: np.ndarray):
    def gen():
        for image in images:
            yield [((image.astype(np.float32) - 127.5) / 127.5)[np.newaxis]]
    return gen


def convert(weights: Path, out: Path, calib_count: int = 200, workers: int = 2) -> None:
    import tensorflow as tf
    from calibration.training.detector_model import build, recalibrate_batchnorm

    images, _ = dd.cached(ROOT / "data" / "detector" / f"calib_{dd.CALIB_SEED}_{calib_count}.npz",
                          dd.CALIB_SEED, calib_count, "train", workers=workers)
    trained = build()
    trained.load_weights(str(weights))
    recalibrate_batchnorm(trained, images)
    model = build(batch_size=1)
    model.set_weights(trained.get_weights())
    out.mkdir(parents=True, exist_ok=True)

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    (out / FP32_NAME).write_bytes(converter.convert())
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative(images)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    (out / INT8_NAME).write_bytes(converter.convert())
    for name in (FP32_NAME, INT8_NAME):
        print(f"{out / name}: {(out / name).stat().st_size / 1024:.0f} KB")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=ROOT / "runs" / "detector" / "final.weights.h5")
    p.add_argument("--out", type=Path, default=ROOT / "models" / "detector" / "1.0.0")
    p.add_argument("--calib", type=int, default=200, help="representative scenes")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    convert(args.weights, args.out, args.calib, args.workers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
