"""The CPU-pixels issue's design study, timed: where a CPU model's time goes for each
candidate design, on this machine.

    python bench/cpu_design.py [--size 192] [--scale 4] [--threads 2] [--repeat 3]

Encoders: EDSR-baseline with 6, 10, 12 and 16 residual blocks (64 channels; 16 is the paper
model's), timed in float32 and under bfloat16 autocast (what ``precision: auto`` picks where the
CPU multiplies bfloat16 natively), in microseconds per source pixel. Decoders, through the app's
own render path (``core.render.renderer``, code features cached, the native LMF kernel where it
builds): the paper model's LIIF MLP (4 x 256), LMF with a render MLP of width 16 (today's) and
32 (hypothesis 2's wider decoder), in microseconds per output pixel at ``--scale``. Weights are
random (timing does not depend on them). Prints one Markdown table.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.timing import median_time  # noqa: E402


def edsr(n: int) -> dict:
    return {"name": "edsr-baseline", "args": {"n_resblocks": n, "n_feats": 64,
                                              "no_upsampling": True}}


def lmf(d: int, n: int = 16) -> dict:
    return {"name": "lmf", "args": {"encoder_spec": edsr(n), "hyper_hidden": [256],
                                    "render_width": d, "render_layers": 4, "skip": True}}


LIIF = {"name": "liif", "args": {"encoder_spec": edsr(16), "imnet_spec": {
    "name": "mlp", "args": {"out_dim": 3, "hidden_list": [256, 256, 256, 256]}}}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=192)
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    import numpy as np
    import torch

    from core.geometry import Region
    from core.models.registry import make
    from core.render.encoding import encode
    from core.render.renderer import render

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    s = args.size
    rows = ["| part | float32 | bfloat16 autocast |", "|---|---|---|"]
    x = torch.rand(1, 3, s, s).contiguous(memory_format=torch.channels_last)
    for n in (6, 10, 12, 16):
        enc = make(edsr(n)).eval().to(memory_format=torch.channels_last)
        got = []
        for dt in (torch.float32, torch.bfloat16):
            def run(k, dt=dt):
                with torch.no_grad(), torch.autocast("cpu", dtype=dt,
                                                     enabled=dt is torch.bfloat16):
                    enc(x)
            got.append(1e6 * median_time(run, args.repeat) / s ** 2)
        rows.append(f"| encoder, {n} blocks (us / source px) | {got[0]:.2f} | {got[1]:.2f} |")
        print(rows[-1], flush=True)
    rgb = np.random.default_rng(0).random((s // 2, s // 2, 3), dtype=np.float32)
    out = (s // 2) * args.scale
    for name, spec in (("LIIF 4x256 (paper)", LIIF), ("LMF d=16 (CPU model)", lmf(16)),
                       ("LMF d=32 (wider)", lmf(32))):
        model = make(spec).eval()
        lat = encode(model, rgb, "cpu")
        lat.encode_all()
        region = Region.full(s // 2, s // 2)
        render(lat, region, out, out)  # code features cached from here on
        t = median_time(lambda k: render(lat, region, out, out), args.repeat)
        rows.append(f"| decoder {name} at x{args.scale} (us / output px) | "
                    f"{1e6 * t / out ** 2:.3f} | - |")
        print(rows[-1], flush=True)
    print("\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
