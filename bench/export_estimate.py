"""How close the export dialog's estimates are to what an export really takes (issue 29).

    python bench/export_estimate.py [--image PHOTO] [--scale 2] [--skip-big] [--skip-small]
        [--models cpu,paper,edges]

1. **File size and time on a photo and a flat graphic**: a 600 x 400 synthetic photo (smooth
   waves and sensor-like noise) and a flat graphic (bars and text) exported x4 by bicubic to
   every writable format, :func:`core.export.estimate_bytes` (what the dialog shows) against
   the file; then exported x4 to PNG by each of ``--models`` from a latent not yet encoded,
   :func:`core.rates.export_seconds` (the dialog's time) against the time taken.
2. **A 13-Mpx whole-image export**: the time the CLI's estimate gives
   (:func:`core.upscale.job_seconds`: :mod:`core.rates`' measured costs, every source pixel
   still to encode, the model :func:`core.zoo.choose` picks) and the size the dialog
   estimates, against the CLI doing the same job
   (``python -m core.upscale PHOTO --scale S -o out.png``, timed from start to exit). Without
   ``--image`` the photo is ../shared/samples/flower.png enlarged bicubically to 4416 x 2944
   (13.0 Mpx) and saved as a JPEG (quality 92).

Prints one table row per case: estimate, real, ratio.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core import zoo  # noqa: E402
from core.export import estimate_bytes, export  # noqa: E402
from core.geometry import Region  # noqa: E402
from core.io import formats
from core.io.imageio import load_image  # noqa: E402
from core.profile import profile_for  # noqa: E402
from core.rates import export_seconds  # noqa: E402
from core.upscale import job_seconds  # noqa: E402


def small_cases(folder: str, models=("cpu", "paper")) -> None:
    from PIL import Image, ImageDraw
    g = Image.new("RGB", (600, 400), (240, 240, 235))
    draw = ImageDraw.Draw(g)
    for k in range(8):
        draw.rectangle([20 + 70 * k, 30, 70 + 70 * k, 350], fill=(30 * k, 100, 200 - 20 * k))
    draw.text((100, 360), "a flat graphic with some text", fill=(0, 0, 0))
    g.save(os.path.join(folder, "flat.png"))
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:400, 0:600]
    photo = np.stack([128 + 60 * np.sin(xx / (17 + 5 * c) + yy / 23) for c in range(3)], -1)
    photo = np.clip(photo + rng.normal(0, 6, photo.shape), 0, 255).astype(np.uint8)
    Image.fromarray(photo).save(os.path.join(folder, "photo.png"))
    print("| image | format | estimate (bytes) | file (bytes) | ratio |")
    print("|---|---|---|---|---|")
    for name in ("photo", "flat"):
        img = load_image(os.path.join(folder, f"{name}.png"))
        for f in formats.FORMATS:
            if not f.writable:
                continue
            ext = f.exts[0]
            est = estimate_bytes(img, Region.full(600, 400), 2400, 1600, ext, quality=90)
            out = os.path.join(folder, f"o-{name}{ext}")
            export(img, Region.full(600, 400), 2400, 1600, out, "bicubic", quality=90)
            real = os.path.getsize(out)
            print(f"| {name} x4 | {f.name} | {est} | {real} | {est / real:.2f} |", flush=True)
    print("\n| image | model | time estimate (s) | real (s) | ratio |")
    print("|---|---|---|---|---|")
    prof = profile_for("cpu")
    for name in ("photo", "flat"):
        img = load_image(os.path.join(folder, f"{name}.png"))
        for key in models:
            model = zoo.load(key)
            est = export_seconds(model, prof, 2400 * 1600, 600 * 400, 600 * 400)
            lat = prof.encode(model, img.pixels)
            t0 = time.perf_counter()
            export(img, Region.full(600, 400), 2400, 1600, os.path.join(folder, "t.png"), "liif",
                   lat)
            t = time.perf_counter() - t0
            print(f"| {name} x4 | {key} | {est:.1f} | {t:.1f} | {est / t:.2f} |", flush=True)


def big_case(folder: str, image: str, scale: float) -> None:
    if image is None:
        from PIL import Image
        src = os.path.join(os.path.dirname(ROOT), "shared", "samples", "flower.png")
        im = Image.open(src).convert("RGB").resize((4416, 2944), Image.BICUBIC)
        image = os.path.join(folder, "photo13.jpg")
        im.save(image, quality=92)
    img = load_image(image)
    choice = zoo.choose("cpu", image)
    model = zoo.load(choice.path)
    w, h = img.width, img.height
    ow, oh = round(w * scale), round(h * scale)
    t_est = job_seconds(model, profile_for("cpu"), w, h, Region.full(w, h), ow, oh)
    b_est = estimate_bytes(img, Region.full(w, h), ow, oh, ".png")
    out = os.path.join(folder, "out.png")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "core.upscale", image, "--scale", str(scale),
                        "-o", out, "--no-progress"], cwd=ROOT, capture_output=True, text=True)
    t = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"the CLI failed: {r.stderr.strip().splitlines()[-1]}")
    real = os.path.getsize(out)
    name = zoo.short_name(choice.path)
    print(f"\n{w} x {h} ({w * h / 1e6:.1f} Mpx) x{scale:g} to PNG with {name}")
    print("| quantity | estimate | real | ratio |")
    print("|---|---|---|---|")
    print(f"| time (s) | {t_est:.0f} | {t:.0f} | {t_est / t:.2f} |")
    print(f"| size (MB) | {b_est / 1e6:.1f} | {real / 1e6:.1f} | {b_est / real:.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", help="the photo of the big case (default: flower.png, 13 Mpx)")
    p.add_argument("--scale", type=float, default=2.0)
    p.add_argument("--skip-big", action="store_true", help="only the small cases")
    p.add_argument("--skip-small", action="store_true", help="only the big case")
    p.add_argument("--models", default="cpu,paper",
                   help="bundled models timed in the small cases (default: %(default)s)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="export-estimate-") as d:
        if not a.skip_small:
            small_cases(d, a.models.split(","))
        if not a.skip_big:
            big_case(d, a.image, a.scale)


if __name__ == "__main__":
    main()
