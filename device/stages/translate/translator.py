"""The translate stage: cache → sign book and phrasebook → tiny transformer, with sign habits
and refusals.

    translator = Translator.from_config(config)
    t = translator.translate("NOTAUSGANG", ocr_confidence=0.93)
    t.translation, t.via, t.confidence, t.ms      # 'EMERGENCY EXIT', 'phrasebook', 1.0, 0.02

When the model is unsure (confidence below `gloss_below_confidence`) and every word of the
text is in the dictionary (compounds split into known parts: 'Fahrkartenautomat' → 'ticket
machine'), the word-by-word gloss is given instead (via "gloss", confidence 0.3: it is
understandable, rarely idiomatic, and never labelled as a known translation). With
`show_glosses` off such a text is kept as read (passthrough, reason "gloss_hidden").

Days, times, floors and prices are written by rule. A text that mixes them with words is first
read whole (the model learned to write them the English way), and that answer is kept only if
every one of them comes out in it, then written as the rules write it, with no number added;
otherwise they are cut out of what the model reads. Plain numbers stay inside it (if the model
drops one, the text is cut at its numbers instead), and a notice longer than the model reads
is translated sentence by sentence (`segment`). A text of several clauses that the model
reads whole with confidence under `split_below_confidence` is read again clause by clause
('Einfahrt freihalten, Tag und Nacht'), and that answer wins when every clause is surer than
the whole was (the reading stops at the first clause that is not). The model writes
lowercase: copied names and codes get their own spelling back, days and months their
capitals (`signage.english_casing`). Names made of ordinary words (places of the place list,
streets, people: 'Bus 52 nach Buchholz', 'Rosenheimer Straße', 'Inh. Thomas Vogel') go to the
model as names it copies ('Berlin', 'Tom') and come back as written (`names`).
A model answer less confident than `uncertain_below`, like every gloss, is marked `uncertain`
(the overlay draws it with an amber outline); so is one with a sentence too long for the model
even between its clause marks, read in pieces cut between words (`segment.fitting_parts`).

A text (or a sentence or chunk of one) that the version's sign book holds (`signbook`: the sign
register the model was trained on, shipped with it) gets the register's English before the
model is asked; it is labelled "phrasebook" like a dictionary entry.

`via` says where the answer came from: "phrasebook" (a sign book or dictionary entry for the
whole text or chunk), "model", "gloss" (word by word), "rule" (only days, times, floors or prices, written the
English way by `signage.render_sign_span`), "cache", or "passthrough" when the original text
is kept (then `reason` says why: empty, low_ocr_confidence, too_long, no_letters, protected
(names, numbers, a lone letter), garbage, not_german, unknown_words (`refusal`),
low_model_confidence, over_budget, no_model, error).
A passthrough's `translation` is the cleaned original text (empty for empty input), so the
overlay keeps showing what was read instead of an invented translation. `translate` never
raises: a failure inside becomes a passthrough with reason "error", logged.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from device.config import Config
from device.errors import ModelStoreError
from device.modelstore.store import ModelStore
from device.stages.translate.cache import LRUCache
from device.stages.translate.model import Seq2SeqModel
from device.stages.translate.normalize import clean, fold, lookup_key, model_text
from device.stages.translate.phrasebook import FUNCTION_WORDS, Phrasebook
from device.stages.translate.names import (PLACEHOLDERS, first_names, hold, place_names,
                                          restore)
from device.stages.translate.refusal import WORD, refusal_of
from device.stages.translate.signbook import SignBook
from device.stages.translate.segment import (PLAIN_NUMBER, clauses, closing_mark, cut_to_fit,
                                             ends_sentence, merge_plain_numbers, numbers_kept,
                                             restore_spans, sentences, span_kind)
from device.stages.translate.signage import (PERSON_TAKERS, SURNAMES, TITLES, apply_style,
                                             cut_words_joined, english_casing, english_numbers,
                                             english_place,
                                             english_sentences, name_plate, render_in_place,
                                             sentence_capitals, slash_parts, small_start,
                                             split_arrows, split_protected, style_of,
                                             takes_name)
from device.stages.translate.tokenizer import EOS, Tokenizer

log = logging.getLogger(__name__)

VIAS = ("phrasebook", "cache", "model", "gloss", "rule", "passthrough")
GLOSS_CONFIDENCE = 0.3   # a word-by-word dictionary gloss: understandable, rarely idiomatic
NAME_OVERRIDE = 0.95     # words the model translates this surely (not copied) are no names
_FUNCTION_KEYS = frozenset(lookup_key(word) for word in FUNCTION_WORDS)
_DROPPABLE = _FUNCTION_KEYS - {"ab", "bis", "nur", "nicht", "kein", "keine"}
"""Function words English signs leave out ('von 8–18 Uhr' → '8:00–18:00'); not these ('ab 18
Uhr' → 'from 18:00')."""
_NOT_CODES = _FUNCTION_KEYS | {"in", "an", "um", "auf", "aus", "nach", "ca"}
"""Words in capitals before a number that are words, not codes ('IN 5 Min')."""
_TRUST = {"phrasebook": 3, "model": 2, "gloss": 1}
"""A text made of chunks answered in several ways is labelled by its least trusted chunk."""
_ADDRESS = re.compile(r"@|://|\bwww\.|\w\.(?:de|at|ch|com|org|net|eu|info)\b", re.IGNORECASE)
"""A web or e-mail address: spelled as written, never corrected."""
_LONGEST_WORD = 30
"""Longer runs of letters (a railing read as 'llllll', words run together) are not corrected."""
_DIGIT_LETTERS = {"0": "o", "1": "li", "5": "s"}
"""Letters OCR reads as digits."""
_LOOK_ALIKES = (("l", "i"), ("i", "l"), ("q", "g"), ("rn", "m"), ("m", "rn"), ("c", "e"),
                ("e", "c"))
"""Letters OCR reads one for the other (misread, read for)."""
_PLACE_HEADS = ("platz", "strasse", "gasse", "weg", "allee", "ring", "damm", "ufer", "tor",
                "bruecke", "markt", "garten", "park", "berg", "dorf", "feld", "see", "bach",
                "burg", "stadt", "hausen", "heim", "ingen", "kirchen", "hof", "bahnhof", "au",
                "ach", "stedt", "leben", "rode", "furt", "hagen", "ow", "itz")
"""Last parts of compounds that name a place ('Marienplatz', 'Ostbahnhof', 'Sendlinger Tor')."""
_MARKS = ",;:.!?"
_ARTICLES = frozenset("der die das den dem des ein eine einen einem einer eines".split())
_BEFORE_PERSONS = PERSON_TAKERS | {"ing."}
"""Words before a person's name ('Dr. Klaus', 'Inh. Thomas'): a place's name there is a
first name."""
_BEFORE_SURNAMES = frozenset({"inh.", "inhaber", "inhaber:", "inhaberin", "inhaberin:"})
"""Words before a surname alone ('Inh. Vogel'): their word ends with the dot or colon that
stands between it and the name. Not 'Familie': 'Familie Tom' reads 'Tom' ('Welcome to
Huber' for 'Willkommen bei Familie Huber')."""
_COMPANY = frozenset("GmbH KG AG OHG eG Söhne Sohn Co Partner Tochter".split())
"""Words after a company's name, as written ('Vogel Transporte KG', 'Fischer & Söhne'; not
'EG', the ground floor)."""
_NOT_SURNAMES = _FUNCTION_KEYS | {"gmbh", "kg", "ag", "und", "co", "partner", "söhne",
                                  "kollegen", "team", "praxis", "inh", "str"}
"""Capitalized words after a given name that are no surname ('Anna und ...', 'Team')."""
_PLACEHOLDER_NAMES = frozenset(p for held in PLACEHOLDERS.values() for p in held)
_PLACEHOLDER_WORDS = re.compile(r"(?i)\b(?:" + "|".join(sorted(_PLACEHOLDER_NAMES)) + r")\b")
_STREET_WORDS = frozenset("Straße Strasse Str Platz Weg Allee Ring Damm Tor Gasse Ufer Brücke "
                          "Markt Steig Graben Chaussee Berg Feld".split())
"""A street's word after an adjective in -er: 'Rosenheimer Straße', 'Sendlinger Tor'."""
_STREET_HEADS = ("strasse", "str", "gasse", "allee", "chaussee")
"""Compounds that name a street ('Müllerstraße') unless the dictionary has them or ..."""
_NOT_STREETS = tuple("privat fahrrad einbahn spiel anlieger wohn durchgang neben sack quer "
                     "land bundes kreis staat gemeinde haupt seiten umgehung fussgaenger fahr "
                     "betrieb werk feuerwehr ort einkauf zufahrt umleitung verbindung "
                     "erschliessung wirtschaft versorgung baustelle ring wasch lade flucht "
                     "notfall rettung lkw bus tank".split())
_NOT_STREET_ENDS = tuple(kind for kind in _NOT_STREETS if len(kind) > 4)
"""... their first part makes a kind of street ('Privatstraße', 'Werksstraße'), or ends in one
of five letters or more ('Autowaschstraße'; not 'Rolandstraße')."""
_WAY_HEADS = ("platz", "weg", "ring", "damm", "ufer", "graben", "markt", "tor", "steig")
"""Compounds that name a square or a way when a name comes first ('Karlsplatz', not
'Waschplatz', 'Radweg')."""
_DETERMINERS = frozenset("dieser jener unser euer ihrer seiner meiner deiner jeder aller "
                         "keiner einer mancher welcher solcher".split())
_TRANSPORT = frozenset("nach über ueber richtung ab bis von halt haltestelle bahnhof "
                       "station".split())
"""Words before a place in a timetable: a place of three letters only after them ('nach Ulm',
not 'Ins Freie')."""
_TIES = _FUNCTION_KEYS | _TRANSPORT | frozenset(
    "zwischen aus in bei zu nach richtung und oder gen".split())
"""Words that tie a name into its phrase: a text is not cut at the name where one stands
between the names ('Nach Buchholz' came out 'Up Buchholz')."""
_LONGEST_PLACE = 4
"""Words of the longest place name looked for ('Neustadt an der Weinstraße')."""
RESCUE_BEAM = 3
"""The beam an unsure greedy answer is decoded again with ([translator] beam_below)."""
_WORD_OF = re.compile(r"[^\W\d_]{2,}")
"""A word of two letters or more."""
_NUMBER_WORD = re.compile(
    r"(?i)\b(?:eins?|zwei|drei|vier|fünf|sechs|sieben|acht|neun|zehn|elf|zwölf|\w+zehn|"
    r"\w*zig|\w*ßig|hundert|tausend)\w*\b")
"""German numbers written as words ('achtzehn', 'zwanzig'): their digits may rightly come out."""
_STRAY_MINUTES = re.compile(r"(?<=[^\W\d_]):\d\d\b")
"""Minutes glued to a word: the model reads a chunk that ends in ':' ('Feiertage:', 'rund um
die Uhr:') as a clock ('holidays:00'); the chunk's numbers stand beside it as spans."""


@dataclass(frozen=True)
class Translation:
    source: str
    translation: str
    via: str              # one of VIAS
    confidence: float     # 0..1: 1.0 phrasebook, the model's mean token probability, 0 refused
    ms: float
    reason: str = ""      # why a passthrough kept the original ("" otherwise)
    uncertain: bool = False   # a gloss, or a model answer under [translator] uncertain_below
                              # or read in pieces cut between words

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "translation": self.translation, "via": self.via,
                "confidence": round(self.confidence, 4), "uncertain": self.uncertain,
                "ms": round(self.ms, 4)}


