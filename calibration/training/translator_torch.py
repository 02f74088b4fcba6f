#!/usr/bin/env python
"""Train the translator's transformer with PyTorch (CUDA when there, else CPU).

The same network as `scripts/train_translator.py`'s Keras model (pre-LN transformer, tied
embeddings, sinusoidal positions, additive -30 masks, LayerNorm eps 1e-6), trained on the
arrays `scripts/train_translator.py --prepare` writes. The weights are saved in the Keras
model's weight order (`keras_weights.npz`, float16) so that
`scripts/train_translator.py --import-weights` exports the usual two-signature SavedModel
for int8 conversion. Self-contained: numpy and torch only, so it runs on a lent GPU machine.

    python calibration/training/translator_torch.py --data data/translator2/arrays.npz --out runs/t2 \
        --minutes 7
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

PAD, BOS, EOS = 0, 2, 3
NEG = -30.0


def positional(length: int, d: int) -> torch.Tensor:
    pos = np.arange(length)[:, None]
    dim = np.arange(d // 2)[None, :]
    angle = pos / np.power(10000.0, 2 * dim / d)
    return torch.tensor(np.concatenate([np.sin(angle), np.cos(angle)], -1), dtype=torch.float32)


class Attention(nn.Module):
    def __init__(self, d, heads, rate):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.heads, self.d, self.drop = heads, d, nn.Dropout(rate)

    def split(self, x):
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.d // self.heads).transpose(1, 2)

    def forward(self, x, memory, bias):
        q, k, v = self.split(self.q(x)), self.split(self.k(memory)), self.split(self.v(memory))
        scores = q @ k.transpose(-1, -2) * (1.0 / math.sqrt(self.d // self.heads)) + bias
        weights = self.drop(torch.softmax(scores, dim=-1))
        out = (weights @ v).transpose(1, 2).reshape(x.shape[0], x.shape[1], self.d)
        return self.o(out)


class Block(nn.Module):
    def __init__(self, d, heads, ff, rate, cross):
        super().__init__()
        self.ln1, self.self_att = nn.LayerNorm(d, eps=1e-6), Attention(d, heads, rate)
        self.cross = cross
        if cross:
            self.ln2, self.cross_att = nn.LayerNorm(d, eps=1e-6), Attention(d, heads, rate)
        self.ln3 = nn.LayerNorm(d, eps=1e-6)
        self.ff1, self.ff2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.drop = nn.Dropout(rate)

    def forward(self, x, self_bias, memory=None, cross_bias=None):
        h = self.ln1(x)
        x = x + self.drop(self.self_att(h, h, self_bias))
        if self.cross:
            h = self.ln2(x)
            x = x + self.drop(self.cross_att(h, memory, cross_bias))
        h = self.ff2(self.drop(F.relu(self.ff1(self.ln3(x)))))
        return x + self.drop(h)

    def keras_order(self):
        """This block's tensors in the Keras layer's weight order."""
        out = [self.ln1.weight, self.ln1.bias]
        for att in [self.self_att] + ([self.cross_att] if self.cross else []):
            if att is not self.self_att:
                out += [self.ln2.weight, self.ln2.bias]
            for lin in (att.q, att.k, att.v, att.o):
                out += [lin.weight.T, lin.bias]
        out += [self.ln3.weight, self.ln3.bias, self.ff1.weight.T, self.ff1.bias,
                self.ff2.weight.T, self.ff2.bias]
        return out


class Translator(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, rate = cfg["d"], cfg["dropout"]
        self.d = d
        self.embed = nn.Parameter(torch.randn(cfg["vocab"], d) * d ** -0.5)
        self.out_bias = nn.Parameter(torch.zeros(cfg["vocab"]))
        self.register_buffer("pos", positional(cfg["max_len"] + 1, d))
        self.enc = nn.ModuleList(Block(d, cfg["heads"], cfg["ff"], rate, False)
                                 for _ in range(cfg["enc_layers"]))
        self.dec = nn.ModuleList(Block(d, cfg["heads"], cfg["ff"], rate, True)
                                 for _ in range(cfg["dec_layers"]))
        self.enc_ln, self.dec_ln = nn.LayerNorm(d, eps=1e-6), nn.LayerNorm(d, eps=1e-6)
        self.drop = nn.Dropout(rate)

    def embed_ids(self, ids):
        return self.drop(self.embed[ids] * math.sqrt(self.d) + self.pos[:ids.shape[1]])

    @staticmethod
    def src_bias(src):
        return (src == PAD).float()[:, None, None, :] * NEG

    def forward(self, src, tgt_in):
        x, bias = self.embed_ids(src), self.src_bias(src)
        for block in self.enc:
            x = block(x, bias)
        memory = self.enc_ln(x)
        length = tgt_in.shape[1]
        causal = (1.0 - torch.tril(torch.ones(length, length, device=src.device))) * NEG
        y = self.embed_ids(tgt_in)
        for block in self.dec:
            y = block(y, causal[None, None], memory, bias)
        return self.dec_ln(y) @ self.embed.T + self.out_bias

    def keras_order(self) -> list[torch.Tensor]:
        """Every tensor (views of the parameters) in the Keras model's weight order."""
        out = []
        for block in list(self.enc) + list(self.dec):
            out += block.keras_order()
        return out + [self.enc_ln.weight, self.enc_ln.bias, self.dec_ln.weight,
                      self.dec_ln.bias, self.embed, self.out_bias]

    def keras_weights(self) -> list[np.ndarray]:
        return [t.detach().float().cpu().numpy() for t in self.keras_order()]

    def load_keras_weights(self, path: Path) -> None:
        """Start from a run's keras_weights.npz (this script's own output, or a released
        model's weights saved the same way); the shapes must match."""
        with np.load(path) as z:
            arrays = [z[f"arr_{i}"] for i in range(len(z.files))]
        tensors = self.keras_order()
        if len(arrays) != len(tensors):
            raise SystemExit(f"{path}: {len(arrays)} tensors, this model has {len(tensors)}")
        with torch.no_grad():
            for tensor, array in zip(tensors, arrays):
                if tuple(tensor.shape) != array.shape:
                    raise SystemExit(f"{path}: shape {array.shape} where this model has "
                                     f"{tuple(tensor.shape)} (--d/--ff/--*-layers must match)")
                tensor.copy_(torch.from_numpy(array.astype(np.float32)))


