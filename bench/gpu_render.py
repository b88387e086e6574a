"""GPU render timing: a 1920x1080 viewport with the paper's EDSR-baseline-LIIF.

    python bench/gpu_render.py [--checkpoint C] [--dtype fp32|bf16|fp16] [--zoom 4]

Renders the same viewport repeatedly after a warm-up (latent already encoded) and reports the
median time; with a reduced-precision dtype it also reports the maximum difference from fp32
(target: 1e-3). Prints the card's name.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint")
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--zoom", type=float, default=4)
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--chunk", type=int, default=1 << 18)
    args = p.parse_args()
    import numpy as np
    import torch

    from bench.render_throughput import PAPER
    from core.checkpoints import load_model
    from core.encoding import encode
    from core.geometry import Region
    from core.models.registry import make
    from core.render import render

    dev = torch.device("cuda")
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    if args.checkpoint:
        model, _, _ = load_model(args.checkpoint, dev)
    else:
        torch.manual_seed(0)
        model = make(PAPER).to(dev).eval()
    w, h = 1920, 1080
    src_w, src_h = int(w / args.zoom) + 8, int(h / args.zoom) + 8
    rgb = np.random.default_rng(0).random((src_h, src_w, 3), dtype=np.float32)
    lat = encode(model, rgb, dev, tile=256, lazy=False)
    region = Region(2.0, 2.0, w / args.zoom, h / args.zoom)
    ref = render(lat, region, w, h, chunk=args.chunk)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]

    def once():
        if dtype is None:
            return render(lat, region, w, h, chunk=args.chunk)
        with torch.autocast("cuda", dtype=dtype):
            return render(lat, region, w, h, chunk=args.chunk)

    for _ in range(3):
        out = once()
    ts = []
    for _ in range(args.repeat):
        torch.cuda.synchronize()
        t = time.perf_counter()
        out = once()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    print(f"{torch.cuda.get_device_name()}: {w}x{h} at {args.zoom}x, {args.dtype}: median "
          f"{statistics.median(ts) * 1000:.1f} ms (min {min(ts) * 1000:.1f}); "
          f"max |diff| vs fp32 {np.abs(out - ref).max():.2e}")


if __name__ == "__main__":
    main()
