"""The translate stage: phrasebook, cache, sign casing, passthrough and refusals.

Every translator here has no time budget (math.inf) unless the budget is what is tested: the
answer must not depend on the speed of the machine."""

import math
import re

import pytest

from device.stages.translate.phrasebook import Phrasebook
from device.stages.translate.signage import split_arrows
from device.stages.translate.signbook import SignBook
from device.stages.translate.translator import Settings, Translator
from translate_helpers import model_parts


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return model_parts(tmp_path_factory.mktemp("translate"))


@pytest.fixture
def translator(parts):
    model, tokenizer, book = parts
    # min_model_confidence 0: these tests are about routing, not about the model's quality
    return Translator(model, tokenizer, book, Settings(cache_size=8, min_model_confidence=0.0,
                                                       budget_ms=math.inf))


def test_phrasebook_hits_ignore_case_umlaut_spelling_and_punctuation(translator):
    for text in ("Notausgang", "notausgang!", "NOTAUSGANG", "Not-\nausgang"):
        result = translator.translate(text)
        assert result.via in ("phrasebook", "cache")
        assert result.translation.lower() == "emergency exit" + text[-1] * (text[-1] == "!")
        assert result.confidence == 1.0
    assert translator.translate("AUSGAENGE").translation == "EXITS"
    assert translator.translate("Ausgänge").translation == "Exits"


def test_signage_casing_follows_the_input(translator):
    assert translator.translate("NOTAUSGANG").translation == "EMERGENCY EXIT"
    # German capitalizes its nouns: that is no Title Case, the English keeps its own casing;
    # a sign that capitalizes a word German writes small is set in Title Case
    assert translator.translate("Notausgang").translation == "Emergency exit"
    titled = translator.translate("Notausgang Freihalten").translation   # 'frei' is small
    assert titled.split() and all(w[0].isupper() for w in titled.split() if w[0].isalpha())
    assert translator.translate("Notausgang freihalten").translation[1:].islower()
    assert translator.translate("notausgang").translation == "emergency exit"
    # rule-rendered spans of an ALL CAPS sign with words are cast too; abbreviations alone
    # are not a style
    assert translator.translate("AUSGANG 2. OG").translation == "EXIT 2ND FLOOR"
    assert translator.translate("EG").translation == "Ground floor"
    assert translator.translate("MO-FR 8-20 UHR").translation == "Mon–Fri 8:00–20:00"


def test_numbers_times_prices_and_names_pass_through(translator):
    assert translator.translate("Krzyzanowski").reason == "protected"
    assert translator.translate("12:30").as_dict()["translation"] == "12:30"
    assert translator.translate("12:30").via in ("passthrough", "cache")
    assert translator.translate("€ 2,50").translation == "€ 2,50"
    assert translator.translate("Ausgang 3").translation == "Exit 3"
    assert translator.translate("Apotheke Krzyzanowski").translation == "Pharmacy Krzyzanowski"
    assert translator.translate("Bahnsteig 18 Uhr").translation == "Platform 18:00"
    assert translator.translate("2,4-Ausgang").translation == "2,4-exit"   # glued stays glued


def test_a_word_the_model_knows_is_not_taken_for_a_name(translator, parts):
    # no 'Polizei' headword in the dictionary (nor in the real one), but the tokenizer keeps
    # it whole: a frequent word of the model's training text, so the model translates it
    _model, tokenizer, book = parts
    assert not book.is_german_word("polizei") and len(tokenizer.encode("polizei")) == 1
    result = translator.translate("Polizei")
    assert (result.via, result.reason) == ("model", "")
    assert result.translation.lower() == "police"
    assert translator.translate("Krzyzanowski").reason == "protected"   # still a name
    assert not translator._is_name("Sonn-")      # 'Sonn- und Feiertage': half a compound


def test_words_the_model_translates_surely_are_not_names(translator, monkeypatch):
    # a compound the dictionary lacks looks like a name; the model knows it
    assert translator._is_name("Streichelgehege")
    result = translator.translate("Streichelgehege")
    assert result.via == "model" and result.confidence >= 0.95
    assert result.translation.lower() == "petting enclosure"
    # the name check's decoding is the chunk's own: one decoding for the sign
    calls = []
    generate = translator.model.generate
    monkeypatch.setattr(translator.model, "generate",
                        lambda *a, **k: calls.append(1) or generate(*a, **k))
    assert translator._fresh("Streichelgehege", "Streichelgehege", 0).via == "model"
    assert len(calls) == 1
    monkeypatch.undo()
    # in a sign of several words too ('Cannabiskonsum' is no name)
    assert translator._is_name("Cannabiskonsum")
    several = translator.translate("Cannabiskonsum verboten")
    assert several.via == "model" and "cannabis" in several.translation.lower()
    assert "Cannabiskonsum" not in several.translation
    # a name the model would only copy, or guess at, stays as written
    assert translator.translate("Krzyzanowski").reason == "protected"
    assert translator.translate("Apotheke Krzyzanowski").translation == "Pharmacy Krzyzanowski"


@pytest.mark.parametrize("german, english, want", [
    # a copied name, whether the model wrote it folded or with its umlauts
    ("Treffpunkt Höhenberg", "meeting point höhenberg", "meeting point Höhenberg"),
    ("Treffpunkt Höhenberg", "meeting point hoehenberg", "meeting point Höhenberg"),
    # a letter that names a zone, a section or a line; 'a' and 'i' are words
    ("Abschnitt E und Linie D", "section e and line d", "section E and line D"),
    ("Linie A", "take a line", "take a line"),
])
def test_a_copied_name_or_letter_keeps_its_capitals(german, english, want):
    assert Translator(None, None, None)._names_cased(german, english) == want


