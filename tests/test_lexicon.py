"""The recognizer's lexicon (device.stages.lexicon): a misread word one edit away from a known
word that the frames hold evidence for is read as that word; names, short codes and words
without such evidence stay as read."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from device.stages.charset import BLANK, NUM_CLASSES, encode
from device.stages.lexicon import Lexicon, correct, log_likelihood


def frames(text: str, runner_up: dict[int, tuple[str, float]] | None = None,
           sure: float = 0.9) -> np.ndarray:
    """CTC frames for `text`: per character a frame of it, then a blank frame; character i
    may have a runner-up letter with probability p in its frame."""
    rows = []
    for i, ch in enumerate(text):
        row = np.full(NUM_CLASSES, 1e-4, np.float32)
        row[encode(ch)[0]] = sure
        if runner_up and i in runner_up:
            other, p = runner_up[i]
            row[encode(other)[0]] = p
            row[encode(ch)[0]] = sure - p
        rows.append(row / row.sum())
        blank = np.full(NUM_CLASSES, 1e-4, np.float32)
        blank[BLANK] = 0.95
        rows.append(blank / blank.sum())
    return np.stack(rows)


KNOWN = {"ausgang", "exit", "straße", "strasse", "theatre"}.__contains__


def test_a_misread_letter_with_a_runner_up_is_read_as_the_known_word():
    misread = frames("AUSGAUG", {5: ("N", 0.35)})
    assert correct(misread, KNOWN) == "AUSGANG"
    assert correct(frames("Thaatre", {2: ("e", 0.3)}), KNOWN) == "Theatre"   # case kept
    # several words: only the unknown one changes, the spaces stay
    line = frames("EXIT AUSGAUG", {10: ("N", 0.35)})
    assert correct(line, KNOWN) == "EXIT AUSGANG"
    # a runner-up in the other case: written in the case of the word read
    assert correct(frames("Ausgaug", {5: ("N", 0.35)}), KNOWN) == "Ausgang"
    assert correct(frames("AUSGAUG", {5: ("n", 0.35)}), KNOWN) == "AUSGANG"
    # marks around a word stay as read
    assert correct(frames("AUSGAUG, EXIT.", {5: ("N", 0.35)}), KNOWN) == "AUSGANG, EXIT."


def test_words_without_evidence_names_and_short_codes_stay_as_read():
    # the frames hold nothing for the known word: the reading stands
    assert correct(frames("AUSGAUG"), KNOWN) == "AUSGAUG"
    # a name the dictionary lacks, with a runner-up letter that makes no known word
    assert correct(frames("Müller", {1: ("a", 0.3)}), KNOWN) == "Müller"
    # three letters: a code as often as a word
    assert correct(frames("EXT", {2: ("I", 0.4)}), {"exi", "ext"}.__contains__) == "EXT"
    # a digit splits a word into parts too short to correct
    assert correct(frames("AUS6ANG", {3: ("G", 0.4)}), KNOWN) == "AUS6ANG"


def test_the_prior_decides_how_much_likelier_a_known_word_is_taken():
    weak = frames("AUSGAUG", {5: ("N", 0.06)})       # evidence, but little
    assert correct(weak, KNOWN, prior=1000.0) == "AUSGANG"
    assert correct(weak, KNOWN, prior=2.0) == "AUSGAUG"


def test_the_ctc_likelihood_is_the_sum_over_all_alignments():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=4).astype(np.float64)
    classes = [BLANK, 1, 2, 3]
    full = np.zeros((4, NUM_CLASSES))
    full[:, classes] = probs
    label = [1, 1, 2]
    total = 0.0
    for path in itertools.product(range(4), repeat=4):
        collapsed = [c for i, c in enumerate(path) if c != 0 and (i == 0 or c != path[i - 1])]
        if [classes[c] for c in collapsed] == label:
            total += math.prod(probs[t, c] for t, c in enumerate(path))
    assert log_likelihood(full, label) == pytest.approx(math.log(total), rel=1e-6)


def test_an_empty_lexicon_knows_nothing_until_a_phrasebook_is_filled_in():
    lexicon = Lexicon()
    assert not lexicon("ausgang") and lexicon.empty
    assert correct(frames("AUSGAUG", {5: ("N", 0.35)}), lexicon) == "AUSGAUG"

    class Book:
        def knows_word(self, lower):
            return lower == "ausgang"

    lexicon.fill(Book())
    assert lexicon("ausgang") and not lexicon("exit") and not lexicon.empty
    lexicon.fill(None)                            # a translator without a phrasebook
    assert not lexicon("ausgang")


def test_the_recognizer_reads_with_the_dictionary_of_the_config(tmp_path, monkeypatch):
    """load_recognizer attaches the phrasebook of [translator] dictionary at [recognizer]
    lexicon_prior; 0 turns it off; the recognizer corrects what it reads."""
    from device import config
    from device.commands.recognize import load_recognizer
    from translate_helpers import excerpt, need_dictionary

    need_dictionary()
    raw = {"translator": {"dictionary": str(excerpt(tmp_path / "de-en")),
                          "phrasebook_cache": str(tmp_path / "cache")}}
    cfg = config.build(raw, config.defaults_schema())
    recognizer, _ = load_recognizer(cfg)
    misread = frames("AUSGAUG", {5: ("N", 0.35)})
    monkeypatch.setattr(recognizer, "probabilities", lambda crop: misread)
    crop = np.zeros((32, 96), np.uint8)
    assert recognizer.read(crop).text == "AUSGANG"

    raw["recognizer"] = {"lexicon_prior": 0.0}
    plain, _ = load_recognizer(config.build(raw, config.defaults_schema()))
    monkeypatch.setattr(plain, "probabilities", lambda crop: misread)
    assert plain.read(crop).text == "AUSGAUG"


def test_the_pipelines_recognizer_reads_with_the_translators_phrasebook_once_loaded(
        tmp_path, monkeypatch):
    """load_stages without the translator (it loads in the background): words as read; once
    the translator's phrasebook is filled in, the same recognizer corrects."""
    from device import config
    from device.assembly import load_stages, load_translator
    from device.modelstore.store import ModelStore
    from translate_helpers import excerpt, need_dictionary

    need_dictionary()
    cfg = config.build({"translator": {"dictionary": str(excerpt(tmp_path / "de-en")),
                                       "phrasebook_cache": str(tmp_path / "cache")}},
                       config.defaults_schema())
    stages = load_stages(cfg, translate=False)
    misread = frames("AUSGAUG", {5: ("N", 0.35)})
    monkeypatch.setattr(stages.recognizer, "probabilities", lambda crop: misread)
    crop = np.zeros((32, 96), np.uint8)
    assert stages.recognizer.read(crop).text == "AUSGAUG"
    translator, _ = load_translator(cfg, ModelStore.for_config(cfg), cfg.runtime.backend)
    stages.lexicon.fill(translator.phrasebook)    # as translator_in_background does
    assert stages.recognizer.read(crop).text == "AUSGANG"
