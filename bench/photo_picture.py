"""docs/RESULTS.md's picture of a JPEG photo at 6x: bicubic | the clean CPU model | the photo model.

    python bench/photo_picture.py [--image ../shared/samples/chelsea.png] [--quality 70]
        [--region 130,85,80,56] [--scale 6] [-o docs/photo-6x.png]

The photo (CC0, scikit-image's "Chelsea the cat") is first saved as a JPEG the way a phone or
a web page would (Pillow, 4:2:0, ``--quality``); the same region of that JPEG is then
rendered at ``--scale`` by each method through ``core.render.methods.render_by``, the models each
from their own latent, and the three are put side by side with a label strip.
"""
from __future__ import annotations

import argparse
import io
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--image", default=os.path.join(ROOT, "..", "shared", "samples", "chelsea.png"))
    p.add_argument("--quality", type=int, default=70)
    p.add_argument("--region", default="130,85,80,56")
    p.add_argument("--scale", type=float, default=6)
    p.add_argument("-o", "--output", default=os.path.join(ROOT, "docs", "photo-6x.png"))
    args = p.parse_args()
    import numpy as np
    import torch
    from PIL import Image, ImageDraw

    from core.checkpoints import load_model
    from core.geometry import Region
    from core.io.imageio import LoadedImage
    from core.render.encoding import encode
    from core.render.methods import render_by
    from core.zoo import resolve

    buf = io.BytesIO()
    Image.open(args.image).convert("RGB").save(buf, "JPEG", quality=args.quality, subsampling=2)
    rgb = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"),
                     dtype=np.float32) / 255
    image = LoadedImage(rgb)
    region = Region.parse(args.region)
    w, h = round(region.w * args.scale), round(region.h * args.scale)
    panels = [("bicubic", render_by("bicubic", image, region, w, h))]
    for key, label in (("cpu", "CPU model (clean)"), ("photo", "photo model")):
        model = load_model(resolve(key))[0]
        lat = encode(model, rgb, torch.device("cpu"))
        panels.append((label, render_by("liif", image, region, w, h, {"liif": lat})))
    gap, strip = 6, 22
    canvas = Image.new("RGB", (3 * w + 2 * gap, h + strip), (38, 38, 42))
    draw = ImageDraw.Draw(canvas)
    for k, (label, px) in enumerate(panels):
        x = k * (w + gap)
        canvas.paste(Image.fromarray(np.round(px * 255).astype(np.uint8)), (x, strip))
        draw.text((x + 6, 5), f"{label}, JPEG q{args.quality} at {args.scale:g}x",
                  fill=(230, 230, 230))
    canvas.save(args.output)
    print(f"wrote {args.output} ({canvas.width}x{canvas.height})")


if __name__ == "__main__":
    main()