def test_the_sign_book_reads_a_text_without_umlaut_dots_only_where_a_word_is_misread(parts):
    from device.stages.translate.signbook import SignBook
    model, tokenizer, _book = parts
    book = Phrasebook({"drucken": "print", "druecken": "press"})
    signs = SignBook.parse("Drücken\tPush\nÖffnungszeiten\tOpening hours\n", "test")
    translator = Translator(model, tokenizer, book, Settings(budget_ms=math.inf), signs)
    assert book.is_german_word("drucken")
    assert translator.translate("Drucken").translation != "Push"     # a word of its own
    assert translator.translate("Drücken").translation == "Push"
    result = translator.translate("Offnungszeiten")                   # OCR lost the dots
    assert (result.translation, result.via) == ("Opening hours", "phrasebook")


def test_a_function_word_alone_between_times_is_not_left_to_the_model(translator):
    # the model, given 'und' alone, may answer 'and and'
    assert translator._chunk("und", None) == ("and", "phrasebook", 1.0, "")
    assert translator._chunk("oder", None)[0] == "or"   # not the river


def test_bis_between_two_numbers_the_text_is_cut_at_is_to(translator, monkeypatch):
    seen = []
    monkeypatch.setattr(translator, "_chunk", lambda chunk, deadline: (
        seen.append(chunk), (chunk.lower().replace("heute", "today"), "model", 0.9, ""))[1])
    monkeypatch.setattr(translator, "_whole", lambda *args: None)   # cut at its spans
    result = translator.translate("Heute 14 bis 16 Uhr")
    assert result.translation == "Today 14:00 to 16:00" and "bis" not in seen
    assert translator.translate("HEUTE 8 BIS 18 UHR").translation == "TODAY 8:00 TO 18:00"
    # between a day and a time, or a date and a time, 'bis' is 'until' (the phrasebook's)
    monkeypatch.setattr(translator, "_chunk", lambda chunk, deadline: (
        ("until", "phrasebook", 1.0, "") if chunk.lower() == "bis" else
        (chunk.lower().replace("geöffnet", "open"), "model", 0.9, "")))
    assert translator.translate("Mo-Fr bis 18 Uhr").translation == "Mon–Fri until 18:00"
    assert translator.translate("24.12. bis 14 Uhr geöffnet").translation == \
        "24 December until 14:00 open"


@pytest.mark.parametrize("sign, lead, words, trail", [
    ("Toiletten →", "", "Toiletten", " →"), ("← Ausgang", "← ", "Ausgang", ""),
    ("-> Gleis 3", "-> ", "Gleis 3", ""),
    ("BITTE HIER ANSTELLEN ⇨", "", "BITTE HIER ANSTELLEN", " ⇨"),
    ("Zimmer 108-115 >", "", "Zimmer 108-115", " >"), ("Toiletten→", "", "Toiletten", "→"),
    ("←Ausgang", "←", "Ausgang", ""), ("<-- Ausgang", "<-- ", "Ausgang", ""),
    ("Ausgang -->", "", "Ausgang", " -->")])
def test_arrows_at_a_signs_ends_stay_and_the_words_between_are_translated(
        translator, sign, lead, words, trail):
    # an arrow once made the whole sign pass through untranslated ('Toiletten →')
    alone = translator.translate(words)
    assert alone.via != "passthrough"
    got = translator.translate(sign)
    assert got.translation == f"{lead}{alone.translation}{trail}"
    assert got.via in (alone.via, "cache")


def test_a_sign_of_arrows_alone_or_a_comparison_is_not_cut():
    assert split_arrows("→") == ("→", "", "")
    assert split_arrows("a < b") == ("", "a < b", "")
    assert split_arrows("Bahn->") == ("", "Bahn->", "")     # glued ASCII: not known to point


def test_an_arrow_sign_over_the_budget_is_translated_on_the_next_request(parts):
    model, tokenizer, book = parts
    slow = Translator(model, tokenizer, book, Settings(cache_size=8, min_model_confidence=0.0,
                                                       budget_ms=1e-6))
    sign = "Fahrräder bitte hinten abstellen →"
    first = slow.translate(sign)
    assert (first.via, first.reason) == ("passthrough", "over_budget")
    again = slow.translate(sign)          # the late text is read without a deadline
    assert again.via == "model" and again.translation.endswith(" →")


def test_a_name_plate_keeps_its_names_and_translates_the_rest(translator):
    # the model read the names as words: 'Bäckerei Müller' → 'Rubbish Müller', 'Praxis Dr.
    # Schneider' → 'Dr. Tailor', 'Friseur Schmidt' → 'Hairdresser Trace'
    for plate, name in (("Bäckerei Müller", "Müller"), ("Apotheke Schmidt", "Schmidt"),
                        ("Praxis Dr. Schneider", "Dr. Schneider")):
        got = translator.translate(plate)
        assert got.via != "passthrough" and got.translation.endswith(f" {name}"), got
        assert plate.split()[0] not in got.translation        # the trade is translated
    assert translator.translate("Herr Müller").translation == "Mr Müller"
    assert translator.translate("HERR MÜLLER").translation == "MR MÜLLER"
    assert translator.translate("Herr Dr. Müller").translation == "Dr. Müller"
    assert translator.translate("Praxis Prof. Dr. med. Weber").translation.endswith(
        " Prof. Dr. med. Weber")
    assert translator.translate("Richtung München").translation == "Towards Munich"
    assert translator.translate("Bäckerei Müller GmbH").translation.endswith(" Müller GmbH")
    assert translator.translate("Fa. Müller").translation == "Müller"
    # a train's kind stays ('RE' alone is a card call in the dictionary: 'REDOUBLE 7')
    assert translator.translate("RE 7 RICHTUNG KÖLN").translation == "RE 7 TOWARDS COLOGNE"
    # a station's or a line's destination ('U-Bahn Marienplatz' → 'Subwayplatz' before)
    assert translator.translate("S1 Marienplatz").translation == "S1 Marienplatz"
    assert translator.translate("Bahnhof Moosach").translation.endswith(" Moosach")
    # a station's place as written ('Köln Hbf' came out 'Kopp Hbf'), as the register writes it
    assert translator.translate("Köln Hbf").translation == "Köln Hbf"
    # two trades and a name ('Bäckerei & Konditorei Schmidt' lost 'Schmidt')
    got = translator.translate("Bäckerei & Konditorei Schmidt").translation
    assert got.endswith(" Schmidt") and "Bäckerei" not in got, got
    # a name after a trade's name, a surname that is a word after a doctor's trade, a place
    # after an airport ('Rechtsanwalt Thomas Becker' came out 'Solicitor's Whale Becker',
    # 'Zahnarzt Dr. Petra Lang' 'Dentist Dr. Petra Long', 'Flughafen München' 'To the Airport')
    assert translator.translate("Apotheke Krzyzanowski Becker").translation.endswith(
        " Krzyzanowski Becker")
    assert translator.translate("Zahnarzt Dr. Petra Lang").translation.endswith(
        " Dr. Petra Lang")
    assert "Munich" in translator.translate("Flughafen München").translation


