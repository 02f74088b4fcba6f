"""Place names the model reads as a name it knows: 'Bus 52 nach Buchholz' goes to the model as
'Bus 52 nach Berlin', and the answer gets 'Buchholz' back ('Bus 52 to Buchholz'; the model had
read 'Bus 52 to book').

A place named by ordinary words ('Buchholz', 'Grünwald', 'Holzkirchen') is translated word by
word by a model that never saw it, and one it does not know ('Pasing') is cut out of its
sentence, which then loses its grammar ('Zug nach' alone reads 'Trained'). A name the model
copies in every context (`PLACEHOLDERS`) keeps the sentence whole and the name as written.

The places: those of Germany, Austria, Switzerland, Liechtenstein and Luxembourg with at least
500 inhabitants (device/data/places.txt.gz, GeoNames, CC BY 4.0; scripts/build_places.py).
Which of a text's words stand for a place is the translator's to say (`Translator._held`:
not a German word, not after an article, not a name English writes its own way).
"""

from __future__ import annotations

import gzip
import re
from functools import lru_cache
from pathlib import Path

PLACES_FILE = Path(__file__).resolve().parents[2] / "data" / "places.txt.gz"
PLACEHOLDERS = ("Berlin", "Paris", "London", "Oslo", "Hamburg")
"""Names the model copies in every context we tried (7 of 7 sentences each for translator
3.8.0: 'Zug nach Berlin fällt heute aus', 'Nächster Halt: Berlin'); a text holds as many places
as there are placeholders it does not hold itself."""
_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")


@lru_cache(maxsize=1)
def place_names() -> frozenset[str]:
    """The place names, as written ('Buchholz'); empty where the file is missing."""
    try:
        with gzip.open(PLACES_FILE, "rt", encoding="utf-8") as handle:
            return frozenset(line.strip() for line in handle
                             if line.strip() and not line.startswith("#"))
    except OSError:
        return frozenset()


def hold(text: str, is_place) -> tuple[str, list[tuple[str, str]]]:
    """The text with each place (`is_place(word, index, words)`) replaced by a placeholder, in
    the word's case ('ZUG NACH BUCHHOLZ' → 'ZUG NACH BERLIN'), and [(placeholder, word)]; the
    same place twice gets the same placeholder."""
    free = [p for p in PLACEHOLDERS if p.lower() not in text.lower()]
    held: list[tuple[str, str]] = []
    words = [m.group(0) for m in _WORD.finditer(text)]
    index = iter(range(len(words)))

    def swap(match: re.Match) -> str:
        word, at = match.group(0), next(index)
        for placeholder, original in held:
            if original == word:
                return _cased(placeholder, word)
        if len(held) < len(free) and is_place(word, at, words):
            held.append((free[len(held)], word))
            return _cased(held[-1][0], word)
        return word

    swapped = _WORD.sub(swap, text)
    return swapped, held


def restore(english: str, held: list[tuple[str, str]]) -> str | None:
    """The answer with each place back where its placeholder is; None where a placeholder
    does not come out exactly once (the model dropped or doubled the place)."""
    for placeholder, word in held:
        pattern = re.compile(rf"(?<!\w){re.escape(placeholder)}(?!\w)", re.IGNORECASE)
        if len(pattern.findall(english)) != 1:
            return None
        english = pattern.sub(lambda _: word, english)
    return english


def _cased(placeholder: str, word: str) -> str:
    return placeholder.upper() if word.isupper() and len(word) > 1 else placeholder
