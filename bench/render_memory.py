"""Peak memory of one render is independent of the image size.

    python bench/render_memory.py [--sizes 256,1024,4096] [--out 512]

For each image size, in a fresh process (EDSR-baseline-LIIF, random weights): render an
``out x out`` view of a 128x128 source region (x4 zoom) at the image centre once (this
encodes the latent tiles it needs, lazily), reset the process's peak-RSS mark
(``/proc/self/clear_refs``), drop the renderer's reusable buffers, render it again and report the
peak RSS above the resident size
before that render, beside the size of the whole image's latent (C x H x W floats) that a
renderer reading the full map would have to touch.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def child(size: int, out: int) -> None:
    sys.path.insert(0, ROOT)
    import numpy as np
    import torch

    from bench.render_throughput import PAPER
    from core.geometry import Region
    from core.models.registry import make
    from core.render.encoding import encode
    from core.render.renderer import render

    torch.manual_seed(0)
    model = make(PAPER).eval()
    rgb = np.random.default_rng(0).random((size, size, 3), dtype=np.float32)
    lat = encode(model, rgb, torch.device("cpu"), tile=128)
    region = Region(size / 2 - 64, size / 2 - 64, 128, 128)
    render(lat, region, out, out)  # encodes the tiles it needs; warms allocator and kernels
    import core.render.renderer
    core.render.renderer._workspace.bufs = {}  # count the decoder buffers in the measured render
    import gc
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = rss_kib("VmRSS")
    render(lat, region, out, out)
    peak = rss_kib("VmHWM")
    print(json.dumps({"size": size, "latent_mib": 64 * size * size * 4 / 2 ** 20,
                      "render_peak_mib": (peak - before) / 1024}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="256,1024,4096")
    p.add_argument("--out", type=int, default=512)
    p.add_argument("--child", type=int)
    args = p.parse_args()
    if args.child:
        child(args.child, args.out)
        return
    print(f"{'image':>10}{'full latent MiB':>17}{'render peak MiB':>17}")
    for s in map(int, args.sizes.split(",")):
        r = subprocess.run([sys.executable, __file__, "--child", str(s), "--out", str(args.out)],
                           capture_output=True, text=True, check=True)
        d = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"{str(s) + '²':>10}{d['latent_mib']:17.1f}{d['render_peak_mib']:17.1f}")


if __name__ == "__main__":
    main()
