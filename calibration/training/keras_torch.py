"""A Keras convolutional model as a PyTorch module, and the weights back: train on a lent GPU
(PyTorch), convert and quantize here (TensorFlow 2.14).

    spec = describe(keras_model)            # here, with TensorFlow: layers, configs, wiring
    net = GraphNet(spec)                    # anywhere with torch (no TensorFlow needed)
    weights = net.keras_weights()           # {layer name: [arrays in Keras order]}
    load_into(keras_model, weights)         # here again

Supported layers: InputLayer, Conv2D, DepthwiseConv2D (TensorFlow 'same' padding emulated,
asymmetric for stride 2), BatchNormalization, ReLU, Activation (sigmoid, relu), Add,
UpSampling2D (nearest). Checked numerically against the Keras model by the callers.
`describe`/`load_into` import TensorFlow lazily; the torch part imports no TensorFlow.
"""

from __future__ import annotations

import json
import math


def describe(model) -> list[dict]:
    spec = []
    for layer in model.layers:
        cfg = layer.get_config()
        inbound = []
        for node in layer._inbound_nodes[:1]:
            for tensor in node.keras_inputs:
                inbound.append(tensor._keras_history.layer.name)
        entry = {"name": layer.name, "type": type(layer).__name__, "inputs": inbound}
        for key in ("filters", "kernel_size", "strides", "padding", "use_bias",
                    "dilation_rate", "epsilon", "momentum", "activation", "size",
                    "interpolation", "batch_input_shape", "depth_multiplier"):
            if key in cfg:
                entry[key] = cfg[key]
        if entry["type"] in ("Conv2D", "DepthwiseConv2D"):
            entry["in_channels"] = int(layer.input_shape[-1])
        if entry["type"] == "BatchNormalization":
            entry["channels"] = int(layer.input_shape[-1])
        spec.append(entry)
    return json.loads(json.dumps(spec))


def load_into(model, weights: dict) -> None:
    for layer in model.layers:
        if layer.name in weights:
            layer.set_weights([w.astype("float32") for w in weights[layer.name]])


# --- the torch side -------------------------------------------------------------------------------

def _torch():
    import torch
    from torch import nn
    from torch.nn import functional as F
    return torch, nn, F


def _same_pad(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding (before, after) along one axis."""
    effective = (kernel - 1) * dilation + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def GraphNet(spec: list[dict]):
    """A torch.nn.Module running the layers of `spec` in order (NCHW tensors)."""
    torch, nn, F = _torch()

    class _GraphNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.spec = spec
            self.ops = nn.ModuleDict()
            for e in spec:
                name = e["name"].replace(".", "_")
                if e["type"] == "Conv2D":
                    self.ops[name] = nn.Conv2d(e["in_channels"], e["filters"], e["kernel_size"],
                                               e["strides"], 0, e["dilation_rate"],
                                               bias=e["use_bias"])
                elif e["type"] == "DepthwiseConv2D":
                    c = e["in_channels"]
                    self.ops[name] = nn.Conv2d(c, c * e.get("depth_multiplier", 1),
                                               e["kernel_size"], e["strides"], 0,
                                               e["dilation_rate"], groups=c, bias=e["use_bias"])
                elif e["type"] == "BatchNormalization":
                    self.ops[name] = nn.BatchNorm2d(e["channels"], eps=e["epsilon"],
                                                    momentum=1 - e["momentum"])

        def forward(self, x):
            out = {}
            for e in self.spec:
                kind, name = e["type"], e["name"].replace(".", "_")
                args = [out[i] for i in e["inputs"]]
                if kind == "InputLayer":
                    y = x
                elif kind in ("Conv2D", "DepthwiseConv2D"):
                    z = args[0]
                    if e["padding"] == "same":
                        (kh, kw), (sh, sw), (dh, dw) = (e["kernel_size"], e["strides"],
                                                        e["dilation_rate"])
                        top, bottom = _same_pad(z.shape[2], kh, sh, dh)
                        left, right = _same_pad(z.shape[3], kw, sw, dw)
                        z = F.pad(z, (left, right, top, bottom))
                    y = self.ops[name](z)
                    if e.get("activation") == "relu":
                        y = F.relu(y)
                    elif e.get("activation") == "sigmoid":
                        y = torch.sigmoid(y)
                elif kind == "BatchNormalization":
                    y = self.ops[name](args[0])
                elif kind == "ReLU":
                    y = F.relu(args[0])
                elif kind == "Activation":
                    y = torch.sigmoid(args[0]) if e["activation"] == "sigmoid" else F.relu(args[0])
                elif kind == "Add":
                    y = args[0]
                    for other in args[1:]:
                        y = y + other
                elif kind == "UpSampling2D":
                    y = F.interpolate(args[0], scale_factor=tuple(e["size"]), mode="nearest")
                else:
                    raise ValueError(f"unsupported layer {kind}")
                out[e["name"]] = y
            return y

        def keras_weights(self) -> dict:
            weights = {}
            for e in self.spec:
                name = e["name"].replace(".", "_")
                if name not in self.ops:
                    continue
                m = self.ops[name]
                if e["type"] == "Conv2D":
                    arrays = [m.weight.detach().permute(2, 3, 1, 0)]
                    if m.bias is not None:
                        arrays.append(m.bias.detach())
                elif e["type"] == "DepthwiseConv2D":
                    arrays = [m.weight.detach().permute(2, 3, 0, 1)]
                    if m.bias is not None:
                        arrays.append(m.bias.detach())
                else:
                    arrays = [m.weight.detach(), m.bias.detach(), m.running_mean.detach(),
                              m.running_var.detach()]
                weights[e["name"]] = [a.float().cpu().numpy() for a in arrays]
            return weights

    return _GraphNet()
