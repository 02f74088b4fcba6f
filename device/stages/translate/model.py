"""The translator's TFLite model: `encode` once, then `decode` one step at a time in numpy.

    model = Seq2SeqModel("models/translator/1.0.0/translator.tflite", backend="litert")
    decoded = model.generate([512, 77, 3], beam_size=1)
    decoded.ids, decoded.confidence

The decode signature takes the encoder output, the source ids (for the padding mask), the
target prefix padded to the model's length and the position whose next-token logits it
returns. Greedy decoding by default, a small beam as an option; decoding stops at EOS, at
`max_tokens`, or when the deadline passes (`Decoded.complete` is then False).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.errors import InputError, ModelError
from device.runtime import TFLiteModel
from device.stages.translate.tokenizer import BOS, EOS, PAD, UNK


@dataclass(frozen=True)
class Decoded:
    ids: tuple[int, ...]      # generated ids without BOS/EOS
    confidence: float         # exp(mean log-probability of the generated tokens and EOS)
    complete: bool            # False when the deadline cut decoding short


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


def _looping(prefix: list[int]) -> bool:
    """A 1- or 2-token cycle repeated 4 times: an untrained or confused decoder; stop."""
    tail = prefix[-8:]
    return len(tail) == 8 and (len(set(tail[-4:])) == 1 or (tail[0::2] == [tail[0]] * 4
                                                         and tail[1::2] == [tail[1]] * 4))


class Seq2SeqModel:
    """One .tflite with `encode` and `decode` signatures; allocated once."""

    def __init__(self, path: str | Path, backend: str = "auto", num_threads: int = 1):
        self._model = TFLiteModel(path, backend=backend, num_threads=num_threads)
        if not {"encode", "decode"} <= set(self._model.signature_keys):
            raise ModelError(f"{path}: expected signatures 'encode' and 'decode', found "
                             f"{self._model.signature_keys}")
        self.backend = self._model.backend
        encode = self._model.signature("encode")
        decode = self._model.signature("decode")
        self.src_len = encode.inputs[0].shape[1]
        self.tgt_len = next(s.shape[1] for s in decode.inputs if s.name == "tgt_ids")
        self.vocab_size = decode.outputs[0].shape[-1]
        self._banned = np.array([PAD, BOS, UNK])

    def encode(self, src_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        if len(src_ids) > self.src_len:
            raise InputError(f"{len(src_ids)} source tokens; the model takes at most "
                             f"{self.src_len}")
        src = np.zeros((1, self.src_len), np.int32)
        src[0, :len(src_ids)] = src_ids
        return self._model.run({"src_ids": src}, signature="encode")["enc_out"], src

    def _step(self, enc_out, src, prefix: list[int]) -> np.ndarray:
        tgt = np.zeros((1, self.tgt_len), np.int32)
        tgt[0, :len(prefix)] = prefix
        step = np.array([len(prefix) - 1], np.int32)
        logits = self._model.run({"enc_out": enc_out, "src_ids": src, "tgt_ids": tgt,
                                  "step": step}, signature="decode")["logits"][0]
        logp = _log_softmax(logits.astype(np.float32))
        logp[self._banned] = -np.inf
        return logp

    def generate(self, src_ids: list[int], max_tokens: int = 0, beam_size: int = 1,
                 deadline_ns: int | None = None) -> Decoded:
        """Translate source ids (ending in EOS). max_tokens 0: as long as the model allows."""
        limit = self.tgt_len - 1 if max_tokens <= 0 else min(max_tokens, self.tgt_len - 1)
        enc_out, src = self.encode(src_ids)
        if beam_size <= 1:
            return self._greedy(enc_out, src, limit, deadline_ns)
        return self._beam(enc_out, src, limit, beam_size, deadline_ns)

    def _greedy(self, enc_out, src, limit: int, deadline_ns) -> Decoded:
        prefix, total = [BOS], 0.0
        for _ in range(limit):
            if deadline_ns is not None and time.perf_counter_ns() > deadline_ns:
                return Decoded(tuple(prefix[1:]), 0.0, False)
            logp = self._step(enc_out, src, prefix)
            token = int(np.argmax(logp))
            total += float(logp[token])
            if token == EOS:
                return Decoded(tuple(prefix[1:]), float(np.exp(total / len(prefix))), True)
            prefix.append(token)
            if _looping(prefix):
                break
        return Decoded(tuple(prefix[1:]), float(np.exp(total / len(prefix))), True)

    def _beam(self, enc_out, src, limit: int, size: int, deadline_ns) -> Decoded:
        beams: list[tuple[float, list[int]]] = [(0.0, [BOS])]
        finished: list[tuple[float, float, list[int]]] = []   # (normalized, total, prefix)
        for _ in range(limit):
            if deadline_ns is not None and time.perf_counter_ns() > deadline_ns:
                break
            candidates = []
            for total, prefix in beams:
                logp = self._step(enc_out, src, prefix)
                for token in np.argsort(logp)[-size:]:
                    candidates.append((total + float(logp[token]), prefix + [int(token)]))
            candidates.sort(key=lambda c: c[0], reverse=True)
            beams = []
            for total, prefix in candidates[:size]:
                if prefix[-1] == EOS:
                    finished.append((total / (len(prefix) - 1), total, prefix[:-1]))
                else:
                    beams.append((total, prefix))
            if not beams or (finished and max(f[0] for f in finished) >
                             max(t / len(p) for t, p in beams) + 1.0):
                break
        if not finished:
            if not beams:
                return Decoded((), 0.0, False)
            total, prefix = max(beams, key=lambda b: b[0] / len(b[1]))
            return Decoded(tuple(prefix[1:]), float(np.exp(total / len(prefix))), False)
        score, _, prefix = max(finished, key=lambda f: f[0])
        return Decoded(tuple(prefix[1:]), float(np.exp(score)), True)
