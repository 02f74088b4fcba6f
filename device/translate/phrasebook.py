"""The phrasebook: exact dictionary entries, looked up by normalized key.

Built from the installed ding dictionary (GPL-2+, so it is built on the device, not shipped)
the first time it is needed, and cached as a TSV file keyed by the dictionary's size and
mtime; later loads read the cache (about a second). Keys are `normalize.lookup_key` forms,
so case, umlaut spellings (ä / ae) and punctuation do not matter.

    book = Phrasebook.load("/usr/share/trans/de-en", cache_dir)
    book.lookup("NOTAUSGANG")        # 'emergency exit'
    book.is_german_word("ausgang")   # True
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from device.errors import ModelError
from device.translate import ding
from device.translate.normalize import lookup_key

log = logging.getLogger(__name__)

MAX_WORDS = 8          # longer entries are example sentences, unlikely on signs
MAX_CHARS = 100
FORMAT = "5"
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
    # function words, for word-by-word glosses
    "im": "in the", "am": "at the", "zum": "to the", "zur": "to the", "vom": "from the",
    "der": "the", "die": "the", "das": "the", "den": "the", "dem": "the", "und": "and",
    "für": "for", "mit": "with", "nicht": "not", "kein": "no", "keine": "no", "von": "from",
    "bei": "at", "ab": "from", "bis": "until", "pro": "per", "zu": "to", "nur": "only",
}
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


class Phrasebook:
    def __init__(self, entries: dict[str, str], source: str = "<dict>"):
        entries.update({lookup_key(k): v for k, v in SIGN_SENSES.items()})
        self._entries = entries
        self.source = source
        self.english_words = frozenset(_ENGLISH_WORD.findall(" ".join(entries.values()).lower()))

    @classmethod
    def load(cls, dictionary: str | Path, cache_dir: str | Path | None = None) -> "Phrasebook":
        dictionary = Path(dictionary)
        try:
            stat = dictionary.stat()
        except OSError as exc:
            raise ModelError(f"dictionary {dictionary} not found ({exc}); install the Debian "
                             "package trans-de-en or set [translator] dictionary") from exc
        cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        cached = cache_dir / f"phrasebook-v{FORMAT}-{stat.st_size}-{int(stat.st_mtime)}.tsv"
        if cached.is_file():
            entries = {}
            with open(cached, encoding="utf-8") as handle:
                for line in handle:
                    key, _, value = line.rstrip("\n").partition("\t")
                    entries[key] = value
            return cls(entries, str(cached))
        log.info("building the phrasebook from %s (once; cached in %s)", dictionary, cache_dir)
        entries = build_entries(dictionary)
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(".tmp")
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.writelines(f"{k}\t{v}\n" for k, v in entries.items())
            tmp.replace(cached)
        except OSError as exc:
            log.warning("cannot cache the phrasebook in %s: %s", cache_dir, exc)
        return cls(entries, str(dictionary))

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, text: str) -> str | None:
        return self._entries.get(lookup_key(text))

    def lookup_key(self, key: str) -> str | None:
        return self._entries.get(key)

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
