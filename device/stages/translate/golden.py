"""Golden self-test of a translator version: the model alone (no phrasebook, no cache) must
give the manifest's expected English for each German input, greedy, on the given backend."""

from __future__ import annotations

from device.modelstore.golden import GoldenResult
from device.modelstore.store import ModelVersion
from device.stages.translate.model import Seq2SeqModel
from device.stages.translate.normalize import model_text
from device.stages.translate.tokenizer import EOS, Tokenizer
from device.stages.translate.translator import tokenizer_path


def model_translate(model: Seq2SeqModel, tokenizer: Tokenizer, text: str,
                    beam_size: int = 1) -> tuple[str, float]:
    """German text → (lowercase English, confidence), the model alone."""
    ids = tokenizer.encode(model_text(text))[:model.src_len - 1] + [EOS]
    decoded = model.generate(ids, beam_size=beam_size)
    return tokenizer.decode(list(decoded.ids)).strip(), decoded.confidence


def run_golden(version: ModelVersion, backend: str) -> list[GoldenResult]:
    model = Seq2SeqModel(version.artifact, backend=backend, num_threads=1)
    tokenizer = Tokenizer(tokenizer_path(version))
    return [GoldenResult(case["input"], case["expected"],
                         model_translate(model, tokenizer, case["input"])[0])
            for case in version.manifest["golden"]]
