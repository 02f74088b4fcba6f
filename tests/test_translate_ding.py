"""Parsing the ding dictionary into clean pairs, and the headword split."""

from device.stages.translate import ding
from translate_helpers import dictionary_lines, need_dictionary, real_line


def test_a_noun_line_gives_the_base_form_and_its_plural():
    need_dictionary()
    entry = ding.parse_line(real_line("Aalbestand {m}"))
    assert entry.headword == "aalbestand"
    assert [(p.de, p.en, p.kind) for p in entry.pairs] == [
        ("Aalbestand", "eel stock", "head"), ("Aalbestände", "eel stocks", "sub")]


def test_tags_never_reach_the_text():
    need_dictionary()
    entry = ding.parse_line(real_line("Aalleiter {f}"))
    for pair in entry.pairs:
        for text in (pair.de, pair.en, *pair.refs):
            assert not set(text) & set("{}[]<>()"), text
    assert entry.pairs[0].refs[0] == "eel ladder"


def test_abbreviations_never_reach_the_text():
    # 'Sandsackausgabe' was glossed 'Sandbag Edition /ed.': ding writes 'edition /ed./'
    entry = ding.parse_line("Abfahrt {f} /Abf./; Abflug {m} [transp.] | Abfahrten {pl} :: "
                            "departure /dep./ | departures")
    assert [(p.de, p.en) for p in entry.pairs] == [
        ("Abfahrt", "departure"), ("Abflug", "departure"), ("Abfahrten", "departures")]
    assert ding.strip_tags("dead on arrival /DOA/") == "dead on arrival"
    assert ding.strip_tags("weight /w.; wt/") == "weight"          # several forms, a space
    assert ding.strip_tags("serial number /ser. no./") == "serial number"
    # a slash between words or inside one is no abbreviation
    for kept in ("dipped / dimmed headlights/lights", "km/h", "shepherd's /sailor's delight"):
        assert ding.strip_tags(kept) == kept


def test_verbs_lose_the_english_to_and_keep_their_inflections():
    need_dictionary()
    entry = ding.parse_line(real_line("entweichen {vi}"))
    assert [(p.de, p.en) for p in entry.pairs] == [
        ("entweichen", "leak"), ("entweichend", "leaking"), ("entwichen", "leaked"),
        ("entweicht", "leaks"), ("entwich", "leaked")]


def test_alternatives_pair_with_the_first_english_and_keep_all_as_references():
    line = "Abtauen {n}; Abtauung {f} [selten] (von Gegenständen) :: defrosting; thawing\n"
    entry = ding.parse_line(line)
    assert [(p.de, p.en, p.refs) for p in entry.pairs] == [
        ("Abtauen", "defrosting", ("defrosting", "thawing")),
        ("Abtauung", "defrosting", ("defrosting", "thawing"))]


def test_example_sentences_become_pairs():
    need_dictionary()
    entry = ding.parse_line(real_line("Ausgang {m} | Ausgänge {pl} | Der Saal"))
    assert ("Der Saal hat drei Ausgänge.", "The hall has three exits.") in [
        (p.de, p.en) for p in entry.pairs]


def test_an_english_ending_alone_is_no_translation():
    # 'Super bleifrei' was glossed '…-a-palooza unleaded': ding lists prefixes with their endings
    assert ding.parse_line("Mega…; Super… [ugs.] :: …-a-palooza [Am.] [coll.]") is None
    entry = ding.parse_line("Super {n} :: premium petrol; -super")
    assert [(p.de, p.en, p.refs) for p in entry.pairs] == [
        ("Super", "premium petrol", ("premium petrol",))]
    # a word after an ellipsis is a translation ('Assistentenprogramm für …' :: '… wizard')
    entry = ding.parse_line("Assistentenprogramm {n} für … :: … wizard")
    assert [p.en for p in entry.pairs] == ["… wizard"]


def test_comments_and_misaligned_lines():
    assert ding.parse_line("# Version :: devel 2023-01-30") is None
    assert ding.parse_line("") is None
    entry = ding.parse_line("Haus {n} | Häuser {pl} | extra :: house | houses\n")
    assert [p.de for p in entry.pairs] == ["Haus"]  # sub-entries misaligned: base form only


def test_the_headword_split_leaks_nothing():
    need_dictionary()
    entries = [e for e in map(ding.parse_line, dictionary_lines()[:5000]) if e]
    splits = ding.split_pairs(entries)
    assert len(splits["test"]) > 50 and len(splits["val"]) > 50
    heads = {name: {e.headword for e in entries if ding.split_of(e.headword) == name}
             for name in ("train", "val", "test")}
    assert not heads["test"] & heads["train"] and not heads["val"] & heads["train"]
    from device.stages.translate.normalize import lookup_key
    train_sources = {lookup_key(p.de) for p in splits["train"]}
    for name in ("val", "test"):
        assert not {lookup_key(p.de) for p in splits[name]} & train_sources
    # inflections share their line's headword, so a plural never crosses the split: the
    # line "Ausgang {m} | Ausgänge {pl} | ..." puts every one of its pairs in one split
    line = ding.parse_line("Ausgang {m} | Ausgänge {pl} | Der Saal hat drei Ausgänge. :: "
                           "exit | exits | The hall has three exits.")
    assert {p.de for p in line.pairs} >= {"Ausgang", "Ausgänge"}
    home = ding.split_of(line.headword)
    assert all(any(p in split for p in line.pairs) == (name == home)
               for name, split in ding.split_pairs([line]).items())


def test_the_split_is_stable():
    assert ding.split_of("ausgang") == ding.split_of("ausgang")
    assert {ding.split_of(f"wort{i}") for i in range(2000)} == {"train", "val", "test"}
