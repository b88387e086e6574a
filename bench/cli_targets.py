"""The whole-image CLI target of the speed issue, against the official code's query path.

    python bench/cli_targets.py [--image resources/sample.png] [--scale 4] [--checkpoint C]
        [--repeat 3] [--skip-official] [--official-repeat 1]

Every job is a fresh process, timed from start to exit (median of ``--repeat``; of
``--official-repeat`` for the official path, which takes minutes):

* **start-up**: ``python -m core.upscale IMAGE --region 0,0,8,8 --size 8x8 -o tiny.png``:
  imports, model load, image read and a negligible render;
* **CLI**: ``python -m core.upscale IMAGE --scale S -o out.png`` (the issue's command);
  its rate beyond start-up is ``output pixels / (CLI - start-up)``;
* **official query path**: the same job the way the official test code does it, in a
  process of the same kind (same imports, model file and image): encode the whole image in
  one float32 pass, then ``batched_predict``: queries of all output pixels in batches of
  30000 through the model's own query function (for LIIF the official ``query_rgb``,
  ``core.reference.query_official_style``: unfold the latent and ``grid_sample`` per batch;
  for LMF, ``LMF.query_rgb``: its latent MLP over the whole map, then per-query gathers),
  then the PNG. The ratio official / CLI is the speed-up a user sees for the whole job.

Prints each time, the CLI's rate, the ratio, and the largest difference between the two
outputs (8-bit levels).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def official_job(image: str, scale: float, checkpoint: str, out: str) -> None:
    """The official code's way to upscale one image (run in a fresh process)."""
    import numpy as np
    import torch

    from core.checkpoints import load_model
    from core.io.imageio import load_image, save_image
    from core.reference import make_coord, query_official_style

    torch.set_num_threads(os.cpu_count() or 1)
    model = load_model(checkpoint)[0]
    img = load_image(image)
    h, w = round(img.height * scale), round(img.width * scale)
    inp = ((torch.from_numpy(img.rgb).permute(2, 0, 1) - 0.5) / 0.5).unsqueeze(0)
    coord = make_coord((h, w)).unsqueeze(0)
    cell = torch.ones_like(coord)
    cell[..., 0] *= 2 / h
    cell[..., 1] *= 2 / w
    with torch.no_grad():
        feat = model.encode(inp)
        if type(model).__name__ == "LIIF":  # the official query_rgb
            pred = query_official_style(model, feat, coord, cell, bsize=30000)
        else:  # LMF (and the edges model): its own query over batches, as the official
            # batched_predict does
            pred = torch.cat([model.query_rgb(feat, coord[:, q:q + 30000], cell[:, q:q + 30000])
                              for q in range(0, coord.shape[1], 30000)], 1)
    rgb = (pred * 0.5 + 0.5).clamp(0, 1).view(h, w, 3).numpy()
    save_image(out, np.round(rgb * 255).astype(np.uint8))


def timed(cmd, repeat: int):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        ts.append(time.perf_counter() - t0)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.strip()[-500:]}")
    return statistics.median(ts), ts


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--image", default=os.path.join(ROOT, "resources", "sample.png"))
    p.add_argument("--scale", type=float, default=4.0)
    p.add_argument("--checkpoint", help="default: the CLI's default model on this machine")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--skip-official", action="store_true")
    p.add_argument("--official-repeat", type=int, default=1,
                   help="runs of the (slow) official path (default 1)")
    p.add_argument("--official-job", nargs=4, metavar=("IMAGE", "SCALE", "CKPT", "OUT"),
                   help=argparse.SUPPRESS)  # the child process of the official measurement
    args = p.parse_args()
    if args.official_job:
        img, s, ck, out = args.official_job
        official_job(img, float(s), ck, out)
        return

    from PIL import Image

    from core.device import pick_device
    from core.zoo import clean_default
    ckpt = args.checkpoint or str(clean_default(pick_device(None)))
    tmp = tempfile.mkdtemp(prefix="liif-cli-bench-")
    w, h = Image.open(args.image).size
    ow, oh = round(w * args.scale), round(h * args.scale)
    cli = [sys.executable, "-m", "core.upscale", args.image, "--checkpoint", ckpt,
           "--no-progress", "--overwrite"]  # the same output each repeat
    start, ts0 = timed(cli + ["--region", "0,0,8,8", "--size", "8x8", "-o",
                              os.path.join(tmp, "tiny.png")], args.repeat)
    full, ts1 = timed(cli + ["--scale", str(args.scale), "-o", os.path.join(tmp, "out.png")],
                      args.repeat)
    print(f"image {args.image} {w}x{h} -> {ow}x{oh} ({ow * oh / 1e6:.2f} Mpx), model {ckpt}")
    print(f"start-up (8x8 job):   median {start:.2f} s ({', '.join(f'{t:.2f}' for t in ts0)})")
    print(
        f"CLI --scale {args.scale:g}:      median {full:.2f} s "
        f"({', '.join(f'{t:.2f}' for t in ts1)})"
    )
    print(f"rate beyond start-up: {ow * oh / 1e6 / max(full - start, 1e-9):.2f} output Mpx/s")
    if args.skip_official:
        return
    off, ts2 = timed([sys.executable, os.path.abspath(__file__), "--official-job", args.image,
                      str(args.scale), ckpt, os.path.join(tmp, "official.png")],
                     args.official_repeat)
    print(f"official query path:  median {off:.2f} s ({', '.join(f'{t:.2f}' for t in ts2)})")
    print(f"ratio official / CLI: {off / full:.2f}x (whole process)")
    import numpy as np
    a = np.asarray(Image.open(os.path.join(tmp, "out.png")), dtype=np.int16)
    b = np.asarray(Image.open(os.path.join(tmp, "official.png")), dtype=np.int16)
    d = np.abs(a - b)
    print(f"outputs differ by at most {d.max()} levels (mean {d.mean():.4f}); the CLI encodes "
          "in bfloat16 where the CPU has it natively, the official path in float32")


if __name__ == "__main__":
    main()
