"""Training data for the 2.x German→English translator: real sentences, map names, sign
register and the dictionary, tokenized into fixed-width arrays.

Sources (licenses in the model card):
    tatoeba   ../shared/data/tatoeba-deu-eng/pairs.tsv      169,813 sentence pairs, CC BY 2.0 FR
    osm       ../shared/data/osm-presets-de-en/...tsv       1,753 shop/amenity/transport names, ISC
    register  calibration/data/sign_register.tsv            sign and notice phrases we wrote
              (and, as register_sentences, the sentences of its multi-sentence notices)
    ding      the ding dictionary on this machine (trans-de-en, GPL-2+), never committed

Tatoeba is split by a hash of the German sentence: 2 % test (held out for
`edgelens bench translator`), 1 % validation, the rest train. Sign texts written for the
validation set (tests/data/sign_validation.tsv) and the held-out notices
(tests/data/notice_heldout.tsv) are removed from every training source.

German goes through `device.stages.translate.normalize.model_text` (umlauts folded, lowercase: ALL
CAPS and missing umlauts read the same), English through `target_text` (lowercase; the runtime
restores sign casing). A share of the German side is copied with OCR noise (a misread or
dropped letter, a hyphenated line break) so the model reads what the recognizer delivers.

No TensorFlow or PyTorch here.
"""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

import numpy as np

from calibration import real_data
from device.stages.translate.normalize import clean, lookup_key, model_text
from device.stages.translate.segment import sentences

ROOT = Path(__file__).resolve().parents[2]
REGISTER = ROOT / "calibration" / "data" / "sign_register.tsv"
SIGN_VALIDATION = ROOT / "tests" / "data" / "sign_validation.tsv"
NOTICE_HELDOUT = ROOT / "tests" / "data" / "notice_heldout.tsv"
SHORT_SIGNS_BLIND = ROOT / "tests" / "data" / "short_signs_blind.tsv"
NOTICES_BLIND = ROOT / "tests" / "data" / "notices_blind.tsv"
NOTICES_DEV = ROOT / "tests" / "data" / "notices_dev.tsv"
NAME_PLATES = {"dev": ROOT / "tests" / "data" / "name_plates_dev.tsv",
               "dev2": ROOT / "tests" / "data" / "name_plates_dev2.tsv",
               "heldout": ROOT / "tests" / "data" / "name_plates_heldout.tsv"}
JUDGED = {"signs": [ROOT / "tests" / "data" / "sign_validation_judged.tsv",
                    ROOT / "tests" / "data" / "sign_validation_judged2.tsv"],
          "blind_notices": [ROOT / "tests" / "data" / "notices_blind_judged.tsv"]}
"""A reader's verdicts on answers to a set's texts (German, version, English, yes/no, why not;
the blind notices' file has the version first)."""
PAD, UNK, BOS, EOS = 0, 1, 2, 3
MAX_LEN = 24
MIXES = {
    "full": {"weights": {"tatoeba": 1, "osm": 3, "register": 12, "register_sentences": 12,
                         "ding": 1}, "caps": {}},
    "signs": {"weights": {"tatoeba": 1, "osm": 2, "register": 6, "register_sentences": 6,
                          "ding": 1},
              "caps": {"tatoeba": 50_000, "ding": 15_000}},
}
"""Copies of each source in one pass over the training data (`weights`), after keeping at most
`caps` rows of a source (a seeded sample). `full` trains from scratch (2.0.0); `signs` goes on
training a released model with the sign register in front and enough sentences and dictionary
pairs beside it that it does not forget them."""
DING_PAIRS = 90_000
"""Dictionary pairs kept (single headwords dominate the dictionary; sentences matter more)."""
NOISE_SHARE = 0.12
OCR_CONFUSIONS = {"l": "i", "i": "l", "e": "c", "c": "e", "n": "m", "m": "n", "o": "a", "a": "o",
                  "u": "v", "h": "b", "t": "f", "r": "n", "s": "5", "0": "o", "1": "l"}


def target_text(en: str) -> str:
    return clean(en).lower()


