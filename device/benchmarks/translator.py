"""`edgelens bench translator`: latency of the translator on 1 thread, per backend, int8 vs fp32.

Model path: a fixed set of short sign-like German phrases (≤ 6 words), each translated by
the model alone (tokenize + encode + greedy decode + detokenize); p50/p95 per phrase.
Cache hit and phrasebook hit: the whole `Translator.translate` call. Sizes: the int8 model,
the fp32 reference and the tokenizer.
"""

from __future__ import annotations

from functools import partial

from device.metrics import percentiles, time_calls
from device.modelstore.store import ModelStore
from device.runtime import UnsafeBackendError, available_backends
from device.stages.translate.translator import model_translate
from device.stages.translate.model import Seq2SeqModel
from device.stages.translate.phrasebook import Phrasebook
from device.stages.translate.tokenizer import Tokenizer
from device.stages.translate.translator import Settings, Translator, tokenizer_path

# Short phrases of the kind signs carry; none is needed in the dictionary for the timing.
PHRASES = (
    "Notausgang", "Bitte nicht rauchen", "Kein Zutritt für Unbefugte", "Vorsicht Stufe",
    "Rauchen verboten", "Fahrräder bitte hier abstellen", "Ausgang links", "Nur für Personal",
    "Bitte Tür schließen", "Hunde sind an der Leine zu führen", "Betreten der Baustelle verboten",
    "Kasse", "Parken nur mit Parkschein", "Frische Brötchen", "Heute geschlossen",
    "Achtung Hochspannung", "Bitte klingeln", "Wegen Umbau geschlossen", "Toiletten im Untergeschoss",
    "Einfahrt freihalten", "Zu den Gleisen", "Haltestelle", "Feuerlöscher", "Durchgang verboten",
    "Lebensgefahr", "Nicht berühren", "Bitte warten", "Zimmer frei", "Sonderangebot",
    "Eintritt frei",
)
RUNS = 3
HIT_RUNS = 2000


def _percentiles(times_ms: list[float]) -> dict:
    return {**percentiles(times_ms), "n": len(times_ms)}


def time_model(path, tokenizer: Tokenizer, backend: str, runs: int = RUNS) -> dict:
    """Every phrase `runs` times in turn, after the first three as warm-up."""
    model = Seq2SeqModel(path, backend=backend, num_threads=1)
    return _percentiles(time_calls(partial(model_translate, model, tokenizer), PHRASES,
                                   runs=runs * len(PHRASES), warmup=3))


def time_hits(translator: Translator, text: str, runs: int = HIT_RUNS) -> dict:
    """The same text `runs` times: after the warm-up call every one is a hit."""
    return _percentiles(time_calls(translator.translate, [text], runs=runs))


def run(config, json_out: bool = False, quick: bool = False) -> dict:
    store = ModelStore.for_config(config)
    version = store.get(config.translator.model, config.translator.version or None)
    tokenizer = Tokenizer(tokenizer_path(version))
    fp32 = version.directory / "translator_fp32.tflite"
    if not fp32.is_file():
        fp32 = None
    runs = 1 if quick else RUNS
    results: dict = {"model": f"{version.name} {version.version}",
                     "quantization": version.manifest.get("quantization"), "threads": 1,
                     "phrases": len(PHRASES), "latency_ms": {}}
    for backend in available_backends():
        try:
            results["latency_ms"][backend] = {
                "int8": time_model(version.artifact, tokenizer, backend, runs)}
        except UnsafeBackendError as exc:    # tflite-runtime on an asimddp core
            results.setdefault("refused", {})[backend] = str(exc)
            continue
        if fp32 is not None:
            results["latency_ms"][backend]["fp32"] = time_model(fp32, tokenizer, backend, runs)
    hits: dict = {}
    model = Seq2SeqModel(version.artifact, backend=config.runtime.backend, num_threads=1)
    cached = Translator(model, tokenizer, None, Settings(cache_size=16, use_phrasebook=False))
    hits["cache"] = time_hits(cached, "Bitte nicht rauchen", 200 if quick else HIT_RUNS)
    try:
        book = Phrasebook.load(config.translator.dictionary,
                               config.translator.phrasebook_cache or None)
        nocache = Translator(model, tokenizer, book, Settings(cache_size=0))
        hits["phrasebook"] = time_hits(nocache, "Notausgang", 200 if quick else HIT_RUNS)
        hits["phrasebook_entries"] = len(book)
    except Exception as exc:  # the dictionary may be missing on a dev machine
        hits["phrasebook"] = {"error": str(exc)}
    results["hit_latency_ms"] = hits
    sizes = {"model_int8": version.artifact.stat().st_size,
             "tokenizer": tokenizer_path(version).stat().st_size}
    if fp32 is not None:
        sizes["model_fp32"] = fp32.stat().st_size
    sizes["model_plus_tokenizer"] = sizes["model_int8"] + sizes["tokenizer"]
    results["size_bytes"] = sizes
    if not json_out:
        print(f"translator {results['model']} ({results['quantization']}), 1 thread, "
              f"{len(PHRASES)} short phrases")
        for backend, variants in results["latency_ms"].items():
            for variant, t in variants.items():
                print(f"  {backend:7s} {variant}: p50 {t['p50']:.2f} ms  p95 {t['p95']:.2f} ms")
        for backend, reason in results.get("refused", {}).items():
            print(f"  {backend:7s} refused: {reason}")
        for name in ("cache", "phrasebook"):
            t = hits.get(name, {})
            if "p50" in t:
                print(f"  {name} hit: p50 {t['p50'] * 1000:.1f} µs  p95 {t['p95'] * 1000:.1f} µs")
        print(f"  size: model {sizes['model_int8'] / 1e6:.2f} MB + tokenizer "
              f"{sizes['tokenizer'] / 1e6:.2f} MB = {sizes['model_plus_tokenizer'] / 1e6:.2f} MB")
    return results
