"""Evaluate the converted translator on the test split and install it in the model store.

    .venv/bin/python scripts/package_translator.py [--limit N] [--version 1.0.0]

Reads runs/translator/tflite (from calibration/quantize_translator.py) and
data/translator/{train,test}.tsv; writes models/translator/<version>/ with translator.tflite,
translator_fp32.tflite, translator.spm.model, manifest.json and MODEL_CARD.md, and
runs/translator/eval.json with every number. Metrics are case-insensitive (the model writes
lowercase; casing is a display rule): chrF and BLEU (sacrebleu) against the first English
alternative, exact match against any alternative.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import random
import shutil
import time
from pathlib import Path

import sacrebleu

from calibration import model_card as cards
from device import config as config_module
from device.benchmarks import translator as bench_module
from device.modelstore.store import file_entry
from device.runtime import TFLiteModel, available_backends
from device.stages.translate.model import Seq2SeqModel
from device.stages.translate.normalize import clean, lookup_key
from device.stages.translate.phrasebook import Phrasebook
from device.stages.translate.tokenizer import Tokenizer
from device.stages.translate.translator import Settings, Translator, model_translate

ROOT = Path(__file__).resolve().parent.parent

DATA = ROOT / "data" / "translator"
TOKENIZER_NAME = "translator.spm.model"


def read_pairs(name: str) -> list[tuple[str, str, list[str]]]:
    rows = []
    with open(DATA / f"{name}.tsv", encoding="utf-8") as handle:
        for line in handle:
            de, en, refs, _ = line.rstrip("\n").split("\t")
            rows.append((de, en, refs.split(" ||| ")))
    return rows


def norm(text: str) -> str:
    return " ".join(lookup_key(text).split())


def scores(hyps: list[str], pairs) -> dict:
    refs = [clean(p[1]).lower() for p in pairs]
    hyps = [h.lower() for h in hyps]
    exact = sum(norm(h) in {norm(r) for r in p[2]} for h, p in zip(hyps, pairs))
    return {"chrf": round(sacrebleu.corpus_chrf(hyps, [refs]).score, 2),
            "bleu": round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2),
            "exact_match": round(exact / len(pairs), 4), "n": len(pairs)}



def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--limit", type=int, default=0, help="test pairs (0: all)")
    parser.add_argument("--skip-eval", action="store_true", help="reuse runs/translator/eval.json")
    parser.add_argument("--bench", action="store_true",
                        help="also run the latency benchmark and record it in the manifest")
    parser.add_argument("--run-dir", default="runs/translator",
                        help="training run (config.json, tflite/)")
    args = parser.parse_args(argv)
    run = ROOT / args.run_dir
    out = ROOT / "models" / "translator" / args.version
    out.mkdir(parents=True, exist_ok=True)
    tflite = run / "tflite"
    run_cfg = json.loads((run / "config.json").read_text())
    quant = json.loads((tflite / "quant_report.json").read_text())
    shutil.copyfile(tflite / "translator.tflite", out / "translator.tflite")
    shutil.copyfile(tflite / "translator_fp32.tflite", out / "translator_fp32.tflite")
    shutil.copyfile(ROOT / run_cfg["tokenizer"], out / TOKENIZER_NAME)
    tokenizer = Tokenizer(out / TOKENIZER_NAME)

    pairs = read_pairs("test")
    if args.limit:
        pairs = random.Random(0).sample(pairs, min(args.limit, len(pairs)))
    eval_path = run / "eval.json"
    if args.skip_eval and eval_path.exists():
        report = json.loads(eval_path.read_text())
    else:
        report = evaluate(pairs, out, tokenizer)
        eval_path.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    write_store(out, args.version, run_cfg, quant, report, None, run)
    if args.bench:
        bench = run_bench(args.version)
        (run / "bench.json").write_text(json.dumps(bench, indent=2))
        write_store(out, args.version, run_cfg, quant, report, bench, run)
    print(json.dumps({k: v for k, v in report.items() if k not in ("rows", "golden_candidates")},
                     indent=2))
    return 0


def run_bench(version: str) -> dict:
    cfg = config_module.defaults()
    cfg = dataclasses.replace(cfg, translator=dataclasses.replace(cfg.translator,
                                                                  version=version))
    return bench_module.run(cfg, json_out=False)


def evaluate(pairs, out: Path, tokenizer: Tokenizer) -> dict:
    sources = [p[0] for p in pairs]
    report: dict = {"test_pairs": len(pairs)}
    outputs = {}
    for variant, name in (("int8", "translator.tflite"), ("fp32", "translator_fp32.tflite")):
        model = Seq2SeqModel(out / name, backend="litert", num_threads=1)
        start = time.perf_counter()
        decoded = [model_translate(model, tokenizer, s) for s in sources]
        outputs[variant] = [d[0] for d in decoded]
        if variant == "int8":
            confidences = [d[1] for d in decoded]
        report[f"model_{variant}"] = scores(outputs[variant], pairs)
        report[f"model_{variant}"]["seconds"] = round(time.perf_counter() - start, 1)
        print(variant, report[f"model_{variant}"], flush=True)
    # How the model's confidence separates good from bad outputs (for min_model_confidence).
    report["confidence_thresholds"] = {}
    for threshold in (0.1, 0.2, 0.3, 0.4, 0.5):
        kept = [i for i, c in enumerate(confidences) if c >= threshold]
        dropped = [i for i, c in enumerate(confidences) if c < threshold]
        entry = {"kept_fraction": round(len(kept) / len(pairs), 3)}
        for name, idx in (("kept", kept), ("refused", dropped)):
            if idx:
                entry[f"{name}_chrf"] = scores([outputs["int8"][i] for i in idx],
                                               [pairs[i] for i in idx])["chrf"]
        report["confidence_thresholds"][str(threshold)] = entry
    print("confidence", report["confidence_thresholds"], flush=True)
    model = Seq2SeqModel(out / "translator.tflite", backend="litert", num_threads=1)
    # Phrasebook from the training split only: what the test headwords look like to a
    # phrasebook that never saw them (the generalization number).
    train_book = {}
    for de, en, _ in read_pairs("train"):
        train_book.setdefault(lookup_key(de), en)
    held_out = Translator(model, tokenizer, Phrasebook(train_book, "train split"),
                          Settings(cache_size=0, min_model_confidence=0.0, budget_ms=10_000))
    system = [held_out.translate(s) for s in sources]
    report["phrasebook_train_split_plus_model"] = scores([t.translation for t in system], pairs)
    report["phrasebook_train_split_plus_model"]["via"] = dict(held_out.stats()["via"])
    print("system", report["phrasebook_train_split_plus_model"], flush=True)
    # The shipped phrasebook (the whole dictionary) contains the test entries: a lookup number.
    cfg = config_module.defaults()
    full = Translator(model, tokenizer, Phrasebook.load(cfg.translator.dictionary),
                      Settings(cache_size=0, min_model_confidence=0.0, budget_ms=10_000))
    shipped = [full.translate(s) for s in sources]
    report["phrasebook_full_dictionary_plus_model"] = scores([t.translation for t in shipped], pairs)
    report["phrasebook_full_dictionary_plus_model"]["via"] = dict(full.stats()["via"])
    print("shipped", report["phrasebook_full_dictionary_plus_model"], flush=True)
    rng = random.Random(7)
    rows = []
    for i in sorted(rng.sample(range(len(pairs)), min(30, len(pairs)))):
        chrf = sacrebleu.sentence_chrf(outputs["int8"][i].lower(), [clean(pairs[i][1]).lower()]).score
        rows.append({"de": pairs[i][0], "reference": pairs[i][1], "model": outputs["int8"][i],
                     "system": system[i].translation, "via": system[i].via,
                     "chrf": round(chrf, 1)})
    report["rows"] = rows
    golden = [(pairs[i][0], outputs["int8"][i]) for i in range(len(pairs))
              if outputs["int8"][i] == outputs["fp32"][i] and outputs["int8"][i]
              and norm(outputs["int8"][i]) in {norm(r) for r in pairs[i][2]}
              and 1 <= len(pairs[i][0].split()) <= 4]
    report["golden_candidates"] = golden[:40]
    return report


def pick_golden(out: Path, tokenizer: Tokenizer, candidates) -> list[dict]:
    """Inputs whose model output is right and identical on every installed backend."""
    models = [Seq2SeqModel(out / "translator.tflite", backend=b, num_threads=1)
              for b in available_backends()]
    golden = []
    for de, expected in candidates:
        outs = {model_translate(m, tokenizer, de)[0] for m in models}
        if outs == {expected}:
            golden.append({"input": de, "expected": expected})
        if len(golden) == 8:
            break
    return golden


def commands(run_dir: Path) -> list[str]:
    """Every training invocation of the run (resumes included), then conversion/packaging."""
    logged = (run_dir / "commands.log").read_text().split("\n") \
        if (run_dir / "commands.log").exists() else []
    return [c for c in logged if c] + [
        f"calibration/quantize_translator.py --saved-model {run_dir.relative_to(ROOT)}/saved_model "
        f"--out {run_dir.relative_to(ROOT)}/tflite",
        f"scripts/package_translator.py --run-dir {run_dir.relative_to(ROOT)} --bench"]


def continued_from(run_dir: Path) -> dict:
    """For a run started with --init-from: the source run's steps and minutes."""
    for command in commands(run_dir):
        if "--init-from" in command:
            source = ROOT / command.split("--init-from")[1].split()[0]
            steps = json.loads((source / "config.json").read_text())["steps"]
            minutes = training_minutes(source)
            return {"continued_from": {"run": source.name, "steps": steps, "minutes": minutes},
                    "total_minutes": round(minutes + training_minutes(run_dir), 1),
                    "total_steps": steps + json.loads((run_dir / "config.json").read_text())["steps"]}
    return {}


