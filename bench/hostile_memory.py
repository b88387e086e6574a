"""Peak memory of the upscale CLI on the odd and hostile inputs of the hostile-inputs issue,
each in a fresh process (the child's ``getrusage`` peak, as bench/memory_scale.py reads it).

    python bench/hostile_memory.py [--keep DIR]

Cases: a 6000x40 image at x2 by nearest and by bicubic (bicubic used dense resampling
matrices, 1.09 GB); a 50000x2 RGBA strip at x2 by bicubic (asked 40 GB); an animated JPEG XL of
300 frames of 512x512 (35 KB; every frame was decoded, 1.1 GB); a 34-byte WebP claiming
16383x16383; a 1 MB torch archive whose deflated tensor unpacks to 1 GB, as --checkpoint.
Prints one line per case and a Markdown table: exit status, peak MiB, the last stderr line.
"""
from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.memory_scale import WRAP  # noqa: E402


def make_cases(d: str) -> dict:
    import imagecodecs
    import numpy as np
    import torch
    from PIL import Image

    from tests.test_fuzz import _webp_claiming
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((40, 6000, 3)) * 255).astype(np.uint8)).save(f"{d}/wide.png")
    Image.fromarray((rng.random((2, 50000, 4)) * 255).astype(np.uint8), "RGBA").save(
        f"{d}/strip.png")
    frames = np.zeros((300, 512, 512, 3), np.uint8)
    frames[..., 0] = (np.arange(300) % 255)[:, None, None]
    with open(f"{d}/anim.jxl", "wb") as f:
        f.write(imagecodecs.jpegxl_encode(frames, lossless=True, photometric="rgb", effort=1))
    with open(f"{d}/claim.webp", "wb") as f:
        f.write(_webp_claiming(16383, 16383))
    Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(f"{d}/small.png")
    buf = io.BytesIO()
    torch.save({"model": {"name": "mlp", "args": {"in_dim": 2, "out_dim": 2, "hidden_list": []},
                          "sd": {"layers.0.weight": torch.zeros(256, 1024, 1024)}}}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(f"{d}/deflated.pth", "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            z.writestr(info.filename, src.read(info.filename))
    cli = [sys.executable, "-m", "core.upscale", "--no-progress", "--overwrite"]
    return {
        "6000x40 x2 nearest": cli + [f"{d}/wide.png", "--method", "nearest", "--scale", "2",
                                     "-o", f"{d}/o1.png"],
        "6000x40 x2 bicubic": cli + [f"{d}/wide.png", "--method", "bicubic", "--scale", "2",
                                     "-o", f"{d}/o2.png"],
        "50000x2 RGBA x2 bicubic": cli + [f"{d}/strip.png", "--method", "bicubic", "--scale",
                                          "2", "-o", f"{d}/o3.png"],
        "animated JPEG XL (300 frames)": cli + [f"{d}/anim.jxl", "--method", "bicubic",
                                                "--scale", "1", "-o", f"{d}/o4.png"],
        "34-byte WebP claiming 268 Mpx": cli + [f"{d}/claim.webp", "--method", "bicubic",
                                                "--scale", "1", "-o", f"{d}/o5.png"],
        "1 MB .pth unpacking to 1 GB": cli + [f"{d}/small.png", "--checkpoint",
                                              f"{d}/deflated.pth", "--scale", "2",
                                              "-o", f"{d}/o6.png"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--keep", help="folder for the inputs (default: a temporary one)")
    args = p.parse_args()
    d = args.keep or tempfile.mkdtemp()
    os.makedirs(d, exist_ok=True)
    rows = []
    for name, cmd in make_cases(d).items():
        r = subprocess.run([sys.executable, "-c", WRAP, *cmd], capture_output=True, text=True,
                           cwd=ROOT)
        lines = r.stderr.strip().splitlines()
        peak = int(lines[-1].split()[1]) / 1024
        said = lines[-2] if len(lines) > 1 else ""
        print(f"{name}: status {r.returncode}, peak {peak:.0f} MiB; {said}", flush=True)
        rows.append(f"| {name} | {r.returncode} | {peak:.0f} | {said[:110]} |")
    print("\n| case | status | peak MiB | last line on stderr |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
