"""The synthetic line generator: deterministic for a seed, text inside the charset, and the
held-out font families never leak into training."""

import numpy as np
import pytest

from device.stages.charset import CHARSET, encode
from device.synth import fonts, lines, vocab
from device.stages.text_line import prepare_line


def test_font_split_is_by_whole_family_and_disjoint():
    train, test = fonts.fonts_for("train"), fonts.fonts_for("test")
    train_families = {f.family for f in train}
    test_families = {f.family for f in test}
    assert len(train_families) >= 15
    assert test_families == set(fonts.HELD_OUT_FAMILIES)
    assert not train_families & test_families
    assert not {f.path for f in train} & {f.path for f in test}


def test_every_used_font_draws_german_french_and_euro():
    for font in fonts.fonts_for("test")[:3] + fonts.fonts_for("train")[::40]:
        assert fonts.covers_charset(font.path, "ÄÖÜäöüßéèçœŒ€")


def test_a_font_without_the_glyphs_is_rejected():
    dingbats = "/usr/share/fonts/opentype/urw-base35/D050000L.otf"
    if not __import__("os").path.exists(dingbats):
        pytest.skip("URW dingbats not installed")
    assert not fonts.covers_charset(dingbats)


@pytest.mark.parametrize("split", ["train", "test"])
def test_sample_line_is_deterministic_for_a_seed(split):
    a = [lines.sample_line(np.random.default_rng(42), split) for _ in range(1)]
    b = [lines.sample_line(np.random.default_rng(42), split) for _ in range(1)]
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    a += [lines.sample_line(rng_a, split, scene=i % 2 == 1) for i in range(6)]
    b += [lines.sample_line(rng_b, split, scene=i % 2 == 1) for i in range(6)]
    for (crop_a, text_a), (crop_b, text_b) in zip(a, b):
        assert text_a == text_b
        assert np.array_equal(crop_a, crop_b)


def test_lines_are_bgr_crops_with_text_inside_the_charset():
    rng = np.random.default_rng(3)
    for i in range(20):
        crop, text = lines.sample_line(rng, "train", scene=i % 4 == 0)
        assert crop.dtype == np.uint8 and crop.ndim == 3 and crop.shape[2] == 3
        assert text and text == text.strip() and set(text) <= set(CHARSET)
        encode(text)
        line = prepare_line(crop)
        assert line.shape[0] == 32 and line.shape[1] % 32 == 0


def test_vocab_covers_german_french_numbers_and_prices():
    german, english = vocab.dictionary_words()
    assert len(german) > 100_000 and len(english) > 100_000
    assert not any("{" in w or "[" in w for w in german[:5000])
    rng = np.random.default_rng(0)
    texts = [vocab.sample_text(rng) for _ in range(3000)]
    joined = "".join(texts)
    assert all(0 < len(t) <= 28 and set(t) <= set(CHARSET) for t in texts)
    for ch in "ÄÖÜäöüßéàç€0123456789":
        assert ch in joined, ch
    assert any("€" in t and any(c.isdigit() for c in t) for t in texts)


def test_test_split_draws_only_held_out_fonts():
    rng = np.random.default_rng(11)
    held_out = {f.path for f in fonts.fonts_for("test")}
    for _ in range(20):
        assert lines.sample_style(rng, "test").font_path in held_out
