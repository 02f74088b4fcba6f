"""Text normalization for German sign text: one key for lookups, one form for the model.

    lookup_key("AUSGÄNGE!")      -> "ausgaenge"
    model_text("Ausgänge")       -> "ausgaenge"
    join_hyphen_breaks("Not-\\nausgang") -> "Notausgang"

German umlauts are folded to their ae/oe/ue spellings (and ß to ss), because OCR and
ALL-CAPS signs write them both ways; the model is trained on the same folded form.
"""

from __future__ import annotations

import re
import unicodedata

_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe",
                       "Ü": "Ue", "ẞ": "SS"})
_QUOTES = str.maketrans({"„": '"', "“": '"', "”": '"', "‚": "'", "‘": "'", "’": "'",
                         "«": '"', "»": '"', "–": "-", "—": "-", "‐": "-", "‑": "-",
                         "\u00a0": " ", "…": "..."})
# A hyphen at a line end followed by a lowercase letter: OCR split one word over two lines.
_HYPHEN_BREAK = re.compile(r"(\w)-[ \t]*\r?\n[ \t]*(?=[a-zäöüß])")
_SPACE = re.compile(r"\s+")
_EDGE_PUNCT = re.compile(r"^[\s.,;:!?¡¿\"'()\[\]*·•]+|[\s.,;:!?\"'()\[\]*·•]+$")
_INNER_PUNCT = re.compile(r"[.,;:!?\"()\[\]*·•]+")


def strip_controls(text: str) -> str:
    """Control and format characters become spaces (newlines included)."""
    return "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in text)


def join_hyphen_breaks(text: str) -> str:
    """'Not-\\nausgang' -> 'Notausgang'; 'Nord-\\nSüd' keeps its hyphen (capital after it)."""
    text = _HYPHEN_BREAK.sub(r"\1", text)
    return re.sub(r"(\w)-[ \t]*\r?\n[ \t]*(?=[A-ZÄÖÜ])", r"\1-", text)


def clean(text: str) -> str:
    """Readable form of OCR text: NFC, typographic quotes/dashes unified, hyphenated line
    breaks joined, control characters removed, whitespace collapsed."""
    text = unicodedata.normalize("NFC", text).translate(_QUOTES)
    text = join_hyphen_breaks(text)
    return _SPACE.sub(" ", strip_controls(text)).strip()


def fold(text: str) -> str:
    """Umlauts to ae/oe/ue, ß to ss (case kept)."""
    return text.translate(_FOLD)


def model_text(text: str) -> str:
    """The form the model was trained on: cleaned, folded, lowercase."""
    return fold(clean(text)).lower()


def lookup_key(text: str) -> str:
    """Phrasebook/cache key: model_text without punctuation at the edges or inside."""
    key = _EDGE_PUNCT.sub("", model_text(text))
    return _SPACE.sub(" ", _INNER_PUNCT.sub(" ", key)).strip()
