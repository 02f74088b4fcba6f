"""Train the text detector on generated scenes (CPU, fixed seed, resumable).

    .venv/bin/python scripts/train_detector.py                 # full run (~30 min on 2 cores: 6000 scenes, 8 epochs)
    .venv/bin/python scripts/train_detector.py --resume        # continue the last run
    .venv/bin/python scripts/train_detector.py --smoke         # a 1-minute check

Scenes are generated once with a process pool into data/detector/ (reused by later runs);
checkpoints go to runs/detector/ after every epoch, and the final Keras weights to
runs/detector/final.weights.h5 (the input of calibration/quantize_detector.py).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from calibration.training import detector_data as dd

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", type=int, default=6000, help="training scenes")
    p.add_argument("--val", type=int, default=200, help="validation scenes (loss only)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=1234, help="TensorFlow / shuffling seed")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="scene generation processes")
    p.add_argument("--data", type=Path, default=ROOT / "data" / "detector")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "detector")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--smoke", action="store_true", help="tiny run to check the pipeline")
    return p.parse_args(argv)


def dice_bce(y, p):
    import tensorflow as tf
    eps = 1e-6
    bce = tf.reduce_mean(tf.keras.losses.binary_crossentropy(y, p))
    inter = tf.reduce_sum(y * p, axis=[1, 2, 3])
    union = tf.reduce_sum(y, axis=[1, 2, 3]) + tf.reduce_sum(p, axis=[1, 2, 3])
    dice = 1 - (2 * inter + eps) / (union + eps)
    return bce + tf.reduce_mean(dice)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.scenes, args.val, args.epochs = 64, 16, 2
        args.out = args.out.parent / (args.out.name + "_smoke")

    tag = "smoke" if args.smoke else "full"
    t0 = time.time()
    images, polys = dd.cached(args.data / f"train_{dd.TRAIN_SEED}_{args.scenes}.npz",
                              dd.TRAIN_SEED, args.scenes, "train", workers=args.workers)
    val_images, val_polys = dd.cached(args.data / f"val_{dd.VAL_SEED}_{args.val}.npz",
                                      dd.VAL_SEED, args.val, "train", workers=args.workers)
    targets = dd.target_maps(polys)[..., None]
    val_targets = dd.target_maps(val_polys)[..., None]
    print(f"data: {len(images)} train / {len(val_images)} val scenes, "
          f"{sum(len(p) for p in polys)} lines, kernel pixels {targets.mean():.3%} "
          f"({time.time() - t0:.0f} s)", flush=True)

    import tensorflow as tf
    from tqdm import tqdm

    # deferred: detector_model imports TensorFlow at module level (slow; not needed for --help)
    from calibration.training.detector_model import build, epoch_checkpoints

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.keras.utils.set_random_seed(args.seed)

    model = build()
    steps_per_epoch = len(images) // args.batch
    schedule = tf.keras.optimizers.schedules.CosineDecay(
        args.lr, decay_steps=steps_per_epoch * args.epochs, alpha=0.02,
        warmup_target=None)
    optimizer = tf.keras.optimizers.Adam(schedule)
    epoch_var, manager = epoch_checkpoints(model, optimizer, args.out, 3, args.resume)
    if not args.resume and manager.latest_checkpoint:
        print(f"note: starting over; older checkpoints in {args.out} are replaced", flush=True)

    def normalize(x):
        return (tf.cast(x, tf.float32) - 127.5) / 127.5

    @tf.function
    def train_step(x, y):
        x, y = normalize(x), tf.cast(y, tf.float32)
        flip = tf.random.uniform(()) < 0.5
        x = tf.cond(flip, lambda: tf.reverse(x, [2]), lambda: x)
        y = tf.cond(flip, lambda: tf.reverse(y, [2]), lambda: y)
        with tf.GradientTape() as tape:
            loss = dice_bce(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def val_step(x, y):
        p = model(normalize(x), training=False)
        y = tf.cast(y, tf.float32)
        hit = tf.cast(p > 0.3, tf.float32)
        return dice_bce(y, p), tf.reduce_sum(hit * y), tf.reduce_sum(hit), tf.reduce_sum(y)

    history = []
    rng = np.random.default_rng(args.seed)
    for _ in range(int(epoch_var)):           # keep the shuffle order of a resumed run
        rng.permutation(len(images))
    for epoch in range(int(epoch_var), args.epochs):
        order = rng.permutation(len(images))
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{args.epochs}", unit="step")
        running = None
        t_epoch = time.time()
        for step in bar:
            idx = np.sort(order[step * args.batch:(step + 1) * args.batch])
            loss = float(train_step(images[idx], targets[idx]))
            running = loss if running is None else 0.95 * running + 0.05 * loss
            bar.set_postfix(loss=f"{running:.4f}")
        bar.close()
        totals = np.zeros(4)
        for i in range(0, len(val_images), args.batch):
            totals += [float(v) * (1 if k else len(val_images[i:i + args.batch]))
                       for k, v in enumerate(val_step(val_images[i:i + args.batch],
                                                      val_targets[i:i + args.batch]))]
        val_loss = totals[0] / len(val_images)
        precision = totals[1] / max(totals[2], 1)
        recall = totals[1] / max(totals[3], 1)
        epoch_var.assign(epoch + 1)
        manager.save(checkpoint_number=epoch + 1)
        model.save_weights(str(args.out / f"epoch_{epoch + 1:02d}.weights.h5"))
        record = {"epoch": epoch + 1, "train_loss": round(running, 4),
                  "val_loss": round(val_loss, 4), "val_pixel_precision": round(precision, 4),
                  "val_pixel_recall": round(recall, 4),
                  "seconds": round(time.time() - t_epoch, 1)}
        history.append(record)
        print(json.dumps(record), flush=True)
        with open(args.out / "history.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
    model.save_weights(str(args.out / "final.weights.h5"))
    (args.out / "run.json").write_text(json.dumps(
        {"mode": tag, "args": {k: str(v) for k, v in vars(args).items()},
         "train_seed": dd.TRAIN_SEED, "wall_seconds": round(time.time() - t0, 1),
         "tensorflow": tf.__version__, "parameters": int(model.count_params())}, indent=2))
    print(f"done in {time.time() - t0:.0f} s → {args.out / 'final.weights.h5'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
