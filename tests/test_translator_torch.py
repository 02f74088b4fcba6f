"""The GPU trainer of the translator (calibration/training/translator_torch.py): a run goes
on from another run's weights (--init), and says which run that was. Needs PyTorch (a
training-side package, absent from the runtime and CI environments)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from calibration.training import translator_torch  # noqa: E402

CFG = {"d": 32, "ff": 64, "heads": 4, "enc_layers": 2, "dec_layers": 1, "vocab": 50,
       "dropout": 0.0, "max_len": 8}


def _save(model, path):
    path.mkdir(parents=True, exist_ok=True)
    np.savez(path / "keras_weights.npz", *[w.astype(np.float16) for w in model.keras_weights()])


def test_weights_round_trip_through_keras_order(tmp_path):
    torch.manual_seed(0)
    trained = translator_torch.Translator(CFG).eval()
    _save(trained, tmp_path / "run")
    fresh = translator_torch.Translator(CFG).eval()
    src = torch.tensor([[5, 6, 7, 3, 0]])
    tgt = torch.tensor([[2, 9, 10]])
    with torch.no_grad():
        before = fresh(src, tgt)
        fresh.load_keras_weights(tmp_path / "run" / "keras_weights.npz")
        after, want = fresh(src, tgt), trained(src, tgt)
    assert not torch.allclose(before, want, atol=1e-2)
    # float16 on disk: close, not equal
    assert torch.allclose(after, want, atol=2e-2)


def test_a_mismatched_size_is_named(tmp_path):
    _save(translator_torch.Translator(CFG), tmp_path / "run")
    other = translator_torch.Translator({**CFG, "d": 48, "ff": 96})
    with pytest.raises(SystemExit, match="shape .* where this model has"):
        other.load_keras_weights(tmp_path / "run" / "keras_weights.npz")


def test_a_run_records_the_run_it_went_on_from(tmp_path):
    rng = np.random.default_rng(0)
    rows = rng.integers(4, 50, size=(64, 6))
    src = np.concatenate([rows, np.full((64, 1), 3), np.zeros((64, 1), int)], 1)
    tgt = np.concatenate([np.full((64, 1), 2), rows, np.full((64, 1), 3), np.zeros((64, 1), int)], 1)
    data = tmp_path / "arrays.npz"
    np.savez(data, train_src=src, train_tgt=tgt, val_src=src[:8], val_tgt=tgt[:8], vocab=50)
    size = ["--d", "32", "--ff", "64", "--enc-layers", "2", "--dec-layers", "1", "--batch", "16"]
    assert translator_torch.main(["--data", str(data), "--out", str(tmp_path / "a"),
                                  "--steps", "3", *size]) == 0
    assert translator_torch.main(["--data", str(data), "--out", str(tmp_path / "b"),
                                  "--init", str(tmp_path / "a"), "--steps", "2", *size]) == 0
    run = json.loads((tmp_path / "b" / "torch_run.json").read_text())
    assert run["steps"] == 2
    assert run["init_run"]["steps"] == 3
    assert "init_run" not in run["init_run"]
