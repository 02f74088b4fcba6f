"""`edgelens translate [--json] TEXT...`: translate German sign text to English."""

from __future__ import annotations

import dataclasses
import json
import math
import sys

from device.config import Config
from device.stages.translate.phrasebook import Phrasebook
from device.stages.translate.translator import Translator


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "translate", help="translate German sign text to English",
        description="Translate each TEXT (German) to English: LRU cache, then the sign "
                    "book the translator version ships (whole sign texts), the int8 "
                    "transformer and the phrasebook built from the installed ding dictionary. "
                    "Text that is empty, too long, not German or OCR garbage is kept as it "
                    "is (via 'passthrough', with the reason).")
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="German text, one per argument")
    parser.add_argument("--json", action="store_true",
                        help='print a JSON list of {"source", "translation", "via", '
                             '"confidence", "uncertain", "ms"}')
    parser.add_argument("--backend", choices=("auto", "litert", "tflite"),
                        help="override [runtime] backend")
    parser.add_argument("--beam", type=int, metavar="N", help="override [translator] beam_size")
    parser.add_argument("--ocr-confidence", type=float, metavar="X",
                        help="recognizer confidence of the texts (low ones are not translated)")
    parser.add_argument("--no-phrasebook", action="store_true",
                        help="the model alone (no sign book or dictionary lookup)")
    parser.add_argument("--build-phrasebook", action="store_true",
                        help="build (or rebuild the cache of) the phrasebook from the "
                             "dictionary and exit")
    parser.set_defaults(func=run)


def _config_with(cfg: Config, args):
    overrides = {}
    if args.beam:
        overrides["beam_size"] = args.beam
    if args.no_phrasebook:
        overrides["use_phrasebook"] = False
    if not overrides:
        return cfg
    return dataclasses.replace(cfg, translator=dataclasses.replace(cfg.translator, **overrides))


def run(args, cfg: Config) -> int:
    if args.build_phrasebook:
        book = Phrasebook.load(cfg.translator.dictionary, cfg.translator.phrasebook_cache or None)
        print(f"phrasebook: {len(book)} entries ({book.source})")
        return 0
    texts = list(args.texts)
    if not texts:
        if sys.stdin is None or sys.stdin.isatty():
            print("usage: edgelens translate TEXT... (or one text a line on standard input, "
                  "e.g. echo 'Bitte nicht rauchen' | edgelens translate)", file=sys.stderr)
            return 2
        texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
        if not texts:
            print("edgelens translate: no text given (arguments or standard input)",
                  file=sys.stderr)
            return 2
    translator = Translator.from_config(_config_with(cfg, args), backend=args.backend)
    # [translator] budget_ms keeps the live path on time; one-shot text has no frame to keep
    # up with, so a slow device gives the same answer as a fast one, later
    translator.settings = dataclasses.replace(translator.settings, budget_ms=math.inf)
    results = [translator.translate(text, ocr_confidence=args.ocr_confidence)
               for text in texts]
    if args.json:
        print(json.dumps([r.as_dict() for r in results], ensure_ascii=False, indent=2))
        return 0
    for r in results:
        note = f", {r.reason}" if r.reason else ", uncertain" if r.uncertain else ""
        print(f"{r.source} → {r.translation}   [{r.via}{note}, confidence {r.confidence:.2f}, "
              f"{r.ms:.2f} ms]")
    return 0
