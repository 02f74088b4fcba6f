"""`edgelens recognize CROP...`: read text-line crops with the int8 recognizer."""

from __future__ import annotations

import json

import cv2

from device.commands._per_file import load_image, run_per_file
from device.config import Config
from device.errors import InputError
from device.modelstore.store import ModelStore
from device.stages.lexicon import Lexicon
from device.stages.recognizer import Recognizer
from device.stages.translate.phrasebook import Phrasebook


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "recognize", help="read text-line crops (image files)",
        description="Read each text-line crop (an image of one line of text) and print the "
                    "text and confidence. A file that cannot be used is reported and the "
                    "others are still read.")
    parser.add_argument("crops", nargs="+", metavar="CROP", help="image files (PNG, JPEG, ...)")
    parser.add_argument("--json", action="store_true",
                        help='print a JSON list of {"path", "text", "confidence"}')
    parser.add_argument("--backend", choices=("auto", "litert", "tflite"),
                        help="override [runtime] backend")
    parser.set_defaults(func=run)


def load_recognizer(cfg: Config, backend: str | None = None, num_threads: int | None = None,
                    translator=None):
    """(Recognizer, ModelVersion) as the config names them, reading unknown words against the
    translator's dictionary ([recognizer] lexicon_prior): `translator`'s phrasebook, or the
    phrasebook loaded here (`Phrasebook.from_config`); without one, words as read."""
    store = ModelStore.for_config(cfg)
    version = store.get(cfg.models.recognizer, cfg.models.recognizer_version or None)
    recognizer = Recognizer(version.artifact, backend=backend or cfg.runtime.backend,
                            num_threads=num_threads or cfg.runtime.num_threads)
    if cfg.recognizer.lexicon_prior > 0:
        lexicon = Lexicon()
        lexicon.fill(translator.phrasebook if translator is not None
                     else Phrasebook.from_config(cfg))
        recognizer.use_lexicon(lexicon, cfg.recognizer.lexicon_prior)
    return recognizer, version


def read_crop(path: str):
    image = load_image(path, cv2.IMREAD_UNCHANGED)
    if image.dtype != "uint8":
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(float(image.max()), 1.0))
    if image.size == 0 or min(image.shape[:2]) < 2:
        raise InputError(f"{path}: empty crop ({image.shape[1]}x{image.shape[0]} px)")
    return image


def run(args, cfg: Config) -> int:
    recognizer, _ = load_recognizer(cfg, backend=args.backend)
    def read(path: str) -> dict:
        reading = recognizer.read(read_crop(path))
        return {"text": reading.text, "confidence": reading.confidence}

    results, failures = run_per_file(args.crops, read, args.json)
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        for r in results:
            if "text" in r:
                print(f"{r['path']}\t{r['confidence']:.3f}\t{r['text']}")
    return 1 if failures else 0
