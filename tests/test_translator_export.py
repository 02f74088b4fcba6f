"""A Keras translator run's checkpoint goes to the GPU trainer and comes back: --export-weights
writes it in Keras order with a record naming the run, and --import-weights names that run in
the new run's config (the card's initial weights). Needs TensorFlow (the `train` extra)."""

from __future__ import annotations

import json

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from calibration.training import train_translator  # noqa: E402

CFG = {"d": 32, "ff": 64, "heads": 4, "enc_layers": 2, "dec_layers": 1, "vocab": 50,
       "dropout": 0.0, "max_len": 8, "neg": -30.0, "seed": 7}


def _keras_run(path):
    """A run folder as train_translator.main leaves it: config.json and a checkpoint."""
    tf.random.set_seed(0)
    model = train_translator.built_model(tf, CFG)
    step = tf.Variable(123, dtype=tf.int64)
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(CFG))
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model, step=step),
                               str(path / "ckpt"), max_to_keep=1).save()
    return model


def test_export_then_import_keeps_weights_and_names_the_run(tmp_path):
    model = _keras_run(tmp_path / "keras")
    assert train_translator.main(["--run-dir", str(tmp_path / "keras"),
                                  "--export-weights", str(tmp_path / "gpu")]) == 0
    record = json.loads((tmp_path / "gpu" / "torch_run.json").read_text())
    assert record["keras_run"] == (tmp_path / "keras").as_posix()
    assert record["steps"] == 123
    with np.load(tmp_path / "gpu" / "keras_weights.npz") as z:
        saved = [z[f"arr_{i}"] for i in range(len(z.files))]
    want = model.get_weights()
    assert [w.shape for w in saved] == [w.shape for w in want]
    assert all(np.allclose(s, w, atol=2e-3, rtol=2e-3) for s, w in zip(saved, want))

    data = tmp_path / "data"
    data.mkdir()
    (data / "spm50.model").write_bytes(b"")
    assert train_translator.main(["--import-weights", str(tmp_path / "gpu"),
                                  "--run-dir", str(tmp_path / "back"), "--data", str(data)]) == 0
    cfg = json.loads((tmp_path / "back" / "config.json").read_text())
    assert cfg["init_keras_run"] == (tmp_path / "keras").as_posix()
    assert cfg["init_store"] is None and cfg["phases"] == []
    assert (tmp_path / "back" / "saved_model" / "saved_model.pb").exists()


def test_a_run_without_a_checkpoint_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text(json.dumps(CFG))
    with pytest.raises(SystemExit, match="holds no checkpoint"):
        train_translator.main(["--run-dir", str(tmp_path / "empty"),
                               "--export-weights", str(tmp_path / "gpu")])
