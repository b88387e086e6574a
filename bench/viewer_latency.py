"""Viewer latency: time from a zoom step to the preview, the coarse LIIF pass and the full
LIIF pass, for a window of a given size, on this machine.

    QT_QPA_PLATFORM=offscreen python bench/viewer_latency.py [IMAGE] [--checkpoint C]
        [--window 1280x800] [--mode single|side|split] [--zooms 2,4,8] [--warm]

Times are measured by the render scheduler from the request (the zoom step) to the moment
the last tile of each pass is in the cache; the repaint follows in the next event-loop turn.
With ``--warm`` the whole latent is encoded before the first step (an image open for a
while); otherwise newly visible latent tiles are encoded inside the measured time.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("image", nargs="?")
    p.add_argument("--checkpoint")
    p.add_argument("--window", default="1280x800")
    p.add_argument("--mode", default="single", choices=("single", "side", "split"))
    p.add_argument("--zooms", default="2,4,8")
    p.add_argument("--centre", default=None, help="X,Y source point (default: image centre)")
    p.add_argument("--warm", action="store_true")
    args = p.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import torch
    from PySide6 import QtCore, QtWidgets

    from tools.screenshots import settle
    from viewer.app import build_window, parse_args, process_profile

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    settings = QtCore.QSettings("/tmp/liif-zoom-bench.ini", QtCore.QSettings.Format.IniFormat)
    a = ([args.image] if args.image else []) + (
        ["--checkpoint", args.checkpoint] if args.checkpoint else []
    )
    prof = process_profile()  # as main.py does
    win = build_window(parse_args(a), settings=settings, profile=prof)
    win.scheduler.background_encoding = False
    w, h = map(int, args.window.split("x"))
    win.resize(w, h)
    win.show()
    if win.session.mode != args.mode:
        win.session.set_mode(args.mode)
    settle(app, win)
    if args.warm:
        win.session.latent.encode_all()
    st = win.session.state
    cx, cy = map(float, args.centre.split(",")) if args.centre else (st.image_w / 2, st.image_h / 2)
    print(f"image {st.image_w}x{st.image_h}, window {w}x{h} ({args.mode}), pane "
          f"{st.view_w}x{st.view_h} device px, model {win.session.model_name}, "
          f"{prof.workers} LIIF worker(s) x {torch.get_num_threads()} torch thread(s)")
    print(
        f"{'zoom':>6}{'preview ms':>12}{'coarse ms':>11}{'full ms':>10}{'latent tiles encoded':>22}"
    )
    for z in map(float, args.zooms.split(",")):
        win.status.last_times.clear()
        st.cx, st.cy = cx, cy
        before = win.session.latent.n_encoded
        st.zoom = z
        win.session.view_changed()
        settle(app, win)
        t = win.scheduler.timer
        print(f"{z:6g}{t.preview * 1000:12.0f}{t.coarse * 1000:11.0f}{t.full * 1000:10.0f}"
              f"{win.session.latent.n_encoded - before:22d}")
    win.close()


if __name__ == "__main__":
    main()