def test_a_digit_ocr_read_for_a_letter_is_read_as_the_letter_where_that_makes_a_word(
        translator):
    # 'N0tausgang' came out 'N 0s taunt', 'Rauchen verb0ten' 'No smoking 0'
    for noisy, clean in (("E1ngang", "Eingang"), ("N0TAUSGANG", "NOTAUSGANG"),
                         ("Ausgang", "Ausgang")):
        assert translator._ocr_misreads(noisy) == clean
        assert translator.translate(noisy).translation == translator.translate(clean).translation
    # codes, numbers and words that stay unknown keep their digits
    for kept in ("S1 A7 B5 ICE4", "Gleis 10", "Zimmer 1O5", "Xq0rz"):
        assert translator._ocr_misreads(kept) == kept


def test_a_letter_ocr_read_for_a_look_alike_is_read_right_where_one_sign_word_fits(parts):
    model, tokenizer, book = parts
    signs = SignBook.parse("Ausgang\tExit\nAusgang links\tExit on the left\n"
                           "Eingang\tEntrance\nKein Eingang\tNo entry\n")
    translator = Translator(model, tokenizer, book, Settings(budget_ms=math.inf), signs)
    assert translator._ocr_misreads("Elngang Ausqang") == "Eingang Ausgang"
    # words, forms of words (the dictionary lists 'Zimmer', not 'Zimmern'), names, English
    # words and addresses stay
    for kept in ("Eingang", "Zimmern", "Huber", "Krzyzanowski", "Mitte", "Weekend", "Bell",
                 "www.ausqang.de", "info@ausqang.de"):
        assert translator._ocr_misreads(kept) == kept
    # a number glued to a word stays a number ('Ausgang5' came out 'Exit', the 5 read as 's')
    for kept in ("Ausgang5", "Kasse1", "Gang5"):
        assert translator._ocr_misreads(kept) == kept


def test_a_dash_between_chunks_is_a_spaced_en_dash(translator, monkeypatch):
    # OCR text has its dashes folded to '-': 'POLICE - KEEP ...' and '1 April - 15 July' before
    monkeypatch.setattr(translator, "_chunk", lambda chunk, deadline: (
        {"leinenpflicht": "dogs on leads", "polizei -": "police -",
         "durchfahrt freihalten": "keep clear"}[chunk.lower()], "model", 0.9, ""))
    monkeypatch.setattr(translator, "_whole", lambda *args: None)   # cut at its spans
    assert translator.translate("Leinenpflicht 1.4.–15.7.").translation == \
        "Dogs on leads 1 April – 15 July"
    monkeypatch.setattr(translator, "_chunks", lambda spans, deadline: [
        ("POLIZEI -", False), ("DURCHFAHRT FREIHALTEN", False)])
    assert translator.translate("POLIZEI – DURCHFAHRT FREIHALTEN").translation == \
        "POLICE – KEEP CLEAR"


def test_a_notice_longer_than_the_model_reads_is_translated_sentence_by_sentence(parts):
    model, tokenizer, _book = parts
    # no phrasebook: the test dictionary's excerpt lacks the notice's words, which would be
    # cut out as names; this is about the model reading a long text in parts
    translator = Translator(model, tokenizer, None, Settings(
        cache_size=0, min_model_confidence=0.0, budget_ms=math.inf))
    notice = ("Im Brandfall keine Aufzüge benutzen. Bitte benutzen Sie die Treppe im "
              "Nordflügel und folgen Sie den Anweisungen des Personals.")
    assert not translator._fits(notice)
    result = translator.translate(notice)
    assert (result.via, result.reason) == ("model", "")
    first, second = re.split(r"(?<=[.!?]) (?=[A-Z])", result.translation, maxsplit=1)
    assert first and second   # two English sentences, the second one capitalized


def test_a_sentence_too_long_between_its_clause_marks_is_read_in_pieces_marked_uncertain(
        parts):
    model, tokenizer, book = parts
    # uncertain_below 0: marked only for the cut, never for the model's own doubt
    translator = Translator(model, tokenizer, None, Settings(
        cache_size=0, min_model_confidence=0.0, budget_ms=math.inf, uncertain_below=0.0))
    sentence = ("Hunde müssen in allen Bussen und Bahnen des Verkehrsverbunds an einer kurzen "
                "Leine geführt werden und einen gut sitzenden Maulkorb tragen.")
    assert not translator._fits(sentence) and "," not in sentence
    result = translator.translate(sentence)
    # read in pieces cut between words (before it kept the German: reason too_long)
    assert (result.via, result.reason, result.uncertain) == ("model", "", True)
    assert "dog" in result.translation.lower()
    # a clause that fits only without its comma is cut between words too, and marked
    comma = translator.translate("Hunde müssen in allen Bussen und Bahnen des Verkehrsverbunds "
                                 "an einer kurzen Leine geführt, danke.")
    assert (comma.via, comma.uncertain) == ("model", True)
    # a notice whose sentences fit is not marked; nor one whose long part is a name cut out
    assert translator.translate("Hunde bitte an der Leine führen.").uncertain is False
    with_names = Translator(model, tokenizer, book, Settings(
        cache_size=0, min_model_confidence=0.0, budget_ms=math.inf, uncertain_below=0.0))
    named = with_names.translate("Bitte melden Sie sich bei Herrn Kowalczyk oder Frau "
                                 "Wisniewska im Büro der Firma Szczepanski Brzeczyszczykiewicz")
    assert (named.via, named.uncertain) == ("model", False)


