"""Names the model reads as a name it knows: 'Bus 52 nach Buchholz' goes to the model as 'Bus
52 nach Berlin', 'Inh. Thomas Vogel' as 'Inh. Tom', and the answer gets the names back ('Bus 52
to Buchholz'; the model had read 'Bus 52 to book' and 'Inh. Tom bird').

A name made of ordinary words ('Buchholz', 'Grünwald', 'Vogel') is translated word by word by a
model that never saw it, and one it does not know ('Pasing') is cut out of its sentence, which
then loses its grammar ('Zug nach' alone reads 'Trained'). A name the model copies in every
context (`PLACEHOLDERS`) keeps the sentence whole and the name as written.

The places: those of Germany, Austria, Switzerland, Liechtenstein and Luxembourg with at least
500 inhabitants (device/data/places.txt.gz, GeoNames, CC BY 4.0; scripts/build_places.py). The
first names: device/data/first_names.txt (ours). Which of a text's words make a name is the
translator's to say (`Translator._names`).
"""

from __future__ import annotations

import gzip
import re
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "data"
PLACEHOLDERS = {"place": ("Berlin", "Paris", "London", "Oslo", "Hamburg"),
                "person": ("Tom", "John", "Mary")}
"""Names the model copies in every context we tried (translator 3.8.0: 'Berlin' in 7 of 7
transport sentences such as 'Zug nach Berlin fällt heute aus', 'Tom' in 10 of 10 name plates
such as 'Landbäckerei – Inh. Tom'); a text holds as many names of a kind as there are
placeholders of that kind it does not hold itself."""
WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
"""A word as names are made of: letters, or letters joined by hyphens ('Hamburg-Harburg')."""


@lru_cache(maxsize=1)
def place_names() -> frozenset[str]:
    """The place names as written ('Buchholz', 'Bad Tölz'); empty where the file is missing."""
    return _lines(DATA / "places.txt.gz")


@lru_cache(maxsize=1)
def first_names() -> frozenset[str]:
    """Given names as written ('Thomas', 'Ayşe'); empty where the file is missing."""
    return _lines(DATA / "first_names.txt")


def _lines(path: Path) -> frozenset[str]:
    try:
        opened = gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" \
            else open(path, encoding="utf-8")
        with opened as handle:
            return frozenset(line.strip() for line in handle
                             if line.strip() and not line.startswith("#"))
    except OSError:
        return frozenset()


def hold(text: str, find) -> tuple[str, list[tuple[str, str, int]]]:
    """The text with each name replaced by a placeholder of its kind, in the name's case ('ZUG
    NACH BUCHHOLZ' → 'ZUG NACH BERLIN'), and [(placeholder, name as written, times)].
    `find(words, gaps)` gives the names as (first word, after the last word, kind) in order,
    without overlaps; `gaps[k]` is what stands between word k - 1 and word k, the last one
    what follows the last word. The same name twice gets the same placeholder; a name for
    which no placeholder is left stays as it is."""
    matches = list(WORD.finditer(text))
    words = [m.group(0) for m in matches]
    gaps = [text[(matches[k - 1].end() if k else 0):m.start()] for k, m in enumerate(matches)]
    gaps.append(text[matches[-1].end():] if matches else text)
    free = {kind: [p for p in held if p.lower() not in text.lower()]
            for kind, held in PLACEHOLDERS.items()}
    held: dict[str, list] = {}          # name → [placeholder, times]
    out, cursor = [], 0
    for first, end, kind in find(words, gaps):
        start, stop = matches[first].start(), matches[end - 1].end()
        name = text[start:stop]
        if name not in held:
            if not free[kind]:
                continue
            held[name] = [free[kind].pop(0), 0]
        held[name][1] += 1
        out += [text[cursor:start], _cased(held[name][0], name)]
        cursor = stop
    return "".join(out) + text[cursor:], [(p, name, n) for name, (p, n) in held.items()]


def restore(english: str, held: list[tuple[str, str, int]]) -> str | None:
    """The answer with each name back where its placeholder is; None where a placeholder
    does not come out as often as the name stood in the text (the model dropped or doubled
    it)."""
    for placeholder, name, times in held:
        pattern = re.compile(rf"(?<!\w){re.escape(placeholder)}(?!\w)", re.IGNORECASE)
        if len(pattern.findall(english)) != times:
            return None
        english = pattern.sub(lambda _: name, english)
    return english


def _cased(placeholder: str, name: str) -> str:
    return placeholder.upper() if name.isupper() and len(name) > 1 else placeholder
