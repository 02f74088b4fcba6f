"""The sign book a translator version ships: whole sign texts answered as the register writes
them, before the model; the benchmark reads it without the texts it measures."""

import math

import pytest

from calibration.training import translator_data
from device.errors import ModelStoreError
from device.stages.translate.model import Seq2SeqModel
from device.stages.translate.normalize import lookup_key
from device.stages.translate.signbook import SignBook, write
from device.stages.translate.tokenizer import Tokenizer
from device.stages.translate.translator import Settings, Translator, tokenizer_path
from translate_helpers import store_version

BOOK = """# German\tEnglish
Ausfahrt freihalten\tKeep exit clear
Einfahrt freihalten\tKeep entrance clear
Mittagstisch 11:30–14:00 Uhr\tLunch 11:30–14:00
Heute geschlossen\tClosed today
Bitte benutzen Sie den Hintereingang.\tPlease use the rear entrance.
AUSFAHRT FREIHALTEN!\tdo not block
"""


@pytest.fixture(scope="module")
def model_parts():
    version = store_version()
    return Seq2SeqModel(version.artifact, backend="auto", num_threads=1), \
        Tokenizer(tokenizer_path(version))


def _translator(model_parts, **settings) -> Translator:
    model, tokenizer = model_parts
    return Translator(model, tokenizer, None,
                      Settings(cache_size=0, budget_ms=math.inf, **settings),
                      SignBook.parse(BOOK, "test"))


def test_keys_ignore_case_umlauts_and_punctuation_and_the_first_english_wins():
    book = SignBook.parse(BOOK + "Grüße aus Köln\tGreetings from Cologne\n", "test")
    assert len(book) == 6
    assert book.lookup("AUSFAHRT FREIHALTEN") == "Keep exit clear"      # not 'do not block'
    assert book.lookup("ausfahrt freihalten!") == "Keep exit clear"
    assert book.lookup("Gruesse aus Koeln") == "Greetings from Cologne"
    assert book.lookup("Ausfahrt") is None


def test_umlauts_read_without_their_dots_still_find_their_entry():
    book = SignBook.parse("Öffnungszeiten\tOpening hours\nZählen\tCount\nZahlen\tPay\n"
                          "Rückgabe\tReturns\nRuckgabe\tjerk\nÜbung\tExercise\n"
                          "Ubüng\tsomething else\n", "test")
    assert book.lookup("OFFNUNGSZEITEN") is None
    assert book.lookup_dotless("OFFNUNGSZEITEN") == "Opening hours"   # OCR dropped the dots
    assert book.lookup("Oeffnungszeiten") == "Opening hours"
    assert (book.lookup("Zahlen"), book.lookup("Zählen")) == ("Pay", "Count")   # own entries
    assert book.lookup_dotless("Zahlen") is None                  # an entry of its own
    assert book.lookup("Ruckgabe") == "jerk" and book.lookup("Rückgabe") == "Returns"
    assert book.lookup_dotless("Ubung") is None      # two entries read so: neither is meant
    assert book.without({"oeffnungszeiten"}).lookup_dotless("Offnungszeiten") is None


def test_a_malformed_line_is_an_error_that_names_it(tmp_path):
    with pytest.raises(ModelStoreError, match=r"test:2: expected 'German<TAB>English'"):
        SignBook.parse("Ausgang\tExit\nKaputte Zeile ohne Tab\n", "test")
    with pytest.raises(ModelStoreError, match="cannot read the sign book"):
        SignBook.load(tmp_path / "missing.tsv")
    (tmp_path / "latin1.tsv").write_bytes("Grüße\tHello\n".encode("latin-1"))
    with pytest.raises(ModelStoreError, match="cannot read the sign book"):
        SignBook.load(tmp_path / "latin1.tsv")


