"""The interactive targets of the fast-model issue, measured on this machine.

    QT_QPA_PLATFORM=offscreen python bench/cpu_targets.py [--photo P | --mpx 12]
        [--checkpoint C] [--window 1280x800] [--zoom 4] [--repeat 3] [--skip-cli]
        [--workers N] [--tile T] [--latent-tile L] [--warm]

1. Viewer: a ``--window`` main window (single pane) on a ``--mpx`` megapixel photo. The image
   is already open and viewed at ``--zoom`` elsewhere in the photo (top-left quarter; that
   view is rendered and settled first, so model, threads and caches are warm). Then the view
   moves to ``--zoom`` at a spot not seen before (one of ``--repeat`` spots, none of whose
   latent tiles are encoded), and the render scheduler
   times the bicubic preview, the coarse LIIF pass and the full LIIF pass from that step
   to the moment the last tile of each pass is ready. The full pass includes the encoding
   of the newly visible latent tiles (background encoding is off, so nothing is encoded
   ahead of the step). The spots lie on a grid over the photo, far enough apart that no two
   views share a latent tile (the "latent tiles encoded" column shows it: the same count
   every step).
2. CLI: ``python -m core.upscale PHOTO --region X,Y,320,200 --size 1280x800`` against the
   same command at ``--size 16x10``, each a fresh process, wall-clock; the difference is
   what the larger render costs.

The photo is ``--photo``, or ``../shared/samples/flower.png`` resized (bicubic) to
``--mpx`` megapixels and written to a temporary folder (content matters little for
timing; the size does).
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def make_photo(mpx: float) -> str:
    from PIL import Image
    src = os.path.join(ROOT, "..", "shared", "samples", "flower.png")
    im = Image.open(src).convert("RGB")
    f = (mpx * 1e6 / (im.width * im.height)) ** 0.5
    size = (round(im.width * f), round(im.height * f))
    path = os.path.join(tempfile.gettempdir(), f"liif-zoom-photo-{size[0]}x{size[1]}.png")
    if not os.path.exists(path):
        im.resize(size, Image.BICUBIC).save(path, compress_level=1)
    return path


def spots(n: int):
    """``n`` view centres (fractions of the photo's width and height) on a grid of cells
    far enough apart that no two 4x views share a latent tile (nor the warm-up view at
    (0.25, 0.25), which sits between cells), so every step shows an area never seen."""
    cols = max(2, math.ceil(math.sqrt(n * 1.5)))
    rows = max(2, math.ceil(n / cols))
    out = []
    for r in range(rows):
        order = range(cols) if r % 2 == 0 else reversed(range(cols))
        out += [((c + 0.5) / cols, (rows - r - 0.5) / rows) for c in order]
    return out[:n]


def viewer_steps(photo: str, checkpoint, window: str, zoom: float, repeat: int,
                 workers, tile, warm=False, latent_tile=None):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from dataclasses import replace

    import torch
    from PySide6 import QtCore, QtWidgets

    from tools.screenshots import settle
    from viewer.app import build_window, parse_args, process_profile

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    settings = QtCore.QSettings(os.path.join(tempfile.gettempdir(), "liif-zoom-bench.ini"),
                                QtCore.QSettings.Format.IniFormat)
    prof = process_profile(None, workers)  # as main.py does, unless --workers
    if tile:
        prof = replace(prof, view_tile=tile)
    if latent_tile:
        prof = replace(prof, latent_tile=latent_tile)
    win = build_window(parse_args([photo] + (["--checkpoint", checkpoint] if checkpoint else [])),
                       settings=settings, profile=prof)
    win.scheduler.background_encoding = False
    w, h = map(int, window.split("x"))
    win.resize(w, h)
    win.show()
    if win.session.mode != "single":
        win.session.set_mode("single")
    settle(app, win)
    st = win.session.state
    print(f"photo {st.image_w}x{st.image_h} ({st.image_w * st.image_h / 1e6:.1f} Mpx), window "
          f"{w}x{h}, pane {st.view_w}x{st.view_h} device px, model {win.session.model_name}, "
          f"{prof.workers} LIIF worker(s) x {torch.get_num_threads()} torch thread(s), "
          f"{prof.describe()}, screen tiles "
          f"{win.scheduler.tile} px, latent tiles {prof.latent_tile} px")

    def step(cx: float, cy: float):
        st.cx, st.cy, st.zoom = cx, cy, zoom
        before = win.session.latent.n_encoded
        win.session.view_changed()
        settle(app, win)
        t = win.scheduler.timer
        return t.preview, t.coarse, t.full, win.session.latent.n_encoded - before

    step(st.image_w * 0.25, st.image_h * 0.25)  # the view the user had open: warm-up
    if warm:  # the background encoder has covered the whole photo meanwhile
        t0 = time.perf_counter()
        win.session.latent.encode_all()
        print(f"whole latent encoded in {time.perf_counter() - t0:.1f} s (--warm)")
    rows = []
    for fx, fy in spots(repeat):
        rows.append(step(st.image_w * fx, st.image_h * fy))
    print(f"{'step':>5}{'preview ms':>12}{'coarse ms':>11}{'full ms':>10}"
          f"{'latent tiles encoded':>22}")
    for k, (p, c, f, n) in enumerate(rows):
        print(f"{k + 1:5d}{p * 1000:12.0f}{c * 1000:11.0f}{f * 1000:10.0f}{n:22d}")
    med = [statistics.median(r[i] for r in rows) * 1000 for i in range(3)]
    print(f"{'median':>5}{med[0]:12.0f}{med[1]:11.0f}{med[2]:10.0f}")
    bounds = (("preview", 0, 0.050), ("coarse", 1, 0.300), ("full", 2, 0.5 if warm else 1.0))
    print("within the issue's bounds: " + ", ".join(
        f"{name} <= {b * 1000:.0f} ms in {sum(r[i] <= b for r in rows)} of {len(rows)} steps"
        for name, i, b in bounds))
    win.close()
    return med


def cli_times(photo: str, checkpoint, repeat: int):
    from PIL import Image
    w, h = Image.open(photo).size
    x, y = w // 2 + 37, h // 2 + 11
    from bench.cli_targets import timed
    out = {}
    for size in ("16x10", "1280x800"):
        dst = os.path.join(tempfile.gettempdir(), f"liif-zoom-cli-{size}.png")
        cmd = [sys.executable, "-m", "core.upscale", photo, "--region", f"{x},{y},320,200",
               "--size", size, "-o", dst] + (["--checkpoint", checkpoint] if checkpoint else [])
        out[size], ts = timed(cmd, repeat)
        print(f"core.upscale --region {x},{y},320,200 --size {size}: median {out[size]:.2f} s "
              f"of {repeat} ({', '.join(f'{t:.2f}' for t in ts)})")
    print(f"difference: {out['1280x800'] - out['16x10']:.2f} s")
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--photo")
    p.add_argument("--mpx", type=float, default=12.0)
    p.add_argument("--checkpoint")
    p.add_argument("--window", default="1280x800")
    p.add_argument("--zoom", type=float, default=4.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--skip-cli", action="store_true")
    p.add_argument("--workers", type=int, help="LIIF workers (default: as main.py chooses; "
                   "torch threads = cores / workers)")
    p.add_argument("--warm", action="store_true", help="encode the whole latent before the "
                   "measured steps (an image open long enough for the background encoder)")
    p.add_argument("--tile", type=int, help="screen tile side (default: the viewer's)")
    p.add_argument("--latent-tile", type=int, help="latent tile side (default: the viewer's)")
    args = p.parse_args()
    photo = args.photo or make_photo(args.mpx)
    viewer_steps(photo, args.checkpoint, args.window, args.zoom, args.repeat, args.workers,
                 args.tile, args.warm, args.latent_tile)
    if not args.skip_cli:
        cli_times(photo, args.checkpoint, args.repeat)


if __name__ == "__main__":
    main()