@dataclass(frozen=True)
class Settings:
    beam_size: int = 1
    max_tokens: int = 0                  # 0: as long as the model allows
    cache_size: int = 512
    min_ocr_confidence: float = 0.5
    min_model_confidence: float = 0.2
    max_input_chars: int = 300
    budget_ms: float = 40.0
    use_phrasebook: bool = True
    gloss_below_confidence: float = 0.3  # a less sure model answer yields to a word-by-word gloss
    show_glosses: bool = True            # False: a text only a gloss could answer is kept as read
    uncertain_below: float = 0.5         # a less sure model answer is shown marked uncertain
    time_style: str = "24h"              # '24h' (9:00–18:00) or '12h' (9 am–6 pm)
    model_first: bool = False            # ask the model before the phrasebook (2.x, 3.x)
    phrasebook_below_confidence: float = 0.5  # model_first: a less sure answer yields to a
                                              # dictionary entry for the same text
    split_below_confidence: float = 0.0  # a less sure answer for a text of several clauses
                                         # yields to its clauses read one by one, if surer
                                         # (0: off here; the config's default is 0.8)
    beam_below: float = 0.0              # a less sure greedy answer is decoded again with a
                                         # beam of RESCUE_BEAM, the surer kept (0: off here;
                                         # the config's default is 0.9)

    @classmethod
    def from_config(cls, cfg: Config) -> "Settings":
        """[translator] as settings (the OCR confidence floor is [recognizer]'s)."""
        t = cfg.translator
        return cls(beam_size=t.beam_size, max_tokens=t.max_tokens, cache_size=t.cache_size,
                   min_ocr_confidence=cfg.recognizer.min_confidence,
                   min_model_confidence=t.min_model_confidence,
                   max_input_chars=t.max_input_chars, budget_ms=t.budget_ms,
                   use_phrasebook=t.use_phrasebook,
                   gloss_below_confidence=t.gloss_below_confidence,
                   split_below_confidence=t.split_below_confidence,
                   beam_below=t.beam_below,
                   show_glosses=t.show_glosses, time_style=t.time_style,
                   model_first=t.model_first, uncertain_below=t.uncertain_below)


