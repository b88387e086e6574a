"""Peak memory against image size: the upscale CLI (``--scale 1.1``, the whole image) and the
viewer holding the image open in the fit view while background encoding runs.

    python bench/memory_scale.py [--mpx 20,60] [--cli] [--cli-rows N] [--viewer SECONDS]
                                 [--keep DIR]

Each size is a synthetic photo-like JPEG (smooth colour fields, edges and noise; q90), made
once in ``--keep`` (default a temporary folder). Each measurement runs in a fresh process;
its peak resident memory is read from the kernel (``getrusage`` of the child, in a wrapper
process of its own, so that one measurement never inherits another's peak). Prints one line
per measurement and a Markdown table.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

#: runs a command and prints its own peak RSS (KiB) after it, on the last line of stderr
WRAP = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "print('PEAK', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
        "sys.exit(r.returncode)")

VIEWER = r'''
import sys, time
from PySide6 import QtWidgets
from viewer.app import build_window, parse_args, process_profile
app = QtWidgets.QApplication([])
# above 100 Mpx the viewer asks before opening: the person says yes
QtWidgets.QMessageBox.question = lambda *a, **k: QtWidgets.QMessageBox.StandardButton.Yes
args = parse_args([sys.argv[1], "--device", "cpu"])
win = build_window(args, profile=process_profile("cpu"))
win.show()
end = time.time() + float(sys.argv[2])
while time.time() < end:
    app.processEvents()
    time.sleep(0.05)
lat = win.session.latent
print("encoded", lat.n_encoded, "of", lat.n_tiles, "tiles;", lat.nbytes() >> 20, "MiB kept",
      file=sys.stderr)
win.close()
'''


def make_image(mpx: float, folder: str) -> str:
    import numpy as np
    from PIL import Image
    path = os.path.join(folder, f"synthetic-{mpx:g}mpx.jpg")
    if os.path.exists(path):
        return path
    w = int((mpx * 1e6 * 4 / 3) ** 0.5)
    h = int(mpx * 1e6 / w)
    rng = np.random.default_rng(0)
    rows = []
    for y0 in range(0, h, 512):  # in bands: the generator never holds float copies of it all
        yy, xx = np.mgrid[y0:min(h, y0 + 512), 0:w].astype(np.float32)
        band = np.stack(
            [128 + 90 * np.sin(xx / (37 + 11 * c) + yy / (53 + 7 * c)) for c in range(3)], -1
        )
        band += rng.normal(0, 6, band.shape).astype(np.float32)
        band[:, (w // 3):(w // 3 + 4)] = 20
        rows.append(np.clip(band, 0, 255).astype(np.uint8))
    Image.fromarray(np.concatenate(rows)).save(path, quality=90)
    return path


def measure(cmd, env) -> tuple:
    t = time.time()
    r = subprocess.run([sys.executable, "-c", WRAP, *cmd], capture_output=True, text=True,
                       cwd=ROOT, env=env)
    peak = [l for l in r.stderr.splitlines() if l.startswith("PEAK ")]
    info = [l for l in r.stderr.splitlines() if l.startswith("encoded ")]
    if r.returncode != 0 or not peak:
        raise SystemExit(f"failed ({r.returncode}): {r.stderr[-800:]}")
    return int(peak[-1].split()[1]) / 2 ** 20, time.time() - t, (info[-1] if info else "")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mpx", default="20,60")
    p.add_argument("--cli", action="store_true", help="measure the upscale CLI")
    p.add_argument("--cli-rows", type=int, default=0,
                   help="the CLI renders only the top N source rows, at the full width (its "
                        "bands, latent and decoded image are those of the whole image; the "
                        "time is N / height of the whole job's)")
    p.add_argument("--viewer", type=float, default=0, help="seconds the viewer stays open")
    p.add_argument("--keep", default=None, help="folder for the synthetic images")
    args = p.parse_args()
    folder = args.keep or tempfile.mkdtemp(prefix="liif-mem-")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    rows = []
    for mpx in [float(m) for m in args.mpx.split(",")]:
        img = make_image(mpx, folder)
        if args.cli:
            out = os.path.join(folder, "out.png")
            region, what = [], "core.upscale --scale 1.1"
            if args.cli_rows:
                from core.io.imageio import image_size  # (Pillow's own check refuses 200 Mpx)
                w = image_size(img)[0]
                region = [f"--region=0,0,{w},{args.cli_rows}"]
                what += f" --region 0,0,{w},{args.cli_rows} (full width)"
            gib, secs, _ = measure([sys.executable, "-m", "core.upscale", img, "--scale", "1.1",
                                    *region, "-o", out, "--overwrite", "--no-progress"], env)
            os.unlink(out)
            rows.append((f"{mpx:g}", what, gib, secs, ""))
            print(rows[-1], flush=True)
        if args.viewer:
            gib, secs, info = measure([sys.executable, "-c", VIEWER, img, str(args.viewer)], env)
            rows.append((f"{mpx:g}", f"viewer, fit view, {args.viewer:g} s open", gib, secs, info))
            print(rows[-1], flush=True)
    print("\n| image (Mpx) | what | peak RSS (GiB) | wall (s) | note |\n|---|---|---|---|---|")
    for mpx, what, gib, secs, info in rows:
        print(f"| {mpx} | {what} | {gib:.2f} | {secs:.0f} | {info} |")


if __name__ == "__main__":
    main()
