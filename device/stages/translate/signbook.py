"""The sign book: whole sign and notice texts with the English an English sign would print.

A translator version may ship one (`sign_phrasebook` in its manifest, a file among its
`extra_files`, so the store checks its hash and an update carries it): the sign register
(`calibration/data/sign_register.tsv`, written for this project) and the sentences of its
notices. The model reproduces about four in five of the register's texts word for word; the
book gives the register's own answer for all of them ("Rauchen verboten" → "No smoking",
"AUSFAHRT FREIHALTEN" → "KEEP EXIT CLEAR" once the sign's casing is applied). Common signs
recur: the register also holds 199 of the 310 signs of our validation set, written apart
(`bench translator` reads the book without them).

Keys are `normalize.lookup_key` forms (case, umlaut spellings and punctuation do not matter),
so "NICHT RAUCHEN!" and "Nicht rauchen" are one entry. `lookup_dotless` finds an entry by its
text with the umlauts' dots dropped, as OCR often reads them ("Offnungszeiten" for
"Öffnungszeiten"), where that form belongs to one entry only; the translate stage asks it only
for a text with a word the dictionary lacks ("Drucken" is a word: not "Drücken").

    book = SignBook.load(version.file("sign_phrasebook.tsv.gz"))
    book.lookup("rauchen verboten")       # 'No smoking'
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections import Counter
from functools import cached_property
from pathlib import Path

from device.errors import ModelStoreError
from device.stages.translate.normalize import lookup_key

MANIFEST_KEY = "sign_phrasebook"


_DOTLESS = str.maketrans({"ä": "a", "ö": "o", "ü": "u", "Ä": "A", "Ö": "O", "Ü": "U"})
_UMLAUTS = frozenset("äöüÄÖÜ")


def dotless_key(text: str) -> str:
    """The lookup key of the text with its umlauts read without their dots."""
    return lookup_key(text.translate(_DOTLESS))


class SignBook:
    def __init__(self, entries: dict[str, str], origin: str = "<entries>",
                 dotless: dict[str, str] | None = None):
        self.entries = entries
        self.origin = origin
        # dotless form → key, where one key has that form (ambiguous forms are left out)
        self.dotless = dotless if dotless is not None else {}

    def __len__(self) -> int:
        return len(self.entries)

    def lookup(self, text: str) -> str | None:
        return self.entries.get(lookup_key(text))

    @cached_property
    def german_words(self) -> frozenset[str]:
        """Words (folded, lowercase, 3+ letters) that two or more of the book's German texts
        use: the words signs are made of ('zutritt', 'ausgang'); a name one sign gives is not
        among them."""
        counts = Counter(word for key in self.entries
                         for word in set(re.findall(r"[^\W\d_]{3,}", key)))
        return frozenset(word for word, n in counts.items() if n >= 2)

    def lookup_dotless(self, text: str) -> str | None:
        """The entry whose text, its umlauts read without their dots, is this one."""
        key = self.dotless.get(dotless_key(text))
        return self.entries.get(key) if key is not None else None

    def without(self, keys) -> "SignBook":
        """The book less the entries of these lookup keys (an evaluation leaves out its own
        texts)."""
        keys = set(keys)
        return SignBook({k: v for k, v in self.entries.items() if k not in keys},
                        f"{self.origin} without {len(keys)} keys",
                        {d: k for d, k in self.dotless.items() if k not in keys})

    @classmethod
    def parse(cls, text: str, origin: str = "<text>") -> "SignBook":
        """Lines 'German<TAB>English'; '#' lines and blank lines are skipped. A malformed line
        is an error that names it (the file came with a model version: it is not guessed at).
        The first English given for a key wins."""
        entries: dict[str, str] = {}
        dotless: dict[str, str | None] = {}
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) != 2 or not cols[0].strip() or not cols[1].strip():
                raise ModelStoreError(f"{origin}:{number}: expected 'German<TAB>English', "
                                      f"got {line[:60]!r}")
            key = lookup_key(cols[0])
            if key:
                entries.setdefault(key, cols[1].strip())
                loose = dotless_key(cols[0]) if _UMLAUTS & set(cols[0]) else key
                if loose != key:
                    dotless[loose] = key if dotless.get(loose, key) == key else None
        return cls(entries, origin, {d: k for d, k in dotless.items()
                                     if k is not None and d not in entries})

    @classmethod
    def load(cls, path: str | Path) -> "SignBook":
        """A book file: UTF-8 text, gzip-compressed where its name ends in .gz."""
        path = Path(path)
        try:
            data = path.read_bytes()
            if path.name.endswith(".gz"):
                data = gzip.decompress(data)
            text = data.decode("utf-8")
        except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
            raise ModelStoreError(f"cannot read the sign book {path}: {exc}") from exc
        return cls.parse(text, str(path))

    @classmethod
    def for_version(cls, version) -> "SignBook | None":
        """The book a translator version ships (None when its manifest names none)."""
        name = version.manifest.get(MANIFEST_KEY)
        if not name:
            return None
        return cls.load(version.file(name))


def write(path: Path, pairs: list[tuple[str, str]]) -> int:
    """Write the pairs as a sign book, one line per key (the first English given for it),
    gzip-compressed where the name ends in .gz (the same bytes for the same pairs); returns
    how many were written."""
    seen: set[str] = set()
    lines = ["# German sign or notice text\tEnglish (edgelens sign register)"]
    for de, en in pairs:
        key = lookup_key(de)
        # one line each, as `parse` reads them back ('#' starts a comment there)
        if not key or key in seen or "\t" in de + en or de.strip().startswith("#") or \
                len(de.strip().splitlines()) != 1 or len(en.strip().splitlines()) != 1:
            continue
        seen.add(key)
        lines.append(f"{de.strip()}\t{en.strip()}")
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0) if path.name.endswith(".gz")
                     else data)
    return len(lines) - 1