def batches(src, tgt, batch, rng):
    """Length-sorted chunks in a random order (little padding), trimmed to the longest row."""
    lengths = np.maximum((src != PAD).sum(1), (tgt != PAD).sum(1) - 1)
    order = np.argsort(lengths + rng.random(len(lengths)), kind="stable")
    chunks = [order[i:i + batch] for i in range(0, len(order), batch)]
    rng.shuffle(chunks)
    for idx in chunks:
        n = int(lengths[idx].max())
        yield src[idx, :n], tgt[idx, :n + 1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--d", type=int, default=192)
    p.add_argument("--ff", type=int, default=768)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--enc-layers", type=int, default=4)
    p.add_argument("--dec-layers", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--warmup", type=int, default=800)
    p.add_argument("--steps", type=int, default=30000)
    p.add_argument("--minutes", type=float, default=0, help="stop after this long (0: steps)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--init", type=Path, metavar="RUN",
                   help="start from RUN/keras_weights.npz (e.g. fine-tune on another mix)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads when there is no GPU")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    data = np.load(args.data)
    src, tgt = data["train_src"].astype(np.int64), data["train_tgt"].astype(np.int64)
    val_src, val_tgt = data["val_src"].astype(np.int64), data["val_tgt"].astype(np.int64)
    cfg = {"d": args.d, "ff": args.ff, "heads": args.heads, "enc_layers": args.enc_layers,
           "dec_layers": args.dec_layers, "vocab": int(data["vocab"]), "dropout": args.dropout,
           "max_len": int(src.shape[1])}
    model = Translator(cfg)
    if args.init:
        model.load_keras_weights(args.init / "keras_weights.npz")
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.98), eps=1e-9)

    def lr_at(step):
        """Linear warmup, then cosine decay to 5 %: over --steps, or over --minutes of wall
        time when that is set (the run ends on time with a decayed learning rate)."""
        warm = (step + 1) / args.warmup
        if args.minutes:
            progress = (time.monotonic() - start) / (args.minutes * 60)
        else:
            progress = (step - args.warmup) / max(1, args.steps - args.warmup)
        progress = min(1.0, max(0.0, progress))
        return args.lr * min(warm, 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))

    def loss_of(s, t, train):
        s = torch.as_tensor(s, device=device)
        t = torch.as_tensor(t, device=device)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            logits = model(s, t[:, :-1])
        return F.cross_entropy(logits.float().reshape(-1, cfg["vocab"]), t[:, 1:].reshape(-1),
                               ignore_index=PAD, label_smoothing=0.1 if train else 0.0)

    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    print(f"{device}: {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{len(src):,} training pairs", flush=True)
    start, step, history, epoch = time.monotonic(), 0, [], 0
    done = False
    while not done:
        for s, t in batches(src, tgt, args.batch, rng):
            model.train()
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            loss = loss_of(s, t, True)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            minutes = (time.monotonic() - start) / 60
            if step % 1000 == 0 or step >= args.steps or (args.minutes and minutes > args.minutes):
                model.eval()
                with torch.no_grad():
                    val = float(np.mean([loss_of(vs, vt, False).item() for vs, vt in
                                         batches(val_src[:4000], val_tgt[:4000], 500,
                                                 np.random.default_rng(0))]))
                record = {"step": step, "epoch": epoch, "train_loss": round(loss.item(), 4),
                          "val_loss": round(val, 4), "minutes": round(minutes, 2)}
                history.append(record)
                print(json.dumps(record), flush=True)
                np.savez(args.out / "keras_weights.npz",
                         *[w.astype(np.float16) for w in model.keras_weights()])
            if step >= args.steps or (args.minutes and minutes > args.minutes):
                done = True
                break
        epoch += 1
    record = {"config": cfg, "args": {k: str(v) for k, v in vars(args).items()}, "steps": step,
              "epochs": epoch, "device": device, "torch": torch.__version__,
              "minutes": round((time.monotonic() - start) / 60, 2), "history": history}
    if args.init and (args.init / "torch_run.json").exists():   # the run this one went on from
        record["init_run"] = json.loads((args.init / "torch_run.json").read_text())
    (args.out / "torch_run.json").write_text(json.dumps(record, indent=1))
    print("done", step, "steps", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