def test_write_keeps_one_line_per_key_and_reads_back(tmp_path):
    pairs = [("Ausgang", "Exit"), ("AUSGANG", "EXIT"), ("Kein\tZutritt", "No entry"),
             ("Zeile\u2028zwei", "Line two"), ("# Raum 3", "Room 3"), ("Eingang", "Entrance")]
    assert write(tmp_path / "b.tsv", pairs) == 2
    book = SignBook.load(tmp_path / "b.tsv")
    assert (book.lookup("ausgang"), book.lookup("Eingang")) == ("Exit", "Entrance")


def test_a_text_the_book_holds_is_answered_from_it_in_the_signs_casing(model_parts):
    translator = _translator(model_parts)
    for text, want in (("Ausfahrt freihalten", "Keep exit clear"),
                       ("AUSFAHRT FREIHALTEN", "KEEP EXIT CLEAR"),
                       ("Einfahrt Freihalten", "Keep Entrance Clear")):
        result = translator.translate(text)
        assert (result.translation, result.via, result.confidence) == (want, "phrasebook", 1.0)
        assert not result.uncertain


def test_times_in_a_book_answer_follow_the_configured_style(model_parts):
    text = "Mittagstisch 11:30–14:00 Uhr"
    assert _translator(model_parts).translate(text).translation == "Lunch 11:30–14:00"
    twelve = _translator(model_parts, time_style="12h").translate(text)
    assert (twelve.translation, twelve.via) == ("Lunch 11:30 am–2 pm", "phrasebook")


def test_a_notice_whose_every_sentence_the_book_holds_is_answered_from_it(model_parts):
    translator = _translator(model_parts)
    result = translator.translate("Heute geschlossen. Bitte benutzen Sie den Hintereingang.")
    assert result.translation == "Closed today. Please use the rear entrance."
    assert result.via == "phrasebook"
    # a sentence the book lacks: the model reads the text
    mixed = translator.translate("Heute geschlossen. Bitte klingeln Sie nebenan.")
    assert mixed.via == "model" and mixed.translation


def test_without_the_phrasebook_setting_the_book_is_not_used(model_parts):
    result = _translator(model_parts, use_phrasebook=False).translate("Ausfahrt freihalten")
    assert result.via == "model"


def test_the_benchmark_reads_the_book_without_the_texts_it_measures(tmp_path):
    from calibration.bench_translation import _book_without
    from device.modelstore.store import ModelVersion
    signs = translator_data.sign_validation()
    pairs = translator_data.sign_book_pairs()
    assert len(pairs) > 10_000
    # the register holds common signs that the validation set holds too (written apart)
    book_keys = {lookup_key(de) for de, _ in pairs}
    overlap = [de for de, _ in signs if lookup_key(de) in book_keys]
    assert overlap
    write(tmp_path / "book.tsv", pairs)
    version = ModelVersion("translator", "9.9.9", tmp_path, {
        "artifact": {"file": "book.tsv"}, "extra_files": [{"file": "book.tsv"}],
        "sign_phrasebook": "book.tsv"})
    notice = "Heute geschlossen. Bitte benutzen Sie den Hintereingang."
    twin = "Klingel defekt - bitte klopfen"        # the register writes it without the dash
    assert SignBook.for_version(version).lookup("Klingel defekt bitte klopfen") is not None
    sets = {"signs": ([de for de, _ in signs] + [notice, twin], [])}
    measured = _book_without(version, sets)
    assert all(measured.lookup(de) is None for de in overlap)
    full = SignBook.for_version(version)
    assert full.lookup("Heute geschlossen") is not None
    assert measured.lookup("Heute geschlossen") is None        # a sentence of a measured text
    assert measured.lookup("Klingel defekt bitte klopfen") is None     # differs by a dash
    assert len(measured) < len(full)
    # what the store ships was written from the same pairs
    shipped = SignBook.for_version(store_version())
    if shipped is not None:
        assert len(shipped) == store_version().manifest["sign_phrasebook_entries"]
        assert shipped.lookup(overlap[0]) is not None