def _split_of(de: str) -> str:
    h = int(hashlib.sha1(de.encode("utf-8")).hexdigest()[:8], 16) % 100
    return "test" if h < 2 else "val" if h < 3 else "train"


def tatoeba() -> dict[str, list[tuple[str, str]]]:
    path = real_data.data_root() / "tatoeba-deu-eng" / "pairs.tsv"
    out: dict[str, list[tuple[str, str]]] = {"train": [], "val": [], "test": []}
    for line in path.read_text(encoding="utf-8").splitlines():
        de, _, en = line.partition("\t")
        if de and en:
            out[_split_of(de)].append((de.strip(), en.strip()))
    return out


def osm() -> list[tuple[str, str]]:
    path = real_data.data_root() / "osm-presets-de-en" / "preset_names_de_en.tsv"
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        cols = line.split("\t")
        if len(cols) >= 4 and cols[2] and cols[3]:
            pairs.append((cols[2].strip(), cols[3].strip()))
    return pairs


def _tsv_pairs(path: Path) -> list[tuple[str, list[str]]]:
    rows = []
    if not path.exists():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        cols = [c.strip() for c in line.split("\t")]
        if len(cols) >= 2 and cols[0] and cols[1]:
            rows.append((cols[0], [c for c in cols[1:] if c]))
    return rows


def register() -> list[tuple[str, str]]:
    return [(de, refs[0]) for de, refs in _tsv_pairs(REGISTER)]