def test_plain_numbers_stay_inside_the_sentence_the_model_reads(translator, monkeypatch):
    read, chunk = [], translator._chunk
    monkeypatch.setattr(translator, "_chunk", lambda text, deadline: (
        read.append(text), chunk(text, deadline))[1])
    for text in ("Ausgang 3", "Max. 2 Personen", "Gleis 7"):
        result = translator.translate(text)
        assert result.via == "model" and text[-1] in result.translation
        assert read[-1] == text     # read whole, with its number inside
    seen = []
    monkeypatch.setattr(translator, "_chunk", lambda chunk, deadline: (
        seen.append(chunk), (re.sub(r"\d", "", chunk).lower(), "model", 0.9, ""))[1])
    result = translator.translate("Ausgang 4 links")
    # read with its number first; the (stand-in) model dropped it, so the text is cut there
    assert seen == ["Ausgang 4 links", "Ausgang", "links"]
    assert result.translation == "Ausgang 4 links"


def test_words_around_days_times_and_floors_are_read_whole(translator, monkeypatch):
    read, chunk = [], translator._chunk
    monkeypatch.setattr(translator, "_chunk", lambda text, deadline: (
        read.append(text), chunk(text, deadline))[1])
    result = translator.translate("Toiletten im 1. OG")
    assert read == ["Toiletten im 1. OG"] and result.via == "model"
    assert result.translation.endswith(" 1st floor") and result.translation.count("oilet") == 1
    # a (stand-in) model answer without the span is not shown: the text is cut at its spans
    seen = []
    monkeypatch.setattr(translator, "_chunk", lambda text, deadline: (
        seen.append(text), ("toilets upstairs" if "OG" in text else "toilets", "model", 0.9,
                            ""))[1])
    result = translator.translate("Toiletten im 2. OG")
    assert seen == ["Toiletten im 2. OG", "Toiletten im"]
    assert result.translation == "Toilets 2nd floor"


def test_a_whole_answer_that_keeps_only_the_spans_is_cut_at_them(translator, monkeypatch):
    # 'Mo–Sa 8–20 Uhr gebührenpflichtig' came out 'Mon–Sat 8:00–20:00': the word was lost
    seen = []
    monkeypatch.setattr(translator, "_chunk", lambda text, deadline: (
        seen.append(text), ("mon–sat 8:00–20:00" if "Mo" in text else "charges apply",
                            "model", 0.9, ""))[1])
    result = translator.translate("Mo-Sa 8-20 Uhr gebührenpflichtig")
    assert seen == ["Mo-Sa 8-20 Uhr gebührenpflichtig", "gebührenpflichtig"]
    assert result.translation == "Mon–Sat 8:00–20:00 charges apply"
    # an answer with a word beside the spans stands
    seen.clear()
    monkeypatch.setattr(translator, "_chunk", lambda text, deadline: (
        seen.append(text), ("charges apply mon–sat 8:00–20:00", "model", 0.9, ""))[1])
    result = translator.translate("Mo-Sa 8-20 Uhr Gebühren")
    assert seen == ["Mo-Sa 8-20 Uhr Gebühren"]
    assert result.translation == "Charges apply Mon–Sat 8:00–20:00"


def test_a_notice_the_model_reads_as_one_sentence_is_read_sentence_by_sentence(
        translator, monkeypatch):
    # no rendered span in it: 'Münzen einwerfen ... drücken. Der Automat gibt kein
    # Wechselgeld.' came out 'Insert coins, select the programme and starts are no change given.'
    read = []
    answers = {"Heute geschlossen. Bitte klingeln!": "closed today ring please",
               "Heute geschlossen.": "closed today", "Bitte klingeln!": "please ring"}
    monkeypatch.setattr(translator, "_chunk", lambda text, deadline: (
        read.append(text), (answers[text], "model", 0.9, ""))[1])
    result = translator.translate("Heute geschlossen. Bitte klingeln!")
    assert read == list(answers)
    assert result.translation == "Closed today. Please ring!"
    # an answer with as many sentences stands
    read.clear()
    answers = {"Bitte klingeln. Heute geschlossen!": "ring please. Closed today"}
    result = translator.translate("Bitte klingeln. Heute geschlossen!")
    assert read == list(answers) and result.translation == "Ring please. Closed today!"


def test_a_merged_answer_stands_where_a_sentence_alone_reads_less_surely(
        translator, monkeypatch):
    # 'St. Martin. Gottesdienst Sonntag.' → 'St. Martin service on Sunday.' (0.88); the name
    # alone came out '. Martin Care Home.' at 0.47
    answers = {"Heute geschlossen. Bitte klingeln!": ("Closed today ring please", 0.88),
               "Heute geschlossen.": ("today closure home", 0.47),
               "Bitte klingeln!": ("please ring", 0.9)}
    seen = []
    monkeypatch.setattr(translator, "_chunk", lambda text, deadline: (
        seen.append(text), (answers[text][0], "model", answers[text][1], ""))[1])
    result = translator.translate("Heute geschlossen. Bitte klingeln!")
    assert seen == list(answers)
    assert result.translation == "Closed today ring please!"


