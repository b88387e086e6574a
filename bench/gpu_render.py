"""GPU render timing of the viewer's own render path: a 1920x1080 view with the paper's
EDSR-baseline-LIIF.

    python bench/gpu_render.py [--checkpoint C] [--latent fp32|fp16] [--zoom 4] [--repeat 10]

The view is rendered as the viewer renders it: its tiles (the device profile's ``view_tile``: 512 px
on a GPU), each one call of ``core.render.renderer.render`` with the device's chunk policy
(its ``chunk``), the latent already encoded and its code features cached (a
view seen before: what a pan or zoom step re-renders). Reports the median time after a
warm-up. ``--latent fp16`` stores the latent in float16 (half the GPU memory; the decoder
computes in float32) and reports the largest difference from the float32 latent's pixels.
Prints the card's name.
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
    p.add_argument("--latent", default="fp32", choices=("fp32", "fp16"))
    p.add_argument("--zoom", type=float, default=4)
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--device", default="cuda")
    args = p.parse_args()
    import numpy as np
    import torch

    from bench.render_throughput import PAPER
    from core.checkpoints import load_model
    from core.geometry import Region
    from core.models.registry import make
    from core.profile import profile_for
    from core.render.encoding import encode
    from core.render.renderer import render

    dev = torch.device(args.device)
    if args.checkpoint:
        model, _, _ = load_model(args.checkpoint, dev)
    else:
        torch.manual_seed(0)
        model = make(PAPER).to(dev).eval()
    w, h, z = 1920, 1080, args.zoom
    T = profile_for(dev).view_tile
    src_w, src_h = int(w / z) + 8, int(h / z) + 8
    rgb = np.random.default_rng(0).random((src_h, src_w, 3), dtype=np.float32)
    view = Region(2.0, 2.0, w / z, h / z)

    def render_view(lat) -> np.ndarray:
        out = np.empty((h, w, 3), np.float32)
        for r0 in range(0, h, T):
            for c0 in range(0, w, T):
                reg = Region(view.x + c0 / z, view.y + r0 / z, T / z, T / z)
                tile = render(lat, reg, T, T)
                out[r0:r0 + T, c0:c0 + T] = tile[:h - r0, :w - c0]
        return out

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    chunk = profile_for(dev).chunk
    ref = render_view(encode(model, rgb, dev, chunk=chunk))
    dtype = torch.float16 if args.latent == "fp16" else torch.float32
    lat = encode(model, rgb, dev, dtype=dtype, chunk=chunk)
    for _ in range(3):
        out = render_view(lat)
    ts = []
    for _ in range(args.repeat):
        sync()
        t = time.perf_counter()
        out = render_view(lat)
        sync()
        ts.append(time.perf_counter() - t)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else str(dev)
    print(f"{name}: {w}x{h} at {z:g}x in {T}-px tiles, {args.latent} latent: median "
          f"{statistics.median(ts) * 1000:.1f} ms (min {min(ts) * 1000:.1f}); "
          f"max |diff| vs fp32 latent {np.abs(out - ref).max():.2e}")


if __name__ == "__main__":
    main()
