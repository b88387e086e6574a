"""Save screenshots of the app: fit, 4x and 32x, in side-by-side and split modes, the
inspector's line profiles at 8x, the two bundled models side by side at 8x, the window at
1024 px wide, the export dialog with its estimates, and a transparent image over its
checkerboard.

    QT_QPA_PLATFORM=offscreen python -m tools.screenshots OUTDIR [IMAGE] [--checkpoint C]
        [--shots views,inspector,compare,window,dialog,transparent]

Each shot is taken after the full-resolution LIIF pass has landed.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def settle(app, win, timeout: float = 600) -> None:
    end = time.time() + timeout
    while time.time() < end:
        app.processEvents()
        if win.scheduler.wait_idle(0.05):
            break
    for _ in range(10):
        app.processEvents()
        time.sleep(0.01)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("outdir")
    p.add_argument("image", nargs="?")
    p.add_argument("--checkpoint")
    p.add_argument("--size", default="1280x800")
    p.add_argument("--centre", default=None, help="X,Y source point to zoom into")
    p.add_argument("--shots", default="views,inspector,compare,window,dialog,transparent",
                   help="which shots, comma-separated (default: all)")
    args = p.parse_args(argv)
    shots = set(args.shots.split(","))
    from PySide6 import QtCore, QtWidgets

    from viewer.app import build_window, parse_args

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    settings = QtCore.QSettings(os.path.join(args.outdir, ".settings.ini"),
                                QtCore.QSettings.Format.IniFormat)
    os.makedirs(args.outdir, exist_ok=True)
    a = [args.image] if args.image else []
    if args.checkpoint:
        a += ["--checkpoint", args.checkpoint]
    win = build_window(parse_args(a), settings=settings)
    win.scheduler.background_encoding = False
    w, h = map(int, args.size.split("x"))
    win.resize(w, h)
    win.show()
    settle(app, win)
    st = win.session.state
    cx, cy = (
        (map(float, args.centre.split(",")))
        if args.centre
        else (st.image_w * 0.45, st.image_h * 0.4)
    )
    for mode in ("side", "split") if "views" in shots else ():
        if win.session.mode != mode:
            win.session.set_mode(mode)
        for name, zoom in (("fit", None), ("4x", 4.0), ("32x", 32.0)):
            if zoom is None:
                win.session.fit()
            else:
                st = win.session.state
                st.zoom, st.cx, st.cy = zoom, cx, cy
                win.session.view_changed()
            settle(app, win)
            _save(win, args.outdir, f"{mode}-{name}.png")
    if "window" in shots:
        window_1024(app, win, args.outdir, cx, cy)
    if "dialog" in shots:
        export_dialog(app, win, args.outdir)
    if "inspector" in shots:
        inspector(app, win, args.outdir, cx, cy)
    if "compare" in shots:
        compare(app, win, args.outdir, cx, cy)
    if "transparent" in shots:  # last: it opens another image
        transparent(app, win, args.outdir)
    win.close()
    return 0


def _save(widget, outdir: str, name: str) -> None:
    path = os.path.join(outdir, name)
    widget.grab().save(path)
    print(path)


def window_1024(app, win, outdir: str, cx: float, cy: float) -> None:
    """The window at 1024 x 640 at 4x: every status-bar label fits."""
    size = win.size()
    win.resize(1024, 640)
    st = win.session.state
    st.zoom, st.cx, st.cy = 4.0, cx, cy
    win.session.view_changed()
    settle(app, win)
    _save(win, outdir, "window-1024.png")
    win.resize(size)
    settle(app, win)


def export_dialog(app, win, outdir: str) -> None:
    """The export dialog for the whole image at 4x, its size, time and file-size estimates
    shown."""
    from viewer.export_dialog import ExportDialog
    img = win.session.image
    dlg = ExportDialog(win, img.width, img.height, win.session.state.visible_region(), None,
                       os.path.expanduser("~/Pictures"), "sample-liif",
                       image=img, seconds=win.session.export_seconds)
    dlg.region_box.setCurrentText("Whole image")
    dlg.scale.setValue(4.0)
    dlg.show()
    end = time.time() + 10
    while dlg.file_bytes is None and time.time() < end:
        app.processEvents()
        time.sleep(0.02)
    app.processEvents()
    _save(dlg, outdir, "export-dialog.png")
    dlg.close()


def transparent(app, win, outdir: str) -> None:
    """A photo cut out with a soft-edged transparent border, opened in the viewer: the
    checkerboard shows through where it is transparent (side by side, fitted)."""
    import numpy as np
    from PIL import Image
    src = np.asarray(Image.open(win.session.image.path).convert("RGB"))
    h, w = src.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2))
    alpha = np.clip((1.0 - r) * 4, 0, 1)
    path = os.path.join(outdir, "cut-out.png")
    Image.fromarray(np.dstack([src, np.round(alpha * 255).astype(np.uint8)]), "RGBA").save(path)
    win.session.set_mode("side")
    win.open_image(path)
    settle(app, win)
    _save(win, outdir, "transparent.png")
    os.remove(path)


def inspector(app, win, outdir: str, cx: float, cy: float) -> None:
    """A line across the centre of the view, profiles of LIIF and bicubic."""
    win.session.set_mode("side")
    win.show_inspector()
    st = win.session.state
    st.zoom, st.cx, st.cy = 8.0, cx, cy
    win.session.view_changed()
    settle(app, win)
    r = win.session.state.visible_region()
    # across the rim of the cup (the sample photo), from the coffee into the white rim
    win.session.set_profile_line(
        (r.x + r.w * 0.09, r.y + r.h * 0.62), (r.x + r.w * 0.2, r.y + r.h * 0.98)
    )
    settle(app, win)
    win.inspector.refresh()
    app.processEvents()
    _save(win, outdir, "inspector-8x.png")
    win.inspector.hide()


def compare(app, win, outdir: str, cx: float, cy: float) -> None:
    """Compare any two: the paper model | the CPU model (Model -> Compare With)."""
    from core.zoo import bundled
    models = bundled()
    if {"paper", "cpu"} <= set(models):
        win.session.clear_selection()
        win.inspector.hide()
        win.load_checkpoint(str(models["paper"]))
        win.compare_with_checkpoint(str(models["cpu"]))
        st = win.session.state
        st.zoom, st.cx, st.cy = 8.0, cx, cy
        win.session.view_changed()
        settle(app, win)
        _save(win, outdir, "compare-paper-cpu-8x.png")


if __name__ == "__main__":
    sys.exit(main())