class Translator:
    def __init__(self, model: Seq2SeqModel | None, tokenizer: Tokenizer | None,
                 phrasebook: Phrasebook | None, settings: Settings = Settings(),
                 signs: SignBook | None = None):
        self.model, self.tokenizer, self.phrasebook = model, tokenizer, phrasebook
        self.signs = signs if settings.use_phrasebook else None
        if self.signs is not None:
            self.signs.german_words      # built here (40 ms), not in the first translation
        self.settings = settings
        self.cache: LRUCache[Translation] = LRUCache(settings.cache_size)
        # texts whose decoding the budget cut: the next request finishes them, so a slow
        # device gives the same answer later instead of a different one (the original)
        self._late: LRUCache[bool] = LRUCache(settings.cache_size)
        self.counts: Counter[str] = Counter()
        # per thread: a reading of the text being translated cut a clause between words
        self._reading = threading.local()

    @classmethod
    def from_config(cls, cfg: Config, backend: str | None = None, num_threads: int | None = None,
                    version: Any = None) -> "Translator":
        """`version`: a ModelVersion to load (a hot swap or a challenger); default: the one
        [translator] names, or the active one."""
        t = cfg.translator
        if version is None:
            version = ModelStore.for_config(cfg).get(t.model, t.version or None)
        model = Seq2SeqModel(version.artifact, backend=backend or cfg.runtime.backend,
                             num_threads=num_threads or cfg.runtime.num_threads)
        tokenizer = Tokenizer(tokenizer_path(version))
        return cls(model, tokenizer, Phrasebook.from_config(cfg), Settings.from_config(cfg),
                   SignBook.for_version(version) if t.use_phrasebook else None)

    # ------------------------------------------------------------------ public
    def translate(self, text: Any, ocr_confidence: float | None = None) -> Translation:
        start = time.perf_counter_ns()
        source = text if isinstance(text, str) else ("" if text is None else str(text))
        try:
            result = self._translate(source, ocr_confidence, start)
        except Exception as exc:  # the pipeline must go on; the failure is logged and shown
            log.exception("translation failed", extra={"text": source[:80]})
            result = self._passthrough(source, clean(source)[:200], "error", start)
            del exc
        self.counts[result.via] += 1
        if result.reason:
            self.counts[f"reason.{result.reason}"] += 1
        return result

    def stats(self) -> dict[str, Any]:
        return {"via": {v: self.counts.get(v, 0) for v in VIAS},
                "reasons": {k[7:]: n for k, n in self.counts.items() if k.startswith("reason.")},
                "cache": self.cache.stats()}

    # ----------------------------------------------------------------- private
    def _elapsed(self, start: int) -> float:
        return (time.perf_counter_ns() - start) / 1e6

    def _passthrough(self, source: str, shown: str, reason: str, start: int) -> Translation:
        return Translation(source, shown, "passthrough", 0.0, self._elapsed(start), reason)

    def _translate(self, source: str, ocr_confidence: float | None, start: int) -> Translation:
        s = self.settings
        if len(source) > 20 * s.max_input_chars:
            return self._passthrough(source, clean(source[:s.max_input_chars]), "too_long", start)
        text = clean(source)
        if not text:
            return self._passthrough(source, "", "empty", start)
        if ocr_confidence is not None and ocr_confidence < s.min_ocr_confidence:
            return self._passthrough(source, text, "low_ocr_confidence", start)
        if len(text) > s.max_input_chars:
            return self._passthrough(source, text, "too_long", start)
        cached = self.cache.get(text)
        if cached is not None:
            return replace(cached, source=source, via="cache", ms=self._elapsed(start))
        result = self._fresh(source, text, start)
        if result.reason == "over_budget":
            self._late.put(text, True)
        elif result.reason not in ("error", "no_model"):
            self.cache.put(text, result)
        return result

    def _fresh(self, source: str, text: str, start: int) -> Translation:
        if not any(ch.isalpha() for ch in text):
            return Translation(source, text, "passthrough", 1.0, self._elapsed(start),
                               "no_letters")
        lead, core, trail = split_arrows(text)
        if (lead or trail) and any(ch.isalpha() for ch in core):
            if self._late.get(text) is not None:        # over the budget last time: no deadline
                self._late.put(core, True)
            inner = self._fresh(source, core, start)     # the arrows stay where they point
            if inner.via == "passthrough":
                return self._passthrough(source, text, inner.reason, start)
            return replace(inner, translation=f"{lead}{inner.translation}{trail}",
                           ms=self._elapsed(start))
        slashed = self._slashed(source, text, start)
        if slashed is not None:
            return slashed
        original = text                 # as the sign has it: shown when it passes through
        text = cut_words_joined(self._ocr_misreads(text))
        style = style_of(text, self.phrasebook.is_german_word if self.phrasebook else None)
        self._reading.cut_between_words = False
        self._reading.memo = {}
        words = text.split()
        # a name plate keeps its names by its own rules ('Bäckerei Müller' → 'Bakery Müller')
        self._reading.plate = {words[i]: english_place(words[i]) if kind == "place"
                               else words[i]
                               for i, kind in name_plate(
                                   words, self._is_place if self.phrasebook else None).items()}
        if self._only_names(text) or self._lone_letter(text):
            # 'Buchholz', 'Thomas Vogel'; 'H', 'B': kept as written
            return Translation(source, original, "passthrough", 1.0, self._elapsed(start),
                               "protected")
        book = self.phrasebook if self.settings.use_phrasebook else None
        if book is not None and not self.settings.model_first:
            hit = book.lookup(text)
            if hit is not None:
                return Translation(source, closing_mark(apply_style(hit, style, keep_case=True),
                                                        text),
                                   "phrasebook", 1.0, self._elapsed(start))
        # rule-rendered spans (days, times, floors, prices) are not judged as German or not
        spans = split_protected(text, self.settings.time_style)
        rest = " ".join(c for c, rendered in spans if not rendered)
        refusal = refusal_of(rest, self.phrasebook) if any(ch.isalpha() for ch in rest) \
            and self._sign(text) is None else ""
        if refusal in ("not_german", "unknown_words"):
            # English words or codes with German days, times or prices ('Happy Hour 17–19
            # Uhr', 'Mo–Fr 8–18 AOK'): the words as written, those written the English way
            # where they stand
            shown = render_in_place(text, self.settings.time_style)
            if shown != text:
                return Translation(source, shown, "rule", 1.0, self._elapsed(start))
        if refusal:
            return self._passthrough(source, original, refusal, start)
        budget = self.settings.budget_ms   # math.inf: no deadline
        late = self._late.get(original) is not None
        deadline = None if late or not math.isfinite(budget) else start + int(budget * 1e6)
        translation, via, confidence, problem = self._render_numbers_inside(text, spans, style,
                                                                            deadline)
        if problem:
            return self._passthrough(source, original, problem, start)
        translation = closing_mark(english_numbers(translation, text), text)
        if via == "gloss" and not self.settings.show_glosses:
            return self._passthrough(source, original, "gloss_hidden", start)
        if via == "model" and confidence < self.settings.min_model_confidence:
            return self._passthrough(source, original, "low_model_confidence", start)
        if via == "passthrough" and translation != text:
            via = "rule"
        # a sentence too long for the model even between its clause marks was read in pieces
        # cut between words (segment.fitting_parts): shown, but marked as uncertain
        uncertain = via == "gloss" or (via == "model" and (
            confidence < self.settings.uncertain_below or self._reading.cut_between_words))
        return Translation(source, translation, via, confidence, self._elapsed(start),
                           "protected" if via == "passthrough" else "", uncertain)

    def _slashed(self, source: str, text: str, start: int) -> Translation | None:
        """A sign of words between slashes read word by word ('Damen/Herren' → 'Ladies/Gents',
        'Ein-/Ausgang' → 'Entrance/Exit'; `slash_parts`), in the sign's case. The sign's own
        English beside the German ('Ausgang/Exit') is not said twice; a word that is no German
        is left out where another was translated, one refused otherwise stays as written and
        makes the answer uncertain. None where the sign book or the dictionary has the whole
        text ('Presse / Medien'), or no word was translated: it is read as one text."""
        book = self.phrasebook
        words = slash_parts(text, self._knows) if book is not None else None
        if not words or book.lookup(text) is not None or (
                self.signs is not None and self.signs.lookup(text) is not None):
            return None
        late = self._late.get(text) is not None
        done = []
        for word in words:
            if late:                        # over the budget last time: no deadline
                self._late.put(word, True)
            done.append(self._fresh(word, word, start))
        problem = next((r.reason for r in done if r.reason in ("over_budget", "error",
                                                                  "no_model")), None)
        if problem:
            return self._passthrough(source, text, problem, start)
        translated = [r for r in done if r.via != "passthrough"]
        if not translated:
            return None
        upper, shown, unsure = style_of(text) == "upper", [], False
        for word, result in zip(words, done):
            english = result.translation
            if result.via == "passthrough":
                if result.reason == "not_german":
                    continue                # the sign's own English ('Ausgang/Exit')
                unsure = unsure or result.reason != "protected"
            if upper:
                english = english.upper()
            elif word.isupper() and english.isupper():      # 'Damen/WC': not a caps sign
                english = english.capitalize()
            if english.lower() not in {e.lower() for e in shown}:
                shown.append(english)
        return Translation(source, "/".join(shown), _least_trusted(r.via for r in translated),
                           min(r.confidence for r in translated), self._elapsed(start),
                           uncertain=unsure or any(r.uncertain for r in translated))

    def _render_numbers_inside(self, text: str, spans: list[tuple[str, bool]], style: str,
                               deadline: int | None) -> tuple[str, str, float, str]:
        """The whole text through the model (`_whole`); else `_render` with plain numbers
        inside the text the model reads; if the model drops one (or that fails, not for lack
        of time), the text is cut at its numbers instead. A model answer that merged the
        text's sentences is read again sentence by sentence (`_each_sentence`; more decoding,
        within the same deadline)."""
        whole = self._whole(text, spans, style, deadline)
        if whole is not None:
            return whole
        # on a name plate the words between names are read alone ('Bus 52 Richtung Moosach')
        merged = spans if getattr(self._reading, "plate", None) else merge_plain_numbers(spans)
        outcome = self._render(text, merged, style, deadline)
        if not (merged == spans or outcome[3] == "over_budget" or
                (not outcome[3] and numbers_kept(spans, outcome[0]))):
            outcome = self._render(text, spans, style, deadline)
        parts = sentences(text)
        if not outcome[3] and outcome[1] == "model" and _merged(outcome[0], parts):
            # the model merged sentences: read one at a time, kept where no sentence is less
            # sure than the merged answer ('St. Martin. Gottesdienst Sonntag.': the name alone
            # reads worse than the whole)
            each = self._each_sentence(parts, style, deadline)
            if each[3] == "over_budget" or (not each[3] and each[2] >= outcome[2]):
                return each
        return outcome

    def _each_sentence(self, parts: list[str], style: str,
                       deadline: int | None) -> tuple[str, str, float, str]:
        """A text of several sentences read one sentence at a time (an answer for the whole
        merged some: 'Münzen einwerfen ... drücken. Der Automat gibt kein Wechselgeld.' came
        out 'Insert coins, select the programme and starts are no change given.'); each keeps
        its closing mark, and a sentence the sign book holds is answered from it."""
        done = [self._render_numbers_inside(part, split_protected(
            part, self.settings.time_style), style, deadline) for part in parts]
        failed = next((result for result in done if result[3]), None)
        if failed:
            return failed
        return (" ".join(closing_mark(result[0], part) for part, result in zip(parts, done)
                         if result[0]),
                _least_trusted(result[1] for result in done),
                min(result[2] for result in done), "")

    def _whole(self, text: str, spans: list[tuple[str, bool]], style: str,
               deadline: int | None) -> tuple[str, str, float, str] | None:
        """A text that mixes words with rendered spans ('WC im 1. OG', 'Am Dienstag von 9 bis
        12 Uhr geschlossen') read whole: cut at its spans, its words lose one another. The
        model learned to write days, times and prices the English way; its answer is kept only
        if every span comes out in it (then written as the rules write it) and it adds no
        number (`segment.restore_spans`). An answer with fewer sentences than the text
        merged some (and may have lost one): then each sentence is read on its own."""
        rendered = [chunk for chunk, protected in spans if protected]
        if getattr(self._reading, "plate", None):   # a name plate: its names not read
            return None
        if not rendered or len(rendered) == len(spans) or self.model is None or \
                self.tokenizer is None or all(PLAIN_NUMBER.fullmatch(chunk) for chunk in rendered):
            return None
        parts = sentences(text)
        whole = self._whole_answer(text, spans, style, deadline) if self._fits(text) else None
        merged = _merged(whole[0] if whole is not None else "", parts)
        if whole is not None and (whole[3] or not merged):
            return whole
        return self._each_sentence(parts, style, deadline) if merged else None

    def _whole_answer(self, text: str, spans: list[tuple[str, bool]], style: str,
                      deadline: int | None) -> tuple[str, str, float, str] | None:
        """The model's answer for the whole text with its spans restored, or None."""
        english, via, confidence, problem = self._chunk(text, deadline)
        if problem == "over_budget":
            return english, via, confidence, problem
        if problem or not (via == "model" or self._sign(text) is not None):
            return None
        found = spans if self.settings.time_style == "24h" else split_protected(text, "24h")
        # the spans keep their own casing ('3rd floor' in a title-case sign), but not in caps
        restored = restore_spans(english if style == "upper" else apply_style(english, style),
                                 found, spans, self.settings.time_style)
        if restored is None or _only_spans(restored, spans):
            return None
        for chunk, protected in spans:     # a span glued to a word stays glued ('2,4-Exit')
            if protected and chunk.endswith("-") and re.search(
                    rf"{re.escape(chunk)}[^\W\d_]", text):
                restored = restored.replace(f"{chunk} ", chunk)
        return restored.upper() if style == "upper" else sentence_capitals(restored), via, \
            confidence, ""

    def _render(self, text: str, spans: list[tuple[str, bool]], style: str,
                deadline: int | None) -> tuple[str, str, float, str]:
        """(translation, via, confidence, problem) of a text cut into spans: protected spans
        as they are, the others translated, each cast into the text's style."""
        pieces, vias, confidence = [], set(), 1.0
        cursor, glued = 0, []          # glued: the chunk touched the previous one ('2,4-Dien')
        # an ALL CAPS sign with words in it casts its rendered days and floors too ('EG' alone
        # is an abbreviation, not a style)
        caps = style == "upper" and any(len(w) > 3 for w in re.findall(r"[^\W\d_]+", text))
        chunks = self._chunks(spans, deadline)
        for index, (chunk, protected) in enumerate(chunks):
            at = text.find(chunk, cursor)
            glued.append(0 < cursor == at)
            cursor = at + len(chunk) if at >= 0 else cursor
            if protected:
                pieces.append(chunk.upper() if caps else chunk)
                continue
            if chunk.lower() == "bis" and _between_alike(chunks, index):
                pieces.append("TO" if style == "upper" else "to")
                continue
            if chunk in ("-", "–", "—"):       # between dates: "1.4.–15.7."
                pieces.append("–")
                continue
            english, via, conf, problem = self._chunk(chunk, deadline)
            if problem:
                return "", "", 0.0, problem
            if via == "model":
                beside = [piece for piece in chunks[max(index - 1, 0):index + 2]
                          if piece[1]]
                english = _STRAY_MINUTES.sub(":", _without_borrowed_numbers(english, chunk,
                                                                            beside))
            starts = index == 0 or ends_sentence(pieces[-1])
            chunk_style = style if style != "sentence" or starts else "lower"
            english = apply_style(english, chunk_style, keep_case=via != "model")
            if chunk_style == "lower" and via != "model" and chunk[:1].islower():
                english = small_start(english)      # no noun, no name: small
            pieces.append(english)
            vias.add(via)
            confidence = min(confidence, conf)
        via = _least_trusted(vias)
        joined = "".join(p if g or not i else " " + p
                         for i, (p, g) in enumerate((p, g) for p, g in zip(pieces, glued) if p))
        # a dash between chunks is a spaced en dash ('POLIZEI – DURCHFAHRT FREIHALTEN' →
        # 'POLICE – KEEP ...'; OCR text has its dashes folded to '-')
        joined = re.sub(r"\s+([.,;:!?])", r"\1", joined.strip()).replace(" - ", " – ")
        return joined, via, confidence, ""

    def _chunks(self, spans: list[tuple[str, bool]],
                deadline: int | None = None) -> list[tuple[str, bool]]:
        """Protected spans (numbers, times, prices, codes) and proper names pass through; a
        chunk longer than the model reads is cut into parts it can read (`segment`)."""
        out: list[tuple[str, bool]] = []
        # on a name plate a name after a word that takes one ('Bäckerei Müller') is a name even
        # where it is a word too ('RE' of 'RE 7' a train, not the dictionary's card call)
        plate = getattr(self._reading, "plate", {})
        for chunk, protected in spans:
            words, current = chunk.split(" "), []
            taken = {i for i, word in enumerate(words) if word in plate}
            if protected or self._sign(chunk) is not None or (not taken and (
                    self.phrasebook is None or self.phrasebook.lookup(chunk))):
                out.append((chunk, protected))
                continue
            # another capitalized word the dictionary lacks is a name unless the model knows it;
            # a name the model reads as a placeholder stays in its sentence ('Zug nach Pasing')
            held = self._held_names(chunk) if not taken else set()
            names = [word for i, word in enumerate(words) if i in taken or self._is_name(word)]
            if held:
                cut = [word for word in words
                       if word in names or word.strip(".,;:!?\"'()") in held]
                # cut out where the books know the rest ('Kantonsspital' | 'Aarau') or where
                # the model's answer loses a placeholder ('Der Bus nach Garching über
                # Ismaning' read 'to curtain' without it); else held in the sentence ('Zug
                # nach Pasing')
                names = cut if self._books_know_between(words, cut) or \
                    not self._held_reading(chunk, deadline) else \
                    [word for word in names if word.strip(".,;:!?\"'()") not in held]
            if names and not taken and self._model_knows(chunk, deadline, names):
                out.append((chunk, False))      # words the model knows, not names
                continue
            for i, word in enumerate(words):
                title = TITLES.get(word.lower())
                after = next((j for j in range(i + 1, len(words))
                              if words[j].lower() not in TITLES), len(words))
                if title is not None and after in taken:   # titles before a name
                    if current:                 # 'Praxis Dr. Schneider': 'Dr.' not read
                        out.append(_run(current))
                        current = []
                    if not title or (title in ("Mr", "Ms") and after > i + 1):
                        continue                # 'Herr Dr. Müller' → 'Dr. Müller'; 'Fa.'
                    out.append((title if out else title[:1].upper() + title[1:], True))
                    continue
                if word in names:
                    if current:
                        out.append(_run(current))
                        current = []
                    out.append((plate.get(word, word), True))
                else:
                    current.append(word)
            if current:
                out.append(_run(current))
        if self.model is None or self.tokenizer is None:
            return out
        cut = []
        for chunk, protected in out:
            if protected or self._fits(chunk):
                cut.append((chunk, protected))
                continue
            parts, by_words = cut_to_fit(chunk, self._fits)
            cut += [(part, False) for part in parts or [chunk]]
            if by_words:
                self._reading.cut_between_words = True
        return cut

    def _model_knows(self, chunk: str, deadline: int | None, names: list[str]) -> bool:
        """Words the dictionary lacks ('names') are words, not names, when the model
        translates their chunk with confidence of at least NAME_OVERRIDE and copies none of
        them ('Streichelgehege' → 'petting enclosure' at 0.97, 'Beklettern verboten' → 'no
        climbing'; names come out copied or at lower confidence: 'Marienplatz' copied,
        'Müller' → 'trash' at 0.78, 'Apotheke Krzyzanowski' → 'pharmacy krzyzanowski')."""
        if self.model is None or self.tokenizer is None or not self._fits(chunk):
            return False
        decoded = self._generate(chunk, self.tokenizer.encode(model_text(chunk)), deadline)
        if not decoded.complete or decoded.confidence < NAME_OVERRIDE:
            return False
        english = f" {lookup_key(self.tokenizer.decode(list(decoded.ids)))} "
        return english.strip() != "" and not any(
            f" {lookup_key(model_text(name))} " in english for name in names)

    def _memo(self) -> dict:
        """What one translation has worked out already (decodings, sign-book answers): the
        name check, the refusal check and a chunk's own reading ask the same questions."""
        return self._reading.__dict__.setdefault("memo", {})

    def _generate(self, chunk: str, ids: list[int], deadline: int | None):
        """The model's decoding of a chunk, once per translation; an unfinished one is not
        kept."""
        memo = self._memo()
        if ("decode", chunk) in memo:
            return memo["decode", chunk]
        started = time.perf_counter_ns()
        decoded = self.model.generate(ids + [EOS], max_tokens=self.settings.max_tokens,
                                      beam_size=self.settings.beam_size, deadline_ns=deadline)
        took = time.perf_counter_ns() - started
        if decoded.complete and self.settings.beam_size < RESCUE_BEAM and \
                decoded.confidence < self.settings.beam_below and (
                    deadline is None or
                    deadline - time.perf_counter_ns() > (RESCUE_BEAM + 1) * took):
            # an unsure greedy answer: a beam may find a surer one (one more decoding, about
            # RESCUE_BEAM times the greedy one, tried only where the deadline leaves that and
            # one greedy decoding more for the rest of the text; one cut short by the deadline
            # leaves the greedy answer)
            again = self.model.generate(ids + [EOS], max_tokens=self.settings.max_tokens,
                                        beam_size=RESCUE_BEAM, deadline_ns=deadline)
            if again.complete and again.confidence > decoded.confidence:
                decoded = again
        if decoded.complete:
            memo["decode", chunk] = decoded
        return decoded

    def _is_place(self, word: str) -> bool:
        """A name: one the dictionary does not know as a word (`_is_name`: 'Krzyzanowski'), or
        gives as a name ('Freising', 'Michael'), or one English has too ('Anna'), or one
        English signs name in English (`signage.EXONYMS`: 'München'), or a compound whose
        last part names a kind of place ('Marienplatz'; not 'Ersatzverkehr'). After a station
        word or a line it is a place; after a title, a person."""
        core = word.strip(".,;:!?\"'()")
        if english_place(core) != core:
            return True
        book = self.phrasebook
        entry = book.lookup(core) if book is not None else None
        if (entry is not None and entry[:1].isupper()) or self._is_name(core):
            return True        # the dictionary's name for it ('Freising', 'Michael' → 'Mikhail')
        folded = fold(core).lower()
        if book is not None and core[:1].isupper() and not book.is_german_word(folded) and \
                folded in book.english_words:
            return True        # a name English has too ('Anna', 'Thomas')
        # a place named by a compound whose last part names a kind of place ('Marienplatz',
        # 'Ostbahnhof'); not a compound of words ('Ersatzverkehr', 'Kurzzug')
        return book is not None and core[:1].isupper() and core[1:].islower() and \
            not book.is_german_word(folded) and folded.endswith(_PLACE_HEADS)

    def _books_know_between(self, words: list[str], names: list[str]) -> bool:
        """The sign book or the dictionary holds every run of words between the names
        ('Kantonsspital' of 'Kantonsspital Aarau'): then the names are cut out, not held."""
        runs = " ".join(" " if word in names else word for word in words).split("  ")
        runs = [run.strip() for run in runs if any(ch.isalpha() for ch in run)]
        if any(lookup_key(word) in _TIES for run in runs for word in run.split()):
            return False        # 'Nach Buchholz', 'Richtung Buchholz': one phrase
        return bool(runs) and all(self._sign(run) is not None or
                                  self.phrasebook.lookup(run) is not None for run in runs)

    def _only_names(self, text: str) -> bool:
        """A text that is only names the model would read as placeholders ('Buchholz', 'Thomas
        Vogel'), which neither the sign book nor the dictionary holds."""
        if self.phrasebook is None or self.phrasebook.lookup(text) is not None or \
                self._sign(text) is not None:
            return False
        swapped, held = self._hold(text)
        return bool(held) and not any(ch.isalpha() for ch in _PLACEHOLDER_WORDS.sub("", swapped))

    def _lone_letter(self, text: str) -> bool:
        """A text whose only letter is one letter standing alone ('H', 'B', 'Tor B' is not):
        on a sign a label (a stop, a gate, a section), which the sign book may hold but the
        dictionary reads as something else (its 'H' is the note B, its 'B' a flat)."""
        letters = WORD.findall(text)
        return len(letters) == 1 and len(letters[0]) == 1 and self._sign(text) is None

    def _hold(self, chunk: str) -> tuple[str, list[tuple[str, str, int]]]:
        """`names.hold` of the chunk with this translator's names (`_names`), once per
        translation: the cut, the held reading and the decoding ask the same question."""
        if self.phrasebook is None:
            return chunk, []
        memo = self._memo()
        if ("hold", chunk) not in memo:
            memo["hold", chunk] = hold(chunk, self._names)
        return memo["hold", chunk]

    def _held_names(self, chunk: str) -> set[str]:
        """The words of the chunk's names that the model reads as placeholders."""
        return {word for _, name, _ in self._hold(chunk)[1] for word in name.split()}

    def _held_decoding(self, chunk: str, deadline: int | None):
        """(decoding, English with the names back, or None where a name did not come back or a
        number was added) of the chunk read with its names held ('Bus 52 nach Berlin' → 'bus
        52 to berlin' → 'bus 52 to Buchholz'); None where it holds no name or does not fit."""
        swapped, held = self._hold(chunk)
        if not held or not self._fits(swapped):
            return None
        decoded = self._generate(swapped, self.tokenizer.encode(model_text(swapped)), deadline)
        english = self.tokenizer.decode(list(decoded.ids)).strip()
        return decoded, _given_back(chunk, english, held) if decoded.complete else None

    def _held_reading(self, chunk: str, deadline: int | None) -> bool:
        """The chunk's held reading gives every name back (or there is none to give, or no
        time left); the decoding is kept for `_decode`."""
        held = self._held_decoding(chunk, deadline)
        return held is None or not held[0].complete or held[1] is not None

    def _decode(self, chunk: str, deadline: int | None):
        """(decoding, English) of a chunk by the model: its held reading where that gives its
        names back (`_held_decoding`), else the chunk read as it is."""
        held = self._held_decoding(chunk, deadline)
        if held is not None and held[1] is not None:
            return held
        decoded = self._generate(chunk, self.tokenizer.encode(model_text(chunk)), deadline)
        return decoded, self.tokenizer.decode(list(decoded.ids)).strip()

    def _names(self, words: list[str], gaps: list[str]) -> list[tuple[int, int, str]]:
        """The names of a text the model reads as placeholders (`names.hold`): (first word,
        after the last, kind). A person (`_person_end`): given names and a surname ('Thomas
        Vogel', 'Thi Lan Nguyen'), a surname after 'Inh.', a common surname after a trade or
        before a company's word. A street (`_street_end`). A place: the longest of the place
        list that starts at a word (`_is_held_place`)."""
        found, i = [], 0
        while i < len(words):
            end = self._person_end(words, gaps, i)
            kind = "person"
            if end is None:
                kind, end = "place", self._street_end(words, gaps, i)
            if end is None:
                end = next(
                    (j for j in range(min(len(words), i + _LONGEST_PLACE), i, -1)
                     if all(gap == " " for gap in gaps[i + 1:j]) and
                     self._is_held_place(" ".join(words[i:j]), i, words, j)), None)
            if end is None:
                i += 1
                continue
            found.append((i, end, kind))
            i = end
        return found

    def _person_end(self, words: list[str], gaps: list[str], i: int) -> int | None:
        """After the last word of a person's name that starts at word i, or None."""
        def given(k: int) -> bool:   # not one that is a German word too ('Nur', 'Mai')
            if k >= len(words) or _as_written(words[k]) not in first_names():
                return False
            entry = self.phrasebook.lookup(words[k])    # the dictionary's names: 'Ahmet'
            return not self._knows(words[k]) or (entry or "")[:1].isupper() or \
                _before_person(words, k)
        titled = _before_person(words, i) or (i > 0 and takes_name(words[i - 1]))

        def surname(k: int, gap: str = " ") -> bool:
            # a word only as a common surname or after a title or a trade ('Thomas Vogel',
            # 'Dr. Friedrich Mann'; not 'Max Höhe', 'LUNA WIRD', 'Eva Maria Kirche')
            if k >= len(words) or gaps[k] != gap:
                return False
            word = _as_written(words[k])
            return word[:1].isupper() and word[1:] == word[1:].lower() and \
                word.lower() not in _NOT_SURNAMES and (
                    word in SURNAMES or titled or not self._knows(word))
        if given(i):
            j = i + 1
            while given(j) and surname(j + 1):
                j += 1                  # 'Thi Lan Nguyen', 'Anna Maria Huber'
            return j + 1 if surname(j) else None
        if i and f"{words[i - 1].lower()}{gaps[i].strip()}" in _BEFORE_SURNAMES and \
                surname(i, gaps[i]):
            return i + 1                # 'Inh. Vogel'
        on_plate = bool(getattr(self._reading, "plate", None))
        if _as_written(words[i]) in SURNAMES and not on_plate and (
                (i and gaps[i] == " " and takes_name(words[i - 1]) and
                 words[i - 1].lower() not in ("familie", "fam")) or
                (i == 0 and _company_after(words, gaps))):
            return i + 1                # 'Metzgerei Schneider seit 1923', 'Vogel Transporte KG'
        return None

    def _street_end(self, words: list[str], gaps: list[str], i: int) -> int | None:
        """After the last word of a street's or square's name that starts at word i, or None:
        'Rosenheimer Straße', 'Sendlinger Tor' (a word in -er and a street's word); a word of
        the dictionary's before a house number ('Hauptstraße 5'); 'Müllerstraße' (a compound
        street's word the dictionary lacks, not 'Privatstraße'); 'Karlsplatz' (a name before
        a square's or a way's word, not 'Waschplatz')."""
        word = _as_written(words[i])
        if not all(part[:1].isupper() and part[1:] == part[1:].lower()
                   for part in word.split("-")) or (i and words[i - 1].lower() in _ARTICLES):
            return None                 # 'Kurt-Schumacher-Platz' too
        stem = word[:-2]
        if i + 1 < len(words) and gaps[i + 1] == " " and \
                _as_written(words[i + 1]) in _STREET_WORDS and word.endswith("er") and \
                len(stem) > 3 and (stem in place_names() or not (
                    self._knows(word) or self._knows(stem) or stem.endswith("t") or
                    lookup_key(word) in _DETERMINERS)):
            return i + 2                # 'Rosenheimer Straße', 'Sendlinger Tor'; not 'Dieser
                                        # Weg', 'Privater Weg', 'Kürzester Weg', 'Hinter Tor'
        folded = fold(word).lower()
        head = next((h for h in _STREET_HEADS + _WAY_HEADS if folded.endswith(h)), None)
        if head is None or len(folded) < len(head) + 3:
            return None
        if head in _STREET_HEADS and re.match(r"\.?\s+\d{1,4}[a-z]?\b", gaps[i + 1]):
            return i + 1                    # an address: 'Hauptstraße 5', not 'Parkplatz 3'
        if self._knows(word):
            return None
        modifier = folded[:-len(head)].rstrip("-")
        if head in _STREET_HEADS:       # not 'Werksstraße', 'Lkw-Waschstraße', 'Fluchtgasse'
            kinds = {modifier, modifier[:-1] if modifier.endswith("s") else modifier}
            return None if any(kind in _NOT_STREETS or kind.endswith(_NOT_STREET_ENDS)
                               for kind in kinds) else i + 1
        # 'Karlsplatz', 'Marienplatz': a name that is no word before it (not 'Forstweg',
        # 'Zugweg', 'Waschplatz', 'Carsharing')
        stem = word[:len(word) - len(head)].rstrip("-")
        names = [name for name in (stem, stem[:-1] if stem.endswith(("s", "n")) else "",
                                   stem[:-2] if stem.endswith(("en", "es")) else "")
                 if len(name) > 2]              # 'Karls' → 'Karl', 'Marien' → 'Marie'
        return i + 1 if any((name in first_names() or name in SURNAMES or
                             name in place_names()) and not self._knows(name)
                            for name in names) else None

    def _is_held_place(self, name: str, index: int, words: list[str], end: int) -> bool:
        """A place of the list ('Bad Tölz', 'PASING') read as a placeholder: not one the
        dictionary or the sign book has as a word or phrase, nor a form of one word ('Halle',
        'Blauen'); not after an article ('in den Höfen') or a word before a person ('Dr.
        Klaus'), nor before a surname ('Klaus Fischer'); not one English names its own way
        ('München' → 'Munich', `signage.EXONYMS`)."""
        name = _as_written(name)
        before = words[index - 1].lower() if index else ""
        after = words[end] if end < len(words) else ""
        if name not in place_names() or english_place(name) != name or before in _ARTICLES \
                or _before_person(words, index) or after in SURNAMES or \
                name in _PLACEHOLDER_NAMES or (len(name) < 4 and before not in _TRANSPORT):
            return False
        folded = fold(name).lower()
        first = lookup_key(name.split()[0])
        if " " in name:             # 'Bad Tölz'; not 'Weil der Stadt', 'Schwarzer Berg'
            return first not in _FUNCTION_KEYS and not self._knows(name) and \
                not all(self._knows(word) for word in name.split())
        parts = self.phrasebook.parts(folded)
        return not self._knows(name) and first not in _FUNCTION_KEYS and \
            name.lower() not in self.phrasebook.english_words and not (parts and len(parts) == 1)

    def _knows(self, word: str) -> bool:
        """A German word the dictionary or the sign book has ('Eingang')."""
        folded = fold(word).lower()
        return self.phrasebook.is_german_word(folded) or (
            self.signs is not None and self.signs.lookup(word) is not None)

    def _is_name(self, word: str) -> bool:
        """A capitalized word neither the dictionary nor the model's own vocabulary knows (a
        word the tokenizer keeps whole was frequent in the model's training text: 'Polizei')."""
        core = word.strip(".,;:!?\"'()")
        if not core or not core[0].isupper() or not core[1:].islower() or len(core) < 3 or \
                core.endswith("-"):         # 'Sonn- und Feiertage': half a compound
            return False
        folded = fold(core).lower()
        book = self.phrasebook
        if self.tokenizer is not None and len(self.tokenizer.encode(model_text(core))) == 1:
            return False
        return not (book.is_german_word(folded) or book.is_compound(folded)
                    or folded in book.english_words or book.parts(folded))

    def _chunk(self, chunk: str, deadline: int | None) -> tuple[str, str, float, str]:
        """(english, via, confidence, problem) for one translatable chunk."""
        sign = self._sign(chunk)
        if sign is not None:
            return sign, "phrasebook", 1.0, ""
        hit = None
        if self.phrasebook is not None and self.settings.use_phrasebook:
            hit = self.phrasebook.lookup(chunk)
            if hit is not None and (not (self.settings.model_first and self.model is not None)
                                    or lookup_key(chunk) in _FUNCTION_KEYS):
                return hit, "phrasebook", 1.0, ""
        if not lookup_key(chunk):
            return chunk, "phrasebook", 1.0, ""       # punctuation only: keep it
        if self.model is None or self.tokenizer is None:
            return "", "", 0.0, "no_model"
        if not self._fits(chunk):
            return "", "", 0.0, "too_long"
        decoded, english = self._decode(chunk, deadline)
        if not decoded.complete:
            return "", "", 0.0, "over_budget"
        if hit is not None and (decoded.confidence < self.settings.phrasebook_below_confidence
                                or not english):
            return hit, "phrasebook", 1.0, ""
        if decoded.confidence < self.settings.split_below_confidence:
            split = self._clauses(chunk, deadline, decoded.confidence)
            if split is not None:
                return split
        if decoded.confidence < self.settings.gloss_below_confidence or not english:
            gloss = self._gloss(chunk)
            if gloss:
                return gloss, "gloss", GLOSS_CONFIDENCE, ""
        if not english:
            return "", "", 0.0, "low_model_confidence"
        return english_casing(self._names_cased(chunk, english), chunk), "model", \
            decoded.confidence, ""

    def _clauses(self, chunk: str, deadline: int | None,
                 floor: float) -> tuple[str, str, float, str] | None:
        """A text of several sentences or clauses (`segment.clauses`) read clause by clause:
        (english, least trusted via, least confidence, ""), each clause's closing mark after
        its English. None where the text has one clause, or no clause with letters, or where
        a clause is no surer than `floor` (the whole text's answer; the reading stops there)
        or has a problem (out of time, no answer): the whole text's answer stands."""
        pieces = clauses(chunk)
        if len(pieces) < 2:
            return None
        english, vias, confidence = [], [], 1.0
        for body, mark in pieces:
            if not any(ch.isalpha() for ch in body):
                english.append(_closed(body, mark))
                continue
            part, via, conf, problem = self._chunk(body, deadline)
            if problem or conf <= floor:
                return None
            english.append(_closed(part.rstrip(_MARKS), mark) if mark else part)
            vias.append(via)
            confidence = min(confidence, conf)
        if not vias:
            return None
        return sentence_capitals(" ".join(e for e in english if e)), _least_trusted(vias), \
            confidence, ""

    def _names_cased(self, chunk: str, english: str) -> str:
        """The model writes what it copies in its folded lowercase form ('zuerich'): a
        capitalized source word copied into the translation gets its own spelling back
        ('Zürich', 'Hauptbahnhof'; 'ICE'), unless both languages share it as a word ('Hotel')
        or it is too short to tell ('In', 'Was'). A code before a number ('RE 4'; not 'IN 5
        Min') and a word the dictionary gives as itself a name ('Magdeburg') keep theirs even
        where both languages share the word ('NOT-AUS' does not: 'do not block')."""
        book = self.phrasebook
        caps = style_of(chunk) == "upper"
        for word in {w for w in WORD.findall(chunk)
                     if (len(w) > 3 and w.istitle()) or (len(w) > 1 and w.isupper())}:
            copied = model_text(word)
            if _is_code(word, chunk) or not (book is not None and copied in book.english_words
                                             and book.is_german_word(copied)
                                             and book.lookup(word) != word):
                for form in {copied, word.lower()}:   # folded, or with its umlauts
                    english = re.sub(rf"(?<!\w){re.escape(form)}(?!\w)", word, english)
        if not caps:                # a letter that names something: 'Zone C', 'Abschnitt E'
            for letter in set(re.findall(r"(?<![\w.'-])([B-HJ-NP-Z])(?![\w.'-])", chunk)):
                english = re.sub(rf"(?<![\w.'-]){letter.lower()}(?![\w.'-])", letter, english)
        return english

    def _sign(self, chunk: str) -> str | None:
        """The sign book's English for the chunk, or for each of its sentences when the book
        holds every one; else None."""
        if self.signs is None:
            return None
        memo = self._memo()
        if ("sign", chunk) not in memo:
            memo["sign", chunk] = self._sign_lookup(chunk)
        return memo["sign", chunk]

    def _sign_lookup(self, chunk: str) -> str | None:
        hit = self.signs.lookup(chunk)
        if hit is None:                 # the dictionary is asked only when a form is found
            hit = self.signs.lookup_dotless(chunk)
            hit = hit if hit is not None and self._misread(chunk) else None
        parts = sentences(chunk) if hit is None else []
        if len(parts) > 1:
            found = [self.signs.lookup(part) for part in parts]
            if all(found):          # each sentence keeps the German's closing mark
                return sentence_capitals(" ".join(
                    english if english[-1] in ".!?" or part[-1] not in ".!?"
                    else english + part[-1] for english, part in zip(found, parts)))
        return hit

    def _ocr_misreads(self, text: str) -> str:
        """A word OCR misread gets its letters back where exactly one known word fits: a digit
        between letters, or a 0 that starts a word, read for a letter ('verb0ten', 'N0tausgang',
        '0FFNUNGSZEITEN'; '0' → 'o', '1' → 'l' or 'i', '5' → 's'), or, in a word of 4+ letters
        that is no word, no form of one and no English word, one letter for a look-alike where
        that makes a word of the sign book's ('Zutrltt' → 'Zutritt', 'Ausqang' → 'Ausgang', 'rn'
        for 'm'; umlauts read without their dots are the sign book's `lookup_dotless`). A
        number glued to a word stays a number ('Ausgang5', 'Kasse1'), codes keep their digits
        ('S1', 'A7'), names stay as read ('Kemal', 'Selm'), and a web or e-mail address is
        left alone. A word OCR cut in two is joined where neither part is a word or a form of
        one and the two make one ('Parkpl atz' → 'Parkplatz'; not 'Jahren fahren'); its second
        part starts small, so not in ALL CAPS."""
        book = self.phrasebook
        if book is None or _ADDRESS.search(text):
            return text
        sign_words = self.signs.german_words if self.signs is not None else frozenset()

        def known(word: str) -> int:     # 2: a word or a sign; 1: a compound; 0: unknown
            if self._knows(word) or (self.signs is not None and
                                     self.signs.lookup_dotless(word) is not None):
                return 2
            return 1 if book.is_compound(fold(word).lower()) else 0

        def cased(letter: str, word: str, i: int) -> str:
            upper = word.upper() == word or (i == 0 and word[1:2].islower())
            return letter.upper() if upper else letter

        def digits(word: str) -> str:
            options, changed = [], False
            for i, ch in enumerate(word):
                inside = 0 < i < len(word) - 1 and word[i - 1].isalpha() and \
                    word[i + 1].isalpha()
                leading = i == 0 and ch == "0" and word[1:].isalpha()
                if ch in _DIGIT_LETTERS and (inside or leading):
                    options.append([cased(c, word, i) for c in _DIGIT_LETTERS[ch]])
                    changed = True
                else:
                    options.append([ch])
            if not changed or sum(len(o) > 1 for o in options) > 3:
                return word
            scored = [(known(w), w) for w in
                      dict.fromkeys("".join(p) for p in itertools.product(*options))]
            best = max(score for score, _ in scored)
            found = [w for score, w in scored if score == best]
            return found[0] if best and len(found) == 1 else word

        def letters(word: str) -> str:
            folded = fold(word).lower()
            if len(word) < 4 or not word.isalpha() or folded in book.english_words or \
                    known(word) or book.parts(folded):
                return word         # a word, a form of one ('kann', 'große'), English ('Bell')
            lower = word.lower()
            found = [c for c in dict.fromkeys(
                word[:i] + cased(b, word, i) + word[i + len(a):]
                for a, b in _LOOK_ALIKES for i in range(len(lower)) if lower.startswith(a, i))
                if fold(c).lower() in sign_words]
            return found[0] if len(found) == 1 else word

        def fix(match) -> str:
            word = match.group()
            if sum(ch.isalpha() for ch in word) < 3 or len(word) > _LONGEST_WORD:
                return word
            return digits(word) if any(ch.isdigit() for ch in word) else letters(word)

        def no_word(part: str) -> bool:
            folded = fold(part).lower()
            return not (known(part) or book.parts(folded) or folded in book.english_words)

        def rejoined(text: str) -> str:    # 'Parkpl atz': a word OCR cut in two
            words, i = text.split(" "), 0
            while i + 1 < len(words):
                first, second = words[i], words[i + 1]
                if _CUT_FIRST.fullmatch(first) and _CUT_SECOND.fullmatch(second) and \
                        len(first + second) <= _LONGEST_WORD and no_word(first) and \
                        no_word(second) and known(first + second):
                    words[i:i + 2] = [first + second]
                else:
                    i += 1
            return " ".join(words)

        return rejoined(re.sub(r"[^\W_]+", fix, text))

    def _misread(self, text: str) -> bool:
        """A word of the text (3+ letters, no umlaut) is neither a dictionary word nor a
        compound of them: it may be a word OCR read without its umlaut's dots."""
        book = self.phrasebook
        if book is None:
            return False
        for word in WORD.findall(text):
            folded = fold(word).lower()
            if len(word) >= 3 and folded == word.lower() and not (
                    book.is_german_word(folded) or book.is_compound(folded)):
                return True
        return False

    def _fits(self, text: str) -> bool:
        return len(self.tokenizer.encode(model_text(text))) + 1 <= self.model.src_len

    def _gloss(self, chunk: str) -> str | None:
        if self.phrasebook is None or not self.settings.use_phrasebook:
            return None
        return self.phrasebook.gloss(chunk)


