"""Parse the ding German-English dictionary (Debian `trans-de-en`, GPL-2+) into clean pairs.

A line is `German side :: English side`. Each side holds sub-entries separated by ` | `
(base form, inflections, compounds, example sentences), aligned by position across the
sides; inside a sub-entry `;` separates alternatives. Tags `{m}`, `[geh.]`, `(...)`,
`<...>` are dropped from the text. Entries are grouped by headword so that a split never
puts a headword (or the inflections on its line) on both sides.

    for entry in read_entries(DEFAULT_PATH):
        entry.headword, entry.pairs   # 'aalbestand', (Pair('Aalbestand', 'eel stock', ...), ...)
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from device.stages.translate.normalize import lookup_key

DEFAULT_PATH = Path("/usr/share/trans/de-en")

_BRACKETS = (re.compile(r"\{[^{}]*\}"), re.compile(r"\[[^\[\]]*\]"),
             re.compile(r"<[^<>]*>"), re.compile(r"\([^()]*\)"))
_VERB_TAG = re.compile(r"\{v[ti r]*\}|\{vi\}|\{vt\}|\{vr\}|\{v\}")
_SPACE = re.compile(r"\s+")
_ABBREVIATION = re.compile(r"(?:(?<=\s)|^)/[^/\s|](?:[^/|]{0,18}[^/\s|])?/(?=[\s;,|]|$)")
"""An abbreviation ding writes after a word: 'Abfahrt /Abf./', 'departure /dep./', 'weight
/w.; wt/', 'serial number /ser. no./'; not an alternative ('dipped / dimmed headlights')."""
_STEM = re.compile(r"(ern|en|er|es|e|n|s)$")


@dataclass(frozen=True)
class Pair:
    de: str                 # one German alternative
    en: str                 # the first English alternative (the training target)
    refs: tuple[str, ...]   # every English alternative of the sub-entry
    kind: str               # 'head' (sub-entry 0) or 'sub' (inflection, compound, example)


@dataclass(frozen=True)
class Entry:
    headword: str           # folded, lowercase, crudely stemmed key of the line's headword
    pairs: tuple[Pair, ...]
    size: int = 1           # 1 + one-word sub-entries (inflections): main senses list most


_ENDING = re.compile(r"[…-][\w-]")
"""An ending to glue on ('…-a-palooza', '-super'), not a word ('… wizard' stays)."""


def strip_tags(text: str) -> str:
    """Remove {..}, [..], <..>, (..) (nested ones too) and abbreviations (/dep./), and
    collapse spaces."""
    text = _ABBREVIATION.sub(" ", text)
    previous = None
    while previous != text:
        previous = text
        for pattern in _BRACKETS:
            text = pattern.sub(" ", text)
    text = text.replace("{", " ").replace("}", " ")
    return _SPACE.sub(" ", text).strip(" ,")


def _alternatives(sub_entry: str) -> list[str]:
    out = []
    for alt in strip_tags(sub_entry).split(";"):
        alt = _SPACE.sub(" ", alt).strip(" ,/")
        if alt and any(ch.isalpha() for ch in alt):
            out.append(alt)
    return out


def _english(alts: list[str], verb: bool) -> list[str]:
    if not verb:
        return alts
    # 'to lament' -> 'lament': on signs a German infinitive reads as an instruction.
    return [a[3:] if a.startswith("to ") else a for a in alts]


def headword_key(text: str) -> str:
    words = lookup_key(text).split()
    return " ".join(_STEM.sub("", w) if len(w) > 5 else w for w in words)


def parse_line(line: str) -> Entry | None:
    """One dictionary line → Entry, or None for comments and unusable lines."""
    line = line.strip()
    if not line or line.startswith("#") or " :: " not in line:
        return None
    german, english = line.split(" :: ", 1)
    de_subs, en_subs = german.split(" | "), english.split(" | ")
    if len(de_subs) != len(en_subs):
        de_subs, en_subs = de_subs[:1], en_subs[:1]
    pairs = []
    for index, (de_sub, en_sub) in enumerate(zip(de_subs, en_subs)):
        de_alts = _alternatives(de_sub)
        # an English ending on its own ('Super… :: …-a-palooza') is no translation of a word
        en_alts = [alt for alt in _english(_alternatives(en_sub), bool(_VERB_TAG.search(de_sub)))
                   if not _ENDING.match(alt)]
        if not de_alts or not en_alts:
            continue
        kind = "head" if index == 0 else "sub"
        pairs += [Pair(de, en_alts[0], tuple(en_alts), kind) for de in de_alts]
    if not pairs:
        return None
    head = headword_key(pairs[0].de)
    size = 1 + sum(1 for sub in de_subs[1:] if len(_alternatives(sub)[:1]) == 1
                   and " " not in _alternatives(sub)[0])
    return Entry(head, tuple(pairs), size) if head else None


def read_entries(path: str | Path = DEFAULT_PATH) -> Iterator[Entry]:
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            entry = parse_line(line)
            if entry is not None:
                yield entry


def split_of(headword: str, val_per_mille: int = 20, test_per_mille: int = 20) -> str:
    """'train', 'val' or 'test', fixed by a hash of the headword (stable across runs)."""
    bucket = zlib.crc32(headword.encode("utf-8")) % 1000
    if bucket < test_per_mille:
        return "test"
    if bucket < test_per_mille + val_per_mille:
        return "val"
    return "train"


def split_pairs(entries: Iterable[Entry]) -> dict[str, list[Pair]]:
    """Headword split; val/test pairs whose German text also occurs in train are dropped,
    and pairs are de-duplicated per split (first occurrence wins)."""
    splits: dict[str, list[Pair]] = {"train": [], "val": [], "test": []}
    for entry in entries:
        splits[split_of(entry.headword)].extend(entry.pairs)
    train_keys = {lookup_key(p.de) for p in splits["train"]}
    out: dict[str, list[Pair]] = {}
    for name, pairs in splits.items():
        seen: set[tuple[str, str]] = set()
        kept = []
        for pair in pairs:
            key = (lookup_key(pair.de), pair.en.lower())
            if key in seen or (name != "train" and key[0] in train_keys):
                continue
            seen.add(key)
            kept.append(pair)
        out[name] = kept
    return out
