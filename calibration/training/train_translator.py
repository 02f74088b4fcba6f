"""Train the German→English sign translator: one command, fixed seed, resumable.

    .venv/bin/python scripts/train_translator.py                 # data + tokenizer + train + export
    .venv/bin/python scripts/train_translator.py --smoke         # 60 steps, to check the pipeline
    .venv/bin/python scripts/train_translator.py --export-only   # SavedModel from the last checkpoint

Data: the ding dictionary (/usr/share/trans/de-en, GPL-2+) parsed by device.stages.translate.ding,
split by headword into data/translator/{train,val,test}.tsv. Tokenizer: one shared
SentencePiece unigram model over folded-lowercase German and lowercase English.
Model: a small pre-LN transformer (deep encoder, shallow decoder, tied embeddings).
Checkpoints in runs/translator/ckpt (resumed automatically); the export is a SavedModel with
two signatures, `encode` and `decode` (one step: encoder output + target prefix → logits),
which calibration/quantize_translator.py converts to TFLite.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from calibration.training import translator_data
from calibration.training.translator_data import target_text
from device.stages.translate import ding
from device.stages.translate.normalize import model_text

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "translator"
RUNS = ROOT / "runs" / "translator"
PAD, UNK, BOS, EOS = 0, 1, 2, 3
MAX_LEN = 24          # tokens per side incl. EOS (target: BOS + tokens)
BUCKETS = ((4, 320), (6, 224), (8, 160), (10, 128), (12, 112), (16, 80), (24, 56))  # (tokens, batch)
NEG = -30.0           # additive attention mask; small so int8 calibration keeps its range


# ----------------------------------------------------------------------------- data
def prepare_pairs() -> None:
    if (DATA / "test.tsv").exists():
        return
    DATA.mkdir(parents=True, exist_ok=True)
    print("parsing the dictionary ...", flush=True)
    splits = ding.split_pairs(ding.read_entries())
    for name, pairs in splits.items():
        with open(DATA / f"{name}.tsv", "w", encoding="utf-8") as handle:
            for p in pairs:
                refs = " ||| ".join(r.replace("\t", " ") for r in p.refs)
                handle.write(f"{p.de}\t{p.en}\t{refs}\t{p.kind}\n")
        print(f"  {name}: {len(pairs)} pairs", flush=True)


def read_tsv(name: str) -> list[tuple[str, str, list[str], str]]:
    rows = []
    with open(DATA / f"{name}.tsv", encoding="utf-8") as handle:
        for line in handle:
            de, en, refs, kind = line.rstrip("\n").split("\t")
            rows.append((de, en, refs.split(" ||| "), kind))
    return rows


def train_tokenizer(vocab_size: int, seed: int) -> Path:
    """The 1.x tokenizer over the dictionary's training split."""
    prefix = DATA / f"spm{vocab_size}"
    if Path(f"{prefix}.model").exists():
        return Path(f"{prefix}.model")
    pairs = [(de, en) for de, en, _, _ in read_tsv("train")]
    return translator_data.train_tokenizer(pairs, prefix, vocab_size, seed,
                                           sample_lines=600_000, dedupe=False)


def encode_split(sp, name: str) -> tuple[np.ndarray, np.ndarray]:
    rows = read_tsv(name)
    src = sp.encode([model_text(r[0]) for r in rows])
    tgt = sp.encode([target_text(r[1]) for r in rows])
    keep = [(s + [EOS], [BOS] + t + [EOS]) for s, t in zip(src, tgt)
            if len(s) + 1 <= MAX_LEN and len(t) + 1 <= MAX_LEN]
    return pad([k[0] for k in keep], MAX_LEN), pad([k[1] for k in keep], MAX_LEN + 1)


def pad(seqs: list[list[int]], width: int) -> np.ndarray:
    out = np.zeros((len(seqs), width), np.int32)
    for row, seq in enumerate(seqs):
        out[row, :len(seq)] = seq
    return out