def _without_borrowed_numbers(english: str, chunk: str,
                              beside: list[tuple[str, bool]]) -> str:
    """A chunk's model answer less the numbers it took from the spans right beside it, which
    stand there anyway ('unter Tel.' → 'on 089', then '089 1234567': the number twice), and
    less the copies of its own numbers beyond as many as it holds ('Tel. 089' → 'on 089
    089'); any other number stays (the model may write one out: 'zwei' → '2')."""
    own = Counter(re.findall(r"\d+", chunk))
    spans = {n for piece, protected in beside if protected for n in re.findall(r"\d+", piece)}
    spans |= set(own)

    def keep(match) -> str:
        number = match.group()
        if own[number] > 0:
            own[number] -= 1
            return number
        if number in spans or (len(number) >= 2 and any(number in n for n in spans)):
            return ""           # a copy, or a piece of one ('Tel. 089' → 'tel. 089 08')
        return number

    if _NUMBER_WORD.search(chunk):      # 'ab achtzehn Jahren': the model writes '18'
        return english
    cleaned = re.sub(r"(?<![\d:.,])\d+(?![\d:.,]\d)(?![^\W\d_])", keep, english)
    return re.sub(r"\s{2,}", " ", cleaned).strip() if cleaned != english else english


# two words of letters a space apart, the second one small: a word OCR may have cut in two
_CUT_FIRST = re.compile(r"[^\W\d_]{2,}")
_CUT_SECOND = re.compile(r"[a-zäöüß]{2,}")


