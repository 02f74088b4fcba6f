"""The translator's training mix leaves every evaluation text out."""

from calibration.training import translator_data
from device.stages.translate.normalize import lookup_key


def test_validation_signs_held_out_notices_and_tatoeba_test_are_never_trained_on(monkeypatch):
    signs = translator_data.sign_validation()
    notices = translator_data.notice_heldout()
    assert len(signs) >= 200 and len(notices) >= 200
    held_sign, held_notice = signs[0][0], notices[0][0]
    # every source offers a held-out text (in another spelling) beside one it may keep
    monkeypatch.setattr(translator_data, "tatoeba", lambda: {
        "train": [(held_sign.upper(), "x"), ("Ich bin müde.", "I am tired.")],
        "test": [("Wo ist der Bahnhof?", "Where is the station?")]})
    monkeypatch.setattr(translator_data, "osm", lambda: [(held_notice, "y"),
                                                         ("Fahrradladen Meier", "Meier bike shop")])
    monkeypatch.setattr(translator_data, "ding", lambda: [("Wo ist der Bahnhof?", "z"),
                                                          ("Haus", "house")])
    pairs, counts = translator_data.training_pairs(seed=1, mix="full")
    keys = {lookup_key(de) for de, _ in pairs}
    for text in (held_sign, held_notice, "Wo ist der Bahnhof?"):
        assert lookup_key(text) not in keys
    assert {lookup_key(t) for t in ("Ich bin müde.", "Fahrradladen Meier", "Haus")} <= keys
    held = {lookup_key(de) for de, _ in signs + notices}
    held |= {lookup_key(part) for de, _ in signs + notices
             for part in translator_data.sentences(de)}
    register = [lookup_key(de) for de, _ in translator_data.register()]
    assert counts["register"] == sum(key not in held for key in register)
    assert not set(register) & {lookup_key(de) for de, _ in notices}


def test_sentences_of_long_notices_are_paired_only_where_both_sides_have_as_many():
    rows = [("Die Praxis ist vom 5. bis 16. August geschlossen. Vertretung: Dr. Müller.",
             "The surgery is closed from 5 to 16 August. Cover: Dr. Müller."),
            ("Wir sind umgezogen! Sie finden uns jetzt in der Lindenstraße 14.",
             "We have moved! You can now find us at Lindenstraße 14."),
            ("Bitte klingeln. Danke.", "Please ring."),
            ("Rauchen verboten", "No smoking")]
    assert translator_data.sentence_pairs(rows) == [
        ("Die Praxis ist vom 5. bis 16. August geschlossen.",
         "The surgery is closed from 5 to 16 August."),
        ("Vertretung: Dr. Müller.", "Cover: Dr. Müller."),
        ("Wir sind umgezogen!", "We have moved!"),
        ("Sie finden uns jetzt in der Lindenstraße 14.",
         "You can now find us at Lindenstraße 14.")]


def test_a_held_out_text_never_comes_back_as_a_sentence_of_a_register_notice(monkeypatch):
    held_notice = translator_data.notice_heldout()[0][0]
    monkeypatch.setattr(translator_data, "register", lambda: [
        (f"Liebe Gäste, willkommen. {held_notice}", "Dear guests, welcome. Request stop.")])
    monkeypatch.setattr(translator_data, "tatoeba", lambda: {"train": [], "test": []})
    monkeypatch.setattr(translator_data, "osm", lambda: [])
    monkeypatch.setattr(translator_data, "ding", lambda: [])
    pairs, counts = translator_data.training_pairs(seed=1, mix="signs")
    keys = {lookup_key(de) for de, _ in pairs}
    assert lookup_key("Liebe Gäste, willkommen.") in keys
    assert lookup_key(held_notice) not in keys
    assert counts["register_sentences"] == 1
    # nor a sentence of a held-out notice, cut out of a register notice or standing alone in
    # any source
    long_notice = next(de for de, _ in translator_data.notice_heldout()
                       if len(translator_data.sentences(de)) > 1)
    part = translator_data.sentences(long_notice)[0]
    monkeypatch.setattr(translator_data, "register", lambda: [
        (f"{part} Wir danken Ihnen.", "Part. Thank you."), (part, "Part.")])
    monkeypatch.setattr(translator_data, "tatoeba", lambda: {"train": [(part, "Part.")],
                                                             "test": []})
    pairs, counts = translator_data.training_pairs(seed=1, mix="signs")
    assert lookup_key(part) not in {lookup_key(de) for de, _ in pairs}
    assert counts["register_sentences"] == 1 and counts["tatoeba"] == 0
    assert counts["register"] == 1


def test_a_model_card_names_the_weights_of_the_sources_its_data_had():
    from calibration.package_translator2 import with_mix
    older = {"mix": "signs", "tatoeba": 50_000, "register": 6_000, "osm": 1_700, "ding": 15_000,
             "command": "scripts/train_translator.py --prepare --mix signs"}
    assert "register_sentences" not in with_mix(older)["weights"]
    recorded = {**older, "register_sentences": 900,
                "weights": {"register": 5, "register_sentences": 5}, "caps": {}}
    assert with_mix(recorded)["weights"] == {"register": 5, "register_sentences": 5}
    assert "command" not in with_mix(recorded)
