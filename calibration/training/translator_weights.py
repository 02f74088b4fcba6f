#!/usr/bin/env python
"""A released translator's weights back out of the model store, to train on from there.

The store keeps only the int8 `.tflite` (dynamic range: int8 matrices with one scale each,
float biases and LayerNorm parameters). Its tensors keep the Keras layers' names, so every
weight of `train_translator.build_model` can be found by name and dequantized (int8 x scale;
TFLite keeps a dense kernel transposed). The result is what the shipped model computes with
(stored as float16, which rounds it slightly), written as `keras_weights.npz` in the Keras
weight order (the format of
`translator_torch.py`'s runs) with a `torch_run.json` naming the store version, so that

    python calibration/training/translator_weights.py models/translator/3.2.0 runs/store-3.2.0
    python calibration/training/translator_torch.py --init runs/store-3.2.0 ...
    python scripts/train_translator.py --init-from runs/store-3.2.0 ...

go on from a release instead of from a run directory that may be gone.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np


def _tensors(tflite: bytes) -> dict[str, np.ndarray]:
    """Every constant tensor of every signature, by name, dequantized to float32."""
    from ai_edge_litert import schema_py_generated as fb     # the runtime ships the schema
    model = fb.Model.GetRootAsModel(tflite, 0)
    kinds = {fb.TensorType.FLOAT32: np.float32, fb.TensorType.INT8: np.int8}
    out: dict[str, np.ndarray] = {}
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for i in range(graph.TensorsLength()):
            tensor = graph.Tensors(i)
            data = model.Buffers(tensor.Buffer()).DataAsNumpy()
            if not isinstance(data, np.ndarray) or tensor.Type() not in kinds:
                continue
            array = data.view(kinds[tensor.Type()]).reshape(tensor.ShapeAsNumpy())
            if tensor.Type() == fb.TensorType.INT8:
                quant = tensor.Quantization()
                scales, zeros = quant.ScaleAsNumpy(), quant.ZeroPointAsNumpy()
                if len(scales) != 1 or np.any(zeros):
                    raise ValueError(f"{tensor.Name().decode()}: {len(scales)} scales, zero "
                                     f"points {zeros} (one symmetric scale per kernel expected)")
                array = array.astype(np.float32) * np.float32(scales[0])
            name = tensor.Name().decode()
            if name in out and (out[name].shape != array.shape or
                                not np.array_equal(out[name], array)):
                raise ValueError(f"{name}: two different tensors of that name (signatures "
                                 "encode and decode); the weights cannot be told apart")
            out[name] = array
    return out


def _number(name: str) -> int:
    match = re.search(r"_(\d+)$", name)
    return int(match.group(1)) if match else 0


def keras_weights(tflite: bytes, arch: dict) -> list[np.ndarray]:
    """The weights in `train_translator.build_model`'s order (model.get_weights())."""
    tensors = _tensors(tflite)

    def layers(prefix: str, kind: str) -> list[str]:
        """This block's layers of one kind (layer_normalization, dense) in creation order."""
        return sorted({n.split("/")[1] for n in tensors
                       if n.startswith(prefix) and n.split("/")[1].startswith(kind)},
                      key=_number)

    def norm(prefix: str, layer: str) -> list[np.ndarray]:
        base = f"{prefix}{layer}/batchnorm"
        return [tensors[f"{base}/mul/ReadVariableOp"], tensors[f"{base}/ReadVariableOp"]]

    def dense(prefix: str, layer: str) -> list[np.ndarray]:
        return [tensors[f"{prefix}{layer}/Tensordot/MatMul"].T,
                tensors[f"{prefix}{layer}/BiasAdd/ReadVariableOp"]]

    weights: list[np.ndarray] = []
    blocks = [(f"enc{i}/", False) for i in range(arch["enc_layers"])] + \
             [(f"dec{i}/", True) for i in range(arch["dec_layers"])]
    for prefix, cross in blocks:
        norms, denses = layers(prefix, "layer_normalization"), layers(prefix, "dense")
        if len(norms) != (3 if cross else 2):
            raise ValueError(f"{prefix}: LayerNorms {norms}")
        if len(denses) != 2:
            raise ValueError(f"{prefix}: dense layers {denses}")
        weights += norm(prefix, norms[0])
        for att in ["self"] + (["cross"] if cross else []):
            if att == "cross":
                weights += norm(prefix, norms[1])
            for lin in "qkvo":
                weights += dense(prefix, f"{att}/{lin}")
        weights += norm(prefix, norms[-1])
        for layer in denses:
            weights += dense(prefix, layer)
    final = sorted({n.split("/")[0] for n in tensors if n.startswith("layer_normalization")},
                   key=_number)
    if len(final) != 2:
        raise ValueError(f"final LayerNorms {final}")
    for layer in final:                                     # enc_ln, then dec_ln
        weights += norm("", layer)
    # Translator.__init__ adds embed and out_bias first, but Keras lists a subclassed model's
    # own weights after its layers' (the order translator_torch.keras_order writes).
    weights += [tensors["MatMul/ReadVariableOp"], tensors["add_1/ReadVariableOp"]]
    return [np.ascontiguousarray(w, dtype=np.float32) for w in weights]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("version_dir", type=Path, help="e.g. models/translator/3.2.0")
    p.add_argument("out", type=Path, help="run directory to write (keras_weights.npz, "
                                          "torch_run.json)")
    args = p.parse_args(argv)
    manifest = json.loads((args.version_dir / "manifest.json").read_text())
    arch = manifest["training"]["architecture"]
    weights = keras_weights((args.version_dir / manifest["artifact"]["file"]).read_bytes(), arch)
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / "keras_weights.npz", *[w.astype(np.float16) for w in weights])
    config = {**{k: arch[k] for k in ("d", "ff", "heads", "enc_layers", "dec_layers", "vocab",
                                      "max_len")}, "dropout": 0.1}
    source = f"{args.version_dir.as_posix()} (int8 weights of the release, dequantized)"
    record = {"config": config, "steps": 0, "epochs": 0, "minutes": 0, "device": "store",
              "torch": "-", "history": [], "store_version": manifest["version"],
              "args": {"data": source, "lr": "0", "seed": str(manifest["training"]["seed"])}}
    (args.out / "torch_run.json").write_text(json.dumps(record, indent=1))
    print(f"{len(weights)} tensors, {sum(w.size for w in weights):,} weights -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