def _merged(english: str, parts: list[str]) -> bool:
    """An answer with fewer sentences than the text's `parts`, each a sentence of two words or
    more ('Hr. Meier.' is no sentence of its own); an English abbreviation's stop ('Approx.
    10 min.') ends none."""
    return len(parts) > 1 and all(len(part.split()) > 1 for part in parts) and \
        english_sentences(english) < len(parts)


def _only_spans(english: str, spans: list[tuple[str, bool]]) -> bool:
    """The model kept the spans and dropped the words between them ('Mo–Sa 8–20 Uhr
    gebührenpflichtig' → 'Mon–Sat 8:00–20:00'): the text has a word outside its spans that
    English signs write ('von 8–18 Uhr' is '8:00–18:00'; 'ab 18 Uhr' is 'from 18:00'), the
    answer none."""
    words = [w for chunk, protected in spans if not protected for w in _WORD_OF.findall(chunk)]
    if all(lookup_key(w) in _DROPPABLE for w in words):
        return False
    for chunk, protected in spans:
        if protected:
            english = re.sub(re.escape(chunk), " ", english, flags=re.IGNORECASE)
    return _WORD_OF.search(english) is None


def _least_trusted(vias) -> str:
    """The label of an answer made of chunks answered in several ways (`_TRUST`); without a
    translated chunk, 'passthrough'."""
    vias = [via for via in vias if via in _TRUST]
    return min(vias, key=_TRUST.__getitem__) if vias else "passthrough"