def make_batches(src: np.ndarray, tgt: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Length-bucketed batches (views into the padded arrays) in a seeded order, so a
    resumed run sees the same order."""
    rng = np.random.RandomState(seed)
    lengths = np.maximum((src != PAD).sum(1), (tgt != PAD).sum(1) - 1)
    batches = []
    lower = 0
    for upper, size in BUCKETS:
        idx = np.where((lengths > lower) & (lengths <= upper))[0]
        rng.shuffle(idx)
        for start in range(0, len(idx), size):
            chunk = idx[start:start + size]
            batches.append((src[chunk, :upper], tgt[chunk, :upper + 1]))
        lower = upper
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


# ---------------------------------------------------------------------------- model
def build_model(tf, cfg: dict):
    d, heads, ff, vocab, rate = cfg["d"], cfg["heads"], cfg["ff"], cfg["vocab"], cfg["dropout"]
    layers = tf.keras.layers

    def positional(length: int) -> np.ndarray:
        pos = np.arange(length)[:, None]
        dim = np.arange(d // 2)[None, :]
        angle = pos / np.power(10000.0, 2 * dim / d)
        return np.concatenate([np.sin(angle), np.cos(angle)], -1).astype(np.float32)

    class Attention(layers.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.q, self.k = layers.Dense(d, name="q"), layers.Dense(d, name="k")
            self.v, self.o = layers.Dense(d, name="v"), layers.Dense(d, name="o")
            self.drop = layers.Dropout(rate)

        def split(self, x):
            shape = tf.shape(x)
            x = tf.reshape(x, [shape[0], shape[1], heads, d // heads])
            return tf.transpose(x, [0, 2, 1, 3])

        def call(self, x, memory, bias, training=False):
            q, k, v = self.split(self.q(x)), self.split(self.k(memory)), self.split(self.v(memory))
            scores = tf.matmul(q, k, transpose_b=True) * (1.0 / math.sqrt(d // heads)) + bias
            weights = self.drop(tf.nn.softmax(scores, axis=-1), training=training)
            out = tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3])
            shape = tf.shape(out)
            return self.o(tf.reshape(out, [shape[0], shape[1], d]))

    class Block(layers.Layer):
        def __init__(self, cross: bool, **kw):
            super().__init__(**kw)
            self.ln1, self.self_att = layers.LayerNormalization(epsilon=1e-6), Attention(name="self")
            self.cross = cross
            if cross:
                self.ln2, self.cross_att = layers.LayerNormalization(epsilon=1e-6), Attention(name="cross")
            self.ln3 = layers.LayerNormalization(epsilon=1e-6)
            self.ff1, self.ff2 = layers.Dense(ff, activation="relu"), layers.Dense(d)
            self.drop = layers.Dropout(rate)

        def call(self, x, self_bias, memory=None, cross_bias=None, training=False):
            h = self.ln1(x)
            x = x + self.drop(self.self_att(h, h, self_bias, training), training=training)
            if self.cross:
                h = self.ln2(x)
                x = x + self.drop(self.cross_att(h, memory, cross_bias, training), training=training)
            h = self.ff2(self.drop(self.ff1(self.ln3(x)), training=training))
            return x + self.drop(h, training=training)

    class Translator(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.embed = self.add_weight("embed", [vocab, d], initializer=tf.keras.initializers.RandomNormal(0, d ** -0.5))
            self.out_bias = self.add_weight("out_bias", [vocab], initializer="zeros")
            self.pos = tf.constant(positional(MAX_LEN + 1))
            self.enc = [Block(False, name=f"enc{i}") for i in range(cfg["enc_layers"])]
            self.dec = [Block(True, name=f"dec{i}") for i in range(cfg["dec_layers"])]
            self.enc_ln = layers.LayerNormalization(epsilon=1e-6)
            self.dec_ln = layers.LayerNormalization(epsilon=1e-6)
            self.drop = layers.Dropout(rate)

        def embed_ids(self, ids, training):
            length = tf.shape(ids)[1]
            x = tf.gather(self.embed, ids) * math.sqrt(d) + self.pos[:length]
            return self.drop(x, training=training)

        @staticmethod
        def src_bias(src):
            return (1.0 - tf.cast(tf.not_equal(src, PAD), tf.float32))[:, None, None, :] * NEG

        def encode(self, src, training=False):
            x, bias = self.embed_ids(src, training), self.src_bias(src)
            for block in self.enc:
                x = block(x, bias, training=training)
            return self.enc_ln(x)

        def decode(self, memory, src, tgt, training=False):
            length = tf.shape(tgt)[1]
            causal = (1.0 - tf.linalg.band_part(tf.ones([length, length]), -1, 0)) * NEG
            x, cross = self.embed_ids(tgt, training), self.src_bias(src)
            for block in self.dec:
                x = block(x, causal[None, None], memory, cross, training=training)
            return self.dec_ln(x)

        def logits(self, h):
            return tf.matmul(h, self.embed, transpose_b=True) + self.out_bias

        def call(self, inputs, training=False):
            src, tgt_in = inputs
            return self.logits(self.decode(self.encode(src, training), src, tgt_in, training))

    return Translator()


def built_model(tf, cfg: dict):
    """`build_model` with its weights made (one call on a dummy batch), ready to take a
    checkpoint or a list of weights."""
    model = build_model(tf, cfg)
    model((tf.zeros([1, 4], tf.int32), tf.zeros([1, 4], tf.int32)))
    return model


def export(tf, model, cfg: dict, path: Path) -> None:
    d = cfg["d"]

    class Exported(tf.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        @tf.function(input_signature=[tf.TensorSpec([1, MAX_LEN], tf.int32, name="src_ids")])
        def encode(self, src_ids):
            return {"enc_out": self.net.encode(src_ids, training=False)}

        @tf.function(input_signature=[
            tf.TensorSpec([1, MAX_LEN, d], tf.float32, name="enc_out"),
            tf.TensorSpec([1, MAX_LEN], tf.int32, name="src_ids"),
            tf.TensorSpec([1, MAX_LEN], tf.int32, name="tgt_ids"),
            tf.TensorSpec([1], tf.int32, name="step")])
        def decode(self, enc_out, src_ids, tgt_ids, step):
            h = self.net.decode(enc_out, src_ids, tgt_ids, training=False)
            pick = tf.one_hot(step, MAX_LEN, dtype=tf.float32)            # [1, T]
            last = tf.reduce_sum(h * pick[:, :, None], axis=1)              # [1, d]
            return {"logits": self.net.logits(last)}

    module = Exported(model)
    tf.saved_model.save(module, str(path),
                        signatures={"encode": module.encode, "decode": module.decode})


def import_weights(torch_run: Path, run_dir: Path, data: Path) -> int:
    """SavedModel (+ config.json, train_log.jsonl) in run_dir from torch-trained weights."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    info = json.loads((torch_run / "torch_run.json").read_text())
    tokenizer = next(data.resolve().glob("spm*.model"))
    phases, run = [], info       # the runs this one went on from (--init), first to last
    store = None                 # or the release whose weights the first run started from,
    keras_run = None             # or the Keras run whose checkpoint it started from
    while run:
        if "store_version" in run:                      # translator_weights.py's record
            store = run["store_version"]
        elif "keras_run" in run:                        # export_weights' record
            keras_run = run["keras_run"]
        else:
            phases.insert(0, {"data": run["args"]["data"], "steps": run["steps"],
                              "minutes": run["minutes"], "lr": float(run["args"]["lr"])})
        run = run.get("init_run")
    cfg = {**info["config"], "neg": NEG, "seed": int(info["args"]["seed"]),
           "steps": sum(p["steps"] for p in phases), "phases": phases, "init_store": store,
           "init_keras_run": keras_run,
           "tokenizer": str(tokenizer.relative_to(ROOT) if tokenizer.is_relative_to(ROOT)
                            else tokenizer),
           "tensorflow": tf.__version__, "trained_with": f"torch {info['torch']} on "
                                                        f"{info['device']}, "
                                                        f"{sum(p['minutes'] for p in phases):g} min"}
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(cfg, indent=2))
    model = built_model(tf, cfg)
    with np.load(torch_run / "keras_weights.npz") as z:
        weights = [z[f"arr_{i}"].astype(np.float32) for i in range(len(z.files))]
    model.set_weights(weights)
    with open(run_dir / "train_log.jsonl", "w", encoding="utf-8") as log:
        for record in info["history"]:
            log.write(json.dumps(record) + "\n")
    export(tf, model, cfg, run_dir / "saved_model")
    print(f"exported {run_dir / 'saved_model'} from {torch_run}")
    return 0


