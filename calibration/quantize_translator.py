#!/usr/bin/env python
"""Convert the translator SavedModel to TFLite: fp32, dynamic-range int8 and full int8, and
keep the int8 variant that scores best on the validation split.

    .venv/bin/python calibration/quantize_translator.py \
        --saved-model runs/translator/saved_model --out runs/translator/tflite

Full int8 is calibrated with real token sequences: validation sources through the fp32
encoder, and teacher-forced target prefixes (reference translations) at every position.
Both int8 variants are scored by chrF (greedy decoding, LiteRT, 1 thread) on validation
pairs never used for calibration. Writes translator_fp32.tflite, translator_int8_dynamic.tflite,
translator_int8_full.tflite, translator.tflite (the chosen one) and quant_report.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from device.stages.translate.model import Seq2SeqModel  # noqa: E402
from device.stages.translate.normalize import clean, model_text  # noqa: E402
from device.stages.translate.tokenizer import BOS, EOS, Tokenizer  # noqa: E402

DATA = ROOT / "data" / "translator"


def read_pairs(name: str, limit: int | None = None, skip: int = 0) -> list[tuple[str, str, list[str]]]:
    rows = []
    with open(DATA / f"{name}.tsv", encoding="utf-8") as handle:
        for line in handle:
            de, en, refs, _ = line.rstrip("\n").split("\t")
            rows.append((de, en, refs.split(" ||| ")))
    rows = rows[skip:]
    return rows[:limit] if limit else rows


def source_ids(tokenizer: Tokenizer, text: str, max_len: int) -> list[int]:
    return tokenizer.encode(model_text(text))[:max_len - 1] + [EOS]


def translate_all(model: Seq2SeqModel, tokenizer: Tokenizer, sources: list[str],
                  beam_size: int = 1) -> list[str]:
    out = []
    for text in sources:
        decoded = model.generate(source_ids(tokenizer, text, model.src_len), beam_size=beam_size)
        out.append(tokenizer.decode(list(decoded.ids)))
    return out


def chrf(hypotheses: list[str], references: list[str]) -> float:
    import sacrebleu
    return float(sacrebleu.corpus_chrf(hypotheses, [references]).score)


def calibration_samples(fp32: Seq2SeqModel, tokenizer: Tokenizer, pairs, limit_decode: int = 1200):
    """(signature, inputs) tuples from real validation sequences."""
    samples = []
    for de, en, _ in pairs:
        src_ids = source_ids(tokenizer, de, fp32.src_len)
        enc_out, src = fp32.encode(src_ids)
        samples.append(("encode", {"src_ids": src}))
        tgt_tokens = [BOS] + tokenizer.encode(clean(en).lower())[:fp32.tgt_len - 2] + [EOS]
        tgt = np.zeros((1, fp32.tgt_len), np.int32)
        tgt[0, :len(tgt_tokens)] = tgt_tokens
        for step in range(len(tgt_tokens) - 1):
            prefix = np.zeros_like(tgt)
            prefix[0, :step + 1] = tgt[0, :step + 1]
            samples.append(("decode", {"enc_out": enc_out.astype(np.float32), "src_ids": src,
                                       "tgt_ids": prefix, "step": np.array([step], np.int32)}))
    rng = np.random.RandomState(0)
    decode = [s for s in samples if s[0] == "decode"]
    encode = [s for s in samples if s[0] == "encode"]
    picked = [decode[i] for i in rng.permutation(len(decode))[:limit_decode]]
    return encode + picked


def convert(saved_model: Path, mode: str, representative=None) -> bytes:
    import tensorflow as tf
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model),
                                                         signature_keys=["encode", "decode"])
    if mode in ("dynamic", "full"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "full":
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                               tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--saved-model", default=str(ROOT / "runs/translator/saved_model"))
    parser.add_argument("--tokenizer", default=str(DATA / "spm4000.model"))
    parser.add_argument("--out", default=str(ROOT / "runs/translator/tflite"))
    parser.add_argument("--calib-pairs", type=int, default=300)
    parser.add_argument("--eval-pairs", type=int, default=600)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(args.tokenizer)

    paths = {"fp32": out / "translator_fp32.tflite"}
    paths["fp32"].write_bytes(convert(Path(args.saved_model), "fp32"))
    fp32 = Seq2SeqModel(paths["fp32"], backend="litert", num_threads=1)
    calib = read_pairs("val", args.calib_pairs)                      # first pairs: calibration
    evaluation = read_pairs("val", args.eval_pairs, skip=args.calib_pairs)  # the rest: scoring
    samples = calibration_samples(fp32, tokenizer, calib)
    paths["int8-dynamic"] = out / "translator_int8_dynamic.tflite"
    paths["int8-dynamic"].write_bytes(convert(Path(args.saved_model), "dynamic"))
    paths["int8-full"] = out / "translator_int8_full.tflite"
    paths["int8-full"].write_bytes(convert(Path(args.saved_model), "full", lambda: iter(samples)))

    sources = [p[0] for p in evaluation]
    references = [clean(p[1]).lower() for p in evaluation]
    report = {"eval_pairs": len(evaluation), "calibration_pairs": len(calib),
              "calibration_samples": len(samples), "variants": {}}
    for name, path in paths.items():
        model = Seq2SeqModel(path, backend="litert", num_threads=1)
        start = time.perf_counter()
        hyps = translate_all(model, tokenizer, sources)
        seconds = time.perf_counter() - start
        report["variants"][name] = {"file": path.name, "size_bytes": path.stat().st_size,
                                    "val_chrf": round(chrf(hyps, references), 2),
                                    "val_exact": round(float(np.mean([h == r for h, r in zip(hyps, references)])), 4),
                                    "ms_per_phrase_litert": round(1000 * seconds / len(sources), 2)}
        print(name, report["variants"][name], flush=True)
    int8 = {k: v for k, v in report["variants"].items() if k != "fp32"}
    chosen = max(int8, key=lambda k: (int8[k]["val_chrf"], -int8[k]["ms_per_phrase_litert"]))
    report["chosen"] = chosen
    report["int8_minus_fp32_chrf"] = round(int8[chosen]["val_chrf"] -
                                           report["variants"]["fp32"]["val_chrf"], 2)
    shutil.copyfile(paths[chosen], out / "translator.tflite")
    (out / "quant_report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({"chosen": chosen, "int8_minus_fp32_chrf": report["int8_minus_fp32_chrf"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
