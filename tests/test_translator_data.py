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
    register = [lookup_key(de) for de, _ in translator_data.register()]
    assert counts["register"] == sum(key not in held for key in register)
    assert not set(register) & {lookup_key(de) for de, _ in notices}
