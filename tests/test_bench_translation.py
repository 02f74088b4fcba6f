"""The translation quality benchmark scores what the configured decoding produces."""

from pathlib import Path

import pytest

from calibration.bench_translation import evaluate_version, scores
from device import config
from device.modelstore.store import ModelStore
from device.stages.translate.model import Seq2SeqModel

ROOT = Path(__file__).resolve().parent.parent


def test_scores_count_a_match_with_any_reference_after_normalizing():
    result = scores(["No smoking", "Keep out!"], [["No smoking"], ["No entry", "Keep  out"]])
    assert result["exact_pct"] == 100.0 and result["texts"] == 2
    assert scores(["Smoking no"], [["No smoking"]])["exact_pct"] == 0.0


def test_the_quality_run_decodes_with_the_configured_beam(monkeypatch):
    version = ModelStore(ROOT / "models").get("translator")
    sets = {"signs": (["Rauchen verboten", "Bitte nicht berühren"],
                      [["No smoking"], ["Please do not touch"]])}
    asked, generate = [], Seq2SeqModel.generate

    def spy(self, src_ids, *args, **kwargs):
        asked.append(kwargs.get("beam_size", 1))
        return generate(self, src_ids, *args, **kwargs)

    monkeypatch.setattr(Seq2SeqModel, "generate", spy)
    for beam in (1, 3):
        asked.clear()
        cfg = config.parse_text(f"[translator]\nbeam_size = {beam}\n")
        result = evaluate_version(version, cfg, sets, None, "auto")
        assert result["beam_size"] == beam and result["signs"]["stage"]["texts"] == 2
        assert asked and set(asked) == {beam}   # the stage and the model alone both used it


def test_names_kept_counts_a_plate_whose_every_name_is_there_as_written_or_in_english():
    from calibration.bench_translation import names_kept
    outs = ["Bakery Müller", "Towards Munich", "Dr. Petra Long", "Platform 3"]
    names = [["Müller"], ["München"], ["Petra Lang"], []]
    assert names_kept(outs, names) == 75.0     # 'Lang' lost; a plate without names counts


def test_the_name_plate_sets_hold_names_their_texts_contain():
    from calibration.training import translator_data
    for which in ("dev", "dev2", "heldout"):
        plates = translator_data.name_plates(which)
        assert len(plates) >= 200
        assert all(names and all(n in de for n in names) for de, names in plates)
    dev = {de for de, _ in translator_data.name_plates("dev")}
    assert not dev & {de for de, _ in translator_data.name_plates("heldout")}


def test_a_set_written_after_the_sign_book_is_read_with_the_whole_book():
    version = ModelStore(ROOT / "models").get("translator")
    sign = (["Rauchen verboten"], [["No smoking"]])
    result = evaluate_version(version, config.defaults(), {"signs": sign, "blind": sign}, None,
                              "auto", in_use=("blind",))
    # the validation set reads the book without its texts; the blind set as the glasses do
    assert result["signs"]["sign_book"] != "whole" and result["blind"]["sign_book"] == "whole"
    assert "phrasebook" not in result["signs"]["source_share_pct"]
    assert result["blind"]["source_share_pct"] == {"phrasebook": 100.0}


@pytest.mark.parametrize("which, least", [("short_signs_blind", 200), ("notices_blind", 150)])
def test_the_blind_sets_have_references(which, least):
    from calibration.training import translator_data
    blind = getattr(translator_data, which)()
    assert len(blind) >= least and all(len(refs) >= 2 for _, refs in blind)
    assert len({de for de, _ in blind}) == len(blind)


def test_a_readers_verdicts_count_only_the_very_answer_judged(monkeypatch, tmp_path):
    from calibration.training import translator_data
    first, second = tmp_path / "judged.tsv", tmp_path / "judged2.tsv"
    first.write_text("# German\tversion\tEnglish\tacceptable\twhy not\n"
                     "Rauchen verboten\t3.8.0\tNo smoking\tyes\t\n"
                     "Betreten verboten\t3.8.0\tKeep off\tyes\t\n", encoding="utf-8")
    # the blind notices' file writes the version first; a second reader may disagree
    second.write_text("3.8.0\tBetreten verboten\tKeep off\tno\tnot what it says\n",
                      encoding="utf-8")
    monkeypatch.setattr(translator_data, "JUDGED", {"signs": [first, second]})
    assert translator_data.reader_verdicts("signs") == {
        ("Rauchen verboten", "No smoking"): [True],
        ("Betreten verboten", "Keep off"): [True, False]}
    assert translator_data.reader_verdicts("notices") == {}
    version = ModelStore(ROOT / "models").get("translator")
    sets = {"signs": (["Rauchen verboten", "Betreten verboten"], [["No smoking"], ["No entry"]]),
            "notices": (["Rauchen verboten"], [["No smoking"]])}
    result = evaluate_version(version, config.defaults(), sets, None, "auto")
    assert [(m["de"], m["got"]) for m in result["signs"]["misses"]] == [
        ("Betreten verboten", "Keep off")]
    # accepted only where every reader who judged that very answer accepted it
    assert result["signs"]["reader"] == {"accepted_pct": 50.0, "unjudged": 0}
    assert "reader" not in result["notices"]
    monkeypatch.setattr(translator_data, "JUDGED", {"signs": [second]})
    # an answer no reader judged counts as not accepted
    result = evaluate_version(version, config.defaults(), sets, None, "auto")
    assert result["signs"]["reader"] == {"accepted_pct": 0.0, "unjudged": 1}
