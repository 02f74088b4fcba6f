"""Which TFLite backend may run which kind of model on this CPU: the refusal rules.

Pure logic, without the interpreter: the CPU's features from /proc/cpuinfo, the two model
kinds the rules tell apart, and `unsafe_reason`, which `device.runtime` asks before it builds
an interpreter. The one rule today: tflite-runtime 2.14 segfaults in its hybrid
fully-connected kernel (`DotprodMatrixBatchFourVectorMultiplyAccumulate`) on aarch64 cores
with the dot-product extension (`asimddp` in /proc/cpuinfo: Cortex-A76, Neoverse-N1 and
newer) when a model is dynamic-range quantized (float activations, int8 weights; the
translator since 2.0.0). Measured under qemu-user (scripts/arm64-check); LiteRT runs the same
models on those cores.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

DYNAMIC_RANGE, STATIC = "dynamic-range", "static"   # model kinds for `unsafe_reason`


def cpu_features(cpuinfo: str) -> frozenset[str]:
    """The aarch64 feature names of a /proc/cpuinfo text (its first 'Features' line); empty
    for other architectures (x86 says 'flags')."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Features":
            return frozenset(value.split())
    return frozenset()


@functools.lru_cache(maxsize=1)
def host_cpu_features() -> frozenset[str]:
    if platform.machine().lower() not in ("aarch64", "arm64"):
        return frozenset()
    try:
        return cpu_features(Path("/proc/cpuinfo").read_text(errors="replace"))
    except OSError:
        return frozenset()


def unsafe_reason(backend: str, model_kind: str, features: frozenset[str]) -> str | None:
    """Why `backend` must not run a model of `model_kind` on a CPU with `features`; None
    when it may."""
    if backend == "tflite" and model_kind == DYNAMIC_RANGE and "asimddp" in features:
        return ("tflite-runtime 2.14 crashes in its hybrid (dynamic-range int8) kernels on CPUs "
                "with the dot-product extension (asimddp); install ai-edge-litert "
                "(pip install 'ai-edge-litert>=2.3,<3') and use backend 'auto' or 'litert'")
    return None
