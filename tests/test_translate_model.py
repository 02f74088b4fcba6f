"""The seq2seq wrapper over the committed int8 model: greedy, beam, limits, deadline."""

import time

import pytest

from device.errors import InputError
from device.stages.translate.model import Seq2SeqModel
from device.stages.translate.tokenizer import EOS, Tokenizer
from device.stages.translate.translator import tokenizer_path
from translate_helpers import store_version


@pytest.fixture(scope="module")
def loaded():
    version = store_version()
    return Seq2SeqModel(version.artifact, backend="auto", num_threads=1), \
        Tokenizer(tokenizer_path(version))


def test_greedy_and_beam_both_finish(loaded):
    model, tokenizer = loaded
    ids = tokenizer.encode("notausgang") + [EOS]
    greedy = model.generate(ids)
    beam = model.generate(ids, beam_size=3)
    for decoded in (greedy, beam):
        assert decoded.complete and decoded.ids and 0 < decoded.confidence <= 1
        assert EOS not in decoded.ids and len(decoded.ids) < model.tgt_len


def test_max_tokens_and_deadline_stop_decoding(loaded):
    model, tokenizer = loaded
    ids = tokenizer.encode("das ist ein sehr langer satz mit vielen woertern") + [EOS]
    assert len(model.generate(ids, max_tokens=2).ids) <= 2
    late = model.generate(ids, deadline_ns=time.perf_counter_ns() - 1)
    assert not late.complete


def test_too_long_input_is_an_input_error(loaded):
    model, _ = loaded
    with pytest.raises(InputError, match="at most"):
        model.generate([5] * (model.src_len + 1))


def test_tokenizer_round_trip(loaded):
    _, tokenizer = loaded
    text = "bitte nicht rauchen"
    assert tokenizer.decode(tokenizer.encode(text)) == text
