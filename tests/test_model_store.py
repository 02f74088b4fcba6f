"""The model store and the runtime against real artifacts, intact and damaged."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device.commands.models import verify_version
from device.errors import InputError, ModelError, ModelStoreError
from device.modelstore.store import ModelStore
from device.runtime import TFLiteModel, available_backends, resolve_backend

ROOT = Path(__file__).resolve().parent.parent
STORE = ModelStore(ROOT / "models")


@pytest.fixture
def store_copy(tmp_path):
    shutil.copytree(ROOT / "models" / "recognizer", tmp_path / "recognizer")
    return ModelStore(tmp_path)


def test_auto_backend_prefers_litert():
    assert available_backends()[0] == "litert"
    assert resolve_backend("auto") == "litert"


def test_committed_recognizer_verifies_on_both_backends():
    report = verify_version(STORE.get("recognizer"))
    assert report["problems"] == []
    for backend in ("litert", "tflite"):
        result = report["backends"][backend]
        assert result["golden"] >= 5 and result["passed"] == result["golden"]


def test_flipped_byte_is_caught_by_sha256(store_copy):
    version = store_copy.get("recognizer")
    data = bytearray(version.artifact.read_bytes())
    data[len(data) // 2] ^= 0x01
    version.artifact.write_bytes(bytes(data))
    problems = version.check_files()
    assert any("sha256" in p and "corrupt or tampered" in p for p in problems)
    assert verify_version(version)["backends"] == {}  # never loaded


def test_truncated_and_foreign_files_give_model_errors(tmp_path):
    artifact = STORE.get("recognizer").artifact
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(artifact.read_bytes()[:2000])
    foreign = tmp_path / "photo.tflite"
    foreign.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    for backend in ("litert", "tflite"):
        with pytest.raises(ModelError, match="not a valid TFLite model|not a TFLite"):
            TFLiteModel(truncated, backend=backend)
        with pytest.raises(ModelError, match="not a TFLite flatbuffer"):
            TFLiteModel(foreign, backend=backend)
    with pytest.raises(ModelError, match="not found"):
        TFLiteModel(tmp_path / "missing.tflite")


def test_wrong_input_shape_is_an_input_error():
    model = TFLiteModel(STORE.get("recognizer").artifact)
    with pytest.raises(InputError, match="has shape"):
        model.run(np.zeros((1, 16, 16, 1), np.float32))


def test_manifest_errors_are_named(store_copy, tmp_path):
    version_dir = store_copy.get("recognizer").directory
    manifest = json.loads((version_dir / "manifest.json").read_text())
    del manifest["golden"]
    (version_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelStoreError, match="lacks golden"):
        store_copy.get("recognizer")
    (version_dir / "manifest.json").write_text("{ not json")
    with pytest.raises(ModelStoreError, match="unreadable manifest"):
        store_copy.get("recognizer")
    with pytest.raises(ModelStoreError, match="no model 'detector'"):
        ModelStore(tmp_path / "empty").get("detector")


def test_a_manifest_with_fields_of_the_wrong_shape_is_a_clear_error(store_copy):
    # these came out as TypeError, KeyError or AttributeError tracebacks in `models list`,
    # `ocr` and the model watch thread (which then died)
    version_dir = store_copy.get("recognizer").directory
    good = json.loads((version_dir / "manifest.json").read_text())
    for change, message in (({"artifact": "recognizer.tflite"}, "artifact entry"),
                            ({"artifact": {"file": "recognizer.tflite"}}, "artifact entry"),
                            ({"extra_files": {"a": 1}}, "extra_files must be a list"),
                            ({"compatible_backends": "litert"}, "compatible_backends"),
                            ({"postprocessing": None}, "postprocessing must be an object"),
                            ({"postprocessing": {"params": {"bin_threshold": "high"}}},
                             "params must be numbers"),
                            ({"quantization": None}, "quantization must be a string"),
                            ({"task": 5}, "task must be a string"),
                            ({"latency_ms": [1]}, "latency_ms must be an object")):
        (version_dir / "manifest.json").write_text(json.dumps({**good, **change}))
        with pytest.raises(ModelStoreError, match=message):
            store_copy.get("recognizer")


def test_an_active_pointer_that_is_no_text_is_a_clear_error(store_copy):
    (store_copy.root / "recognizer" / "ACTIVE").write_bytes(b"\xff3.0.1\n")
    with pytest.raises(ModelStoreError, match="unreadable"):
        store_copy.get("recognizer")


def test_active_pointer_selects_version(store_copy):
    (store_copy.root / "recognizer" / "ACTIVE").write_text("9.9.9\n")
    with pytest.raises(ModelStoreError, match="not in the store"):
        store_copy.get("recognizer")


def test_models_cli_lists_and_verifies_json():
    listing = subprocess.run([sys.executable, "-m", "device", "models", "list", "--json"],
                             capture_output=True, text=True, timeout=60)
    rows = json.loads(listing.stdout)
    assert any(r["name"] == "recognizer" and r["active"] for r in rows)
    verify = subprocess.run([sys.executable, "-m", "device", "models", "verify", "recognizer"],
                            capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "recognizer" in verify.stdout and ": ok" in verify.stdout


@pytest.mark.parametrize("artifact", sorted((ROOT / "models").rglob("*.tflite")),
                         ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_a_truncated_model_never_reaches_the_interpreter(artifact, tmp_path):
    """The interpreters do not verify flatbuffers; a cut file could crash the process."""
    data = artifact.read_bytes()
    rng = np.random.default_rng(len(data))
    path = tmp_path / "cut.tflite"
    for cut in sorted(rng.integers(8, len(data), 25)):
        path.write_bytes(data[:cut])
        for backend in ("litert", "tflite"):
            with pytest.raises(ModelError, match="truncated or corrupt|not a TFLite"):
                TFLiteModel(path, backend=backend)


def test_the_device_store_is_per_user_and_seeded_from_the_bundled_one(tmp_path, monkeypatch):
    import shutil

    from device import config
    from device.modelstore.store import ModelStore, default_root, seed_user_store
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    bundled_before = sorted(p.relative_to(default_root()) for p in default_root().rglob("*"))
    store = ModelStore.for_config(config.defaults())
    assert store.root == tmp_path / "data" / "edgelens" / "models"
    assert store.versions("detector") == ModelStore(default_root()).versions("detector")
    # the device's own state: an installed update and its pointer survive a new seeding
    installed = store.root / "detector" / "9.9.9"
    shutil.copytree(store.root / "detector" / "1.0.0", installed)
    manifest = installed / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"version": "1.0.0"', '"version": "9.9.9"'))
    (store.root / "detector" / "ACTIVE").write_text("9.9.9\n")
    seed_user_store()
    assert ModelStore.for_config(config.defaults()).active_version("detector") == "9.9.9"
    # a configured store is used as it is
    configured = config.build({"models": {"store": str(tmp_path / "elsewhere")}},
                              config.defaults_schema())
    assert ModelStore.for_config(configured).root == tmp_path / "elsewhere"
    # nothing was written into the installation
    assert sorted(p.relative_to(default_root())
                  for p in default_root().rglob("*")) == bundled_before


def test_updates_carry_only_what_the_glasses_run():
    from device.modelstore.store import ModelStore, default_root
    from cloud_sync.update_protocol import update_manifest
    version = ModelStore(default_root()).get("recognizer", "2.0.0")
    assert version.check_files() == []
    shipped = {f["file"] for f in update_manifest(version.directory, 65536)["update"]["files"]}
    assert "recognizer.tflite" in shipped
    assert "recognizer_fp32.tflite" not in shipped        # a benchmark reference, not shipped
    assert (version.directory / "recognizer_fp32.tflite").is_file()


def test_an_update_whose_manifest_the_store_could_not_read_is_never_installed(store_copy,
                                                                               tmp_path):
    # it was renamed into the store, and every later look at the store failed on it
    from device.modelstore import install
    source = store_copy.get("recognizer")
    staged = tmp_path / "staged"
    shutil.copytree(source.directory, staged)
    manifest = json.loads((staged / "manifest.json").read_text())
    manifest["version"] = "9.0.0"
    manifest["postprocessing"] = None
    (staged / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelStoreError, match="postprocessing must be an object"):
        install.install_staged(store_copy, staged, "recognizer", "9.0.0")
    assert "9.0.0" not in store_copy.versions("recognizer")


def test_whole_number_post_processing_parameters_must_be_whole():
    from device.stages.detector import params_for
    with pytest.raises(ModelError, match="max_regions"):
        params_for({"postprocessing": {"params": {"max_regions": 64.0}}})
    assert params_for({"postprocessing": {"params": {"max_regions": 64}}}).max_regions == 64

