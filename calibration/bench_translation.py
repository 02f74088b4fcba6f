"""`edgelens bench translator`: the latency benchmark (device.benchmarks.translator), then
translation quality on sign/notice texts and held-out sentences.

Sets:
    signs     tests/data/sign_validation.tsv: 310 German sign and notice texts with 1-4 English
              references each, written for evaluation only (removed from all training data)
    notices   tests/data/notice_heldout.tsv: 3,100 notices and multi-word signs written with the
              sign register's round-4 to -12 phrases, one in five held out by a hash of
              the German (one reference each; same authors and style as that training data)
    tatoeba   the 2 % of Tatoeba pairs held out by sentence hash (calibration.training.translator_data)
    blind_signs, blind_notices
              tests/data/short_signs_blind.tsv and notices_blind.tsv: 220 short signs and 150
              notices (2-3 references each) written after the sign book by a writer who saw
              none of our data or translations; common texts, so the register holds some of
              them too (written apart) and the model trained on those; read with the whole
              sign book, as the glasses read them
    notices_dev
              tests/data/notices_dev.tsv: 200 notices written the same way, a third of them
              with names of stations, streets and towns; a development set (the name rules
              of device/stages/translate/names.py were written while reading it)
Name plates: the share whose names the stage keeps, on tests/data/name_plates_dev.tsv and
name_plates_dev2.tsv (development) and name_plates_heldout.tsv (measured only after).

For each translator version, through the whole translate stage (`Translator.translate`: cache
off, the version's sign book (from 3.5.0; less the texts measured, but whole for the blind
sets), phrasebook, rules, model, gloss) and the model alone, greedy unless the config sets
`[translator] beam_size` (e.g. `edgelens bench translator --config beam3.toml`, a file with
`[translator]` / `beam_size = 3`): chrF and BLEU (sacrebleu, all references), exact match
against any reference (case, punctuation, dashes and spaces normalized), and the share of
answers by source (phrasebook / model / gloss / rule / passthrough). Needs sacrebleu (the
`bench` extra).
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import partial

from calibration.training import translator_data
from device.benchmarks import translator as latency_bench
from device.metrics import percentiles, time_calls
from device.modelstore.store import ModelStore
from device.stages.translate.translator import model_translate
from device.stages.translate.model import Seq2SeqModel
from device.stages.translate.phrasebook import Phrasebook
from device.stages.translate.normalize import lookup_key
from device.stages.translate.signage import english_place
from device.stages.translate.signbook import SignBook
from device.stages.translate.tokenizer import Tokenizer
from device.stages.translate.translator import VIAS, Settings, Translator, tokenizer_path

_PUNCT = re.compile(r"[^\w€%:/ ]+", re.UNICODE)


def norm(text: str) -> str:
    text = text.replace("–", "-").replace("—", "-").lower()
    return " ".join(_PUNCT.sub(" ", text).split())


def scores(hypotheses: list[str], references: list[list[str]]) -> dict:
    import sacrebleu
    width = max(len(r) for r in references)
    streams = [[r[k] if k < len(r) else r[0] for r in references] for k in range(width)]
    exact = sum(any(norm(h) == norm(x) for x in refs) for h, refs in zip(hypotheses, references))
    return {"chrf": round(sacrebleu.corpus_chrf(hypotheses, streams).score, 1),
            "bleu": round(sacrebleu.corpus_bleu(hypotheses, streams).score, 1),
            "exact_pct": round(100.0 * exact / max(len(hypotheses), 1), 1),
            "texts": len(hypotheses)}


def names_kept(outputs: list[str], names: list[list[str]]) -> float:
    """Percent of outputs that keep every name of their plate, as written or as an English
    sign names the place (`signage.english_place`: 'München' → 'Munich'), any case."""
    def kept(out: str, name: str) -> bool:
        english = " ".join(english_place(w) for w in name.split())
        return name.lower() in out.lower() or english.lower() in out.lower()
    hits = sum(all(kept(out, n) for n in want) for out, want in zip(outputs, names))
    return round(100.0 * hits / max(len(outputs), 1), 1)


def _book_without(version, sets: dict) -> SignBook | None:
    """The version's sign book less every text measured here and each sentence of one, also
    where they differ only by dashes ('Klingel defekt - bitte klopfen'): the register holds
    common signs that a set holds too (written apart). A shorter phrase that a measured text
    contains ('Bitte klopfen') stays in the book and is answered from it, as in use."""
    book = SignBook.for_version(version)
    if book is None:
        return None
    measured = translator_data.text_keys(
        [text for sources, _ in sets.values() for text in sources], key=_loose)
    return book.without(key for key in book.entries if _loose(key) in measured)


def _loose(text: str) -> str:
    return " ".join(re.sub(r"[-–—/]", " ", lookup_key(text)).split())


def evaluate_version(version, config, sets: dict, book: Phrasebook | None,
                     backend: str, model_first: bool | None = None,
                     plates: dict | None = None, in_use: tuple[str, ...] = ()) -> dict:
    """The version's scores on `sets` ({name: (German texts, [[references]])}), the stage
    and the model alone, and with `plates` ({name: [(German, [name])]}) the share of name
    plates whose names the stage keeps. The stage reads the sign book without every measured
    text, except on the sets named in `in_use` (written after the book by someone who never
    saw it): those it reads with the whole book, as the glasses do."""
    model = Seq2SeqModel(version.artifact, backend=backend, num_threads=1)
    tokenizer = Tokenizer(tokenizer_path(version))
    t = config.translator
    # as configured, but every text translated afresh and never cut short by the budget
    whole = Translator(model, tokenizer, book, replace(
        Settings.from_config(config), cache_size=0, budget_ms=10_000.0,
        model_first=t.model_first if model_first is None else model_first),
        _book_without(version, {k: v for k, v in sets.items() if k not in in_use})
        if t.use_phrasebook else None)
    full = Translator(model, tokenizer, book, whole.settings, SignBook.for_version(version)) \
        if in_use and t.use_phrasebook else whole
    out: dict = {"version": version.version, "beam_size": t.beam_size}
    for name, (sources, references) in sets.items():
        # every text once through the whole stage, then through the model alone; no warm-up
        results: list = []
        stage_ms = time_calls((full if name in in_use else whole).translate, sources, warmup=0,
                              results=results)
        stage, vias = [r.translation for r in results], {v: 0 for v in VIAS}
        for result in results:
            vias[result.via] += 1
        decoded: list = []
        alone_ms = time_calls(partial(model_translate, model, tokenizer, beam_size=t.beam_size),
                              sources, warmup=0, results=decoded)
        alone = [d[0] for d in decoded]
        out[name] = {"stage": scores(stage, references),
                     "model_alone": scores(alone, references),
                     "source_share_pct": {v: round(100.0 * n / len(sources), 1)
                                          for v, n in vias.items() if n},
                     "stage_ms": percentiles(stage_ms, digits=2),
                     "model_ms": percentiles(alone_ms, digits=2)}
        verdicts = translator_data.reader_verdicts(name)
        if verdicts:
            # accepted: every reader who judged this very answer accepted it; an answer no
            # reader has judged counts as not accepted
            judged = [verdicts.get((s, h)) for s, h in zip(sources, stage)]
            out[name]["reader"] = {
                "accepted_pct": round(100.0 * sum(bool(j) and all(j) for j in judged)
                                      / max(len(sources), 1), 1),
                "unjudged": sum(j is None for j in judged)}
        out[name]["sign_book"] = "none" if full.signs is None else (
            "whole" if name in in_use else "without the measured texts")
        misses = [(s, h, r) for s, h, r in zip(sources, stage, references)
                  if not any(norm(h) == norm(x) for x in r)]
        out[name]["misses"] = [{"de": s, "got": h, "want": r[0]} for s, h, r in misses[:12]]
    # names kept, and (since a plate passed through whole keeps its names too) the share
    # that came back unchanged, its trade words untranslated
    out["names_kept_pct"], out["plates_unchanged_pct"] = {}, {}
    for which, rows in (plates or {}).items():
        got = [whole.translate(de).translation for de, _ in rows]
        if rows:
            out["names_kept_pct"][which] = names_kept(got, [names for _, names in rows])
            out["plates_unchanged_pct"][which] = round(
                100.0 * sum(g == de for g, (de, _) in zip(got, rows)) / len(rows), 1)
    return out


BLIND_SETS = ("blind_signs", "blind_notices")
"""The sets written after the sign book by someone who saw none of our data: read with the
whole book, never used to choose a model."""


def run_quality(config, versions, quick: bool = False, backend: str = "auto") -> dict:
    def as_set(pairs: list[tuple[str, list[str]]]) -> tuple[list[str], list[list[str]]]:
        return [de for de, _ in pairs], [refs for _, refs in pairs]

    sets = {"signs": as_set(translator_data.sign_validation()),
            "notices": as_set(translator_data.notice_heldout()),
            "blind_signs": as_set(translator_data.short_signs_blind()),
            "blind_notices": as_set(translator_data.notices_blind()),
            "notices_dev": as_set(translator_data.notices_dev())}
    try:
        test = translator_data.tatoeba()["test"]
        test = test[:300] if quick else test
        sets["tatoeba_test"] = ([de for de, _ in test], [[en] for _, en in test])
    except OSError:
        pass   # the shared data is not on this machine
    try:
        book = Phrasebook.load(config.translator.dictionary,
                               config.translator.phrasebook_cache or None)
    except Exception:   # noqa: BLE001 - without the dictionary: the model alone
        book = None
    plates = {which: translator_data.name_plates(which) for which in ("dev", "dev2", "heldout")}
    return {"sets": {k: len(v[0]) for k, v in sets.items()},
            "name_plates": {k: len(v) for k, v in plates.items()},
            "versions": [evaluate_version(v, config, sets, book, backend, plates=plates,
                                          in_use=BLIND_SETS)
                         for v in versions]}


def print_quality(quality: dict) -> None:
    beam = quality["versions"][0]["beam_size"] if quality["versions"] else 1
    print(f"quality (sign/notice validation: {quality['sets'].get('signs')} texts; held-out "
          f"notices: {quality['sets'].get('notices')}; blind short signs / notices: "
          f"{quality['sets'].get('blind_signs')} / {quality['sets'].get('blind_notices')}; "
          f"Tatoeba "
          f"held-out: {quality['sets'].get('tatoeba_test', 0)} pairs; "
          f"{'greedy' if beam <= 1 else f'beam {beam}'})")
    print(f"  {'version':8} {'set':13} {'what':11} {'chrF':>5} {'BLEU':>5} {'exact%':>6}  "
          f"sources")
    for v in quality["versions"]:
        if v.get("names_kept_pct"):
            print(f"  {v['version']:8} name plates: names kept "
                  + ", ".join(f"{k} {p:.1f}%" for k, p in v["names_kept_pct"].items())
                  + "; unchanged " + ", ".join(
                      f"{k} {p:.1f}%" for k, p in v["plates_unchanged_pct"].items()))
        for name in quality["sets"]:
            r = v[name]
            for what in ("stage", "model_alone"):
                share = ", ".join(f"{k} {p:.0f}%" for k, p in r["source_share_pct"].items()) \
                    if what == "stage" else ""
                s = r[what]
                print(f"  {v['version']:8} {name:13} {what:11} {s['chrf']:5.1f} {s['bleu']:5.1f} "
                      f"{s['exact_pct']:6.1f}  {share}")
            if "reader" in r:
                print(f"  {v['version']:8} {name:13} accepted by a reader: "
                      f"{r['reader']['accepted_pct']:.1f}% ({r['reader']['unjudged']} answers "
                      "no reader judged count as not accepted)")


BASELINES = ("3.7.0", "3.5.0", "3.4.0", "1.1.0")
"""Measured beside the active version in the same run: 3.7.0 (3.6.0's model with the round-11
sign book, the default before 3.8.0), 3.5.0 and 3.4.0 (the defaults before; 3.4.0 ships no sign
book) and 1.1.0 (the last phrasebook-first one)."""


def run(config, json_out: bool = False, quick: bool = False) -> dict:
    """The translator's latency benchmark, then quality for the active version and BASELINES."""
    results = latency_bench.run(config, json_out=json_out, quick=quick)
    store = ModelStore.for_config(config)
    version = store.get(config.translator.model, config.translator.version or None)
    versions = [version] + [store.get(version.name, v) for v in store.versions(version.name)
                            if v in BASELINES and v != version.version]
    results["quality"] = run_quality(config, versions, quick=quick,
                                     backend=config.runtime.backend)
    if not json_out:
        print_quality(results["quality"])
    return results
