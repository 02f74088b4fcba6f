#!/usr/bin/env python
"""Put a converted, evaluated detector into the model store: golden scenes, manifest, card.

    .venv/bin/python calibration/package_detector.py --model-dir models/detector/1.0.0 \
        --eval runs/detector/eval.json --run runs/detector

Golden cases are held-out test scenes (seed GOLDEN_SEED, split 'test') on which the int8
model finds every line on every installed backend; `expected` is that number of lines.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from calibration import model_card as cards  # noqa: E402
from calibration.training import detector_data as dd  # noqa: E402
from device.stages.detector import Detector, DetectorParams, INPUT_SIZE  # noqa: E402
from device.geometry import match_polygons  # noqa: E402
from device.modelstore.store import file_entry  # noqa: E402
from device.runtime import TFLiteModel, available_backends  # noqa: E402
from device.synth import fonts  # noqa: E402

GOLDEN_SEED = 31337
BUDGET_MS = 10.0
FONT_LICENSES = {
    "fonts-b612": "OFL-1.1 / EPL-2.0 / EDL-1.0", "fonts-cantarell": "OFL-1.1",
    "fonts-comfortaa": "OFL-1.1", "fonts-crosextra-caladea": "Apache-2.0",
    "fonts-crosextra-carlito": "OFL-1.1", "fonts-dejavu-core": "Bitstream Vera (DejaVu)",
    "fonts-ebgaramond": "OFL-1.1", "fonts-firacode": "OFL-1.1",
    "fonts-freefont-ttf": "GPL-3+ with font exception", "fonts-go": "BSD-3-clause",
    "fonts-hack": "Expat + Bitstream Vera", "fonts-inconsolata": "OFL-1.0",
    "fonts-jura": "GPL-3 or OFL-1.1", "fonts-lato": "OFL-1.1",
    "fonts-league-spartan": "OFL-1.1", "fonts-liberation2": "OFL-1.1",
    "fonts-linuxlibertine": "GPL-2+ with font exception / OFL-1.1",
    "fonts-noto-mono": "OFL-1.1", "fonts-open-sans": "Apache-2.0",
    "fonts-oxygen": "GPL-3+ with font exception or OFL-1.1", "fonts-quicksand": "OFL-1.1",
    "fonts-roboto-unhinted": "Apache-2.0", "fonts-texgyre": "GUST Font License",
    "fonts-urw-base35": "AGPL-3 with font exception",
}



def golden(model_dir: Path, params: DetectorParams, count: int = 4) -> list[dict]:
    backends = available_backends()
    detectors = [Detector(model_dir / "detector.tflite", backend=b, num_threads=1, params=params)
                 for b in backends]
    out_dir = model_dir / "golden"
    out_dir.mkdir(exist_ok=True)
    cases, index = [], 0
    while len(cases) < count and index < 200:
        scene = dd.scene_for(GOLDEN_SEED, index, "test")
        index += 1
        truth = [line.polygon for line in scene.lines]
        if not 2 <= len(truth) <= 6:
            continue
        if not all(len(match_polygons(truth, [r.polygon for r in d.detect(scene.image)]))
                   == len(truth) for d in detectors):
            continue
        name = f"scene_{len(cases)}"
        cv2.imwrite(str(out_dir / f"{name}.png"), scene.image)
        (out_dir / f"{name}.json").write_text(json.dumps(
            {"seed": [GOLDEN_SEED, index - 1], "split": "test",
             "polygons": [np.round(p, 2).tolist() for p in truth],
             "texts": [line.text for line in scene.lines]}, ensure_ascii=False, indent=1))
        cases.append({"input": f"golden/{name}.png", "expected": str(len(truth)),
                      "ground_truth": f"golden/{name}.json"})
    return cases


def _card(manifest: dict, report: dict, history: list[dict], run: dict) -> str:
    acc = report["accuracy"]
    lat = report["latency_ms"]
    rows = cards.table(
        ("model", "precision", "recall", "Hmean", "TP / detections / GT lines"),
        ((name, f"{a['precision']:.3f}", f"{a['recall']:.3f}", f"{a['hmean']:.3f}",
          f"{a['true_positives']} / {a['detections']} / {a['ground_truth_lines']}")
         for name, a in acc.items()))
    lat_rows = cards.table(
        ("model", "backend", "threads", "p50 ms", "p95 ms"),
        ((model, key.split("-")[0], v["threads"], *cards.p50_p95(v, digits=None))
         for model, table in (("int8", lat), ("fp32", report.get("latency_ms_fp32", {})))
         for key, v in table.items()))
    p = report["params"]
    fonts_train = ", ".join(f"{pkg} ({FONT_LICENSES.get(pkg, 'see copyright')})"
                            for pkg in fonts.packages_for("train"))
    fonts_test = ", ".join(f"{pkg} ({FONT_LICENSES.get(pkg, 'see copyright')})"
                           for pkg in fonts.packages_for("test"))
    epochs = len(history)
    by_height = ", ".join(f"{k}: {v['recall']:.2f} ({v['lines']} lines)"
                          for k, v in acc["int8"].get("recall_by_height", {}).items()) or "n/a"
    return f"""{cards.title("detector", manifest['version'], "text-line detector (int8)")}

