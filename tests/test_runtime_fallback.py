"""The fallback backend refuses what is known to crash it: tflite-runtime 2.14 on a CPU with the
dot-product extension (asimddp) and a dynamic-range model. Decided from the CPU's /proc/cpuinfo
text (real Raspberry Pi texts in scripts/arm64/), the backend and the model's own operators, so
it is tested here on any machine; scripts/arm64-check runs it on emulated ARM cores."""

import json
from pathlib import Path

import numpy as np
import pytest

from device import runtime
from device.commands.models import verify_version
from device.errors import ModelError
from device.modelstore.store import ModelStore
from device.runtime import TFLiteModel, UnsafeBackendError
from device.runtime_safety import DYNAMIC_RANGE, STATIC, cpu_features, unsafe_reason

ROOT = Path(__file__).resolve().parent.parent
CPUINFO = ROOT / "scripts" / "arm64"
TRANSLATOR = ROOT / "models" / "translator" / "2.0.0" / "translator.tflite"
RECOGNIZER = ROOT / "models" / "recognizer" / "2.0.0" / "recognizer.tflite"
X86_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sse sse2 ssse3 fma sse4_1 avx avx2
"""


def features(core: str) -> frozenset[str]:
    return cpu_features((CPUINFO / f"cpuinfo-{core}").read_text())


def need_tflite():
    if "tflite" not in runtime.available_backends():
        pytest.skip("tflite-runtime is not installed (Python 3.12+)")


def test_the_features_line_of_real_cpuinfo_texts():
    assert "asimddp" in features("cortex-a76")
    assert features("cortex-a72") == features("cortex-a53") == frozenset(
        {"fp", "asimd", "evtstrm", "crc32", "cpuid"})
    assert cpu_features(X86_CPUINFO) == frozenset()
    assert cpu_features("") == frozenset()


@pytest.mark.parametrize("backend, kind, core, refused", [
    ("tflite", DYNAMIC_RANGE, "cortex-a76", True),
    ("tflite", STATIC, "cortex-a76", False),
    ("tflite", DYNAMIC_RANGE, "cortex-a72", False),
    ("tflite", DYNAMIC_RANGE, "cortex-a53", False),
    ("litert", DYNAMIC_RANGE, "cortex-a76", False),
    ("litert", STATIC, "cortex-a76", False),
])
def test_the_decision_is_the_backend_the_model_kind_and_the_dotprod_feature(
        backend, kind, core, refused):
    reason = unsafe_reason(backend, kind, features(core))
    assert (reason is not None) == refused
    if refused:
        assert "asimddp" in reason and "pip install 'ai-edge-litert" in reason
    assert unsafe_reason(backend, kind, cpu_features(X86_CPUINFO)) is None


def test_the_kind_is_read_from_the_model_and_agrees_with_every_manifest():
    kinds = {"int8-dynamic": DYNAMIC_RANGE, "int8-full": STATIC}
    seen = set()
    for manifest_path in sorted((ROOT / "models").glob("*/*/manifest.json")):
        manifest = json.loads(manifest_path.read_text())
        artifact = manifest_path.parent / manifest["artifact"]["file"]
        kind = runtime._Flatbuffer(artifact.read_bytes()).kind()
        assert kind == kinds[manifest["quantization"]], artifact
        seen.add(kind)
    assert seen == {DYNAMIC_RANGE, STATIC}


def test_tflite_refuses_the_translator_on_a_dotprod_core_with_a_clear_message():
    need_tflite()
    with pytest.raises(UnsafeBackendError) as caught:
        TFLiteModel(TRANSLATOR, backend="tflite", num_threads=1, cpu=features("cortex-a76"))
    message = str(caught.value)
    assert isinstance(caught.value, ModelError) and "\n" not in message
    for part in (str(TRANSLATOR), "tflite", "dynamic-range", "asimddp", "ai-edge-litert"):
        assert part in message


def test_what_may_run_on_a_dotprod_core_still_loads_and_runs():
    need_tflite()
    a76 = features("cortex-a76")
    recognizer = TFLiteModel(RECOGNIZER, backend="tflite", num_threads=1, cpu=a76)
    assert recognizer.kind == STATIC
    out = recognizer.run(np.zeros(recognizer.inputs[0].shape, np.float32))
    assert all(np.isfinite(v).all() for v in out.values())
    if "litert" in runtime.available_backends():
        assert TFLiteModel(TRANSLATOR, backend="litert", num_threads=1, cpu=a76).kind == \
            DYNAMIC_RANGE
    # on a core without the extension tflite-runtime keeps the translator
    assert TFLiteModel(TRANSLATOR, backend="tflite", num_threads=1,
                       cpu=features("cortex-a72")).kind == DYNAMIC_RANGE


def test_models_verify_skips_the_refused_backend_and_passes_on_the_other(monkeypatch):
    need_tflite()
    if "litert" not in runtime.available_backends():
        pytest.skip("ai-edge-litert is not installed")
    monkeypatch.setattr(runtime, "host_cpu_features", lambda: features("cortex-a76"))
    report = verify_version(ModelStore(ROOT / "models").get("translator", "2.0.0"))
    assert report["problems"] == []
    assert "asimddp" in report["backends"]["tflite"]["skipped"]
    assert report["backends"]["litert"]["passed"] == report["backends"]["litert"]["golden"] > 0