def test_what_makes_an_answer_merged():
    from device.stages.translate.translator import _merged, _only_spans
    two = ["Ca. 10 Min. Wartezeit.", "Bitte warten."]
    assert _merged("Approx. 10 min. please wait.", two)        # abbreviations end none
    assert not _merged("Approx. 10 min wait. Please wait.", two)
    assert not _merged("Mr Meier please ring", ["Meier.", "Bitte klingeln."])  # one word
    # function words English signs leave out do not count as dropped
    assert not _only_spans("Mon–Fri 8:00–18:00", [("Mon–Fri", True), ("von", False),
                                                  ("8:00–18:00", True)])
    assert _only_spans("Mon–Fri 18:00", [("Mon–Fri", True), ("ab", False), ("18:00", True)])
    assert not _only_spans("Mon–Fri from 18:00", [("Mon–Fri", True), ("ab", False),
                                                  ("18:00", True)])


def test_an_answer_that_merges_a_notices_sentences_is_read_again_sentence_by_sentence(
        translator, monkeypatch):
    read, chunk = [], translator._chunk

    def merging(text, deadline):        # a (stand-in) answer that merges the two sentences
        read.append(text)
        return (("closed today from 9:00.", "model", 0.9, "") if text.count(".") == 2
                else chunk(text, deadline))
    monkeypatch.setattr(translator, "_chunk", merging)
    result = translator.translate("Heute geschlossen. Ab 9 Uhr geöffnet.")
    assert read[:3] == ["Heute geschlossen. Ab 9 Uhr geöffnet.", "Heute geschlossen.",
                        "Ab 9 Uhr geöffnet."]
    first, second = result.translation.split(". ", 1)
    assert "9:00" in second and "9:00" not in first      # no sentence merged into another


def test_a_name_the_model_copies_gets_its_own_spelling_back(translator):
    assert translator._names_cased("Zug nach Zürich", "train to zuerich") == "train to Zürich"
    assert translator._names_cased("Nächster Halt: Hauptbahnhof",
                                   "next stop: hauptbahnhof") == "next stop: Hauptbahnhof"
    # only whole copied words; a word the model translated is left alone
    assert translator._names_cased("Zürichsee", "lake zurich") == "lake zurich"
    assert translator._names_cased("ICE nach Berlin", "ice to berlin").startswith("ICE ")
    # too short to tell a name from a word both languages use
    assert translator._names_cased("Was ist in Ulm", "what is in ulm") == "what is in ulm"


def test_codes_and_names_both_languages_share_keep_their_spelling(parts):
    model, tokenizer, _book = parts
    # the dictionary lists all four in both languages: a place as itself, the others as words
    book = Phrasebook({"magdeburg": "Magdeburg", "hotel": "hotel", "re": "re", "in": "in"})
    translator = Translator(model, tokenizer, book, Settings(budget_ms=math.inf))
    assert translator._names_cased("RE 1 nach Magdeburg", "re 1 to magdeburg") == \
        "RE 1 to Magdeburg"
    assert translator._names_cased("Hotel am Markt", "hotel by the market") == \
        "hotel by the market"
    # an emphasised word in capitals is no code, nor a word both languages share
    assert translator._names_cased("Nur IN Notfällen", "only in emergencies") == \
        "only in emergencies"
    assert translator._names_cased("Abfahrt IN 5 Min", "departure in 5 min") == \
        "departure in 5 min"
    book = Phrasebook({"not": "emergency", "aus": "off"})
    sharing = Translator(model, tokenizer, book, Settings(budget_ms=math.inf))
    assert sharing._names_cased("NOT-AUS nicht blockieren", "do not block the emergency stop") \
        == "do not block the emergency stop"


def test_unsure_model_answers_and_glosses_are_marked_uncertain(parts):
    model, tokenizer, book = parts

    def with_threshold(below: float, cache_size: int = 0) -> Translator:
        return Translator(model, tokenizer, book, Settings(
            cache_size=cache_size, min_model_confidence=0.0, budget_ms=math.inf,
            model_first=True, uncertain_below=below))

    sure = with_threshold(0.5).translate("Ausgang")
    assert (sure.via, sure.uncertain) == ("model", False) and sure.confidence > 0.5
    doubting = with_threshold(1.01, cache_size=4)       # every model answer is under 1.01
    doubted = doubting.translate("Ausgang")
    assert (doubted.via, doubted.translation, doubted.uncertain) == ("model", sure.translation,
                                                                     True)
    assert doubted.as_dict()["uncertain"] is True
    again = doubting.translate("Ausgang")
    assert (again.via, again.uncertain) == ("cache", True)   # a cached answer stays marked


def test_garbage_and_foreign_text_keep_the_original(translator):
    for text, reason in (("xqzt#@!§kk&&", "garbage"), ("QXZKRTPL", "garbage"),
                         ("%%% ###", "no_letters"),
                         ("Please keep the door closed", "not_german")):
        result = translator.translate(text)
        assert (result.via, result.reason, result.translation) == ("passthrough", reason, text)


def test_a_reading_made_of_no_known_word_is_kept_not_guessed_at(translator):
    # OCR noise and codes the dictionary lacks: the model only invents ('OPAC' → 'OPERA
    # HOUSE', 'eERRREE' → 'ground floor', 'omt' → 'original version'); the overlay shows them
    # as read
    for text in ("OPAC", "eERRREE", "omt", "Sai su", "90ntES7-t ee"):
        result = translator.translate(text)
        assert (result.via, result.reason, result.translation) == (
            "passthrough", "unknown_words", text), text
    # a German word the dictionary lacks but the model knows is still translated, and a text
    # with a known word is not judged by its unknown ones
    assert translator.translate("Leerung 17 Uhr").via == "model"
    assert translator.translate("Ausgang OPAC").reason != "unknown_words"
    assert translator.translate("inkl.").reason != "unknown_words"     # an abbreviation
    # the days and times beside a code are still written the English way
    assert translator.translate("OPAC Mo–Fr 9–18 Uhr").translation == "OPAC Mon–Fri 9:00–18:00"
    assert translator.translate("UVP 59,95 €").translation == "UVP €59.95"    # was 'WATER'