def export_weights(run_dir: Path, out: Path) -> int:
    """A Keras run's last checkpoint as translator_torch.py's starting point: out/keras_weights.npz
    (float16, Keras order) and out/torch_run.json naming the run, for a lent GPU to train on."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    cfg = json.loads((run_dir / "config.json").read_text())
    model = built_model(tf, cfg)
    latest = tf.train.latest_checkpoint(str(run_dir / "ckpt"))
    if latest is None:
        raise SystemExit(f"{run_dir / 'ckpt'} holds no checkpoint to export")
    step = tf.Variable(0, dtype=tf.int64)
    tf.train.Checkpoint(model=model, step=step).restore(latest).expect_partial()
    weights = model.get_weights()
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "keras_weights.npz", *[w.astype(np.float16) for w in weights])
    config = {k: cfg[k] for k in ("d", "ff", "heads", "enc_layers", "dec_layers", "vocab",
                                  "dropout")}
    record = {"config": {**config, "max_len": MAX_LEN}, "steps": int(step.numpy()), "epochs": 0,
              "minutes": 0, "device": "keras checkpoint", "torch": "-", "history": [],
              "keras_run": run_dir.as_posix(),
              "args": {"data": cfg.get("tokenizer", ""), "lr": "0", "seed": str(cfg["seed"])}}
    (out / "torch_run.json").write_text(json.dumps(record, indent=1))
    print(f"{len(weights)} tensors from {latest} (step {int(step.numpy())}) -> {out}")
    return 0


# ------------------------------------------------------------------------- training
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=12000, help="total optimizer steps")
    parser.add_argument("--max-minutes", type=float, default=0,
                        help="stop (and export) after this many minutes of this run; 0: no limit")
    parser.add_argument("--vocab", type=int, default=4000)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--ff", type=int, default=512)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--enc-layers", type=int, default=3)
    parser.add_argument("--dec-layers", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--run-dir", default=str(RUNS))
    parser.add_argument("--smoke", action="store_true", help="60 steps into runs/translator-smoke")
    parser.add_argument("--export-only", action="store_true")
    parser.add_argument("--prepare", action="store_true",
                        help="2.x data: Tatoeba + OSM names + sign register + dictionary, noised, "
                             "tokenized into --data DIR (default data/translator2/; "
                             "calibration.training.translator_data); "
                             "then train with --data data/translator2 here, or with "
                             "calibration/training/translator_torch.py (GPU) and --import-weights")
    parser.add_argument("--mix", choices=sorted(translator_data.MIXES), default="full",
                        help="with --prepare: the source mix (translator_data.MIXES)")
    parser.add_argument("--tokenizer", metavar="SPM_MODEL",
                        help="with --prepare: reuse this tokenizer (the one of the run to go on "
                             "from) instead of training one")
    parser.add_argument("--data", metavar="DIR",
                        help="train on DIR/arrays.npz and DIR/spm*.model (from --prepare) "
                             "instead of the dictionary split")
    parser.add_argument("--import-weights", metavar="TORCH_RUN",
                        help="export a SavedModel from calibration/training/translator_torch.py's "
                             "TORCH_RUN/keras_weights.npz (its torch_run.json gives the shape)")
    parser.add_argument("--export-weights", metavar="OUT",
                        help="write --run-dir's last checkpoint as OUT/keras_weights.npz for "
                             "calibration/training/translator_torch.py --init OUT (a lent GPU)")
    parser.add_argument("--init-from", metavar="RUN_DIR",
                        help="start a new run (its own schedule) from the weights of another "
                             "run's last checkpoint, or of a GPU run's keras_weights.npz (e.g. "
                             "to fine-tune a released model); --d/--ff/... must match it")
    args = parser.parse_args(argv)
    if args.prepare:
        prepare_pairs()          # the dictionary split (data/translator/) the mixes draw from
        out = Path(args.data or ROOT / "data" / "translator2")
        out.mkdir(parents=True, exist_ok=True)
        tokenizer = Path(args.tokenizer) if args.tokenizer else None
        command = "scripts/train_translator.py " + " ".join(sys.argv[1:] if argv is None else argv)
        print(json.dumps(translator_data.prepare(out, args.vocab, args.seed, args.mix, tokenizer,
                                                 command), indent=1))
        return 0
    if args.export_weights:
        return export_weights(Path(args.run_dir), Path(args.export_weights))
    if args.import_weights:
        return import_weights(Path(args.import_weights), Path(args.run_dir),
                              Path(args.data or ROOT / "data" / "translator2"))
    if args.smoke:
        args.steps, args.run_dir = 40, str(RUNS.parent / "translator-smoke")
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import sentencepiece as spm
    import tensorflow as tf
    from tqdm import tqdm
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.random.set_seed(args.seed)
    np.random.seed(args.seed)

    if args.data:
        arrays = np.load(Path(args.data) / "arrays.npz")
        sp_path = next(Path(args.data).resolve().glob("spm*.model"))
    else:
        prepare_pairs()
        sp_path = train_tokenizer(args.vocab, args.seed)
    sp = spm.SentencePieceProcessor(model_file=str(sp_path))
    cfg = {"d": args.d, "ff": args.ff, "heads": args.heads, "enc_layers": args.enc_layers,
           "dec_layers": args.dec_layers, "vocab": sp.get_piece_size(), "dropout": 0.1,
           "max_len": MAX_LEN, "neg": NEG, "seed": args.seed, "steps": args.steps,
           "tokenizer": str(sp_path.relative_to(ROOT)), "tensorflow": tf.__version__}
    (run_dir / "config.json").write_text(json.dumps(cfg, indent=2))
    with open(run_dir / "commands.log", "a", encoding="utf-8") as handle:   # resumes included
        handle.write("scripts/train_translator.py " + " ".join(sys.argv[1:]) + "\n")

    model = built_model(tf, cfg)
    print(f"parameters: {model.count_params():,}", flush=True)

    step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")

    class Schedule(tf.keras.optimizers.schedules.LearningRateSchedule):
        """Linear warmup, then cosine decay to 5 % of the peak at --steps."""

        def __call__(self, step):
            step = tf.cast(step, tf.float32)
            warm = step / args.warmup
            progress = tf.clip_by_value((step - args.warmup) / max(1, args.steps - args.warmup),
                                        0.0, 1.0)
            decay = 0.05 + 0.95 * 0.5 * (1 + tf.cos(math.pi * progress))
            return args.lr * tf.minimum(warm, decay)

        def get_config(self):
            return {}

    schedule = Schedule()
    optimizer = tf.keras.optimizers.Adam(schedule, beta_1=0.9, beta_2=0.98, epsilon=1e-9,
                                         clipnorm=1.0)
    ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step_var)
    manager = tf.train.CheckpointManager(ckpt, str(run_dir / "ckpt"), max_to_keep=2)
    offset_file = run_dir / "data_offset.txt"   # batches the source run already consumed
    if args.init_from and not manager.latest_checkpoint:
        source_dir = Path(args.init_from)
        if (source_dir / "keras_weights.npz").exists():   # a GPU run (translator_torch.py)
            with np.load(source_dir / "keras_weights.npz") as z:
                model.set_weights([z[f"arr_{i}"].astype(np.float32) for i in range(len(z.files))])
            offset_file.write_text("0")
            source = source_dir / "keras_weights.npz"
        else:
            source = tf.train.latest_checkpoint(str(source_dir / "ckpt"))
            source_step = tf.Variable(0, dtype=tf.int64)
            tf.train.Checkpoint(model=model, step=source_step).restore(source).expect_partial()
            offset_file.write_text(str(int(source_step.numpy())))
        print(f"initialized the weights from {source}", flush=True)
    data_offset = int(offset_file.read_text()) if offset_file.exists() else 0
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint)
        print(f"resumed from {manager.latest_checkpoint} at step {int(step_var.numpy())}",
              flush=True)

    if args.export_only:
        export(tf, model, cfg, run_dir / "saved_model")
        print(f"exported {run_dir / 'saved_model'}")
        return 0

    loss_fn = tf.keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1,
                                                      reduction="none")
    spec = tf.TensorSpec([None, None], tf.int32)

    def masked_loss(src, tgt, training):
        tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:]
        logits = model((src, tgt_in), training=training)
        mask = tf.cast(tf.not_equal(tgt_out, PAD), tf.float32)
        loss = loss_fn(tf.one_hot(tgt_out, cfg["vocab"]), logits)
        return tf.reduce_sum(loss * mask) / tf.reduce_sum(mask)

    @tf.function(input_signature=[spec, spec])
    def train_step(src, tgt):
        with tf.GradientTape() as tape:
            loss = masked_loss(src, tgt, True)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        step_var.assign_add(1)
        return loss

    @tf.function(input_signature=[spec, spec])
    def eval_step(src, tgt):
        return masked_loss(src, tgt, False)

    if args.data:
        train_src, train_tgt = (arrays[k].astype(np.int32) for k in ("train_src", "train_tgt"))
        val_src, val_tgt = (arrays[k].astype(np.int32) for k in ("val_src", "val_tgt"))
    else:
        train_src, train_tgt = encode_split(sp, "train")
        val_src, val_tgt = encode_split(sp, "val")
    val_batches = make_batches(val_src[:2000], val_tgt[:2000], args.seed)
    print(f"train pairs {len(train_src)}, val pairs {len(val_src)}", flush=True)
    epoch_batches: dict[int, list] = {}

    def batch_at(step: int):
        n = len(epoch_batches.get(0) or epoch_batches.setdefault(0, make_batches(train_src, train_tgt, args.seed)))
        epoch, index = divmod(step, n)
        if epoch not in epoch_batches:
            epoch_batches.clear()
            epoch_batches[epoch] = make_batches(train_src, train_tgt, args.seed + epoch)
            epoch_batches.setdefault(0, epoch_batches[epoch]) if epoch == 0 else None
        return epoch_batches[epoch][index], epoch

    start_time, last_save = time.monotonic(), time.monotonic()
    log = open(run_dir / "train_log.jsonl", "a", encoding="utf-8")
    step = int(step_var.numpy())
    bar = tqdm(total=args.steps, initial=step, desc="train", unit="step", mininterval=10,
               dynamic_ncols=False, ncols=100)
    running = None
    while step < args.steps:
        (src, tgt), epoch = batch_at(step + data_offset)
        loss = float(train_step(src, tgt))
        running = loss if running is None else 0.98 * running + 0.02 * loss
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{running:.3f}", epoch=epoch, refresh=False)
        out_of_time = args.max_minutes and time.monotonic() - start_time > args.max_minutes * 60
        if step % 1000 == 0 or step == args.steps or out_of_time or time.monotonic() - last_save > 300:
            val = float(np.mean([float(eval_step(s, t)) for s, t in val_batches]))
            manager.save(checkpoint_number=step)
            last_save = time.monotonic()
            record = {"step": step, "epoch": epoch, "train_loss": round(running, 4),
                      "val_loss": round(val, 4), "lr": float(schedule(step)),
                      "minutes": round((time.monotonic() - start_time) / 60, 2)}
            log.write(json.dumps(record) + "\n")
            log.flush()
            bar.write(json.dumps(record))
        if out_of_time:
            bar.write(f"stopping: --max-minutes {args.max_minutes} reached at step {step}")
            break
    bar.close()
    export(tf, model, cfg, run_dir / "saved_model")
    print(f"exported {run_dir / 'saved_model'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
