"""Where a sign text is cut before the model reads it, and what must come through.

    parts = fitting_parts("Im Brandfall keine Aufzüge benutzen. Bitte die Treppe ...", fits)
    merge_plain_numbers([("Gleis", False), ("4", True)])   # [("Gleis 4", False)]

The model reads at most 23 tokens. A longer notice is cut after its sentences (never after a
number or a known abbreviation: '1. OG', 'ca. 10 Min.', 'Nr. 5'), a sentence that is still too
long after its clause marks or dashes, a clause that is still too long between words (before
'und', 'weil', 'wegen', ... where it can), and neighbouring parts that fit together are read
together. Plain numbers stay inside the text the model reads (a sentence is not cut at its
numbers). A sentence with spans a rule rendered (times, days, dates, prices, floors) is read
whole first, its answer kept only if every span comes out in it (`restore_spans`); otherwise
they are cut out.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Callable

from device.stages.translate.signage import EN_ABBREVIATIONS, TIME_WORDS, clock

PLAIN_NUMBER = re.compile(r"\d+(?:[.,/]\d+)*")
"""A number as written ('4', '2,50', '1.000', '3/4'); '18:00' is a rendered time, not one."""
_SENTENCE_MARK = re.compile(r"[.!?][\"“”'»)\]]?\s+(?=[\"„«(\[]?[A-ZÄÖÜ])")
_WORD_BEFORE = re.compile(r"([^\W_]+)\.$")
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+|(?<=\s[–—-])\s+")
_CLOSING_MARK = re.compile(r"(?<=\S)[,;:.!?]+$|\s[–—-]$")
ABBREVIATIONS = frozenset("""a abs abt allg apr aug b bhf bzw ca d dez di dr do evtl fa feb fr
    geb gem ggf h hbf hausnr hl hr inkl jan jh jul jun kl max min mind mo mi mrd mio mwst nov nr
    okt prof s sa sept so st std str tel u usw v vgl z zzgl zb""".split())
"""Words a full stop follows without ending the sentence (lowercase, without the stop)."""


def merge_plain_numbers(spans: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """Spans (text, protected) with each plain number joined to the text before it, or else
    to the text after it; a number between rendered spans stays protected."""
    out: list[tuple[str, bool]] = []
    for chunk, protected in spans:
        plain = protected and PLAIN_NUMBER.fullmatch(chunk) is not None
        previous_is_text = bool(out) and not out[-1][1]
        # a number still protected here had no text before it: it takes the text after it
        previous_is_number = bool(out) and out[-1][1] and \
            PLAIN_NUMBER.fullmatch(out[-1][0]) is not None
        if (previous_is_text and (plain or not protected)) or \
                (previous_is_number and not protected):
            out[-1] = (f"{out[-1][0]} {chunk}", False)   # spacing is normalized to one space
        else:
            out.append((chunk, protected))
    return out


def plain_numbers(text: str) -> Counter:
    return Counter(PLAIN_NUMBER.findall(text))


def numbers_kept(spans: list[tuple[str, bool]], translation: str) -> bool:
    """Every plain number of the protected spans appears in the translation as often (the
    digits of rule-rendered spans, '10:15', do not stand in for a dropped '10')."""
    wanted, rendered = Counter(), Counter()
    for chunk, protected in spans:
        if protected and PLAIN_NUMBER.fullmatch(chunk) is not None:
            wanted[chunk] += 1
        elif protected:
            rendered += plain_numbers(chunk)
    return not wanted - (plain_numbers(translation) - rendered)


def ends_sentence(text: str) -> bool:
    """The text ends a sentence: '!' or '?', or '.' not after a number or an abbreviation."""
    if text.endswith(("!", "?")):
        return True
    word = _WORD_BEFORE.search(text)
    return text.endswith(".") and not (word and (word.group(1).isdigit()
                                                 or word.group(1).lower() in ABBREVIATIONS))


def closing_mark(english: str, german: str) -> str:
    """The English ends as the German does: a German sentence that ends with '.', '!' or '?'
    gives an English that ends with no mark its mark ('Eltern haften für ihre Kinder.' → '...
    for their children.'), and an English '.' becomes the German's '!' or '?'. An English
    that ends in another mark of its own (':', '…', a quote) or an abbreviation ('etc.',
    'p.m.') is left alone, as is anything after a German abbreviation, a number or an
    ellipsis ('Nächster Zug in 5 Min.', 'Bitte warten …')."""
    german, bare = german.rstrip(), english.rstrip()
    if not bare or not ends_sentence(german) or german.endswith(("..", "…")):
        return english
    mark, last = german[-1], bare[-1]
    if last == "." and mark != "." and not bare.endswith("..") and \
            not re.search(r"(?:\b[^\W\d_]\.)+$", bare) and \
            re.sub(r"^.*?([^\W\d_]*)\.$", r"\1", bare).lower() not in EN_ABBREVIATIONS:
        return bare[:-1] + mark
    if last.isalnum() or last in "%€°":
        return bare + mark
    return english


def sentences(text: str) -> list[str]:
    """The text cut after each sentence's end mark (not after a number or an abbreviation)."""
    parts, start = [], 0
    for mark in _SENTENCE_MARK.finditer(text):
        if not ends_sentence(text[start:mark.start() + 1]):
            continue
        parts.append(text[start:mark.end()].strip())
        start = mark.end()
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def clauses(text: str) -> list[tuple[str, str]]:
    """The text's sentences (`sentences`) cut after , ; : and spaced dashes, as (clause, its
    closing mark) pairs: 'Hunde verboten, Danke!' → [('Hunde verboten', ','), ('Danke', '!')].
    A final '.' is a mark only where it ends a sentence (not 'inkl.'); a run of marks ('?!')
    stays whole."""
    out = []
    for sentence in sentences(text):
        for piece in _CLAUSE_END.split(sentence):
            piece = piece.strip()
            mark = _CLOSING_MARK.search(piece)
            if mark and mark.group().strip() == "." * len(mark.group().strip()) and \
                    not ends_sentence(piece):
                mark = None
            if piece:
                out.append((piece[:mark.start()].rstrip(), mark.group().strip()) if mark
                           else (piece, ""))
    return [(body, mark) for body, mark in out if body or mark]


# where a clause too long for the model is cut between words, best first: before a
# conjunction; before a subordinating word or a preposition (a phrase starts there)
_CUT_BEFORE = (
    frozenset("und oder aber sowie sondern bzw. denn".split()),
    frozenset("weil da damit wenn falls dass bevor nachdem sobald solange während obwohl "
              "sodass wobei um ohne statt wegen bis ab mit für an auf in im am vor nach über "
              "unter zwischen bei von vom zur zum durch gegen aus seit trotz".split()))
_CUT_WORDS = frozenset().union(*_CUT_BEFORE)   # never cut between two: 'bis auf', 'und mit'


def _word_cuts(clause: str, fits: Callable[[str], bool]) -> list[str] | None:
    """A clause that does not fit cut between words into parts that do: each cut as far on
    as the part still fits, before a word of `_CUT_BEFORE` where one allows it (at least
    three words before the cut and two after), else after as many words as fit (leaving two
    for the next part where it can); never right after a word of `_CUT_BEFORE` where another
    cut fits ('bis auf'). None where one word alone does not fit."""
    words, parts = clause.split(), []
    while not fits(" ".join(words)):
        fitting = 0                        # the longest prefix that fits (prefixes grow)
        while fitting + 1 < len(words) and fits(" ".join(words[:fitting + 1])):
            fitting += 1
        if not fitting:
            return None
        allowed = [i for i in range(1, fitting + 1) if words[i - 1].lower() not in _CUT_WORDS]
        cut = max([i for i in allowed if len(words) - i >= 2] or allowed or [fitting])
        for tier in _CUT_BEFORE:
            usable = [i for i in allowed if i >= 3 and len(words) - i >= 2
                      and words[i].lower() in tier]
            if usable:
                cut = usable[-1]
                break
        parts.append(" ".join(words[:cut]))
        words = words[cut:]
    return parts + [" ".join(words)]


def _pieces(text: str, fits: Callable[[str], bool]) -> list[tuple[str, bool]]:
    """(piece, cut between words) for `fitting_parts`: sentences, then clauses of a sentence
    that does not fit, then words of a clause that does not (`_word_cuts`)."""
    pieces: list[tuple[str, bool]] = []
    for sentence in sentences(text):
        if fits(sentence):
            pieces.append((sentence, False))
            continue
        for clause in _CLAUSE_END.split(sentence):
            words = None if fits(clause) else _word_cuts(clause, fits)
            pieces += [(clause, False)] if words is None else [(w, True) for w in words]
    return [(p.strip(), by_words) for p, by_words in pieces if p.strip()]


def fitting_parts(text: str, fits: Callable[[str], bool]) -> list[str] | None:
    """The text cut into parts that each `fits`: sentences, then clauses of a sentence that
    does not, then words of a clause that does not (`_word_cuts`: a long sentence read in
    pieces beats one kept in German); neighbours that fit together are kept together. None
    when a part cannot be cut small enough (or the text is not cut at all)."""
    return cut_to_fit(text, fits)[0]


def cut_to_fit(text: str, fits: Callable[[str], bool]) -> tuple[list[str] | None, bool]:
    """(`fitting_parts`, whether it cut a clause between words: the answer is less sure)."""
    found = _pieces(text, fits)
    pieces = [p for p, _ in found]
    by_words = any(cut for _, cut in found)
    if len(pieces) < 2 or not all(fits(p) for p in pieces):
        return None, by_words
    parts = [pieces[0]]
    for piece in pieces[1:]:
        joined = f"{parts[-1]} {piece}"
        if fits(joined):
            parts[-1] = joined
        else:
            parts.append(piece)
    return parts, by_words


_DASHES = re.compile(r"\\[-–—]|[-–—]")
_NUMBER_MARK = re.compile(r"\d+[.,;:]")
_LEADING_ZERO = re.compile(r"(?<![\d:.,])0(\d:\d\d)")
_CLOCK = re.compile(r"(?<![\d:])\d{1,2}:\d{2}(?![\d:])")
_NUMBER = re.compile(r"(?<![:\d])\d+")
_DAYS_BEFORE = re.compile(r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*$")
_TIME_WORD_START = re.compile(r"(?i:bis|und)\b")
_TIME_WORD_END = re.compile(rf"(?i:\b(?:{'|'.join(TIME_WORDS)}|vom|und))\s*$")
_FLOORS = re.compile(r"(?:Ground floor|Basement(?: \d)?|\d+(?:st|nd|rd|th) floor)$")
_SPAN_KINDS = (("time", re.compile(r"\d{1,2}:\d{2}|\d{1,2}(?::\d{2})? [ap]m")),
               ("number", PLAIN_NUMBER),
               ("date", re.compile(r"\d{1,2} [A-Z][a-z]+(?: \d{4})?")),
               ("floor", re.compile(_FLOORS.pattern, re.IGNORECASE)))


def span_kind(span: str) -> str | None:
    """What a span the rules rendered is: a clock time, a plain number, a date or a floor (else
    None)."""
    return next((kind for kind, pattern in _SPAN_KINDS if pattern.fullmatch(span)), None)


def _hours(found: list[tuple[str, bool]]) -> set[int]:
    """The indexes of plain numbers that are hours, with a clock time later on: after
    um/ab/von/bis/gegen/zwischen/und or a day ('Mo–Mi 10 bis 17 Uhr'), before bis/und, or
    after such an hour and a comma ('um 11, 14 und 16 Uhr')."""
    hours: set[int] = set()
    for k, (chunk, protected) in enumerate(found):
        if not protected or not k or not any(p and _CLOCK.search(c) for c, p in found[k + 1:]):
            continue
        before, was_protected = found[k - 1]
        after = found[k + 1] if k + 1 < len(found) else ("", True)
        if (not was_protected and _TIME_WORD_END.search(before)) or \
                (was_protected and _DAYS_BEFORE.match(before)) or \
                (k - 1 in hours and before.endswith(",")) or \
                (not after[1] and _TIME_WORD_START.match(after[0])):
            hours.add(k)
    return hours


def restore_spans(english: str, found: list[tuple[str, bool]],
                  shown: list[tuple[str, bool]], time_style: str = "24h") -> str | None:
    """The model's translation of a whole text, each of the text's protected spans written as
    the rules write it; None when one is missing or the model wrote a number the text lacks.

    `found` and `shown` are the text's `split_protected` spans in the style the model learned
    (24h) and in the configured `time_style`: 'mon–fri 9:00–18:00' → 'Mon–Fri 9 am–6 pm' (a
    clock time the model wrote itself, 'von 9 bis' → 'from 9:00 to', too)."""
    english = _LEADING_ZERO.sub(r"\1", english)   # '07:00' as the rules write it: '7:00'
    taken: list[tuple[int, int]] = []
    edits: list[tuple[int, int, str]] = []
    hours = _hours(found)
    for k, ((chunk, protected), (rendered, _)) in enumerate(zip(found, shown)):
        if not protected:
            continue
        # '24.' ('am 24. und') and '11,' ('um 11, 14 und 16 Uhr') may lose their mark
        chunk = chunk[:-1] if _NUMBER_MARK.fullmatch(chunk) else chunk
        body = _DASHES.sub("[-–—]", re.escape(chunk)).replace(r"\ ", r"\s?")
        body = re.sub(r"(?<=\d),(?=\d)", "[,.]", body)      # '1,5 m' may come as '1.5 m'
        # only an hour may come out as a clock time ('von 9 bis 12 Uhr'; not 'Bus 12')
        after = r"(?![\w]|[.,]\d)" if k in hours else r"(?![\w]|[.,:]\d)"
        for match in re.finditer(rf"(?<![\w.,]){body}{after}", english, re.IGNORECASE):
            a, b = match.span()
            if not any(a < y and x < b for x, y in taken):
                taken.append((a, b))
                if not PLAIN_NUMBER.fullmatch(chunk):
                    floor = _FLOORS.match(rendered) is not None and a > 0
                    edits.append((a, b, rendered[:1].lower() + rendered[1:] if floor
                                  else rendered))
                break
        else:
            return None
    wanted = Counter(n for chunk, protected in found if protected
                     for n in _NUMBER.findall(chunk))
    if Counter(_NUMBER.findall(english)) - wanted:     # ('9' may come out as '9:00')
        return None

    def own(part: str) -> str:      # a clock time the model wrote itself, in the style
        return part if time_style == "24h" else _CLOCK.sub(
            lambda m: clock(m.group(), time_style), part)

    out, cursor = [], 0
    for a, b, rendered in sorted(edits):
        out += [own(english[cursor:a]), rendered]
        cursor = b
    return "".join(out) + own(english[cursor:])
