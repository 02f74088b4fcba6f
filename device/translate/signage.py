"""Sign-text habits: casing styles, and the spans that pass through untranslated.

    style_of("NOTAUSGANG") -> "upper";  apply_style("emergency exit", "upper") -> "EMERGENCY EXIT"
    split_protected("Geöffnet 9:00-18:00 Uhr") -> [("Geöffnet", False), ("9:00-18:00", True)]
"""

from __future__ import annotations

import re

_SMALL = {"a", "an", "the", "and", "or", "of", "in", "on", "at", "to", "for", "by", "with",
          "from", "per", "not"}
# Numbers, times, dates, prices, percentages, units glued to digits, codes like A7 or U2.
_PROTECTED = re.compile(
    r"\b\d+[A-Za-z]\b|\b[A-ZÄÖÜ]{1,3}\d+\b|(?:[€$£]\s?)?\d[\d.,:/×x\-–+]*\d?(?:\s?(?:€|EUR|Euro|ct|%|km/h|km|kg|m|cm|mm|h|min|t|l)(?![^\W\d_]))?"
    r"(?:\s?Uhr\b)?", re.UNICODE)


def style_of(text: str) -> str:
    """'upper' (ALL CAPS), 'title' (every word capitalized), 'sentence' or 'lower'."""
    letters = [ch for ch in text if ch.isalpha()]
    if len(letters) >= 2 and all(ch.isupper() for ch in letters):
        return "upper"
    words = [w for w in re.findall(r"[^\W\d_]+", text)]
    if words and all(w[0].isupper() for w in words):
        return "title"
    if letters and letters[0].isupper():
        return "sentence"
    return "lower"


def apply_style(english: str, style: str, keep_case: bool = False) -> str:
    """Cast an English translation into the input's style. keep_case: the text has its own
    casing (a dictionary entry) and is left alone for 'lower'/'sentence' beyond the first
    letter."""
    if not english:
        return english
    if style == "upper":
        return english.upper()
    if not keep_case:
        english = re.sub(r"\bi\b", "I", english)
    if style == "title":
        words = english.split(" ")
        return " ".join(w if (i > 0 and w.lower() in _SMALL) or not w[:1].isalpha()
                        else w[:1].upper() + w[1:] for i, w in enumerate(words))
    if style == "sentence":
        return english[:1].upper() + english[1:]
    return english


def split_protected(text: str) -> list[tuple[str, bool]]:
    """Chunks of text, each flagged True when it passes through unchanged."""
    chunks: list[tuple[str, bool]] = []
    position = 0
    for match in _PROTECTED.finditer(text):
        if not match.group().strip():
            continue
        before = text[position:match.start()].strip()
        if before:
            chunks.append((before, False))
        chunks.append((render_protected(match.group().strip()), True))
        position = match.end()
    rest = text[position:].strip()
    if rest:
        chunks.append((rest, False))
    return chunks


def render_protected(span: str) -> str:
    """'18 Uhr' -> '18:00', '9:30 Uhr' -> '9:30', '9-18 Uhr' -> '9-18 h'; others unchanged."""
    if not span.endswith("Uhr"):
        return span
    number = span[:-3].strip()
    if re.fullmatch(r"\d{1,2}", number):
        return f"{number}:00"
    if ":" in number or "." in number:
        return number.replace(".", ":") if re.fullmatch(r"\d{1,2}\.\d{2}", number) else number
    return f"{number} h"
