"""What a model costs to render a region of a real picture, code features included.

    python bench/render_region.py [--models cpu,edges,paper] [--threads 2] [--repeat 2]

Encodes a 160x160 crop of the bundled sample (rows 100-260, columns 200-360; the coffee
cup's rim, saucer and spoon, so edges and smooth areas both), then times ``render`` of its
80x80 centre at x4 (320x320 output pixels) from that latent, best of ``--repeat``: the
decoder per output pixel plus the code features of the codes it reads. Unlike a random
picture this shows what a content-dependent decoder (``edges``) costs on a photo.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="cpu,edges,paper")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from core import zoo
    from core.geometry import Region
    from core.profile import profile_for
    from core.render.renderer import render

    torch.set_grad_enabled(False)
    torch.set_num_threads(args.threads)
    prof = profile_for("cpu", "float32")
    sample = Image.open(os.path.join(ROOT, "resources", "sample.png")).convert("RGB")
    crop = np.asarray(sample, dtype=np.float32)[100:260, 200:360] / 255
    region, side = Region(40, 40, 80, 80), 320
    print(f"{args.threads} torch threads, float32; an 80x80 region at x4 ({side}x{side})")
    for key in args.models.split(","):
        model = zoo.load(key)
        lat = prof.encode(model, crop)
        t0 = time.perf_counter()
        lat.ensure_region(Region.full(160, 160))
        enc = time.perf_counter() - t0
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            render(lat, region, side, side)
            best = min(best, time.perf_counter() - t0)
        print(f"{key:>6}: encoding the 160x160 crop {enc:.2f} s; render {best:.3f} s = "
              f"{best / side / side * 1e6:.2f} us an output pixel")


if __name__ == "__main__":
    main()
