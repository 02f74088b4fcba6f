"""A released translator's weights out of the store (calibration/training/translator_weights.py):
dequantized in the Keras order, they compute what the shipped model computes. Checked with a
numpy transformer (the architecture of train_translator.build_model) against LiteRT running
the released .tflite, on the encoder output and on one decoder step's logits."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from calibration.training import translator_weights
from device.runtime import TFLiteModel
from device.stages.translate.tokenizer import Tokenizer

STORE = Path(__file__).resolve().parents[1] / "models" / "translator" / "3.2.0"
NEG = -30.0


def _norm(x, gamma, beta):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(x.var(-1, keepdims=True) + 1e-6) * gamma + beta


def _attention(x, memory, bias, w, heads):
    (wq, bq, wk, bk, wv, bv, wo, bo), d = w, x.shape[-1]
    split = lambda t: t.reshape(t.shape[0], heads, d // heads).transpose(1, 0, 2)  # noqa: E731
    q, k, v = split(x @ wq + bq), split(memory @ wk + bk), split(memory @ wv + bv)
    scores = q @ k.transpose(0, 2, 1) / math.sqrt(d // heads) + bias
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    out = (scores / scores.sum(-1, keepdims=True)) @ v
    return out.transpose(1, 0, 2).reshape(x.shape[0], d) @ wo + bo


def _block(x, w, heads, self_bias, memory=None, cross_bias=None):
    """One pre-LN block; w in the Keras order (ln1, self q k v o, [ln2, cross q k v o], ln3,
    ff1, ff2)."""
    h = _norm(x, *w[0:2])
    x = x + _attention(h, h, self_bias, w[2:10], heads)
    i = 10
    if memory is not None:
        h = _norm(x, *w[10:12])
        x = x + _attention(h, memory, cross_bias, w[12:20], heads)
        i = 20
    h = np.maximum(_norm(x, *w[i:i + 2]) @ w[i + 2] + w[i + 3], 0) @ w[i + 4] + w[i + 5]
    return x + h


def _positional(length, d):
    angle = np.arange(length)[:, None] / np.power(10000.0, 2 * np.arange(d // 2)[None] / d)
    return np.concatenate([np.sin(angle), np.cos(angle)], -1)


def test_store_weights_compute_what_the_release_computes():
    manifest = json.loads((STORE / "manifest.json").read_text())
    arch = manifest["training"]["architecture"]
    weights = translator_weights.keras_weights((STORE / "translator.tflite").read_bytes(), arch)
    d, heads, n_enc, n_dec = arch["d"], arch["heads"], arch["enc_layers"], arch["dec_layers"]
    assert len(weights) == 16 * n_enc + 26 * n_dec + 4 + 2
    embed, out_bias = weights[-2], weights[-1]
    assert embed.shape == (arch["vocab"], d) and out_bias.shape == (arch["vocab"],)

    tokenizer = Tokenizer(STORE / "translator.spm.model")
    ids = tokenizer.encode("bitte nicht rauchen")[: arch["max_len"] - 1] + [3]
    src = np.zeros([1, arch["max_len"]], np.int32)
    src[0, :len(ids)] = ids
    pos = _positional(arch["max_len"] + 1, d)

    x = embed[src[0]] * math.sqrt(d) + pos[:arch["max_len"]]
    src_bias = (src[0] == 0).astype(np.float32)[None, None, :] * NEG
    for i in range(n_enc):
        x = _block(x, weights[16 * i:16 * (i + 1)], heads, src_bias)
    enc = _norm(x, *weights[16 * n_enc + 26 * n_dec:16 * n_enc + 26 * n_dec + 2])

    model = TFLiteModel(STORE / "translator.tflite", num_threads=1)
    shipped = model.run({"src_ids": src}, signature="encode")["enc_out"][0]
    n = len(ids)
    assert np.corrcoef(enc[:n].ravel(), shipped[:n].ravel())[0, 1] > 0.999
    assert np.abs(enc[:n] - shipped[:n]).max() < 0.05 * np.abs(shipped[:n]).max()

    tgt = np.zeros([1, arch["max_len"]], np.int32)
    tgt[0, 0] = 2                                                       # BOS
    y = embed[tgt[0]] * math.sqrt(d) + pos[:arch["max_len"]]
    causal = (1.0 - np.tril(np.ones([arch["max_len"]] * 2)))[None] * NEG
    start = 16 * n_enc
    for i in range(n_dec):
        y = _block(y, weights[start + 26 * i:start + 26 * (i + 1)], heads, causal, enc, src_bias)
    y = _norm(y, *weights[start + 26 * n_dec + 2:start + 26 * n_dec + 4])
    logits = y[0] @ embed.T + out_bias
    shipped_logits = model.run({"enc_out": shipped[None].astype(np.float32), "src_ids": src,
                                "tgt_ids": tgt, "step": np.array([0], np.int32)},
                               signature="decode")["logits"][0]
    assert np.corrcoef(logits, shipped_logits)[0, 1] > 0.999
    assert int(logits.argmax()) == int(shipped_logits.argmax())


def test_a_kernel_with_several_scales_is_refused(monkeypatch):
    """Per-channel kernels would need a scale per row; the reader says so instead of
    multiplying by the first one."""
    from ai_edge_litert import schema_py_generated as fb
    real = fb.QuantizationParameters.ScaleAsNumpy
    monkeypatch.setattr(fb.QuantizationParameters, "ScaleAsNumpy",
                        lambda self: np.concatenate([real(self), real(self)]))
    with pytest.raises(ValueError, match="2 scales"):
        translator_weights.keras_weights((STORE / "translator.tflite").read_bytes(),
                                         {"enc_layers": 6, "dec_layers": 2})
