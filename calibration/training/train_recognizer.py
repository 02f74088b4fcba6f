"""Train the CTC line recognizer from cached synthetic lines; checkpoints to runs/recognizer/.

    .venv/bin/python scripts/train_recognizer.py            # full run (renders the cache first)
    .venv/bin/python scripts/train_recognizer.py --resume   # continue from the last epoch
    .venv/bin/python scripts/train_recognizer.py --smoke    # 2-minute check of the whole loop

With `--teacher-weight` > 0 the real lines also learn from PP-OCRv6 small's recognizer
(calibration.training.recognizer_teacher): the loss of a real line is its CTC loss plus that
weight times the KL divergence of our per-column class distribution from the teacher's, summed
over the columns (distillation; the teacher's targets are computed once, beside the real cache,
for all real lines: with `--smoke` too, so a first smoke run with a teacher takes minutes).

An epoch is `--epoch-lines` lines drawn in turn from the cache (not a full pass), so that a
checkpoint is written every few minutes on a 2-core CPU. Lines are rendered once into
data/recognizer/ and reused: rendering costs ~4 ms of CPU per line, about as much as a
training step per line (~105-170 lines/s on 2 cores), so on-the-fly generation would halve
training throughput; a 30 % polarity flip adds variety to the reused lines for free.
Resuming restores the weights and the epoch (not Adam's moments); a larger `--epochs` or
`--lines` on resume continues on a new cosine schedule (a warm restart).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from calibration import real_data
from calibration.training import recognizer_model
from calibration.training.recognizer_data import (CACHE_DIR, CacheSpec, build_cache,
                                                  height_tag, load_cache)
from device.stages.charset import NUM_CLASSES, encode

log = logging.getLogger("train_recognizer")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", default="runs/recognizer", help="checkpoint / log folder")
    p.add_argument("--lines", type=int, default=200_000, help="cached training lines")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--epoch-lines", type=int, default=40_000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (cosine decay)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.weights.h5")
    p.add_argument("--smoke", action="store_true", help="tiny run: 1 chunk, 2 short epochs")
    p.add_argument("--arch", default="medium",
                   help="calibration.training.recognizer_model.ARCHS key, or ppocr-tiny: "
                        "PP-OCRv6 tiny's recognizer, starting from its weights")
    p.add_argument("--scene-fraction", type=float, default=0.2,
                   help="share of synthetic lines rendered as camera scene text")
    p.add_argument("--real-copies", type=int, default=0,
                   help="jittered crops per real word/line of the ICDAR 2015 training photos "
                        "(calibration.real_data; 0: synthetic lines only)")
    p.add_argument("--real-bbox-copies", type=int, default=0,
                   help="more crops per real word cut as the data set cuts them (the "
                        "axis-aligned box of the unrectified quad)")
    p.add_argument("--teacher-weight", type=float, default=0.0,
                   help="weight of the KL divergence from PP-OCRv6 small's soft targets on the "
                        "real lines (0: CTC only; needs --real-copies and the bench extra)")
    return p.parse_args(argv)


def batches(lines, labels, order, batch_size, rng, soft=None, downsample: int = 8):
    """Width-bucketed batches over `order` (indices); each batch has one width. With `soft`
    (index -> teacher targets [W / 8, C], for the lines that have them) a batch also carries
    the targets (zeros elsewhere) and which lines have them."""
    by_width: dict[int, list[int]] = {}
    for i in order:
        by_width.setdefault(lines[i].shape[1], []).append(i)
    plan = []
    for width, idx in by_width.items():
        for start in range(0, len(idx), batch_size):
            chunk = idx[start:start + batch_size]
            if len(chunk) >= max(4, batch_size // 4):
                plan.append(chunk)
    rng.shuffle(plan)
    for chunk in plan:
        x = np.stack([lines[i] for i in chunk]).astype(np.float32)[..., None] / 255.0
        # polarity flip: prepare_line's percentile stretch is symmetric, so 1 - x is exactly
        # the prepared line of the inverted crop (light text on dark <-> dark on light)
        flip = rng.random(len(chunk)) < 0.3
        x[flip] = 1.0 - x[flip]
        lengths = np.array([len(labels[i]) for i in chunk], np.int32)
        y = np.zeros((len(chunk), max(lengths.max(), 1)), np.int32)
        for row, i in enumerate(chunk):
            y[row, :len(labels[i])] = labels[i]
        if soft is None:
            yield x, y, lengths
            continue
        targets = np.zeros((len(chunk), lines[chunk[0]].shape[1] // downsample, NUM_CLASSES),
                           np.float32)
        taught = np.zeros(len(chunk), np.float32)
        for row, i in enumerate(chunk):
            if i in soft:
                targets[row], taught[row] = soft[i], 1.0
        yield x, y, lengths, targets, taught


def real_cache_path(copies: int, bbox_copies: int = 0,
                    arch: str = recognizer_model.DEFAULT_ARCH) -> Path:
    height, _downsample = recognizer_model.geometry(arch)
    suffix = f"_b{bbox_copies}" if bbox_copies else ""
    return CACHE_DIR / f"real_train{height_tag(height)}_c{copies}{suffix}.npz"


def real_cache(copies: int, bbox_copies: int = 0,
               arch: str = recognizer_model.DEFAULT_ARCH) -> tuple[list[np.ndarray], list[str]]:
    """Real training lines, cut once into data/recognizer/real_train[_h<H>]_c<copies>[_b<n>].npz."""
    height, downsample = recognizer_model.geometry(arch)
    path = real_cache_path(copies, bbox_copies, arch)
    if not path.exists():
        lines, texts = real_data.recognizer_lines(
            "train", copies=copies, bbox_copies=bbox_copies, line_height=height,
            downsample=downsample, progress=lambda k, n: log.info("real photos %d/%d", k, n))
        path.parent.mkdir(parents=True, exist_ok=True)
        widths = np.array([line.shape[1] for line in lines], np.int32)
        np.savez(path.with_suffix(".tmp.npz"), pixels=np.concatenate(lines, axis=1),
                 widths=widths, texts=np.array(texts, dtype=object).astype(str))
        path.with_suffix(".tmp.npz").rename(path)
    return load_cache([path])


def teacher_targets(args, real_lines: list[np.ndarray]) -> list[np.ndarray]:
    """PP-OCRv6 small's soft targets for the real lines, cached beside the real cache."""
    from calibration.training import recognizer_teacher
    cache = real_cache_path(args.real_copies, args.real_bbox_copies, args.arch)
    return recognizer_teacher.soft_targets(
        real_lines, cache.with_name(cache.stem + f"_teacher_{recognizer_teacher.SIZE}.npz"),
        threads=args.threads)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        args.lines, args.epochs, args.epoch_lines = 5000, 2, 1500
    if args.teacher_weight > 0 and not args.real_copies:
        raise SystemExit("--teacher-weight needs --real-copies (the teacher teaches on real lines)")
    if args.teacher_weight > 0 and args.arch != recognizer_model.TEACHER_ARCH:
        raise SystemExit("--teacher-weight needs --arch ppocr-tiny (the teacher's geometry)")

    t0 = time.monotonic()
    height, downsample = recognizer_model.geometry(args.arch)
    spec = CacheSpec(lines=args.lines, seed=args.seed, workers=2,
                     scene_fraction=args.scene_fraction, line_height=height,
                     downsample=downsample)
    paths = build_cache(spec, progress=lambda p: log.info("rendered %s", p))
    lines, texts = load_cache(paths)
    soft = None            # line index -> the teacher's targets (--teacher-weight)
    if args.real_copies:
        real_lines, real_texts = real_cache(args.real_copies, bbox_copies=args.real_bbox_copies,
                                            arch=args.arch)
        targets = teacher_targets(args, real_lines) if args.teacher_weight > 0 else None
        if args.smoke:     # the teacher's cache covers every real line, smoke or not
            real_lines, real_texts = real_lines[:2000], real_texts[:2000]
        log.info("%d real lines (ICDAR 2015 training photos) beside %d synthetic",
                 len(real_lines), len(lines))
        if targets is not None:
            soft = {len(lines) + k: t for k, t in enumerate(targets[:len(real_lines)])}
            log.info("teacher soft targets for %d real lines (weight %g)", len(soft),
                     args.teacher_weight)
        lines, texts = lines + real_lines, texts + real_texts
    labels = [encode(t) for t in texts]
    log.info("%d cached lines loaded in %.0f s", len(lines), time.monotonic() - t0)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from tqdm import tqdm

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.keras.utils.set_random_seed(args.seed)
    model = recognizer_model.build(softmax=False, arch=args.arch)

    steps_per_epoch = args.epoch_lines // args.batch
    total_steps = steps_per_epoch * args.epochs
    warmup = min(500, total_steps // 10)

    def lr_at(step):
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 1e-5 + 0.5 * (args.lr - 1e-5) * (1 + math.cos(math.pi * min(1.0, progress)))

    optimizer = tf.keras.optimizers.Adam(learning_rate=args.lr, clipnorm=5.0)
    state_path = out / "state.json"
    start_epoch = 0
    history = []
    if args.resume and state_path.exists():
        state = json.loads(state_path.read_text())
        start_epoch, history = state["epoch"], state.get("history", [])
        model.load_weights(out / "last.weights.h5")
        log.info("resumed after epoch %d", start_epoch)
    elif args.arch == recognizer_model.TEACHER_ARCH:
        from calibration.training import ppocr_rec
        log.info("initial weights from the teacher: %s", ppocr_rec.load_teacher(model))

    def ctc_loss(x, y, label_length):
        """(mean CTC loss of the batch, the model's logits [B, T, C])."""
        logits = model(x, training=True)[:, 0]                         # [B, T, C]
        logit_length = tf.fill([tf.shape(logits)[0]], tf.shape(logits)[1])
        sparse = tf.sparse.from_dense(y)  # labels are >= 1; 0 pads (and is the blank)
        loss = tf.reduce_mean(tf.nn.ctc_loss(
            labels=sparse, logits=logits, label_length=label_length,
            logit_length=logit_length, logits_time_major=False, blank_index=0))
        return loss, logits

    @tf.function(input_signature=[tf.TensorSpec([None, height, None, 1], tf.float32),
                                  tf.TensorSpec([None, None], tf.int32),
                                  tf.TensorSpec([None], tf.int32),
                                  tf.TensorSpec([], tf.float32)], reduce_retracing=True)
    def train_step(x, y, label_length, lr):
        optimizer.learning_rate.assign(lr)
        with tf.GradientTape() as tape:
            loss, _logits = ctc_loss(x, y, label_length)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function(input_signature=[tf.TensorSpec([None, height, None, 1], tf.float32),
                                  tf.TensorSpec([None, None], tf.int32),
                                  tf.TensorSpec([None], tf.int32),
                                  tf.TensorSpec([None, None, NUM_CLASSES], tf.float32),
                                  tf.TensorSpec([None], tf.float32),
                                  tf.TensorSpec([], tf.float32)], reduce_retracing=True)
    def distil_step(x, y, label_length, targets, taught, lr):
        """CTC + teacher_weight * KL(teacher || ours) summed over columns, for taught lines."""
        optimizer.learning_rate.assign(lr)
        with tf.GradientTape() as tape:
            loss, logits = ctc_loss(x, y, label_length)
            log_probs = tf.nn.log_softmax(logits, axis=-1)
            kl = tf.reduce_sum(targets * (tf.math.log(targets + 1e-8) - log_probs), axis=[1, 2])
            kl = tf.reduce_sum(kl * taught) / tf.cast(tf.shape(x)[0], tf.float32)
            loss = loss + args.teacher_weight * kl
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    rng = np.random.default_rng(args.seed)
    n = len(lines)
    perm = rng.permutation(n)
    step = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, args.epochs):
        start = (epoch * args.epoch_lines) % n
        order = np.take(perm, np.arange(start, start + args.epoch_lines), mode="wrap")
        epoch_rng = np.random.default_rng(args.seed * 1000 + epoch)
        losses = []
        bar = tqdm(batches(lines, labels, order, args.batch, epoch_rng, soft, downsample),
                   total=steps_per_epoch, desc=f"epoch {epoch + 1}/{args.epochs}",
                   mininterval=10, file=sys.stdout)
        for batch in bar:
            rate = np.float32(lr_at(step))
            loss = float(train_step(*batch, rate) if soft is None else distil_step(*batch, rate))
            if not math.isfinite(loss):
                log.warning("non-finite loss at step %d skipped", step)
                continue
            losses.append(loss)
            step += 1
            if len(losses) % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", lr=f"{lr_at(step):.2e}")
        model.save_weights(out / f"epoch{epoch + 1:02d}.weights.h5")
        model.save_weights(out / "last.weights.h5")
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)),
                        "elapsed_s": round(time.monotonic() - t0)})
        state_path.write_text(json.dumps({"epoch": epoch + 1, "step": step, "args": vars(args),
                                          "history": history}, indent=1))
        log.info("epoch %d: loss %.4f (%.0f s)", epoch + 1, np.mean(losses),
                 time.monotonic() - t0)
    log.info("training done in %.0f s", time.monotonic() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
