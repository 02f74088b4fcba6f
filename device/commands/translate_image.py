"""`edgelens translate-image IMAGE... [--out DIR] [--json]`: a photo in, the translated overlay
out, as the glasses would show it."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import cv2

from device.commands._per_file import load_image, run_per_file
from device.commands.ocr import load_detector
from device.commands.recognize import load_recognizer
from device.config import Config
from device.errors import InputError
from device.live.overlay import OverlayItem, OverlayRenderer, sample_colours
from device.stages.recognizer import read_regions
from device.live.text_blocks import Line, group
from device.stages.translate.translator import Translator

MAX_SIDE = 1920
"""Larger photos are scaled down first (the detector sees 640 px anyway; crops keep detail)."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "translate-image", help="translate the signs in photos and draw the overlay",
        description="For each photo: find the text lines, read them, group the lines of one "
                    "sign into blocks, translate each block and draw the translation over it. "
                    "Writes <name>.translated.png beside the photo (or into --out) and prints "
                    "each block: German, English, where the translation came from and the "
                    "confidence. A file that cannot be used is reported and the others go on.")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="photos (PNG, JPEG, ...)")
    parser.add_argument("--out", metavar="DIR", help="folder for the overlaid images "
                                                      "(default: beside each photo)")
    parser.add_argument("--json", action="store_true",
                        help='print a JSON list of {"path", "output", "blocks": [{"german", '
                             '"english", "via", "confidence", "uncertain", "ocr_confidence", '
                             '"lines", "polygon"}]}')
    parser.add_argument("--backend", choices=("auto", "litert", "tflite"),
                        help="override [runtime] backend")
    parser.set_defaults(func=run)


def output_path(image: str, out_dir: str | None) -> Path:
    path = Path(image)
    folder = Path(out_dir) if out_dir else path.parent
    return folder / f"{path.stem}.translated.png"


def translate_image(image, detector, recognizer, translator, renderer, min_confidence: float):
    """(overlaid image, blocks as dicts) for one BGR image."""
    h, w = image.shape[:2]
    if max(h, w) > MAX_SIDE:
        scale = MAX_SIDE / max(h, w)
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA)
    lines = [Line(region.polygon, reading.text, reading.confidence,
                  *sample_colours(image, region.polygon))
             for region, reading in read_regions(recognizer, image, detector.detect(image),
                                                 min_confidence)]
    blocks, items = [], []
    for block in group(lines):
        result = translator.translate(block.text, ocr_confidence=block.confidence)
        shown = result.translation or block.text
        first = block.lines[0]
        items.append(OverlayItem(block.polygon, shown, first.foreground, first.background,
                                 uncertain=result.uncertain))
        blocks.append({"german": block.text, "english": shown, "via": result.via,
                       "confidence": round(result.confidence, 3),
                       "uncertain": result.uncertain,
                       "ocr_confidence": round(block.confidence, 3),
                       "lines": len(block.lines),
                       "polygon": [[round(float(x), 1), round(float(y), 1)]
                                   for x, y in block.polygon]})
    return renderer.render(image, items), blocks


def run(args, cfg: Config) -> int:
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    detector, _ = load_detector(cfg, backend=args.backend)
    translator = Translator.from_config(cfg, backend=args.backend)
    recognizer, _ = load_recognizer(cfg, backend=args.backend, translator=translator)
    # no time budget for a photo: a slow device gives the same answer as a fast one, later
    translator.settings = replace(translator.settings, budget_ms=math.inf)
    renderer = OverlayRenderer()

    def work(path: str) -> dict:
        overlaid, blocks = translate_image(load_image(path), detector, recognizer, translator,
                                           renderer, cfg.recognizer.min_confidence)
        target = output_path(path, args.out)
        if not cv2.imwrite(str(target), overlaid):
            raise InputError(f"cannot write {target}")
        return {"output": str(target), "blocks": blocks}

    results, failures = run_per_file(args.images, work, args.json)
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        for r in results:
            if "blocks" not in r:
                continue
            print(f"{r['path']} → {r['output']}: {len(r['blocks'])} text block(s)")
            for b in r["blocks"]:
                note = ", uncertain" if b["uncertain"] else ""
                print(f"  {b['german']}  →  {b['english']}   [{b['via']}{note}, confidence "
                      f"{b['confidence']:.2f}, read {b['ocr_confidence']:.2f}]")
    sys.stdout.flush()
    return 1 if failures else 0
