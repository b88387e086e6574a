"""Fast renderer vs the official-style query, and this CPU's matrix-multiply rate.

    python bench/render_throughput.py [--input 128] [--scale 4] [--threads N] [--repeat 3]

EDSR-baseline-LIIF (paper size, random weights), a ``input x input`` image rendered to
``scale`` times its size. Both paths start from the same latent (encoding not timed):

* official-style: unfold the whole latent + grid_sample per call, 30000-query batches
  (``core.reference.query_official_style``);
* fast path: ``core.render.renderer.render`` (folded first layer, code features on touched
  tiles, batched ensemble), default chunk.

Prints seconds, output pixels per second, the maximum difference between the two outputs,
the fast path's arithmetic rate (2 x multiply-adds / s) and the rate of ``torch.mm`` at the
decoder's shape on this machine, measured in the same run.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import torch

from core.geometry import Region
from core.models.registry import make
from core.reference import make_coord, query_official_style
from core.render.encoding import encode
from core.render.renderer import render

PAPER = {"name": "liif", "args": {
    "encoder_spec": {"name": "edsr-baseline", "args": {"no_upsampling": True}},
    "imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [256, 256, 256, 256]}}}}


def best_of(fn, repeat):
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return min(ts), out


def matmul_rate(m=32768, k=256, n=256, repeat=5) -> float:
    """GFLOP/s of ``torch.mm`` into a preallocated output (no page faults counted)."""
    a, b, out = torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)
    t, _ = best_of(lambda: torch.mm(a, b, out=out), repeat)
    return 2 * m * k * n / t / 1e9


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--input", type=int, default=128)
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = make(PAPER).eval()
    n, s = args.input, args.scale
    rgb = np.random.default_rng(0).random((n, n, 3), dtype=np.float32)
    latent = encode(model, rgb, torch.device("cpu"), lazy=False)
    feat = latent.full()[None]
    out = n * s
    coord = make_coord((out, out))[None]
    cell = torch.full_like(coord, 2.0 / out)

    def official():
        with torch.no_grad():
            o = query_official_style(model, feat, coord, cell, bsize=30000)
        return (o * 0.5 + 0.5).clamp(0, 1).view(out, out, 3).numpy()

    t_off, a = best_of(official, args.repeat)
    t_fast, b = best_of(lambda: render(latent, Region.full(n, n), out, out), args.repeat)
    q = out * out
    hidden = 256
    mac_dec = q * 4 * (3 * hidden * hidden + hidden * 3)
    mac_p = (n + 2) * (n + 2) * 576 * hidden
    rate_fast = 2 * (mac_dec + mac_p) / t_fast / 1e9
    mm = matmul_rate()
    mm_big = matmul_rate(2048, 2048, 2048, 3)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"EDSR-baseline-LIIF, {n}x{n} -> {out}x{out} ({q} queries)")
    print(f"{'path':<16}{'seconds':>9}{'Mpx/s':>8}")
    print(f"{'official-style':<16}{t_off:9.3f}{q / t_off / 1e6:8.3f}")
    print(f"{'fast':<16}{t_fast:9.3f}{q / t_fast / 1e6:8.3f}")
    print(f"speed-up: {t_off / t_fast:.2f}x; max |difference| = {np.abs(a - b).max():.2e}")
    print(f"fast path arithmetic: {rate_fast:.1f} GFLOP/s; torch.mm 32768x256 @ 256x256 (the "
          f"decoder's shape): {mm:.1f} GFLOP/s, 2048^3: {mm_big:.1f} GFLOP/s -> the fast path "
          f"runs at {100 * rate_fast / mm:.0f}% of the decoder-shaped matmul rate")


if __name__ == "__main__":
    main()