def _closed(text: str, mark: str) -> str:
    """A clause with its closing mark: '?!' right after it, a dash after a space."""
    return f"{text}{mark}" if mark[:1] in _MARKS else f"{text} {mark}"


def _between_alike(chunks: list[tuple[str, bool]], index: int) -> bool:
    """The chunk stands between two rendered spans of one kind: '8:00 bis 12:00', '6 bis 12
    Jahre', '1 March bis 31 October' ('bis' is 'to'); not 'Mon–Fri bis 18:00' ('until')."""
    if not 0 < index < len(chunks) - 1 or not (chunks[index - 1][1] and chunks[index + 1][1]):
        return False
    kind = span_kind(chunks[index - 1][0])
    return kind is not None and kind == span_kind(chunks[index + 1][0])


def _is_code(word: str, text: str) -> bool:
    """A word in capitals before a number is a code ('RE 4', 'WA-123'), unless it is a
    preposition or article ('IN 5 Min', 'AB 18 UHR')."""
    return word.isupper() and lookup_key(word) not in _NOT_CODES and \
        re.search(rf"(?<!\w){re.escape(word)}[\s-]?\d", text) is not None


def _run(words: list[str]) -> tuple[str, bool]:
    """Words left between names: protected when they are only numbers ('Sonnenhof 2')."""
    return " ".join(words), all(PLAIN_NUMBER.fullmatch(w) for w in words)


