#!/usr/bin/env python
"""Train the 2.x line detector with PyTorch on a lent GPU (CPU works too, slowly).

The network is the Keras model itself (`calibration.training.keras_torch.GraphNet` runs its layer spec),
so the weights load back into it for conversion. Data: `export_gpu_set`'s .npz (JPEG frames,
full-resolution kernel and mask maps). Each step takes random 320x320 crops at a random scale
(0.6-1.6x of the glasses' frame) on the GPU with `grid_sample`, targets pooled to 1/4, with
exposure, noise and blur augmentation; loss: BCE with 3:1 hard negatives + dice, masked (as
scripts/train_line_detector.py). BatchNorm statistics are re-estimated at the end.

    python calibration/training/line_detector_torch.py --data .gpu/detector.npz --spec .gpu/spec.json \
        --out OUT --minutes 4.5
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from calibration.training.keras_torch import GraphNet  # noqa: E402

CROP, STRIDE = 320, 4
FRAME_SCALE = 0.8       # stored frames are 0.8x the 640x360 frame


def load(path: Path, device):
    import cv2
    import torch
    z = np.load(path)
    h, w = (int(v) for v in z["shape"])
    offsets, jpeg = z["offsets"], z["jpeg"]
    frames = np.stack([cv2.imdecode(jpeg[offsets[i]:offsets[i + 1]], cv2.IMREAD_COLOR)
                       for i in range(len(offsets) - 1)])
    kernels = np.unpackbits(z["kernels"], axis=1)[:, :h * w].reshape(-1, h, w)
    masks = np.unpackbits(z["masks"], axis=1)[:, :h * w].reshape(-1, h, w)
    points = []                      # text pixels to centre half of the crops on
    rng = np.random.default_rng(0)
    for k in kernels:
        ys, xs = np.nonzero(k)
        pick = rng.choice(len(ys), min(len(ys), 64), replace=False) if len(ys) else []
        points.append([(xs[i], ys[i]) for i in pick])
    to = dict(device=device)
    return (torch.tensor(frames, **to).permute(0, 3, 1, 2).contiguous(),
            torch.tensor(np.stack([kernels, masks], 1), dtype=torch.uint8, **to), points)


def batch(frames, maps, points, size: int, rng, device):
    import torch
    from torch.nn import functional as F
    n, _, h, w = frames.shape
    idx = rng.integers(0, n, size)
    scale = np.exp(rng.uniform(np.log(0.6), np.log(1.6), size)) / FRAME_SCALE
    span_x, span_y = CROP / scale / w, CROP / scale / h          # crop size, in frame widths
    cx, cy = rng.uniform(0, 1, size), rng.uniform(0, 1, size)
    for k, i in enumerate(idx):
        if points[i] and rng.random() < 0.5:
            px, py = points[i][rng.integers(len(points[i]))]
            cx[k] = px / w + rng.uniform(-0.3, 0.3) * span_x[k]
            cy[k] = py / h + rng.uniform(-0.3, 0.3) * span_y[k]
    theta = np.zeros((size, 2, 3), np.float32)
    theta[:, 0, 0], theta[:, 1, 1] = span_x, span_y
    theta[:, 0, 2], theta[:, 1, 2] = cx * 2 - 1, cy * 2 - 1
    grid = F.affine_grid(torch.tensor(theta, device=device), (size, 3, CROP, CROP),
                         align_corners=False)
    ii = torch.tensor(idx, device=device)
    image = F.grid_sample(frames[ii].float(), grid, mode="bilinear", align_corners=False)
    m = F.grid_sample(maps[ii].float(), grid, mode="nearest", align_corners=False)
    m = F.avg_pool2d(m, STRIDE)
    kernel, mask = (m[:, 0] >= 0.25).float(), (m[:, 1] >= 0.5).float()
    # exposure / contrast, sensor noise, defocus
    alpha = torch.tensor(rng.uniform(0.6, 1.4, (size, 1, 1, 1)), device=device).float()
    beta = torch.tensor(rng.uniform(-40, 40, (size, 1, 1, 1)), device=device).float()
    image = image * alpha + beta
    noisy = torch.tensor(rng.random(size) < 0.25, device=device).view(-1, 1, 1, 1)
    image = torch.where(noisy, image + torch.randn_like(image) * 6, image)
    if rng.random() < 0.35:
        sigma = float(rng.uniform(0.6, 1.6))
        x = torch.arange(-3, 4, device=device).float()
        g = torch.exp(-x ** 2 / (2 * sigma ** 2))
        g = (g / g.sum()).view(1, 1, 1, 7).repeat(3, 1, 1, 1)
        image = F.conv2d(F.pad(image, (3, 3, 0, 0), mode="replicate"), g, groups=3)
        image = F.conv2d(F.pad(image, (0, 0, 3, 3), mode="replicate"),
                         g.transpose(2, 3), groups=3)
    image = (image.clamp(0, 255) - 127.5) / 127.5
    return image, kernel, mask


def loss_of(p, y, m):
    import torch
    p = p[:, 0].float().clamp(1e-6, 1 - 1e-6)
    bce = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)) * m
    pos = y * m
    n_pos = pos.sum()
    neg = (bce * (1 - y)).flatten()
    n_neg = int(min(((1 - y) * m).sum().item(), 3 * n_pos.item() + 64))
    hard = torch.topk(neg, n_neg).values if n_neg > 0 else neg[:0]
    balanced = ((bce * pos).sum() + hard.sum()) / (n_pos + n_neg + 1e-6)
    inter = (p * y * m).sum()
    dice = 1 - (2 * inter + 1) / ((p * m).sum() + (y * m).sum() + 1)
    return balanced + dice


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--spec", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=4.5)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args(argv)
    import torch
    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = True
    frames, maps, points = load(args.data, device)
    net = GraphNet(json.loads(args.spec.read_text())).to(device)
    print(f"{device}: {len(frames)} frames, {sum(p.numel() for p in net.parameters()):,} "
          "parameters", flush=True)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    rng = np.random.default_rng(args.seed)
    start, step, history = time.monotonic(), 0, []
    budget = args.minutes * 60
    while True:
        elapsed = time.monotonic() - start
        if elapsed > budget:
            break
        progress = elapsed / budget
        lr = args.lr * min(1.0, (step + 1) / 300) * (0.02 + 0.98 * 0.5 * (1 + math.cos(
            math.pi * progress)))
        for group in opt.param_groups:
            group["lr"] = lr
        x, y, m = batch(frames, maps, points, args.batch, rng, device)
        net.train()
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            p = net(x)
        loss = loss_of(p, y, m)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 200 == 0:
            history.append({"step": step, "loss": round(loss.item(), 4),
                            "minutes": round(elapsed / 60, 2)})
            print(json.dumps(history[-1]), flush=True)
    # precise BatchNorm: plain averages over 60 batches with the final weights
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    net.train()
    with torch.no_grad():
        for _ in range(60):
            net(batch(frames, maps, points, args.batch, rng, device)[0])
    args.out.mkdir(parents=True, exist_ok=True)
    weights = net.keras_weights()
    np.savez(args.out / "keras_weights.npz",
             **{f"{name}::{i}": a for name, arrays in weights.items()
                for i, a in enumerate(arrays)})
    (args.out / "torch_run.json").write_text(json.dumps(
        {"steps": step, "batch": args.batch, "device": device, "torch": torch.__version__,
         "minutes": round((time.monotonic() - start) / 60, 2), "history": history,
         "args": {k: str(v) for k, v in vars(args).items()}}, indent=1))
    print("done", step, "steps", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
