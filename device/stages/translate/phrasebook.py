"""The phrasebook: exact dictionary entries, looked up by normalized key.

Built from the installed ding dictionary (GPL-2+, so it is built on the device, not shipped)
the first time it is needed, and cached as an indexed SQLite file keyed by the dictionary's
size and mtime. Lookups read that file (about 10 µs each): the ~430k entries stay on disk
instead of taking ~150 MB of the glasses' memory, and a later start opens it at once. Keys are `normalize.lookup_key` forms,
so case, umlaut spellings (ä / ae) and punctuation do not matter.

    book = Phrasebook.load("/usr/share/trans/de-en", cache_dir)
    book.lookup("NOTAUSGANG")        # 'emergency exit'
    book.is_german_word("ausgang")   # True
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sqlite3
from pathlib import Path
from typing import Mapping

from device.errors import EdgelensError, ModelError
from device.stages.translate import ding
from device.stages.translate.normalize import fold, lookup_key

log = logging.getLogger(__name__)

MAX_WORDS = 8          # longer entries are example sentences, unlikely on signs
MAX_CHARS = 100
FORMAT = "8"
# The dictionary lists senses in its own order, and lowercase keys merge nouns and verbs
# ('Ziehen' the ache, 'ziehen' to pull). For these common sign words the sign sense is
# chosen by hand; every other entry is the dictionary's first sense.
SIGN_SENSES = {
    "drücken": "push", "ziehen": "pull", "geöffnet": "open", "geschlossen": "closed",
    "offen": "open", "Toilette": "toilet", "Toiletten": "toilets", "WC": "toilet",
    "Herren": "men", "Damen": "women", "Ausfahrt": "exit", "Einfahrt": "entrance",
    "Abfahrt": "departure", "Ankunft": "arrival", "Aufzug": "lift", "Fahrstuhl": "lift",
    "Rauchen": "smoking", "Parken": "parking", "Kasse": "checkout", "Vorsicht": "caution",
    "Gefahr": "danger", "Achtung": "attention", "Eintritt frei": "free admission",
    "Ausgang": "exit", "Eingang": "entrance", "Notausgang": "emergency exit",
    "Zimmer frei": "vacancies", "besetzt": "occupied", "frei": "free", "bitte": "please",
    "Stunde": "hour",
}
FUNCTION_WORDS = {
    "im": "in the", "am": "at the", "zum": "to the", "zur": "to the", "vom": "from the",
    "der": "the", "die": "the", "das": "the", "den": "the", "dem": "the", "und": "and",
    "oder": "or", "sowie": "and", "für": "for", "mit": "with", "nicht": "not", "kein": "no",
    "keine": "no", "von": "from", "bei": "at", "ab": "from", "bis": "until", "pro": "per",
    "zu": "to", "nur": "only",
}
"""Function words, for word-by-word glosses and for a chunk that is one of them alone (between
two times: '8–12 und 14–18 Uhr'), where the model is unreliable ('and and')."""
_ENGLISH_WORD = re.compile(r"[a-z]+")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgelens"


def build_entries(dictionary: str | Path) -> dict[str, str]:
    """lookup key → English. A line's own headword wins over the same word listed as a
    synonym elsewhere, which wins over inflections and examples; among equals the first line
    wins (ding lists the common sense first)."""
    ranked: list[dict[str, str]] = [{}, {}, {}]
    for entry in ding.read_entries(dictionary):
        for index, pair in enumerate(entry.pairs):
            if len(pair.de) > MAX_CHARS or len(pair.en) > MAX_CHARS or "\t" in pair.en:
                continue
            key = lookup_key(pair.de)
            if not key or key.count(" ") >= MAX_WORDS:
                continue
            rank = 0 if index == 0 else (1 if pair.kind == "head" else 2)
            ranked[rank].setdefault(key, pair.en)
    entries = ranked[2]
    entries.update(ranked[1])
    entries.update(ranked[0])
    return entries


def _english_words(values) -> frozenset[str]:
    return frozenset(_ENGLISH_WORD.findall(" ".join(values).lower()))


def _write_sqlite(path: Path, entries: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    with sqlite3.connect(tmp) as db:
        db.execute("CREATE TABLE entries (key TEXT PRIMARY KEY, value TEXT NOT NULL) "
                   "WITHOUT ROWID")
        db.execute("CREATE TABLE english (word TEXT PRIMARY KEY) WITHOUT ROWID")
        db.executemany("INSERT INTO entries VALUES (?, ?)", entries.items())
        db.executemany("INSERT INTO english VALUES (?)",
                       ((w,) for w in _english_words(entries.values())))
    db.close()
    tmp.replace(path)


class _ReadOnlyMapping:
    """`in` and `[]` in terms of the subclass's get()."""

    def get(self, key: str, default: str | None = None) -> str | None:
        raise NotImplementedError

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value