def sentence_pairs(rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The sentences of multi-sentence pairs, paired in order where both sides have as many
    (`segment.sentences`, which the translate stage cuts long texts with): a notice too long
    for the model as a whole still teaches it its sentences."""
    out = []
    for de, en in rows:
        de_parts, en_parts = sentences(de), sentences(en)
        if len(de_parts) == len(en_parts) > 1:
            out.extend(zip(de_parts, en_parts))
    return out


def sign_validation() -> list[tuple[str, list[str]]]:
    """The sign/notice validation set: (German, [English references])."""
    return _tsv_pairs(SIGN_VALIDATION)


def notice_heldout() -> list[tuple[str, list[str]]]:
    """Notices written with the register's round-4 to -12 phrases, one in five held out
    (by a hash of the German): (German, [English reference])."""
    return _tsv_pairs(NOTICE_HELDOUT)


def short_signs_blind() -> list[tuple[str, list[str]]]:
    """Short signs written after the sign book, by a writer who saw none of this project's
    data or translations: (German, [English references]). Measured, never tuned on. Common
    signs: most of them the register holds too (written apart), so the model has trained on
    those; `bench translator` reads them as the glasses do, with the whole sign book."""
    return _tsv_pairs(SHORT_SIGNS_BLIND)


def notices_blind() -> list[tuple[str, list[str]]]:
    """Notices of several words, written like `short_signs_blind` (after the sign book, by a
    writer who saw none of this project's data or translations; the sign book holds some of
    them too): (German, [English references]). Measured, never tuned on."""
    return _tsv_pairs(NOTICES_BLIND)


def notices_dev() -> list[tuple[str, list[str]]]:
    """Notices written blind like `notices_blind`, a third of them with names of stations,
    streets and towns: (German, [English references]). A development set: the name rules
    (device/stages/translate/names.py) were written while reading it."""
    return _tsv_pairs(NOTICES_DEV)


def reader_verdicts(set_name: str) -> dict[tuple[str, str], list[bool]]:
    """(German, English shown) → every reader's verdict on it (True: acceptable), from the
    set's JUDGED files; empty for a set no reader has judged."""
    verdicts: dict[tuple[str, str], list[bool]] = {}
    for path in JUDGED.get(set_name, []):
        for line in path.read_text(encoding="utf-8").splitlines():
            cols = line.split("\t")
            if line.startswith("#") or len(cols) < 4:
                continue
            if re.fullmatch(r"\d+\.\d+\.\d+", cols[0]):      # version first
                cols[0], cols[1] = cols[1], cols[0]
            verdicts.setdefault((cols[0], cols[2]), []).append(cols[3].strip() == "yes")
    return verdicts


def name_plates(which: str) -> list[tuple[str, list[str]]]:
    """Name plates and the names a translation keeps: (German, [name]); 'dev' and 'dev2'
    (used while writing the name rules) or 'heldout' (measured only after)."""
    return [(de, [n.strip() for n in names[0].split("|") if n.strip()])
            for de, names in _tsv_pairs(NAME_PLATES[which])]


def ding(limit: int = DING_PAIRS, seed: int = 5) -> list[tuple[str, str]]:
    """Dictionary pairs from data/translator/train.tsv (written by scripts/train_translator.py
    from the installed dictionary); multi-word entries first, then single words."""
    path = ROOT / "data" / "translator" / "train.tsv"
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        de, en, _refs, _kind = line.split("\t")
        rows.append((de, en))
    rng = random.Random(seed)
    rng.shuffle(rows)
    multi = [r for r in rows if " " in r[0]]
    single = [r for r in rows if " " not in r[0]]
    return (multi + single)[:limit]


def ocr_noise(text: str, rng: random.Random) -> str:
    """One OCR-like error: a misread letter, a dropped letter, or a hyphenated line break."""
    if len(text) < 4:
        return text
    kind = rng.random()
    i = rng.randrange(1, len(text) - 1)
    if kind < 0.45 and text[i].lower() in OCR_CONFUSIONS:
        return text[:i] + OCR_CONFUSIONS[text[i].lower()] + text[i + 1:]
    if kind < 0.7:
        return text[:i] + text[i + 1:]
    words = text.split(" ")
    long = [k for k, w in enumerate(words) if len(w) >= 8]
    if not long:
        return text
    k = rng.choice(long)
    cut = rng.randrange(3, len(words[k]) - 3)
    words[k] = words[k][:cut] + "- " + words[k][cut:]
    return " ".join(words)


def text_keys(texts, key=lookup_key, whole_only=()) -> set[str]:
    """The keys of these texts and of each sentence of one (the stage reads long texts
    sentence by sentence), and of `whole_only` texts as wholes."""
    texts = list(texts)
    return {key(text) for text in texts + list(whole_only)} | {
        key(part) for text in texts for part in sentences(text)}


def held_keys(tatoeba_test: list[tuple[str, str]] = ()) -> set[str]:
    """Lookup keys no training source may hold: every evaluation text, and each sentence of
    one (`text_keys`). The sign book keeps them (`sign_book_pairs`); `bench translator`
    reads it without them."""
    return text_keys([de for de, _ in sign_validation() + notice_heldout()],
                     whole_only=[de for de, _ in tatoeba_test])


def sign_book_pairs() -> list[tuple[str, str]]:
    """What a translator version ships as its sign book (`device.stages.translate.signbook`):
    the register and the sentences of its multi-sentence notices, as written. The register
    holds common signs that an evaluation set holds too (written apart, with their own
    English); the model never trains on those (`held_keys`), the book keeps them, and `bench
    translator` reads the book without the texts and sentences it measures."""
    signs = register()
    return signs + sentence_pairs(signs)


def training_pairs(seed: int = 1234, mix: str = "full") -> tuple[list[tuple[str, str]], dict[str, int]]:
    """The mixed, noised, shuffled training pairs (raw text) and how many each source gave."""
    tato = tatoeba()
    held = held_keys(tato["test"])
    signs = register()
    sources = {"tatoeba": tato["train"], "osm": osm(), "register": signs,
               "register_sentences": sentence_pairs(signs), "ding": ding()}
    weights, caps = MIXES[mix]["weights"], MIXES[mix]["caps"]
    rng = random.Random(seed)
    pairs, counts = [], {}
    for name, rows in sources.items():
        rows = [r for r in rows if lookup_key(r[0]) not in held]
        if len(rows) > caps.get(name, len(rows)):
            rows = rng.sample(rows, caps[name])
        counts[name] = len(rows)
        for _ in range(weights[name]):
            pairs.extend(rows)
    noisy = [(ocr_noise(de, rng), en) for de, en in rng.sample(pairs, int(NOISE_SHARE * len(pairs)))]
    counts["ocr_noise_copies"] = len(noisy)
    pairs += noisy
    rng.shuffle(pairs)
    return pairs, counts


def train_tokenizer(pairs, prefix: Path, vocab_size: int, seed: int,
                    sample_lines: int = 800_000, dedupe: bool = True) -> Path:
    """One SentencePiece unigram model over folded-lowercase German and lowercase English
    (`sample_lines`: how many lines SentencePiece samples; 1.x used 600,000 without dedupe)."""
    import sentencepiece as spm
    prefix.parent.mkdir(parents=True, exist_ok=True)
    corpus = prefix.parent / "spm_corpus.txt"
    seen = set()
    with open(corpus, "w", encoding="utf-8") as handle:
        for de, en in pairs:
            if dedupe and (de, en) in seen:
                continue
            seen.add((de, en))
            handle.write(model_text(de) + "\n" + target_text(en) + "\n")
    spm.set_random_generator_seed(seed)
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(prefix), vocab_size=vocab_size,
        model_type="unigram", character_coverage=1.0, pad_id=PAD, unk_id=UNK, bos_id=BOS,
        eos_id=EOS, input_sentence_size=sample_lines, shuffle_input_sentence=True,
        num_threads=2, minloglevel=2)
    return Path(f"{prefix}.model")