def training_minutes(run_dir: Path) -> float:
    """Training wall time: the last log record of each (resumed) segment, summed."""
    total, previous = 0.0, None
    for line in (run_dir / "train_log.jsonl").read_text().splitlines():
        record = json.loads(line)
        if previous is not None and record["minutes"] < previous["minutes"]:
            total += previous["minutes"]
        previous = record
    return round(total + (previous["minutes"] if previous else 0.0), 1)


def write_store(out: Path, version: str, run_cfg: dict, quant: dict, report: dict,
                bench: dict | None = None, run_dir: Path | None = None) -> None:
    tokenizer = Tokenizer(out / TOKENIZER_NAME)
    tfl = TFLiteModel(out / "translator.tflite", backend="litert", num_threads=1)
    signatures = {key: {"inputs": [s.as_dict() for s in tfl.signature(key).inputs],
                        "outputs": [s.as_dict() for s in tfl.signature(key).outputs]}
                  for key in tfl.signature_keys}
    golden = pick_golden(out, tokenizer, report["golden_candidates"])
    manifest_path = out / "manifest.json"
    previous = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    chosen = quant["chosen"]
    manifest = {
        "name": "translator", "version": version, "task": "translation-de-en",
        "created": datetime.date.today().isoformat(),
        "artifact": file_entry(out / "translator.tflite"),
        "extra_files": [file_entry(out / TOKENIZER_NAME), file_entry(out / "translator_fp32.tflite")],
        "tokenizer": TOKENIZER_NAME,
        "quantization": chosen,
        "signatures": signatures,
        "compatible_backends": previous.get("compatible_backends", available_backends()),
        "latency_ms": latency(bench) if bench else previous.get("latency_ms", {}),
        "measured_on": "2-core AMD EPYC dev machine shared with two other trainings, 1 thread",
        "budget_ms": 40.0,
        "accuracy": {
            "data": f"ding de-en, headword-split test set ({report['test_pairs']} pairs), "
                    "case-insensitive; chrF/BLEU vs the first English alternative, exact "
                    "match vs any alternative; greedy decoding",
            "model_int8": report["model_int8"], "model_fp32": report["model_fp32"],
            "phrasebook_train_split_plus_model": report["phrasebook_train_split_plus_model"],
            "phrasebook_full_dictionary_plus_model": report["phrasebook_full_dictionary_plus_model"],
            "validation_quantization": quant["variants"],
        },
        "training": {
            "data": "ding German-English dictionary (Debian trans-de-en, /usr/share/trans/de-en), "
                    "parsed by device.stages.translate.ding, split by headword (2 % val, 2 % test)",
            "license": "GPL-2.0-or-later (training data and the phrasebook built from it)",
            "command": " && ".join(commands(run_dir)),
            "seed": run_cfg["seed"], "tensorflow": run_cfg["tensorflow"],
            "steps": run_cfg["steps"], "minutes": training_minutes(run_dir),
            **continued_from(run_dir),
            "hardware": "2 shared CPU cores (about one available: other trainings ran)",
            "architecture": {k: run_cfg[k] for k in ("d", "ff", "heads", "enc_layers",
                                                     "dec_layers", "vocab", "max_len")},
        },
        "preprocessing": "device.stages.translate.normalize.model_text (NFC, hyphen breaks joined, "
                         "umlauts folded to ae/oe/ue, lowercase), SentencePiece ids + EOS, "
                         f"padded to {run_cfg['max_len']}",
        "intended_use": "Translating short German sign text (words, compounds, short phrases) "
                        "to English on the glasses, behind the phrasebook and cache.",
        "limitations": "Trained on dictionary entries only: literal, word-level translations; "
                       "long sentences, idioms and rare technical terms are often wrong; output "
                       "is lowercase (casing is applied by the translator); at most 23 tokens "
                       "in and out.",
        "golden": golden,
    }
    cards.publish(out, manifest, card(manifest, report, quant))


