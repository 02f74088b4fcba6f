"""The one module that owns the TFLite interpreter (LiteRT or tflite-runtime).

Callers pass and receive float arrays: int8/uint8 inputs and outputs are quantized and
dequantized here from each tensor's own scale and zero point (an input already in its
tensor's integer type, e.g. from a lookup table, is taken as quantized). Every failure of the
interpreter becomes a `ModelError` that says what to do.

Before an interpreter is built the file is checked (`device.tflite_flatbuffer`: a truncated
or mangled file is refused, its kind read) and a combination known to crash the process is
refused (`UnsafeBackendError`, from the rules of `device.runtime_safety`: tflite-runtime 2.14
on an aarch64 core with the dot-product extension and a dynamic-range model).
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from device.errors import InputError, ModelError
from device.runtime_safety import host_cpu_features, unsafe_reason
from device.tflite_flatbuffer import Flatbuffer as _Flatbuffer

log = logging.getLogger(__name__)

BACKENDS = ("litert", "tflite")
DEFAULT_SIGNATURE = "serving_default"


class ResizeError(ModelError):
    """A model that loads at its own input shape but not at the one asked for (a graph with
    fixed-size layers)."""


class UnsafeBackendError(ModelError):
    """This backend is known to crash on this CPU with this kind of model."""


def _import_backend(name: str) -> Callable[..., Any]:
    if name == "litert":
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter
    if name == "tflite":
        from tflite_runtime.interpreter import Interpreter
        return Interpreter
    raise ModelError(f"unknown backend {name!r}; expected one of auto, {', '.join(BACKENDS)}")


def available_backends() -> list[str]:
    found = []
    for name in BACKENDS:
        try:
            _import_backend(name)
        except ImportError:
            continue
        found.append(name)
    return found


def resolve_backend(backend: str) -> str:
    """'auto' → LiteRT when importable, else tflite-runtime; a named one must be importable."""
    if backend == "auto":
        found = available_backends()
        if not found:
            raise ModelError("no TFLite runtime is installed: install ai-edge-litert "
                             "(or tflite-runtime==2.14.0 on Python <= 3.11)")
        return found[0]
    try:
        _import_backend(backend)
    except ImportError as exc:
        package = "ai-edge-litert" if backend == "litert" else "tflite-runtime==2.14.0"
        raise ModelError(f"backend {backend!r} is not installed: pip install {package}") from exc
    return backend


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.dtype in ("int8", "uint8", "int16") and self.scale > 0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "scale": self.scale, "zero_point": self.zero_point}


def _spec(name: str, detail: dict) -> TensorSpec:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorSpec(name=name, shape=tuple(int(d) for d in detail["shape"]),
                      dtype=np.dtype(detail["dtype"]).name, scale=float(scale),
                      zero_point=int(zero_point))


def quantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    if not spec.quantized:
        return np.asarray(values, dtype=spec.dtype)
    info = np.iinfo(spec.dtype)
    q = np.round(np.asarray(values, np.float32) / spec.scale) + spec.zero_point
    return np.clip(q, info.min, info.max).astype(spec.dtype)


def dequantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    if not spec.quantized:
        return values.astype(np.float32, copy=False) if values.dtype.kind == "f" else values
    return (values.astype(np.float32) - spec.zero_point) * np.float32(spec.scale)


def _translate(exc: Exception, path: str, backend: str) -> ModelError:
    text = str(exc)
    if "Didn't find op" in text or "Encountered unresolved custom op" in text:
        hint = ("this runtime does not know an op or op version the model uses; run it with "
                "backend 'litert', or convert it with TensorFlow 2.14 for tflite-runtime 2.14")
        return ModelError(f"{path}: {backend} cannot run this model ({text.strip()}); {hint}")
    if "identifier" in text or "flatbuffer" in text.lower() or "model" in text.lower():
        return ModelError(f"{path}: not a valid TFLite model ({text.strip()}); the file is "
                          "corrupt or not a .tflite flatbuffer — reinstall it from the store")
    return ModelError(f"{path}: {backend} failed to load the model: {text.strip()}")


class _Signature:
    """One signature of one interpreter: float in (or already quantized), float out."""

    def __init__(self, interpreter: Any, key: str | None):
        self._interpreter = interpreter
        if key is None:
            self._runner = None
            self.inputs = [_spec(d["name"], d) for d in interpreter.get_input_details()]
            self.outputs = [_spec(d["name"], d) for d in interpreter.get_output_details()]
            self._input_index = [d["index"] for d in interpreter.get_input_details()]
            self._output_index = [d["index"] for d in interpreter.get_output_details()]
        else:
            self._runner = interpreter.get_signature_runner(key)
            self.inputs = [_spec(n, d) for n, d in self._runner.get_input_details().items()]
            self.outputs = [_spec(n, d) for n, d in self._runner.get_output_details().items()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        quantized = {}
        for spec in self.inputs:
            if spec.name not in feeds:
                raise InputError(f"missing input {spec.name!r}; the model takes "
                                 f"{[s.name for s in self.inputs]}")
            value = np.asarray(feeds[spec.name])
            if tuple(value.shape) != spec.shape:
                raise InputError(f"input {spec.name!r} has shape {tuple(value.shape)}, the "
                                 f"model expects {spec.shape}")
            quantized[spec.name] = (value if spec.quantized and value.dtype == spec.dtype
                                    else quantize(value, spec))
        if self._runner is not None:
            raw = self._runner(**quantized)
            return {spec.name: dequantize(raw[spec.name], spec) for spec in self.outputs}
        for spec, index in zip(self.inputs, self._input_index):
            self._interpreter.set_tensor(index, quantized[spec.name])
        self._interpreter.invoke()
        return {spec.name: dequantize(self._interpreter.get_tensor(index), spec)
                for spec, index in zip(self.outputs, self._output_index)}


_BANNER = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
_banner_seen: set[str] = set()


@contextlib.contextmanager
def _without_delegate_banner(backend: str):
    """The runtime prints an INFO banner on stderr the first time it creates its CPU delegate,
    whatever the log level. Catch stderr around that first build and pass on everything else
    it printed (shown with --log-level DEBUG)."""
    if backend in _banner_seen or logging.getLogger().isEnabledFor(logging.DEBUG):
        yield
        return
    _banner_seen.add(backend)      # each runtime prints it once
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):      # no real stderr (embedded, closed): nothing to hide
        yield
        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            rest = [line for line in caught.read().splitlines(keepends=True)
                    if not line.startswith(_BANNER)]
            if rest:
                os.write(2, b"".join(rest))


class TFLiteModel:
    """A loaded .tflite file: interpreter built and tensors allocated once.

    For models whose input size may vary (e.g. line width), `run_resized` runs one second
    interpreter resized in place to each input's shape; `input_shape` sizes the model's own
    interpreter once, at load (a fully convolutional detector at another resolution).
    """

    def __init__(self, path: str | Path, backend: str = "auto", num_threads: int = 2,
                 content: bytes | None = None, cpu: frozenset[str] | None = None,
                 input_shape: tuple[int, ...] | None = None):
        """`cpu`: the CPU's feature names (default: this machine's, from /proc/cpuinfo).
        `input_shape`: the single input resized to this shape (the model's signatures, made
        for its own shape, are then not used)."""
        self.path = str(path)
        self.backend = resolve_backend(backend)
        self.num_threads = int(num_threads)
        if content is None:
            try:
                content = Path(path).read_bytes()
            except FileNotFoundError as exc:
                raise ModelError(f"model file not found: {path}") from exc
            except OSError as exc:
                raise ModelError(f"cannot read model file {path}: {exc}") from exc
        if len(content) < 8 or content[4:8] != b"TFL3":
            raise ModelError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier); the "
                             "file is corrupt or of another format — reinstall it from the store")
        try:
            flatbuffer = _Flatbuffer(content)
            flatbuffer.check()
            self.kind = flatbuffer.kind()
        except (ValueError, struct.error) as exc:
            raise ModelError(f"{path}: not a valid TFLite model ({exc}); the file is truncated "
                             "or corrupt — reinstall it from the store") from exc
        reason = unsafe_reason(self.backend, self.kind,
                               host_cpu_features() if cpu is None else cpu)
        if reason:
            raise UnsafeBackendError(f"{path}: not loaded with {self.backend}, a "
                                     f"{self.kind} model on this CPU: {reason}")
        self._content = content
        try:
            self._interpreter = self._build(None if input_shape is None else tuple(input_shape))
        except ModelError as exc:
            if input_shape is None:
                raise
            raise ResizeError(f"{path}: cannot run at input shape {tuple(input_shape)} "
                              f"({exc})") from exc
        if input_shape is not None and len(self._interpreter.get_input_details()) != 1:
            raise ModelError(f"{path}: only a single-input model can be resized at load")
        keys = list(self._interpreter.get_signature_list())
        self.signature_keys = keys if input_shape is None else []
        self._signatures: dict[str, _Signature] = {}
        self._resized: _Signature | None = None     # run_resized's interpreter, as last sized
        self._resize_lock = threading.Lock()

    def _build(self, input_shape: tuple[int, ...] | None) -> Any:
        Interpreter = _import_backend(self.backend)
        try:
            with _without_delegate_banner(self.backend):
                interpreter = Interpreter(model_content=self._content,
                                          num_threads=self.num_threads)
                if input_shape is not None:
                    detail = interpreter.get_input_details()[0]
                    interpreter.resize_tensor_input(detail["index"], list(input_shape),
                                                    strict=False)
                interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise _translate(exc, self.path, self.backend) from exc
        return interpreter

    def signature(self, key: str | None = None) -> _Signature:
        if key is None:
            key = DEFAULT_SIGNATURE if DEFAULT_SIGNATURE in self.signature_keys else (
                self.signature_keys[0] if len(self.signature_keys) == 1 else None)
        cache_key = key or ""
        if cache_key not in self._signatures:
            if key is not None and key not in self.signature_keys:
                raise ModelError(f"{self.path}: no signature {key!r}; it has "
                                 f"{self.signature_keys}")
            self._signatures[cache_key] = _Signature(self._interpreter, key)
        return self._signatures[cache_key]

    @property
    def inputs(self) -> list[TensorSpec]:
        return self.signature().inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self.signature().outputs

    def run(self, inputs: np.ndarray | dict[str, np.ndarray],
            signature: str | None = None) -> dict[str, np.ndarray]:
        """Run one signature. A single array feeds a single-input signature."""
        sig = self.signature(signature)
        if not isinstance(inputs, dict):
            if len(sig.inputs) != 1:
                raise InputError(f"the model takes {len(sig.inputs)} inputs; pass a dict")
            inputs = {sig.inputs[0].name: inputs}
        try:
            return sig.run(inputs)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{self.path}: inference failed: {exc}") from exc

    def run_resized(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Run a single-input model on an input of another shape than its own (a line's width):
        on one second interpreter, resized in place when the shape changes. Resizing costs a
        fraction of building an interpreter and keeps one copy of the weights, warm in cache.
        Calls of it from several threads take turns."""
        value = np.asarray(inputs)
        shape = tuple(int(d) for d in value.shape)
        if len(self.inputs) != 1:
            raise InputError(f"the model takes {len(self.inputs)} inputs; only a single-input "
                             "model runs resized")
        with self._resize_lock:
            if shape == self.inputs[0].shape:
                return self.run(value)
            try:
                if self._resized is None:
                    self._resized = _Signature(self._build(shape), None)
                elif self._resized.inputs[0].shape != shape:
                    interpreter = self._resized._interpreter
                    interpreter.resize_tensor_input(self._resized._input_index[0], list(shape),
                                                    strict=False)
                    interpreter.allocate_tensors()
                    self._resized = _Signature(interpreter, None)
                out = self._resized.run({self._resized.inputs[0].name: value})
            except (ValueError, RuntimeError) as exc:
                self._resized = None        # rebuilt on the next call
                raise ModelError(f"{self.path}: inference at input shape {shape} failed: "
                                 f"{exc}") from exc
        if len(out) == 1 and len(self.outputs) == 1:   # the signature's name, as run() gives
            return {self.outputs[0].name: next(iter(out.values()))}
        return out
