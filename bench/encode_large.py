"""Tiled encoding of a large photo: time and peak memory.

    python bench/encode_large.py [--mpx 24] [--checkpoint C | --paper] [--fp16] [--tile 96]

The photo is ../shared/samples/flower.png resized (Pillow bicubic) to about ``mpx``
megapixels, 3:2. The whole latent is encoded tile by tile (halo = the encoder's receptive
field). Reports wall time, throughput, the latent's size and the process's peak RSS.
``--paper`` uses EDSR-baseline-LIIF with random weights (the encoder cost is what matters).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mpx", type=float, default=24)
    p.add_argument("--checkpoint")
    p.add_argument("--paper", action="store_true")
    p.add_argument("--fp16", action="store_true")
    p.add_argument("--tile", type=int, default=96)
    args = p.parse_args()
    import numpy as np
    import torch
    from PIL import Image

    from core.checkpoints import load_model
    from core.models.registry import make
    from core.render.encoding import encode
    from core.zoo import clean_default

    h = int(round(math.sqrt(args.mpx * 1e6 / 1.5)))
    w = int(round(h * 1.5))
    src = Image.open(os.path.join(ROOT, "..", "shared", "samples", "flower.png")).convert("RGB")
    rgb = np.asarray(src.resize((w, h), Image.BICUBIC), dtype=np.float32) / 255.0
    del src
    if args.paper:
        from bench.render_throughput import PAPER
        torch.manual_seed(0)
        model, name = make(PAPER).eval(), "EDSR-baseline-LIIF (random weights)"
    else:
        ckpt = args.checkpoint or clean_default("cpu")
        model, _, _ = load_model(ckpt)
        name = os.path.basename(str(ckpt))
    base = peak_rss_mib()
    lat = encode(model, rgb, torch.device("cpu"), tile=args.tile,
                 dtype=torch.float16 if args.fp16 else torch.float32)
    t = time.perf_counter()
    lat.encode_all()
    dt = time.perf_counter() - t
    print(
        f"model {name}; image {w}x{h} ({w * h / 1e6:.1f} Mpx); tile {args.tile}, halo "
        f"{lat.halo}; latent {'fp16' if args.fp16 else 'fp32'}; {torch.get_num_threads()} threads"
    )
    print(
        f"encode: {dt:.1f} s ({w * h / 1e6 / dt:.3f} Mpx/s); "
        f"latent {lat.nbytes() / 2**20:.0f} MiB; "
        f"input {rgb.nbytes / 2**20:.0f} MiB; peak RSS {peak_rss_mib():.0f} MiB "
        f"(before encoding {base:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
