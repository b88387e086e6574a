"""LMF's per-pixel decoder: the fused native kernel against eager PyTorch and ``torch.mm``.

    python bench/decoder_rate.py [--checkpoint resources/lmf-edsr6-cpu.safetensors]
        [--threads 1] [--repeat 7]

A 256x256 tile of an 800x600 image at 4x (and at 1x and 16x), rendered with
``core.render.renderer.render`` from a latent whose code features are already cached, so that the
time is the per-pixel decoder's (gathers, render MLP, ensemble blend) plus the renderer's
bookkeeping; once with the native kernel (``core.kernels``) and once with
``LIIF_ZOOM_KERNELS=0`` (eager PyTorch). The work is counted from the layer shapes:
``4 x (4 d + (L - 1) d^2 + 3 d)`` multiply-adds per output pixel (the 4 ensemble members'
render MLP; 3.5 k for d = 16, L = 4; the modulations and the blend are not counted).
For scale, ``torch.mm`` on the same thread(s): a 2048^3 product (this CPU's matrix rate) and
the decoder's own layer shape, ``(4 x 8192) x 16`` by ``16 x 16`` into a preallocated output
(what an eager layer can reach at best). Medians of ``--repeat``.
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np
import torch

from bench.timing import median_time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", default=os.path.join(ROOT, "resources",
                                                        "lmf-edsr6-cpu.safetensors"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from core import kernels
    from core.checkpoints import load_model
    from core.geometry import Region
    from core.render.encoding import encode
    from core.render.renderer import render

    model = load_model(args.checkpoint)[0]
    d, L = model.render_width, model.render_layers
    mac_px = 4 * (4 * d + (L - 1) * d * d + 3 * d)
    print(f"model {os.path.basename(args.checkpoint)}: render MLP {L} x {d}, "
          f"{mac_px / 1e3:.2f} k multiply-adds per output pixel; {args.threads} thread(s); "
          f"native kernel {'available' if kernels.lmf_grid(d) else 'NOT available'}")
    rgb = np.random.default_rng(0).random((600, 800, 3), dtype=np.float32)
    lat = encode(model, rgb, "cpu", tile=32)
    lat.ensure_region(Region(0, 0, 800, 600))
    for k in range(8):  # cache the code features the timed tiles read
        render(lat, Region(40 + 64 * k, 100, 64, 64), 64, 64)
        render(lat, Region(40, 100, 256, 256), 64, 64)
    print(f"{'tile':>22}{'native ms':>11}{'eager ms':>10}{'speed-up':>10}"
          f"{'native GMAC/s':>15}{'eager GMAC/s':>14}")
    for name, side in (("256x256 at 4x", 64), ("256x256 at 16x", 16), ("256x256 at 1x", 256)):
        times = {}
        for kern in ("1", "0"):
            os.environ["LIIF_ZOOM_KERNELS"] = kern
            step = 64 if side <= 64 else 0
            times[kern] = median_time(
                lambda k: render(lat, Region(40 + step * (k % 8), 100, side, side), 256, 256),
                args.repeat)
        os.environ.pop("LIIF_ZOOM_KERNELS")
        work = mac_px * 256 * 256
        print(f"{name:>22}{times['1'] * 1e3:11.1f}{times['0'] * 1e3:10.1f}"
              f"{times['0'] / times['1']:9.2f}x{work / times['1'] / 1e9:15.1f}"
              f"{work / times['0'] / 1e9:14.1f}")
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    t = median_time(lambda k: torch.mm(a, b), 3)
    print(f"torch.mm 2048^3: {2048 ** 3 / t / 1e9:.1f} GMAC/s")
    x, w, out = torch.randn(4 * 8192, d), torch.randn(d, d), torch.empty(4 * 8192, d)
    t = median_time(lambda k: torch.mm(x, w, out=out), 50)
    print(f"torch.mm {4 * 8192}x{d} by {d}x{d} (one eager decoder layer): "
          f"{4 * 8192 * d * d / t / 1e9:.1f} GMAC/s")


if __name__ == "__main__":
    main()