def latency(bench: dict) -> dict:
    """manifest latency_ms: the shipped int8 model per backend (+ fp32 and hits for the card)."""
    out = {}
    for backend, variants in bench["latency_ms"].items():
        for variant, t in variants.items():
            key = backend if variant == "int8" else f"{backend}_fp32"
            out[key] = {"p50": t["p50"], "p95": t["p95"], "threads": 1,
                        "input": f"{bench['phrases']} short German phrases (<= 6 words), "
                                 "model alone, greedy"}
    for name in ("cache", "phrasebook"):
        t = bench["hit_latency_ms"].get(name, {})
        if "p50" in t:
            out[f"{name}_hit"] = {"p50": t["p50"], "p95": t["p95"], "threads": 1,
                                  "input": "Translator.translate on a repeated phrase"}
    return out


def _metric_row(name: str, m: dict) -> tuple:
    return name, f"{m['chrf']:.1f}", f"{m['bleu']:.1f}", f"{100 * m['exact_match']:.1f} %"


def _sample_row(r: dict) -> list:
    # a `|` in a dictionary entry would split the cell
    cells = [r["de"], r["reference"], r["model"], f"{r['system']} ({r['via']})"]
    return [c.replace("|", "/") for c in cells] + [f"{r['chrf']:.0f}"]