def encode(sp, pairs) -> tuple[np.ndarray, np.ndarray]:
    """int16 [N, MAX_LEN] sources (+EOS) and [N, MAX_LEN + 1] targets (BOS+...+EOS); pairs
    longer than MAX_LEN tokens are dropped."""
    src = sp.encode([model_text(de) for de, _ in pairs])
    tgt = sp.encode([target_text(en) for _, en in pairs])
    keep = [(s + [EOS], [BOS] + t + [EOS]) for s, t in zip(src, tgt)
            if len(s) + 1 <= MAX_LEN and len(t) + 1 <= MAX_LEN]
    a = np.zeros((len(keep), MAX_LEN), np.int16)
    b = np.zeros((len(keep), MAX_LEN + 1), np.int16)
    for row, (s, t) in enumerate(keep):
        a[row, :len(s)] = s
        b[row, :len(t)] = t
    return a, b


def prepare(out_dir: Path, vocab_size: int = 8000, seed: int = 1234, mix: str = "full",
            tokenizer: Path | None = None, command: str = "") -> dict:
    """Tokenizer + arrays for training: out_dir/spm{vocab}.model and arrays.npz (train/val
    int16 arrays, vocab size); returns what each source contributed. With `tokenizer` (the
    model a run to be continued was trained with) that tokenizer is copied, not trained."""
    import json
    import shutil

    import sentencepiece as spm
    pairs, counts = training_pairs(seed, mix)
    if tokenizer:   # named as a trained one is (spm<vocab>.model: the trainers look for it)
        pieces = spm.SentencePieceProcessor(model_file=str(tokenizer)).get_piece_size()
        model = out_dir / f"spm{pieces}.model"
        if Path(tokenizer).resolve() != model.resolve():
            shutil.copyfile(tokenizer, model)
    else:
        model = train_tokenizer(pairs, out_dir / f"spm{vocab_size}", vocab_size, seed)
    sp = spm.SentencePieceProcessor(model_file=str(model))
    train_src, train_tgt = encode(sp, pairs)
    val_pairs = tatoeba()["val"]
    val_src, val_tgt = encode(sp, val_pairs)
    np.savez_compressed(out_dir / "arrays.npz", train_src=train_src, train_tgt=train_tgt,
                        val_src=val_src, val_tgt=val_tgt, vocab=np.int32(sp.get_piece_size()))
    counts.update({"mix": mix, "command": command, "weights": MIXES[mix]["weights"],
                   "caps": MIXES[mix]["caps"],
                   "train_rows_after_length_filter": int(len(train_src)),
                   "val_rows": int(len(val_src)), "tokenizer": model.name,
                   "vocab": int(sp.get_piece_size())})
    (out_dir / "sources.json").write_text(json.dumps(counts, indent=1))
    return counts