def test_a_lone_letter_is_a_label_kept_as_written(translator):
    # the dictionary's 'H' is the note B and its 'B' a flat; on a sign they mark a stop or a gate
    for text in ("H", "B", "f", "→ H"):
        result = translator.translate(text)
        assert (result.via, result.reason, result.translation) == ("passthrough", "protected",
                                                                   text), text
    assert translator.translate("Ausgang B").translation != "Ausgang B"   # a word beside it


def test_foreign_words_with_german_days_and_times_get_only_those_rendered(translator):
    result = translator.translate("Please keep the door closed Mo–Fr 9–18 Uhr")
    assert (result.via, result.translation) == (
        "rule", "Please keep the door closed Mon–Fri 9:00–18:00")
    # where they stand, in the sign's capitals; other numbers as written
    assert translator.translate("Please keep the door closed (9–18 Uhr)").translation == \
        "Please keep the door closed (9:00–18:00)"
    assert translator.translate("PLEASE KEEP THE DOOR CLOSED MO-FR 9-18 UHR").translation == \
        "PLEASE KEEP THE DOOR CLOSED MON–FRI 9:00–18:00"
    step = translator.translate("Please keep this door closed, step 1.")
    assert (step.via, step.translation) == ("passthrough", "Please keep this door closed, step 1.")
    plain = translator.translate("Please keep the door closed, 24 hours")   # nothing to render
    assert (plain.via, plain.reason) == ("passthrough", "not_german")


def test_a_chunk_answer_does_not_repeat_the_numbers_beside_it():
    from device.stages.translate.translator import _without_borrowed_numbers
    beside = [("089", True)]
    assert _without_borrowed_numbers("on 089", "unter Tel.", beside) == "on"
    own = [("1234567.", True)]
    assert _without_borrowed_numbers("on 089 089", "unter Tel. 089", own) == "on 089"
    assert _without_borrowed_numbers("on tel. 089 08", "unter Tel. 089", own) == "on tel. 089"
    # a number written as a word may come out in digits; '18s' is no '18'
    assert _without_borrowed_numbers("over 18s only", "ab achtzehn Jahren", [("18", True)]) \
        == "over 18s only"
    assert _without_borrowed_numbers("over 18 only", "ab achtzehn", [("18", True)]) == \
        "over 18 only"
    # a number the text does not hold stays; times and decimals are left whole
    assert _without_borrowed_numbers("for 2 people", "für zwei Personen", beside) == \
        "for 2 people"
    assert _without_borrowed_numbers("from 9:00", "ab 9 Uhr", [("9:00", True)]) == "from 9:00"


def test_minutes_the_model_glues_to_a_word_are_dropped():
    from device.stages.translate.translator import _STRAY_MINUTES
    assert _STRAY_MINUTES.sub(":", "opening hours over the holidays:00") == \
        "opening hours over the holidays:"
    assert _STRAY_MINUTES.sub(":", "open 9:00–18:00") == "open 9:00–18:00"


def test_a_long_german_compound_is_no_garbage(translator):
    from device.stages.translate.refusal import refusal_of
    for word in ("Impfsprechstunde", "Herbststurm", "Angstschweiß"):
        assert refusal_of(word, None) == ""
    assert refusal_of("QXZKRTPL", None) == "garbage"


def test_empty_long_and_control_input_give_a_clear_result(translator):
    assert translator.translate("").reason == "empty"
    control = translator.translate("  \x00\x07 ").as_dict()
    assert {k: v for k, v in control.items() if k != "ms"} == {
        "source": "  \x00\x07 ", "translation": "", "via": "passthrough", "confidence": 0.0,
        "uncertain": False}
    assert translator.translate(None).reason == "empty"
    assert translator.translate("Wort " * 100).reason == "too_long"
    huge = translator.translate("x" * 5_000_000)
    assert (huge.reason, huge.translation) == ("too_long", "x" * 300)
    assert translator.translate(12345).translation == "12345"


def test_low_ocr_confidence_is_not_translated(translator):
    result = translator.translate("Notausgang", ocr_confidence=0.2)
    assert (result.via, result.reason, result.translation) == (
        "passthrough", "low_ocr_confidence", "Notausgang")
    assert translator.translate("Notausgang", ocr_confidence=0.9).via == "phrasebook"


def test_the_cache_answers_repeated_frames_and_counts(translator):
    first = translator.translate("Straßenhund")
    again = translator.translate("Straßenhund")
    assert first.via in ("model", "phrasebook", "gloss") and again.via == "cache"
    assert again.translation == first.translation
    stats = translator.stats()
    assert stats["cache"]["hits"] >= 1 and stats["via"]["cache"] == 1


def test_the_model_answers_what_the_phrasebook_lacks(translator):
    result = translator.translate("Wasserzimmer")
    assert result.via == "model" and result.translation and 0 < result.confidence <= 1


def test_the_budget_stops_the_model_and_a_slow_device_gets_the_same_answer_later(parts):
    model, tokenizer, book = parts
    hurried = Translator(model, tokenizer, book, Settings(budget_ms=0.001))
    result = hurried.translate("Wasserzimmer")
    assert (result.via, result.reason, result.translation) == (
        "passthrough", "over_budget", "Wasserzimmer")
    assert hurried.translate("Notausgang").via == "phrasebook"   # lookups need no budget
    # the next request finishes what the budget cut, then the cache answers
    unhurried = Translator(model, tokenizer, book, Settings(budget_ms=math.inf))
    expected = unhurried.translate("Wasserzimmer")
    late = hurried.translate("Wasserzimmer")
    assert (late.translation, late.via, late.confidence) == (
        expected.translation, expected.via, expected.confidence)
    assert hurried.translate("Wasserzimmer").via == "cache"