def tokenizer_path(version) -> Path:
    for entry in version.manifest.get("extra_files", []):
        if entry["file"].endswith(".model"):
            return version.file(entry["file"])
    raise ModelStoreError(f"{version.name} {version.version}: no SentencePiece model "
                          "(*.model) among its extra_files")


def model_translate(model: Seq2SeqModel, tokenizer: Tokenizer, text: str,
                    beam_size: int = 1) -> tuple[str, float]:
    """German text → (lowercase English, confidence), the model alone."""
    ids = tokenizer.encode(model_text(text))[:model.src_len - 1] + [EOS]
    decoded = model.generate(ids, beam_size=beam_size)
    return tokenizer.decode(list(decoded.ids)).strip(), decoded.confidence


def _as_written(name: str) -> str:
    """A name as the lists write it: 'BAD TÖLZ' → 'Bad Tölz', 'KARL-HEINZ' → 'Karl-Heinz'."""
    if not name.isupper() or len(name) < 4:
        return name
    return re.sub(r"[^\W\d_]+", lambda m: m.group(0).capitalize(), name)


def _before_person(words: list[str], k: int) -> bool:
    """Word k follows a title or 'Inh.' ('Dr. med. Klaus', 'Inh. Thomas'): a person's name."""
    return k > 0 and (words[k - 1].lower() in _BEFORE_PERSONS or
                      f"{words[k - 1].lower()}." in _BEFORE_PERSONS)


def _company_after(words: list[str], gaps: list[str]) -> bool:
    """A company's word within three words of the first, each after a space or '&' ('Vogel
    Transporte KG', 'Fischer & Söhne GmbH'; not 'Stahl- und Metallbau AG')."""
    for k in range(1, min(len(words), 4)):
        if gaps[k].strip() not in ("", "&"):
            return False
        if words[k] in _COMPANY:
            return True
    return False


def _given_back(chunk: str, english: str, held: list) -> str | None:
    """The held reading with its names restored, or None where a name did not come back as
    often as it stood or the reading added a number ('Frau Tom, Tel. 044 381 22' read 'tel.
    044 381 22 2281 22 22')."""
    restored = restore(english, held)
    if restored is None or set(re.findall(r"\d+", restored)) - set(re.findall(r"\d+", chunk)):
        return None
    return restored
