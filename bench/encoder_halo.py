"""What a smaller encoder halo would cost in pixels: renders from latents encoded in small
blocks with a halo of ``h`` input pixels, against the exact halo (the encoder's receptive
radius, what :class:`core.render.encoding.LatentImage` uses).

    python bench/encoder_halo.py [--checkpoint edges] [--image resources/sample.png]
        [--crop 384x256] [--block 32] [--scale 3] [--halos 6,8,10,12,14,16,20,24]
        [--time 16] [--latent 352x224] [--pieces 2] [--repeat 3]

The crop's latent is encoded in ``--block``-pixel blocks (many block seams) with each halo and
rendered at ``--scale``; printed per halo: the largest difference from the exact render in
grey levels (uint8), the share of pixels that differ by 1 or more and by 2 or more, and the
PSNR against the exact render. The exact halo with the same blocks is the first row (what
floating-point rounding alone gives).

With ``--time H``: the encoder's time (float32, the process's threads) for the latent of a
new view, ``--latent`` pixels (352x224: the 308 latent tiles of 16 px that a new 4x view of
1280x754 needs in ``bench/cpu_targets.py``) cut into ``--pieces`` side by side as the viewer's
encoding jobs cut it, each piece with the exact halo and with halo ``H`` (no image border
near: the worst case); the median of ``--repeat`` after a warm-up (:mod:`bench.timing`).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.timing import median_time  # noqa: E402


def main() -> None:
    from PIL import Image

    from core import zoo
    from core.checkpoints import load_model
    from core.geometry import Region
    from core.render.encoding import LatentImage
    from core.render.renderer import render

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default="edges")
    p.add_argument("--image", default=os.path.join(ROOT, "resources", "sample.png"))
    p.add_argument("--crop", default="384x256")
    p.add_argument("--block", type=int, default=32)
    p.add_argument("--scale", type=int, default=3)
    p.add_argument("--halos", default="6,8,10,12,14,16,20,24")
    p.add_argument("--time", type=int, default=None, metavar="H")
    p.add_argument("--latent", default="352x224")
    p.add_argument("--pieces", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    cw, ch = (int(v) for v in args.crop.split("x"))
    img = np.asarray(Image.open(args.image).convert("RGB"))[:ch, :cw]
    h, w = img.shape[:2]
    model = load_model(str(zoo.resolve(args.checkpoint)), "cpu")[0]
    radius = int(model.receptive_radius)
    full = Region.full(w, h)

    def rendered(halo: int, block: int) -> np.ndarray:
        lat = LatentImage(model, img, "cpu", tile=16, max_block=block)
        lat.halo = halo
        return np.round(np.clip(render(lat, full, w * args.scale, h * args.scale), 0, 1) * 255)

    if args.time is not None:
        time_pieces(model, args)
        return
    exact = rendered(radius, 4096)  # one block: no seams
    print(f"{args.checkpoint} (receptive radius {radius}), {w}x{h} crop of "
          f"{os.path.basename(args.image)} at x{args.scale}, {args.block}-px blocks")
    for halo in [radius] + [int(v) for v in args.halos.split(",") if int(v) < radius]:
        d = np.abs(rendered(halo, args.block) - exact)
        mse = float((d ** 2).mean())
        psnr = 10 * np.log10(255 ** 2 / mse) if mse else float("inf")
        print(f"halo {halo:2d}: max {d.max():.0f} grey levels, >= 1: {(d >= 1).mean():.1e}, "
              f">= 2: {(d >= 2).mean():.1e}, PSNR against exact {psnr:.1f} dB")


def time_pieces(model, args) -> None:
    """``--time``: the encoder on the view's pieces, exact halo against ``args.time``."""
    lw, lh = (int(v) for v in args.latent.split("x"))
    pw = -(-lw // args.pieces)
    radius = int(model.receptive_radius)
    print(f"{args.checkpoint}: encoder on a {lw}x{lh} latent in {args.pieces} pieces, "
          f"{torch.get_num_threads()} threads")
    for halo in (radius, args.time):
        shape = (1, 3, lh + 2 * halo, pw + 2 * halo)
        x = torch.rand(shape) * 2 - 1

        def pieces(_k: int) -> None:
            with torch.no_grad():
                for _ in range(args.pieces):
                    model.encode(x)
        t = median_time(pieces, args.repeat)
        px = args.pieces * shape[2] * shape[3]
        print(f"halo {halo:2d}: {px} input px ({px / (lw * lh):.2f}x the latent's), "
              f"{t * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