def test_without_model_or_phrasebook_it_still_answers(parts):
    _, _, book = parts
    bare = Translator(None, None, book)
    assert bare.translate("Notausgang").via == "phrasebook"
    assert bare.translate("Wasserzimmer").reason == "no_model"


def test_an_unsure_model_yields_to_a_word_by_word_gloss(parts):
    model, tokenizer, book = parts
    glossing = Translator(model, tokenizer, book, Settings(gloss_below_confidence=1.01,
                                                           budget_ms=math.inf))
    result = glossing.translate("hundewasser")
    expected = f"{book.lookup('Hund')} {book.lookup('Wasser')}"
    # a gloss is labelled as what it is, with a low confidence, never as a phrasebook hit
    assert (result.translation, result.via, result.confidence) == (expected, "gloss", 0.3)
    assert result.uncertain   # and drawn as uncertain
    assert glossing.translate("Krzyzanowskiwasser xq").via not in ("phrasebook", "gloss")
    hiding = Translator(model, tokenizer, book, Settings(gloss_below_confidence=1.01,
                                                         show_glosses=False,
                                                         budget_ms=math.inf))
    hidden = hiding.translate("hundewasser")
    assert (hidden.via, hidden.reason, hidden.translation) == ("passthrough", "gloss_hidden",
                                                               "hundewasser")


@pytest.mark.parametrize("german, style, english", [
    ("Öffnungszeiten: Mo–Fr 8:00–20:00", "24h", ["Mon–Fri", "8:00–20:00"]),
    ("Montag bis Freitag 9–18 Uhr", "24h", ["Monday to Friday", "9:00–18:00"]),
    ("Montag bis Freitag 9–18 Uhr", "12h", ["Monday to Friday", "9 am–6 pm"]),
    ("Mo-Sa 9-20 Uhr", "12h", ["Mon–Sat", "9 am–8 pm"]),
    ("1. OG", "24h", ["1st floor"]),
    ("EG", "24h", ["Ground floor"]),
    ("Kaffee 2,50 €", "24h", ["€2.50"]),
    ("Bahnsteig 18 Uhr", "12h", ["6 pm"]),
])
def test_days_times_floors_and_prices_are_written_the_english_way(german, style, english):
    from device.stages.translate.signage import split_protected
    rendered = [chunk for chunk, protected in split_protected(german, style) if protected]
    assert rendered == english
    # ordinary words that look like day abbreviations stay words
    assert split_protected("So geht das") == [("So geht das", False)]


def _with_confidences(monkeypatch, model, tokenizer, sureness: dict) -> None:
    """The model's real answers, each with the confidence `sureness` gives its (folded,
    lowercase) German text (0.9 for any other)."""
    from device.stages.translate.model import Decoded
    generate = model.generate

    def stand_in(ids, **kwargs):
        decoded = generate(ids, **kwargs)
        text = tokenizer.decode([i for i in ids if i > 3]).strip()
        return Decoded(decoded.ids, sureness.get(text, 0.9), decoded.complete)
    monkeypatch.setattr(model, "generate", stand_in)


def _splitting(parts, threshold=0.8, **settings):
    model, tokenizer, _book = parts
    return Translator(model, tokenizer, None, Settings(
        cache_size=0, min_model_confidence=0.0, budget_ms=math.inf,
        split_below_confidence=threshold, **settings))


def test_an_unsure_answer_for_several_clauses_is_read_clause_by_clause(parts, monkeypatch):
    model, tokenizer, _book = parts
    text = "Hunde verboten, Fahrräder bitte schieben. Danke!"
    _with_confidences(monkeypatch, model, tokenizer, {
        "hunde verboten, fahrraeder bitte schieben. danke!": 0.5, "hunde verboten": 0.7,
        "fahrraeder bitte schieben": 0.8, "danke": 0.95})
    splitting = _splitting(parts)
    read, chunk = [], splitting._chunk
    monkeypatch.setattr(splitting, "_chunk", lambda text, deadline: (
        read.append(text), chunk(text, deadline))[1])
    result = splitting.translate(text)
    # the whole first, then each clause without its mark; the marks come back after the English
    assert read == [text, "Hunde verboten", "Fahrräder bitte schieben", "Danke"]
    assert result.via == "model" and result.confidence == 0.7    # the least sure clause
    first, rest = result.translation.split(", ", 1)
    second, third = rest.split(". ", 1)
    assert first and second and third.endswith("!") and third[0].isupper()
    # off (0): the whole text only, with its own confidence
    whole = _splitting(parts, 0.0)
    seen, whole_chunk = [], whole._chunk
    monkeypatch.setattr(whole, "_chunk", lambda text, deadline: (
        seen.append(text), whole_chunk(text, deadline))[1])
    assert whole.translate(text).confidence == 0.5 and seen == [text]


def test_the_whole_answer_stands_unless_every_clause_is_surer(parts, monkeypatch):
    model, tokenizer, _book = parts
    sureness = {"einfahrt freihalten, tag und nacht": 0.5, "einfahrt freihalten": 0.6,
                "tag und nacht": 0.95}
    _with_confidences(monkeypatch, model, tokenizer, sureness)
    translator = _splitting(parts)
    assert translator.translate("Einfahrt freihalten, Tag und Nacht").confidence == 0.6
    # a clause as sure as the whole (not surer): the whole answer, and the reading stops there
    sureness["einfahrt freihalten"] = 0.5
    read, chunk = [], translator._chunk
    monkeypatch.setattr(translator, "_chunk", lambda text, deadline: (
        read.append(text), chunk(text, deadline))[1])
    assert translator.translate("Einfahrt freihalten, Tag und Nacht").confidence == 0.5
    assert read == ["Einfahrt freihalten, Tag und Nacht", "Einfahrt freihalten"]


