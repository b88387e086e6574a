"""Upscale (or render any region of) an image with LIIF or bicubic.

    python -m core.upscale INPUT (--scale S | --size WxH) [--region X,Y,W,H]
        [--checkpoint C] [--device D] [--method liif|bicubic] [--quality Q] -o OUTPUT

The region is in source pixels (fractional allowed; default the whole image); ``--scale``
multiplies its size, ``--size`` sets the output size exactly. Output format by extension:
PNG, JPEG, TIFF, WebP, BMP. The default checkpoint is the bundled model for the device (one
line on stderr names it). Every number is checked (finite, in range); the region must overlap
the image and may reach at most the image's own size beyond it, that part rendered with the
image's border continued outwards. On bad input the command prints one line ``error: ...`` and
exits with status 2; Ctrl+C, SIGTERM and SIGHUP stop it with one line and status 130/143/129.
No partial output file is ever left; a new file gets the umask's permissions, an overwritten
one keeps its own.
"""
from __future__ import annotations

import math
import sys
import time

from core.cli import ArgumentParser
from core.atomic import Terminated, terminate_on_signals
from core.checkpoints import CheckpointError, load_model
from core.defaults import default_checkpoint, describe_model
from core.device import pick_device
from core.encoding import encode
from core.export import MAX_OUTPUT_PIXELS, MAX_OUTPUT_SIDE, METHODS, check_request, export
from core.geometry import Region
from core.imageio import ImageError, load_image


def parse_size(text: str):
    try:
        w, h = text.lower().split("x")
        w, h = int(w), int(h)
    except ValueError:
        raise ValueError(f"--size must be WxH (integers), got {text!r}") from None
    if w < 1 or h < 1:
        raise ValueError(f"--size must be positive, got {text!r}")
    return w, h


def output_size(region: Region, scale: float) -> tuple:
    """``(out_w, out_h)`` = the region's size times ``scale`` (finite, positive, and within
    :data:`core.export.MAX_OUTPUT_PIXELS`), at least 1 x 1."""
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"--scale must be a finite positive number, got {scale}")
    w, h = region.w * scale, region.h * scale
    if not (w * h <= MAX_OUTPUT_PIXELS and max(w, h) <= MAX_OUTPUT_SIDE):
        raise ValueError(f"--scale {scale:g} makes a {w:.0f}x{h:.0f} output, above the limit of "
                         f"{MAX_OUTPUT_SIDE} px a side and {MAX_OUTPUT_PIXELS / 1e9:.1f} Gpx")
    return max(1, round(w)), max(1, round(h))


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m core.upscale",
                                description="Render a region of an image at any resolution.")
    p.add_argument("input")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--scale", type=float, help="output size = region size x SCALE")
    g.add_argument("--size", help="output size WxH in pixels")
    p.add_argument("--region", help="X,Y,W,H in source pixels (default: the whole image)")
    p.add_argument("--checkpoint", default=None,
                   help="model file (default: the bundled model for the device: the CPU model "
                        "on a CPU, the paper model on a GPU)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p.add_argument("--method", choices=METHODS, default="liif")
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (1-100)")
    p.add_argument("--fp16-latent", action="store_true", help="store the latent in float16")
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args(argv)
    try:
        with terminate_on_signals():
            run(args)
    except (ImageError, CheckpointError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; no output written", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"error: {exc} received; no output written", file=sys.stderr)
        return 128 + exc.signum
    return 0


def run(args) -> None:
    import torch

    if not 1 <= args.quality <= 100:
        raise ValueError(f"--quality must be 1-100, got {args.quality}")
    image = load_image(args.input)
    region = Region.parse(args.region) if args.region else Region.full(image.width, image.height)
    out_w, out_h = parse_size(args.size) if args.size else output_size(region, args.scale)
    check_request(region, out_w, out_h, image.width, image.height)
    latent = None
    if args.method == "liif":
        device = pick_device(args.device)
        ckpt = args.checkpoint or default_checkpoint(device)
        model, _, _ = load_model(ckpt, device)
        print(describe_model(ckpt, model, device), file=sys.stderr)
        latent = encode(model, image.rgb, device,
                        dtype=torch.float16 if args.fp16_latent else torch.float32)
    bar = None
    if out_w * out_h >= 4_000_000:
        from tqdm import tqdm
        bar = tqdm(total=out_h, unit="row", desc="rendering", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.update(done - bar.n)

    t0 = time.perf_counter()
    try:
        export(image, region, out_w, out_h, args.output, args.method, latent,
               quality=args.quality, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if bar is not None:
        print(f"wrote {args.output} ({out_w}x{out_h}) in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