def card(manifest: dict, report: dict, quant: dict) -> str:
    acc, arch = manifest["accuracy"], manifest["training"]["architecture"]
    size = manifest["artifact"]["size_bytes"]
    tok = next(e for e in manifest["extra_files"] if e["file"] == TOKENIZER_NAME)["size_bytes"]
    lines = [
        cards.title("translator", manifest["version"], "German → English for signs"),
        "",
        "A tiny transformer encoder–decoder (int8 TFLite, two signatures `encode` and `decode`) "
        "behind a phrasebook and an LRU cache (`device/stages/translate/`).",
        "",
        "## Model",
        f"- {arch['enc_layers']} encoder / {arch['dec_layers']} decoder layers, d={arch['d']}, "
        f"ff={arch['ff']}, {arch['heads']} heads, tied embeddings; one shared SentencePiece "
        f"unigram vocabulary of {arch['vocab']} pieces over folded-lowercase German and "
        f"lowercase English; at most {arch['max_len']} tokens each side.",
        f"- Quantization: **{manifest['quantization']}** (chosen over the other int8 variant by "
        "validation chrF, see below). Model "
        f"{size / 1e6:.2f} MB + tokenizer {tok / 1e6:.2f} MB = {(size + tok) / 1e6:.2f} MB.",
        "- Decoding in numpy (`device/stages/translate/model.py`): greedy (default) or a small beam, "
        "early stop at EOS, at most 23 tokens, a deadline.",
        f"- Training: {manifest['training']['steps']} Adam steps (length-bucketed batches of "
        f"~1,200 tokens, label smoothing 0.1, warmup + cosine), "
        f"{manifest['training']['minutes']} minutes of training on the shared 2-core machine "
        "(TensorFlow 2.14.1, seed "
        f"{manifest['training']['seed']}); the run was stopped and resumed with a different "
        "--steps when the machine's load changed, which re-stretched the learning-rate "
        "schedule. Every invocation is in the manifest's `training.command`."
        + (f" It went on from the weights of run `{manifest['training']['continued_from']['run']}` "
           f"({manifest['training']['continued_from']['steps']} steps, "
           f"{manifest['training']['continued_from']['minutes']} min, released as 1.0.0) with a "
           f"fresh warmup + cosine schedule: {manifest['training']['total_steps']} steps and "
           f"{manifest['training']['total_minutes']} minutes in all."
           if "continued_from" in manifest["training"] else ""),
        "",
        "## Data and license",
        "Trained only on the ding German–English dictionary (Debian package `trans-de-en`, "
        "`/usr/share/trans/de-en`, © Frank Richter, **GPL-2.0-or-later**): words, compounds, "
        "inflections and example sentences parsed into pairs by `device/stages/translate/ding.py`, "
        "split by headword (hash of the folded, crudely stemmed headword: 2 % validation, "
        "2 % test), so no test headword, and none of the inflections on its line, is in "
        "training; validation/test pairs whose German also occurs in training are dropped. The "
        "model and the phrasebook (built on the device from the installed dictionary, never "
        "shipped) derive from GPL data; treat their redistribution under the GPL's terms.",
        "",
        f"## Accuracy (test split, {report['test_pairs']} pairs, case-insensitive, greedy)",
        "chrF and BLEU (sacrebleu) against the first English alternative; exact match against "
        "any alternative.",
        "",
        cards.table(("system", "chrF", "BLEU", "exact"), [
            _metric_row("model alone, int8 (shipped)", acc["model_int8"]),
            _metric_row("model alone, fp32 reference", acc["model_fp32"]),
            _metric_row("translator: training-split phrasebook + gloss + model",
                        acc["phrasebook_train_split_plus_model"]),
            _metric_row("shipped phrasebook (whole dictionary) + model",
                        acc["phrasebook_full_dictionary_plus_model"])]),
        "",
        "Rows 1-3 measure generalization to unseen headwords. Row 3 is the translator as it "
        "runs (sign rules and casing; min_model_confidence off, the other refusals on, a "
        "passthrough scored as its original text), with a phrasebook built from the training split "
        "only: it never holds a test entry (the split removed them), so what it adds is the "
        "word-by-word gloss (compounds split into known words, endings dropped) that replaces "
        "model answers less confident than `gloss_below_confidence` (0.3). The shipped "
        "phrasebook is built from the whole dictionary and so contains the test entries: "
        "row 4 is an in-dictionary lookup number, not generalization.",
        "",
        "### Model confidence (mean token probability) vs quality, test split",
        "`[translator] min_model_confidence` refuses model outputs below it (original text kept).",
        "",
        cards.table(("threshold", "outputs kept", "chrF kept", "chrF refused"),
                    ((t, f"{100 * e['kept_fraction']:.0f} %",
                      f"{e.get('kept_chrf', float('nan')):.1f}",
                      f"{e.get('refused_chrf', float('nan')):.1f}")
                     for t, e in report.get("confidence_thresholds", {}).items())),
        "",
        "### Quantization on the validation split",
        f"Scored on {quant['eval_pairs']} validation pairs not used for calibration "
        f"({quant['calibration_pairs']} pairs, {quant['calibration_samples']} real encoder and "
        "teacher-forced decoder inputs). LiteRT, 1 thread.",
        "",
        cards.table(("variant", "size", "val chrF", "val exact", "ms/phrase"),
                    ((name, f"{v['size_bytes'] / 1e6:.2f} MB", f"{v['val_chrf']:.2f}",
                      f"{100 * v['val_exact']:.1f} %", f"{v['ms_per_phrase_litert']:.1f}")
                     for name, v in quant["variants"].items())),
    ]
    lines += ["", f"Chosen: {quant['chosen']} ({quant['int8_minus_fp32_chrf']:+.2f} chrF vs fp32).",
              "", "## Latency (1 thread)", ""]
    lat = manifest.get("latency_ms") or {}
    if lat:
        lines += [cards.table(("backend / variant", "p50 ms", "p95 ms"),
                              ((key, *cards.p50_p95(value)) for key, value in lat.items()
                               if isinstance(value, dict) and "p50" in value)), ""]
        lines.append(f"Measured with `edgelens bench translator` on {manifest.get('measured_on')}.")
    else:
        lines.append("Not measured yet: run `edgelens bench translator`.")
    lines += ["", "## 30 test entries (random sample, seed 7: good and bad alike)", "",
              "`model`: the int8 model alone; `system`: the translator with the training-split "
              "phrasebook (gloss + model, sign rules); chrF per sentence for the model.", "",
              cards.table(("German", "reference", "model", "system (via)", "chrF"),
                          (_sample_row(r) for r in report["rows"]))]
    lines += ["", cards.golden(manifest["golden"], case="- {input} → {expected}", intro=(
        "\nThe model alone (greedy) must give exactly these on every backend "
        "(`edgelens models test translator`, tests/test_translate_golden.py):\n"))]
    lines += ["", "## Intended use and limitations", "", manifest["intended_use"], "",
              manifest["limitations"] + " Not-German text and OCR garbage are refused by the "
              "translator's rules (kept as read), not by the model.", "",
              "## Reproduce", "", "```", "scripts/setup --train",
              ".venv/bin/python scripts/train_translator.py --steps 1600 --max-minutes 38 --warmup 200",
              ".venv/bin/python calibration/quantize_translator.py",
              ".venv/bin/python scripts/package_translator.py",
              ".venv/bin/edgelens bench translator", "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
