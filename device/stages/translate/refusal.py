"""Is a text German worth translating? 'garbage' (OCR noise), 'not_german' (English or other
text the glasses should show as it is), 'unknown_words' (no word of it is one the dictionary
knows, in either language, and none looks like a German word: a code, an abbreviation or a
misread the model could only guess at) or '' (German, or cannot tell).

    refusal_of("Bitte nicht rauchen", phrasebook)   # ''
    refusal_of("Please keep the door closed", phrasebook)   # 'not_german'
"""

from __future__ import annotations

import re

from device.stages.translate.normalize import fold
from device.stages.translate.phrasebook import Phrasebook

WORD = re.compile(r"[^\W\d_]+")
"""A run of letters."""
_VOWELS = set("aeiouyäöü")
_CONSONANT_RUN = re.compile(r"[^aeiouyäöü\W\d_]{7,}")
"""Seven consonants in a row (after 'sch' → 's') make no word; German compounds reach six
where their parts meet ('Impfsprechstunde': mpfspr, 'Herbststurm': rbstst)."""
_SMALL_THEN_CAPITAL = re.compile(r"[^\W\d_A-ZÄÖÜ]+[A-ZÄÖÜ]")
"""A small letter and, later, a capital: 'eERRREE', 'ntES' ('iPhone' too, which is kept)."""
# Function words the dictionary's entries rarely list on their own.
_GERMAN_COMMON = frozenset("""der die das den dem des ein eine einen einem einer und oder nicht
    bitte ist sind für fuer zu zum zur von vom mit im in am an auf aus bei nach vor hier kein
    keine nur ab bis ohne über ueber unter durch""".split())
_ENGLISH_COMMON = frozenset("""the a an and or of to is are be please do not no only this that
    these those for with your you keep here there from by at on in it its we our this will
    all any open closed""".split())


def refusal_of(text: str, book: Phrasebook | None) -> str:
    """'no_letters', 'garbage', 'not_german', 'unknown_words' or '' (looks like German, or
    cannot tell). Without a dictionary (`book` None) no text is 'unknown_words'."""
    words = WORD.findall(text)
    if not words:
        return "no_letters"
    symbols = sum(1 for ch in text
                  if not (ch.isalnum() or ch.isspace() or ch in ".,-:'/&!?()€%\""))
    if symbols > max(1, len(text) // 5):
        return "garbage"
    german = english = implausible = 0
    for word in words:
        folded = fold(word).lower()
        is_german = folded in _GERMAN_COMMON or book is not None and (
            book.is_german_word(folded) or (len(folded) >= 6 and book.is_compound(folded)))
        is_english = folded in _ENGLISH_COMMON or (book is not None
                                                   and folded in book.english_words)
        german += is_german
        english += is_english and not is_german
        if not (is_german or is_english or _plausible(word)):
            implausible += 1
    if implausible * 2 > len(words) or (len(words) == 1 and implausible):
        return "garbage"
    if german == 0 and english * 2 >= len(words):
        return "not_german"
    if book is not None and german == 0 and english == 0 and all(
            _code_like(m.group(), text[m.end():m.end() + 1] == ".")
            for m in WORD.finditer(text)):
        # 'OPAC' → 'OPERA HOUSE', 'OV' → 'OVAL', OCR noise 'eERRREE' → 'ground floor'
        return "unknown_words"
    return ""


def _code_like(word: str, abbreviated: bool) -> bool:
    """A word the dictionary lacks that looks like no German word the model might still know
    ('Leerung', 'Lederreparaturen', 'gebührenpflichtig' do): at most four letters ('UVP',
    'omt') or a capital after a small letter ('eERRREE'). A word with its abbreviation's point
    ('ca.', 'inkl.') is left to the model, which knows some."""
    if abbreviated:
        return False
    return len(word) <= 4 or bool(_SMALL_THEN_CAPITAL.search(word))


def _plausible(word: str) -> bool:
    lower = word.lower()
    if len(lower) > 30 or not (set(lower) & _VOWELS) and len(lower) >= 2:
        return False
    if _CONSONANT_RUN.search(lower.replace("sch", "s")):
        return False
    inner = word[1:]
    return not (any(ch.isupper() for ch in inner) and any(ch.islower() for ch in inner))