class _SqliteEntries(_ReadOnlyMapping):
    """The read-only key → English mapping the phrasebook needs, answered from its SQLite
    cache file (opened read-only; safe to read from the recognition thread)."""

    def __init__(self, path: Path):
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        self._count = self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        self.get = functools.lru_cache(maxsize=4096)(self._get)

    def _get(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def __len__(self) -> int:
        return self._count

    def english_words(self) -> "_SqliteWords":
        return _SqliteWords(self._db)


class _SqliteWords:
    def __init__(self, db: sqlite3.Connection):
        self._db = db

    @functools.lru_cache(maxsize=4096)
    def __contains__(self, word: str) -> bool:
        return self._db.execute("SELECT 1 FROM english WHERE word = ?", (word,)).fetchone() \
            is not None


class _Layered(_ReadOnlyMapping):
    """Hand-chosen sign senses over the dictionary's entries."""

    def __init__(self, top: dict[str, str], base: Mapping[str, str]):
        self._top, self._base = top, base

    def get(self, key: str, default: str | None = None) -> str | None:
        value = self._top.get(key)
        return value if value is not None else self._base.get(key, default)

    def __len__(self) -> int:
        return len(self._base) + sum(1 for k in self._top if k not in self._base)


class Phrasebook:
    def __init__(self, entries: Mapping[str, str], source: str = "<dict>",
                 english_words=None):
        senses = {lookup_key(k): v for k, v in {**SIGN_SENSES, **FUNCTION_WORDS}.items()}
        self._entries = _Layered(senses, entries)
        self.source = source
        if english_words is None:
            english_words = _english_words(list(entries.values()) + list(senses.values()))
        self.english_words = english_words

    @classmethod
    def from_config(cls, cfg) -> "Phrasebook | None":
        """The phrasebook [translator] names, or None: with use_phrasebook off, or when it
        cannot be loaded (logged: who uses it goes on without)."""
        t = cfg.translator
        if not t.use_phrasebook:
            return None
        try:
            return cls.load(t.dictionary, t.phrasebook_cache or None)
        except EdgelensError as exc:
            log.warning("no phrasebook", extra={"error": str(exc)})
            return None

    @classmethod
    def load(cls, dictionary: str | Path, cache_dir: str | Path | None = None) -> "Phrasebook":
        dictionary = Path(dictionary)
        try:
            stat = dictionary.stat()
        except OSError as exc:
            raise ModelError(f"dictionary {dictionary} not found ({exc}); install the Debian "
                             "package trans-de-en or set [translator] dictionary") from exc
        cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        cached = cache_dir / f"phrasebook-v{FORMAT}-{stat.st_size}-{int(stat.st_mtime)}.sqlite"
        if not cached.is_file():
            log.info("building the phrasebook (once; cached)",
                     extra={"dictionary": str(dictionary), "cache_dir": str(cache_dir)})
            try:
                entries = build_entries(dictionary)
            except OSError as exc:      # a directory, unreadable: the user's setting is wrong
                raise ModelError(f"dictionary {dictionary} cannot be read ({exc}); set "
                                 "[translator] dictionary to the ding file (trans-de-en)") from exc
            try:
                _write_sqlite(cached, entries)
            except (OSError, sqlite3.Error) as exc:
                log.warning("cannot cache the phrasebook; keeping it in memory",
                            extra={"cache_dir": str(cache_dir), "error": str(exc)})
                return cls(entries, str(dictionary))
        try:
            table = _SqliteEntries(cached)
        except sqlite3.Error as exc:
            raise ModelError(f"phrasebook cache {cached} is unreadable ({exc}); delete it and "
                             "it is rebuilt") from exc
        return cls(table, str(cached), english_words=table.english_words())

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, text: str) -> str | None:
        return self._entries.get(lookup_key(text))

    def lookup_key(self, key: str) -> str | None:
        return self._entries.get(key)

    def knows_word(self, lower: str) -> bool:
        """A word (lowercase, umlauts as written) the dictionary has, in either language: the
        recognizer's lexicon (`Recognizer.use_lexicon`)."""
        return lower in self.english_words or self.is_german_word(fold(lower))

    def is_german_word(self, folded_lower: str) -> bool:
        """A word the dictionary lists as an entry of its own (folded, lowercase)."""
        return folded_lower in self._entries

    def is_compound(self, word: str) -> bool:
        """'fahrradabstellplatz' → True: splits into known words (linking -s-/-n-/-es-/-en-)."""
        words = self._entries
        if word in words:
            return True
        for i in range(3, len(word) - 2):
            head, tail = word[:i], word[i:]
            if tail not in words and not self.is_compound_tail(tail):
                continue
            if head in words or (head[-1:] in "sn" and head[:-1] in words) \
                    or (head[-2:] in ("es", "en") and head[:-2] in words):
                return True
        return False

    def split_compound(self, word: str, depth: int = 0) -> list[str] | None:
        """'fahrkartenautomat' -> ['fahrkarte', 'automat']: known keys, longest head first,
        linking elements (-s-, -n-, -es-, -en-, -e-) dropped; None when it does not split."""
        words = self._entries
        if word in words:
            return [word]
        if depth >= 3 or len(word) < 6:
            return None
        for i in range(len(word) - 3, 2, -1):
            head, tail = word[:i], word[i:]
            for cut in (1, 2, 0):   # a linking element first: Hunde|futter → Hund
                stem = head[:len(head) - cut] if cut else head
                if cut and head[len(head) - cut:] not in ("s", "n", "e", "es", "en"):
                    continue
                if stem in words and len(stem) >= 3:
                    rest = self.split_compound(tail, depth + 1)
                    if rest:
                        return [stem] + rest
        return None

    def gloss(self, text: str) -> str | None:
        """Word-by-word dictionary translation, compounds split into known parts (German and
        English both put the modifier first); None unless every word is covered."""
        out = []
        for word in lookup_key(text).split():
            parts = self.parts(word)
            if not parts:
                return None
            out.extend(self._entries[p] for p in parts)
        return " ".join(out) if out else None

    def parts(self, word: str) -> list[str] | None:
        """Known keys that make up a folded lowercase word: itself, its compound parts, or
        those of the word without an inflectional ending; None when unknown."""
        return self.split_compound(word) or self._inflected(word)

    def _inflected(self, word: str) -> list[str] | None:
        """'geoeffnete' -> ['geoeffnet']: an adjective/noun ending dropped."""
        for ending in ("en", "em", "er", "es", "e", "n", "s"):
            if word.endswith(ending) and len(word) - len(ending) >= 3:
                parts = self.split_compound(word[:-len(ending)])
                if parts:
                    return parts
        return None

    def is_compound_tail(self, tail: str) -> bool:
        for j in range(3, len(tail) - 2):
            if tail[:j] in self._entries and tail[j:] in self._entries:
                return True
        return False
