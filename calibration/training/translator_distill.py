#!/usr/bin/env python
"""Sequence-level distillation data for the translator: a larger teacher translates a mix.

A teacher trained by `translator_torch.py` (any size; its `torch_run.json` names it) reads
every distinct source of a prepared mix greedily, and the mix is written again with the
teacher's translation beside each reference (both rows kept; a translation that never ends or
is empty is dropped). A small student trained on that learns the teacher's simpler, more
consistent wording as well as the references (Kim and Rush, "Sequence-Level Knowledge
Distillation", 2016). Self-contained (numpy, torch; sentencepiece for the sample file), so it
runs on a lent GPU machine; a CPU works too, slowly.

    python calibration/training/translator_distill.py --teacher runs/teacher \
        --data data/translator11-signs/arrays.npz --out runs/distilled \
        --compare runs/gpu_translator10/full_signs

Writes OUT/arrays.npz (the mix's validation rows unchanged), OUT/report.json (teacher and
`--compare` validation loss on the same rows, rows kept) and OUT/teacher_samples.tsv.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from calibration.training.translator_torch import BOS, EOS, PAD, Translator  # noqa: E402


def load_run(run: Path, device: str) -> Translator:
    """A translator_torch run (torch_run.json + keras_weights.npz), in eval mode."""
    cfg = json.loads((run / "torch_run.json").read_text())["config"]
    model = Translator(cfg)
    model.load_keras_weights(run / "keras_weights.npz")
    return model.to(device).eval()


@torch.no_grad()
def greedy(model: Translator, src: torch.Tensor, max_out: int) -> torch.Tensor:
    """Token ids [B, <= max_out + 2] starting with BOS; EOS then PAD after each row's end."""
    bias = model.src_bias(src)
    x = model.embed_ids(src)
    for block in model.enc:
        x = block(x, bias)
    memory = model.enc_ln(x)
    out = torch.full((src.shape[0], 1), BOS, dtype=torch.long, device=src.device)
    finished = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
    for _ in range(max_out + 1):
        length = out.shape[1]
        causal = (1.0 - torch.tril(torch.ones(length, length, device=src.device))) * -30.0
        y = model.embed_ids(out)
        for block in model.dec:
            y = block(y, causal[None, None], memory, bias)
        logits = model.dec_ln(y[:, -1]) @ model.embed.T + model.out_bias
        logits[:, PAD] = -1e9
        nxt = logits.argmax(-1)
        nxt = torch.where(finished, torch.full_like(nxt, PAD), nxt)
        out = torch.cat([out, nxt[:, None]], 1)
        finished |= nxt == EOS
        if bool(finished.all()):
            break
    return out


@torch.no_grad()
def val_loss(model: Translator, src: np.ndarray, tgt: np.ndarray, device: str) -> float:
    losses, tokens = 0.0, 0
    for i in range(0, len(src), 500):
        s = torch.as_tensor(src[i:i + 500], device=device)
        t = torch.as_tensor(tgt[i:i + 500], device=device)
        logits = model(s, t[:, :-1]).float()
        mask = t[:, 1:] != PAD
        losses += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                        t[:, 1:].reshape(-1), ignore_index=PAD,
                                        reduction="sum"))
        tokens += int(mask.sum())
    return losses / max(1, tokens)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", type=Path, required=True, help="a translator_torch run")
    p.add_argument("--data", type=Path, required=True, help="a prepared mix's arrays.npz")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--compare", type=Path, help="a run whose validation loss to print beside")
    p.add_argument("--batch", type=int, default=2048)
    p.add_argument("--limit", type=int, default=0,
                   help="read only the N shortest distinct sources (a quick check; 0: all)")
    p.add_argument("--tokenizer", type=Path, help="spm model for the sample file "
                   "(default: spm8000.model beside --data)")
    args = p.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    data = np.load(args.data)
    src, tgt = data["train_src"].astype(np.int64), data["train_tgt"].astype(np.int64)
    val_src, val_tgt = data["val_src"].astype(np.int64), data["val_tgt"].astype(np.int64)
    teacher = load_run(args.teacher, device)
    report = {"teacher": str(args.teacher), "data": str(args.data), "device": device,
              "teacher_val_loss": round(val_loss(teacher, val_src, val_tgt, device), 4)}
    if args.compare:
        report["compare"] = str(args.compare)
        report["compare_val_loss"] = round(
            val_loss(load_run(args.compare, device), val_src, val_tgt, device), 4)
    print(json.dumps(report), flush=True)

    distinct, index = np.unique(src, axis=0, return_inverse=True)
    index = index.reshape(-1)
    max_out = tgt.shape[1] - 2
    read = np.full((len(distinct), tgt.shape[1]), PAD, dtype=np.int64)
    ok = np.zeros(len(distinct), dtype=bool)
    order = np.argsort((distinct != PAD).sum(1), kind="stable")   # little padding per batch
    if args.limit:
        order = order[:args.limit]
    start = time.monotonic()
    with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
        for i in range(0, len(order), args.batch):
            idx = order[i:i + args.batch]
            rows = distinct[idx]
            n = max(1, int((rows != PAD).sum(1).max()))
            out = greedy(teacher, torch.as_tensor(rows[:, :n], device=device), max_out).cpu()
            out = out.numpy()
            ended = (out == EOS).any(1) & (out[:, 1] != EOS)
            read[idx, :out.shape[1]] = out
            ok[idx] = ended
    minutes = (time.monotonic() - start) / 60
    keep = np.nonzero(ok[index])[0]
    new_tgt = read[index[keep]]
    same = int((new_tgt == tgt[keep]).all(1).sum())
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / "arrays.npz",
             train_src=np.concatenate([src, src[keep]]).astype(np.int16),
             train_tgt=np.concatenate([tgt, new_tgt]).astype(np.int16),
             val_src=val_src.astype(np.int16), val_tgt=val_tgt.astype(np.int16),
             vocab=data["vocab"])
    report.update({"rows": int(len(src)), "distinct_sources": int(len(distinct)),
                   "read_ok": int(ok.sum()), "distilled_rows": int(len(keep)),
                   "same_as_reference": same, "decode_minutes": round(minutes, 2)})
    print(json.dumps(report), flush=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    tokenizer = args.tokenizer or args.data.parent / "spm8000.model"
    if tokenizer.exists():
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file=str(tokenizer))

        def text(ids):
            return sp.decode([int(i) for i in ids if i not in (PAD, BOS, EOS)])
        pick = np.random.default_rng(0).choice(len(keep), min(400, len(keep)), replace=False)
        lines = [f"{text(src[keep[i]])}\t{text(tgt[keep[i]])}\t{text(new_tgt[i])}"
                 for i in sorted(pick)]
        (args.out / "teacher_samples.tsv").write_text(
            "# source\treference\tteacher\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