def test_a_clause_without_an_answer_leaves_the_whole_answer(parts, monkeypatch):
    model, tokenizer, _book = parts
    _with_confidences(monkeypatch, model, tokenizer, {
        "einfahrt freihalten, tag und nacht": 0.5, "einfahrt freihalten": 0.9})
    translator = _splitting(parts)
    chunk = translator._chunk
    for problem in ("over_budget", "low_model_confidence"):
        monkeypatch.setattr(translator, "_chunk", lambda text, deadline, problem=problem: (
            ("", "", 0.0, problem) if text == "Tag und Nacht" else chunk(text, deadline)))
        result = translator.translate("Einfahrt freihalten, Tag und Nacht")
        assert (result.via, result.confidence) == ("model", 0.5) and result.translation


def test_a_sign_of_words_between_slashes_reads_each_word(translator):
    each = [translator.translate(word).translation for word in ("Eingang", "Ausgang")]
    assert translator.translate("Ein-/Ausgang").translation == "/".join(each)
    assert translator.translate("EINGANG / AUSGANG").translation == "/".join(each).upper()
    assert translator.translate("EIN-/AUSGANG").translation == "/".join(each).upper()
    # the sign's own English beside the German is not said twice; a word refused stays as
    # written and makes the answer uncertain
    assert translator.translate("Ausgang / Exit").translation == each[1]
    odd = translator.translate("Ausgang/Qwrtzp")
    assert odd.translation == f"{each[1]}/Qwrtzp" and odd.uncertain
    # days in a list are one span the rules write, not a list of words
    assert translator.translate("Sa/So 10–16 Uhr").translation == "Sat/Sun 10:00–16:00"


def test_a_slash_sign_over_the_budget_passes_through_and_is_read_on_the_next_request(parts):
    model, tokenizer, book = parts
    slow = Translator(model, tokenizer, book, Settings(cache_size=8, min_model_confidence=0.0,
                                                       budget_ms=1e-6))
    first = slow.translate("Wasserzimmer/Ausgang")    # the model's word runs out of time
    assert (first.via, first.reason, first.translation) == (
        "passthrough", "over_budget", "Wasserzimmer/Ausgang")
    again = slow.translate("Wasserzimmer/Ausgang")
    assert again.via == "model" and again.translation.count("/") == 1
    # a word cut at a hyphen the reading rewrote: finished late all the same, and a
    # passthrough shows the sign as written
    cut = slow.translate("Wasser-/Zimmerbrunnen frei")
    assert (cut.reason, cut.translation) == ("over_budget", "Wasser-/Zimmerbrunnen frei")
    assert slow.translate("Wasser-/Zimmerbrunnen frei").reason != "over_budget"


def test_a_word_ocr_cut_in_two_is_joined_where_its_first_part_is_no_word(translator):
    assert translator.translate("Bahnst eig").translation == \
        translator.translate("Bahnsteig").translation
    assert translator.translate("Apoth eke").translation == \
        translator.translate("Apotheke").translation
    # a word and the next one stay apart ('Hund' is a word), and so do a name and a word
    assert translator._ocr_misreads("Hund katze") == "Hund katze"
    assert translator._ocr_misreads("Krzyzanowski bitte") == "Krzyzanowski bitte"


def test_an_unsure_greedy_answer_is_decoded_again_with_a_beam(parts, monkeypatch):
    from dataclasses import replace as with_

    from device.stages.translate.model import Decoded
    model, tokenizer, book = parts
    calls = []

    def generate(ids, max_tokens=0, beam_size=1, deadline_ns=None):
        calls.append(beam_size)
        words = "no smoking" if beam_size > 1 else "smoking no"
        return Decoded(tuple(tokenizer.encode(words)), 0.8 if beam_size > 1 else 0.6, True)
    monkeypatch.setattr(model, "generate", generate)
    settings = Settings(cache_size=0, min_model_confidence=0.0, budget_ms=math.inf,
                        model_first=True, use_phrasebook=False)
    for below, want, beams in ((0.9, "No smoking", [1, 3]), (0.5, "Smoking no", [1]),
                               (0.0, "Smoking no", [1])):
        calls.clear()
        translator = Translator(model, tokenizer, book, with_(settings, beam_below=below))
        result = translator.translate("Rauchen verboten")
        assert (result.translation, calls) == (want, beams), below
    # a beam answer no surer than the greedy one leaves it
    monkeypatch.setattr(model, "generate", lambda ids, max_tokens=0, beam_size=1,
                        deadline_ns=None: Decoded(tuple(tokenizer.encode(
                            "no smoking" if beam_size > 1 else "smoking no")), 0.6, True))
    translator = Translator(model, tokenizer, book, with_(settings, beam_below=0.9))
    assert translator.translate("Rauchen verboten").translation == "Smoking no"


def test_the_beam_for_an_unsure_answer_is_tried_only_where_the_deadline_leaves_time(
        parts, monkeypatch):
    from device.stages.translate.model import Decoded
    model, tokenizer, book = parts
    calls = []

    def generate(ids, max_tokens=0, beam_size=1, deadline_ns=None):
        calls.append(beam_size)
        return Decoded(tuple(tokenizer.encode("smoking no")), 0.6, True)
    monkeypatch.setattr(model, "generate", generate)
    translator = Translator(model, tokenizer, book, Settings(
        cache_size=0, min_model_confidence=0.0, budget_ms=math.inf, model_first=True,
        use_phrasebook=False, beam_below=0.9))
    past = 0                                 # a deadline long gone: no time for a beam
    assert translator._generate("Rauchen verboten", tokenizer.encode("rauchen verboten"),
                                past).complete and calls == [1]
    calls.clear()
    translator._reading.__dict__.clear()
    translator._generate("Rauchen verboten", tokenizer.encode("rauchen verboten"), None)
    assert calls == [1, 3]
