"""`edgelens translate --json`: the shape the overlay and scripts rely on."""

import json

from device.cli import main
from translate_helpers import excerpt, need_dictionary, store_version


def test_json_output_shape(tmp_path, capsys):
    need_dictionary()
    store_version()
    config = tmp_path / "edgelens.toml"
    config.write_text(f'[translator]\ndictionary = "{excerpt(tmp_path / "de-en")}"\n'
                      f'phrasebook_cache = "{tmp_path / "cache"}"\n'
                      'model_first = false\n', encoding="utf-8")   # the phrasebook path
    code = main(["translate", "--json", "--config", str(config),
                 "NOTAUSGANG", "12:30", "", "Straßenhund"])
    assert code == 0
    results = json.loads(capsys.readouterr().out)
    assert [list(r) for r in results] == [["source", "translation", "via", "confidence",
                                          "uncertain", "ms"]] * 4
    assert results[0]["translation"] == "EMERGENCY EXIT" and results[0]["via"] == "phrasebook"
    assert (results[1]["translation"], results[1]["via"]) == ("12:30", "passthrough")
    assert (results[2]["translation"], results[2]["via"]) == ("", "passthrough")
    assert results[3]["via"] in ("model", "phrasebook", "gloss", "passthrough")
    for r in results:
        assert isinstance(r["confidence"], float) and 0.0 <= r["confidence"] <= 1.0
        assert isinstance(r["ms"], float) and r["ms"] >= 0.0


def test_human_output_names_the_source(tmp_path, capsys):
    need_dictionary()
    store_version()
    config = tmp_path / "edgelens.toml"
    config.write_text(f'[translator]\ndictionary = "{excerpt(tmp_path / "de-en")}"\n'
                      f'phrasebook_cache = "{tmp_path / "cache"}"\n'
                      'model_first = false\n', encoding="utf-8")   # the phrasebook path
    assert main(["translate", "--config", str(config), "Notausgang"]) == 0
    out = capsys.readouterr().out
    assert "Notausgang → Emergency exit" in out and "phrasebook" in out


def test_one_shot_translation_has_no_time_budget(tmp_path, capsys):
    """[translator] budget_ms keeps the live path on time; a slow device must give the same
    answer to `edgelens translate` as a fast one, only later (1 ms: no model decode fits)."""
    need_dictionary()
    store_version()
    config = tmp_path / "edgelens.toml"
    config.write_text(f'[translator]\ndictionary = "{excerpt(tmp_path / "de-en")}"\n'
                      f'phrasebook_cache = "{tmp_path / "cache"}"\nbudget_ms = 1.0\n',
                      encoding="utf-8")
    # a text the version's sign book does not hold: the model must read it
    text = "Bitte Tür zum Hof schließen"
    assert main(["translate", "--json", "--config", str(config), text]) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert result["via"] == "model", result          # not passthrough (over_budget)