Finds text lines (not characters) in a camera frame, including rotated and perspective-skewed
lines, as quadrilaterals for `device.stages.detector.crop_line` and the recognizer.

## Model
- DB-family FCN, probability branch only: depthwise-separable encoder to 1/32, FPN-lite decoder
  (nearest upsampling + lateral adds) to 1/2 of the input; sigmoid map of *shrunk* line kernels
  (polygon offset by area·(1−{dd.SHRINK_RATIO}²)/perimeter).
  {manifest['parameters']:,} parameters; `detector.tflite` {manifest['artifact']['size_bytes'] / 1024:.0f} KB full-integer int8
  (int8 in/out), `detector_fp32.tflite` {manifest['extra_files'][0]['size_bytes'] / 1024:.0f} KB.
- Input: the frame resized (INTER_AREA) to {INPUT_SIZE[0]}x{INPUT_SIZE[1]} BGR, (x − 127.5)/127.5;
  static batch 1. Output: [1, {INPUT_SIZE[1] // 2}, {INPUT_SIZE[0] // 2}, 1] probability.
- Post-processing (numpy/OpenCV, `device.stages.detector.regions_from_map`): map > {p['bin_threshold']},
  contours, `minAreaRect`, score = mean probability inside the contour ≥ {p['box_threshold']},
  unclip by area·{p['unclip_ratio']}/perimeter, area ≥ {p['min_area']} px², at most
  {p['max_regions']} regions; corners ordered TL, TR, BR, BL along the long side.
  Thresholds tuned on validation scenes (seed {dd.VAL_SEED}), never on the test scenes.

## Accuracy (held-out generated scenes, IoU ≥ 0.5, one-to-one matching)
{report['test_set']['scenes']} scenes of 640x360 (seed {report['test_set']['seed']}, split `test`): held-out
font families (Lato, Linux Libertine, Comfortaa, Fira Code) and held-out background styles
(tiles, wood, cells) never seen in training.

{rows}

Int8 recall by line height (px in the 640x360 frame): {by_height}. Small text is the main
weakness: the model sees the frame at half resolution and predicts at a quarter of it.

Reproduce: `.venv/bin/python calibration/evaluate_detector.py --model-dir models/detector/{manifest['version']}`

## Latency (`Detector.detect` on 640x360 frames: resize + model + post-processing)
Measured on {manifest['measured_on']}, {next(iter(lat.values()), {}).get('runs', '?')} frames each.

{lat_rows}

tflite-runtime 2.14 does not accelerate int8 (see TOOLCHAIN.md): use LiteRT on the device;
where only tflite-runtime exists, `detector_fp32.tflite` is the faster choice there.
The machine was shared with other training jobs (load average ≈ 8 on 2 cores) while
measuring, so all numbers, p95 above all, are pessimistic; `edgelens bench detector`
measures again on the target.

## Training
- Data: {run.get('args', {}).get('scenes', '4000')} generated scenes (`device.synth.scenes.render_scene`, split `train`,
  seed {dd.TRAIN_SEED}): signs, plates, labels, posters, screens and painted text with
  1–4 lines each (text from `device.synth.vocab`, rendered by `device.synth.lines`), warped
  with rotation (±40°) and perspective onto procedural backgrounds (gradient, noise, shapes,
  stripes, bricks, blobs) with text-like clutter (barcodes, stroke rows, rules, dot grids),
  then camera exposure, white balance, uneven light, gamma, blur/motion blur, noise and JPEG.
- {epochs} epochs, batch 16, Adam with cosine decay, BCE + Dice loss on the kernel map, random
  horizontal flips; {run.get('wall_seconds', '?')} s wall on 2 shared CPU cores (scene
  generation ≈ 8 scenes/s with 2 processes; {run.get('note', 'all scenes generated in the run')})
  (`{manifest['training']['command']}`), TensorFlow {manifest['training']['tensorflow']}.
- Int8: post-training full-integer quantization with 200 generated scenes (seed
  {dd.CALIB_SEED}, training distribution), `calibration/quantize_detector.py`.
- Licenses: fonts used for training: {fonts_train}. Held-out test fonts: {fonts_test}
  (license texts in /usr/share/doc/<package>/copyright). Backgrounds, clutter and scenes are
  procedural and ours. No downloaded images.

## Intended use and limitations
{manifest['intended_use']}

Limitations: {manifest['limitations']}
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", type=Path, default=ROOT / "models" / "detector" / "1.0.0")
    p.add_argument("--eval", type=Path, default=ROOT / "runs" / "detector" / "eval.json")
    p.add_argument("--run", type=Path, default=ROOT / "runs" / "detector")
    args = p.parse_args(argv)
    report = json.loads(args.eval.read_text())
    history = [json.loads(line) for line in (args.run / "history.jsonl").read_text().splitlines()
               if line.strip()] if (args.run / "history.jsonl").exists() else []
    run = json.loads((args.run / "run.json").read_text()) if (args.run / "run.json").exists() else {}
    params = DetectorParams(**report["params"])
    int8, fp32 = args.model_dir / "detector.tflite", args.model_dir / "detector_fp32.tflite"
    cases = golden(args.model_dir, params)
    model = TFLiteModel(int8, num_threads=1)
    signature = {"inputs": [s.as_dict() for s in model.inputs],
                 "outputs": [s.as_dict() for s in model.outputs]}
    lat = report["latency_ms"]
    latency = {}
    for key, value in lat.items():
        backend, threads = key.split("-")
        if threads == "2t":
            latency[backend] = value
    manifest = {
        "name": args.model_dir.parent.name, "version": args.model_dir.name,
        "task": "text-detection", "created": datetime.date.today().isoformat(),
        "artifact": file_entry(int8), "extra_files": [file_entry(fp32)],
        "quantization": "int8-full",
        "signatures": {"serving_default": signature},
        "compatible_backends": available_backends(),
        "latency_ms": latency, "latency_ms_all": lat,
        "latency_ms_fp32": report.get("latency_ms_fp32", {}),
        "measured_on": f"{platform.machine()} 2-core shared VM, Python {platform.python_version()}",
        "budget_ms": BUDGET_MS,
        "accuracy": {**{f"{name}_{k}": v[k] for name, v in report["accuracy"].items()
                        for k in ("precision", "recall", "hmean")},
                     "int8_recall_by_height": report["accuracy"]["int8"].get("recall_by_height"),
                     "iou": 0.5,
                     "data": f"{report['test_set']['scenes']} held-out generated 640x360 scenes "
                             f"(seed {report['test_set']['seed']}, split test: held-out fonts "
                             "and background styles)"},
        "training": {"data": "generated scenes, device.synth.scenes (split train), "
                             f"seed {dd.TRAIN_SEED}",
                     "license": "fonts: see MODEL_CARD.md (OFL/Apache/GPL-with-font-exception "
                                "and similar); procedural backgrounds are ours",
                     "command": "python scripts/train_detector.py && python "
                                "calibration/quantize_detector.py && python "
                                "calibration/evaluate_detector.py --tune && python "
                                "calibration/package_detector.py",
                     "seed": dd.TRAIN_SEED, "tensorflow": run.get("tensorflow", "2.14.1"),
                     "epochs": len(history), "wall_seconds": run.get("wall_seconds")},
        "parameters": int(run.get("parameters", 55777)),
        "intended_use": "Find horizontal-ish, rotated (up to about ±45°) and perspective-skewed "
                        "text lines on signs, plates, labels, posters and screens in 640x360 "
                        "frames from the glasses' camera, for line recognition.",
        "limitations": "Trained only on generated scenes; Latin script; lines read left to "
                       "right (upside-down or vertical text is not oriented correctly); text "
                       "lower than about 10 px in a 640x360 frame is often missed; lines very "
                       "close together may merge; curved text is not modelled.",
        "golden": cases,
        "preprocessing": {"function": "device.stages.detector.Detector.preprocess",
                          "input": f"{INPUT_SIZE[0]}x{INPUT_SIZE[1]} BGR, INTER_AREA, "
                                   "(x - 127.5) / 127.5"},
        "postprocessing": {"function": "device.stages.detector.regions_from_map",
                           "params": report["params"]},
    }
    cards.publish(args.model_dir, manifest, _card(manifest, report, history, run))
    print(f"packaged {args.model_dir}: {len(cases)} golden cases")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
