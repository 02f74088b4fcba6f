"""Shared setup of the translator tests: real dictionary lines, the committed model."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest

from device.modelstore.store import ModelStore
from device.stages.translate import ding

ROOT = Path(__file__).resolve().parent.parent
DICTIONARY = ding.DEFAULT_PATH
# Headwords whose real dictionary lines make the test phrasebook.
HEADWORDS = ("Notausgang", "Ausgang", "Eingang", "Rauchen verboten", "Kein Zutritt",
             "Bahnsteig", "Fahrkarte", "Apotheke", "Bäckerei", "Feuerlöscher", "Ausfahrt",
             "Hauptbahnhof", "entweichen", "Aalbestand", "Straße", "Haltestelle", "bitte",
             "Bitte", "nicht", "Hund", "Katze", "Zimmer", "Abfall", "Wasser", "Telefon")


def need_dictionary() -> None:
    if not DICTIONARY.is_file():
        pytest.skip(f"{DICTIONARY} missing: install the Debian package trans-de-en "
                    "(scripts/setup does)")


@lru_cache(maxsize=1)
def dictionary_lines() -> tuple[str, ...]:
    with open(DICTIONARY, encoding="utf-8") as handle:
        return tuple(handle)


def real_line(prefix: str) -> str:
    """The first real dictionary line that starts with `prefix`."""
    for line in dictionary_lines():
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no dictionary line starts with {prefix!r}")


def excerpt(path: Path) -> Path:
    """A small dictionary file of real lines (those of HEADWORDS) for a fast phrasebook."""
    starts = tuple(f"{w} " for w in HEADWORDS) + tuple(f"{w};" for w in HEADWORDS)
    lines = [line for line in dictionary_lines() if line.startswith(starts)]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def store_version():
    store = ModelStore(ROOT / "models")
    if "translator" not in store.names():
        pytest.fail("no translator in models/: the committed model is missing")
    return store.get("translator")


def model_parts(tmp: Path):
    """(the committed model, its tokenizer, a phrasebook of the HEADWORDS' real lines)."""
    from device.stages.translate.model import Seq2SeqModel
    from device.stages.translate.phrasebook import Phrasebook
    from device.stages.translate.tokenizer import Tokenizer
    from device.stages.translate.translator import tokenizer_path
    need_dictionary()
    book = Phrasebook.load(excerpt(tmp / "de-en"), tmp / "cache")
    version = store_version()
    model = Seq2SeqModel(version.artifact, backend="auto", num_threads=1)
    return model, Tokenizer(tokenizer_path(version)), book
