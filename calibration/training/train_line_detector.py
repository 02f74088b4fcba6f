"""Train the 2.x text-line detector on real photos and generated scenes (CPU, fixed seed).

    .venv/bin/python scripts/train_line_detector.py            # full run (~45 min on 2 cores)
    .venv/bin/python scripts/train_line_detector.py --resume   # continue the last run
    .venv/bin/python scripts/train_line_detector.py --smoke    # a 1-minute check

Data: the 890 training photos of ICDAR 2015 (calibration.real_data; words grouped into lines,
`ignore` regions masked out of the loss), 60 % of them with 1-3 generated German sign plates
composited in (tight leading, pictograms and arrows beside the text that are not text,
borders, glare; calibration.training.line_detector_data.composite), and generated sign scenes
(calibration.training.detector_data, split 'train', with barcodes, stripes, tiles and other hard
negatives), all at the glasses' 640x360 frame size. Each step
takes random 320x320 crops at a random scale (0.6-1.6x: small and large text), with photometric
and blur augmentation (defocus, motion blur as a moving head makes it). Targets: shrunk
line kernels at 1/4 of the input. Loss: BCE with 3:1 hard-negative mining + dice, masked.
Checkpoints after every epoch into runs/line_detector/; final weights in final.weights.h5.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from calibration.training.line_detector_data import (
    CROP,
    SHRINK_RATIO,
    STRIDE,
    composite,
    load_data,
    sample_crop,
)

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", type=int, default=900, help="generated training scenes")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--steps", type=int, default=150, help="steps per epoch")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--width", type=int, default=24)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="scene generation processes")
    p.add_argument("--data", type=Path, default=ROOT / "data" / "line_detector")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "line_detector")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--teacher", action="store_true",
                   help="fine-tune PP-OCRv6 tiny's detector (calibration.training.ppocr_det, "
                        "Apache-2.0) from its weights: full-resolution map, DB shrink 0.4")
    p.add_argument("--relu", action="store_true",
                   help="with --teacher: ReLU instead of GELU in its feed-forward layers (all "
                        "of the int8 graph then runs in LiteRT's XNNPACK delegate)")
    p.add_argument("--init", type=Path, metavar="WEIGHTS",
                   help="with --teacher: start from these weights (e.g. an earlier "
                        "fine-tuning's final.weights.h5) instead of the teacher's")
    p.add_argument("--glass", type=float, default=0.0, metavar="P",
                   help="share of crops seen through glass: another training photo, mirrored "
                        "and defocused, laid over them (line_detector_data.reflect)")
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    if (args.relu or args.init) and not args.teacher:
        p.error("--relu and --init go with --teacher")
    return args


# --- training ----------------------------------------------------------------------------------

def main(argv=None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.scenes, args.epochs, args.steps = 16, 2, 5
        args.out = args.out.parent / (args.out.name + "_smoke")
    t0 = time.time()
    photos, synth = load_data(args.scenes, args.data, args.workers, smoke=args.smoke)
    print(f"data: {len(photos)} real photos, {len(synth)} generated scenes "
          f"({time.time() - t0:.0f} s)", flush=True)

    import tensorflow as tf

    # deferred: detector_model imports TensorFlow at module level (slow; not needed for --help)
    from calibration.training.detector_model import build_lines, epoch_checkpoints

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.keras.utils.set_random_seed(args.seed)
    if args.teacher:
        from calibration.training import ppocr_det
        model = ppocr_det.build(None, None, batch_size=None,
                                gelu="relu" if args.relu else "gelu")[0]
        if args.init:
            model.load_weights(str(args.init))
        stride, ratio = 1, ppocr_det.SHRINK_RATIO
    else:
        model = build_lines(width=args.width)
        stride, ratio = STRIDE, SHRINK_RATIO
    total = args.steps * args.epochs
    schedule = tf.keras.optimizers.schedules.CosineDecay(
        args.lr * 0.1, decay_steps=total, alpha=0.02, warmup_target=args.lr,
        warmup_steps=min(200, total // 10))
    optimizer = tf.keras.optimizers.Adam(schedule)
    epoch_var, manager = epoch_checkpoints(model, optimizer, args.out, 2, args.resume)

    @tf.function(input_signature=[tf.TensorSpec([None, CROP, CROP, 3], tf.uint8),
                                  tf.TensorSpec([None, CROP // stride, CROP // stride], tf.uint8),
                                  tf.TensorSpec([None, CROP // stride, CROP // stride], tf.float32)])
    def train_step(x, y, m):
        x = (tf.cast(x, tf.float32) - 127.5) / 127.5
        y = tf.cast(y, tf.float32)
        with tf.GradientTape() as tape:
            p = tf.clip_by_value(model(x, training=True)[..., 0], 1e-6, 1 - 1e-6)
            bce = -(y * tf.math.log(p) + (1 - y) * tf.math.log(1 - p)) * m
            pos = y * m
            n_pos = tf.reduce_sum(pos)
            neg_loss = tf.reshape(bce * (1 - y), [-1])
            n_neg = tf.cast(tf.minimum(tf.reduce_sum((1 - y) * m), 3 * n_pos + 64), tf.int32)
            hard = tf.math.top_k(neg_loss, k=n_neg).values
            balanced = (tf.reduce_sum(bce * pos) + tf.reduce_sum(hard)) / (
                n_pos + tf.cast(n_neg, tf.float32) + 1e-6)
            inter = tf.reduce_sum(p * y * m)
            union = tf.reduce_sum(p * m) + tf.reduce_sum(y * m)
            dice = 1 - (2 * inter + 1) / (union + 1)
            loss = balanced + dice
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    rng = np.random.default_rng(args.seed + int(epoch_var))
    for epoch in range(int(epoch_var), args.epochs):
        t_epoch, losses = time.time(), []
        for step in range(args.steps):
            batch = []
            for _ in range(args.batch):
                if rng.random() < 0.7:
                    frame, quads, ignore = photos[int(rng.integers(len(photos)))]
                    if rng.random() < 0.6:    # German sign plates with pictograms, glare
                        frame, quads, ignore = composite(frame, quads, ignore, rng,
                                                         plates=int(rng.integers(1, 4)))
                else:
                    frame, quads, ignore = synth[int(rng.integers(len(synth)))]
                glass = (photos[int(rng.integers(len(photos)))][0]
                         if args.glass and rng.random() < args.glass else None)
                batch.append(sample_crop(frame, quads, ignore, rng, stride, ratio, glass))
            x, y, m = (np.stack(v) for v in zip(*batch))
            losses.append(float(train_step(x, y, m)))
            if (step + 1) % 25 == 0:
                print(f"epoch {epoch + 1} step {step + 1}/{args.steps} "
                      f"loss {np.mean(losses[-25:]):.4f}", flush=True)
        epoch_var.assign(epoch + 1)
        manager.save(checkpoint_number=epoch + 1)
        record = {"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 4),
                  "seconds": round(time.time() - t_epoch, 1)}
        print(json.dumps(record), flush=True)
        with open(args.out / "history.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
    model.save_weights(str(args.out / "final.weights.h5"))
    (args.out / "run.json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()},
         "wall_seconds": round(time.time() - t0, 1), "tensorflow": tf.__version__,
         "parameters": int(model.count_params())}, indent=2))
    print(f"done in {time.time() - t0:.0f} s → {args.out / 'final.weights.h5'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
