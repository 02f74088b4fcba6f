"""The committed translator passes its golden self-test on every installed backend, and its
manifest holds the contract (two signatures, tokenizer and fp32 reference listed)."""

import pytest

from device.modelstore.golden import run_golden
from device.runtime import UnsafeBackendError, available_backends
from device.runtime_safety import DYNAMIC_RANGE, host_cpu_features, unsafe_reason
from translate_helpers import store_version


@pytest.mark.parametrize("backend", available_backends())
def test_golden_passes(backend):
    version = store_version()
    assert backend in version.manifest["compatible_backends"]
    if unsafe_reason(backend, DYNAMIC_RANGE, host_cpu_features()):   # tflite on an asimddp core
        assert version.manifest["quantization"] == "int8-dynamic"
        with pytest.raises(UnsafeBackendError):
            run_golden(version, backend)
        return
    results = run_golden(version, backend)
    assert len(results) >= 5
    assert [r.got for r in results] == [r.expected for r in results]


def test_manifest_contract():
    version = store_version()
    manifest = version.manifest
    assert manifest["task"] == "translation-de-en"
    assert set(manifest["signatures"]) == {"encode", "decode"}
    assert [t["name"] for t in manifest["signatures"]["encode"]["inputs"]] == ["src_ids"]
    assert {t["name"] for t in manifest["signatures"]["decode"]["inputs"]} == {
        "enc_out", "src_ids", "tgt_ids", "step"}
    files = {e["file"] for e in manifest["extra_files"]}
    # the fp32 reference is not shipped since 2.0.0 (updates carry only what the device runs)
    assert "translator.spm.model" in files
    assert version.check_files() == []
    size = manifest["artifact"]["size_bytes"] + next(
        e["size_bytes"] for e in manifest["extra_files"] if e["file"].endswith(".model"))
    assert size <= 10_000_000
