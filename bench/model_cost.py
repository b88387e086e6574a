"""Cost of a model, counted and timed: multiply-adds per source pixel of encoding, per latent
code (the per-code features: LIIF's P map, LMF's modulations) and per output pixel, and the
measured time of each on this machine, for several model files side by side.

    python bench/model_cost.py [CKPT ...] [--size 256] [--scale 4] [--threads 2] [--repeat 3]
        [--image PATH] [--view 1280x754] [--zoom 4]

Multiply-adds are counted by ``torch.utils.flop_counter`` (convolutions and matrix products,
FLOPs / 2), so they are exactly what the code runs; the per-pixel work is counted on the eager
path (``LIIF_ZOOM_KERNELS=0``), whose arithmetic the native decoder repeats unseen by the
counter, and timed on the default one. Times: the median of ``--repeat`` runs of
encoding a ``size``-square image, computing the features of all its codes, and rendering
it at ``scale`` with the features already cached (the per-pixel work alone). The image is
noise, or the centre ``size``-square crop of ``--image`` (the work of a content-dependent
decoder, the ``edges`` model's, depends on it: on noise every pixel is an edge).

The floor: the machine's best multiply-add rate is measured on what the models spend most of
their work on (a 64 -> 64 channel 3x3 convolution, channels-last, and a 256-wide matrix
product, each on ``--threads`` threads; the better of the two counts), and each model's
multiply-adds for a new view of ``--view`` screen pixels at ``--zoom`` (its source pixels
encoded with no halo, their codes' features, every screen pixel decoded) are divided by it:
no implementation in this arithmetic type does that view faster on this machine. The
viewer's real work is larger (the encoder's halo, latent tiles beyond the view's edges).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.timing import median_time  # noqa: E402


def machine_rate(threads: int, repeat: int) -> dict:
    """Multiply-adds per second of this machine, float32, ``threads`` threads: a 64 -> 64
    3x3 convolution (channels-last, 128x128) and a (16384 x 256) @ (256 x 256) product."""
    import torch

    torch.set_num_threads(threads)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.rand(1, 64, 128, 128).contiguous(memory_format=torch.channels_last)
    a, b = torch.rand(16384, 256), torch.rand(256, 256)
    with torch.no_grad():
        t_conv = median_time(lambda k: conv(x), repeat)
        t_mm = median_time(lambda k: a @ b, repeat)
    return {"conv": 64 * 64 * 9 * 128 * 128 / t_conv, "matmul": 16384 * 256 * 256 / t_mm}


def measure(path: str, size: int, scale: int, repeat: int, image: str = "") -> dict:
    import numpy as np
    from torch.utils.flop_counter import FlopCounterMode

    from core.checkpoints import load_model
    from core.geometry import Box, Region
    from core.render.encoding import encode
    from core.render.renderer import render

    model, _, _ = load_model(path)
    if image:
        from PIL import Image

        im = Image.open(image).convert("RGB")
        if min(im.size) < size:
            raise SystemExit(f"{image} is smaller than --size {size}")
        x0, y0 = (im.width - size) // 2, (im.height - size) // 2
        rgb = np.asarray(im.crop((x0, y0, x0 + size, y0 + size)), dtype=np.float32) / 255
    else:
        rgb = np.random.default_rng(0).random((size, size, 3), dtype=np.float32)
    out = size * scale

    def run_encode():
        lat = encode(model, rgb, "cpu", tile=size)
        lat.encode_all()
        return lat

    def run_features(lat):
        lat._features.clear()
        return lat.code_features(Box.whole(size, size))

    with FlopCounterMode(display=False) as fc:
        lat = run_encode()
    enc_mac = fc.get_total_flops() / 2 / size ** 2
    with FlopCounterMode(display=False) as fc:
        run_features(lat)
    feat_mac = fc.get_total_flops() / 2 / size ** 2
    render(lat, Region.full(size, size), out, out)  # features cached from here on
    # counted on the eager path: the counter sees torch's operations only, not the native
    # decoder (core.kernels), which does the same multiply-adds
    os.environ["LIIF_ZOOM_KERNELS"] = "0"
    try:
        with FlopCounterMode(display=False) as fc:
            render(lat, Region.full(size, size), out, out)
    finally:
        os.environ.pop("LIIF_ZOOM_KERNELS")
    pix_mac = fc.get_total_flops() / 2 / out ** 2

    def timed(fn):
        return median_time(lambda k: fn(), repeat, warmup=False)

    t_enc = timed(run_encode)
    t_feat = timed(lambda: run_features(lat))
    render(lat, Region.full(size, size), out, out)
    t_pix = timed(lambda: render(lat, Region.full(size, size), out, out))
    return {"model": os.path.basename(path), "encode_mac_per_src_px": enc_mac,
            "features_mac_per_code": feat_mac, "render_mac_per_out_px": pix_mac,
            "encode_us_per_src_px": 1e6 * t_enc / size ** 2,
            "features_us_per_code": 1e6 * t_feat / size ** 2,
            "render_us_per_out_px": 1e6 * t_pix / out ** 2}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("checkpoints", nargs="*")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--image", default="", help="measure on this picture's centre crop "
                   "(default: noise)")
    p.add_argument("--view", default="1280x754", help="screen pixels of the new view")
    p.add_argument("--zoom", type=float, default=4.0)
    args = p.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    from core.zoo import bundled
    paths = args.checkpoints or [str(p) for p in bundled().values()]
    rows = [measure(c, args.size, args.scale, args.repeat, args.image) for c in paths]
    print(f"{args.size}x{args.size} source ({args.image or 'noise'}), x{args.scale}, "
          f"{args.threads} threads, torch {torch.__version__}")
    s2 = args.scale ** 2
    print(f"| model | encode MAC/src px | features MAC/code | render MAC/out px | decoder at "
          f"x{args.scale} MAC/out px | all at x{args.scale} MAC/out px | encode µs/src px | "
          f"features µs/code | render µs/out px |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        # the decoder: per-pixel work plus the codes' features (one code per s^2 pixels);
        # all: the encoding too
        dec = r["render_mac_per_out_px"] + r["features_mac_per_code"] / s2
        total = dec + r["encode_mac_per_src_px"] / s2
        print(
            f"| {r['model']} | {r['encode_mac_per_src_px'] / 1e3:.0f} k | "
            f"{r['features_mac_per_code'] / 1e3:.0f} k | "
            f"{r['render_mac_per_out_px'] / 1e3:.1f} k | "
            f"{dec / 1e3:.1f} k | {total / 1e3:.1f} k | {r['encode_us_per_src_px']:.2f} | "
            f"{r['features_us_per_code']:.2f} | {r['render_us_per_out_px']:.3f} |"
        )
    rate = machine_rate(args.threads, args.repeat)
    best = max(rate.values())
    w, h = (int(v) for v in args.view.lower().split("x"))
    out_px, src_px = w * h, w * h / args.zoom ** 2
    print(f"\nThis machine, float32, {args.threads} threads: 64->64 3x3 convolution "
          f"{rate['conv'] / 1e9:.1f} G multiply-adds/s, 256-wide matrix product "
          f"{rate['matmul'] / 1e9:.1f} G/s. The floor of a new {w}x{h} view at x{args.zoom:g} "
          f"({src_px / 1e3:.0f} k source pixels, no halo) at {best / 1e9:.1f} G/s:")
    print("| model | encoder | code features | per pixel | floor | encoder's measured rate |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        enc = src_px * r["encode_mac_per_src_px"] / best
        feat = src_px * r["features_mac_per_code"] / best
        pix = out_px * r["render_mac_per_out_px"] / best
        eff = r["encode_mac_per_src_px"] / (r["encode_us_per_src_px"] * 1e-6) / 1e9
        print(f"| {r['model']} | {1e3 * enc:.0f} ms | {1e3 * feat:.0f} ms | {1e3 * pix:.0f} ms | "
              f"{1e3 * (enc + feat + pix):.0f} ms | {eff:.1f} G/s |")

if __name__ == "__main__":
    main()
