"""Normalization of OCR'd sign text."""

from device.stages.translate.normalize import clean, fold, join_hyphen_breaks, lookup_key, model_text


def test_umlauts_fold_to_their_two_letter_spellings():
    assert fold("Größe Übergänge Ölwechsel") == "Groesse Uebergaenge Oelwechsel"
    assert lookup_key("AUSGÄNGE") == lookup_key("Ausgaenge") == "ausgaenge"


def test_lookup_keys_ignore_case_and_punctuation():
    assert lookup_key("  Rauchen   verboten! ") == "rauchen verboten"
    assert lookup_key("„Kein Zutritt“.") == "kein zutritt"
    assert lookup_key("Mo.-Fr.") == "mo -fr"


def test_hyphenated_line_breaks_are_joined():
    assert join_hyphen_breaks("Not-\nausgang") == "Notausgang"
    assert clean("Fahrrad-\n abstellplatz") == "Fahrradabstellplatz"
    assert clean("Nord-\nSüd-Verbindung") == "Nord-Süd-Verbindung"   # a real hyphen stays


def test_control_characters_and_odd_spaces_go():
    assert clean("Kein\x00 Zutritt\u200b\t\r\n") == "Kein Zutritt"
    assert clean("\x07\x1b") == ""
    assert clean("Preis\u00a0–\u00a05 €") == "Preis - 5 €"


def test_model_text_is_folded_lowercase():
    assert model_text("Bitte NICHT füttern") == "bitte nicht fuettern"
