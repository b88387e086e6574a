"""Start the viewer: ``python main.py [IMAGE] [--checkpoint C] [--device cpu|cuda|mps]``."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Sequence


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python main.py", description="LIIF Zoom: continuous zoom "
                                "into an image with a local implicit image function.")
    p.add_argument("image", nargs="?", help="image to open (default: the bundled sample)")
    p.add_argument("--checkpoint", help="model file, or a bundled model: paper, cpu or photo "
                   "(default: per image, the photo model for a lossy one such as a JPEG, else "
                   "the CPU model on a CPU and the paper model on a GPU)")
    p.add_argument("--device", help="cpu, cuda or mps (default: the best available)")
    return p.parse_args(argv)


def process_profile(device_name: Optional[str] = None, workers: Optional[int] = None):
    """The viewer process's device profile (:mod:`core.profile`), with torch's (process-wide)
    thread count set from it; ``workers`` overrides the number of render workers (benchmarks).

    The decoder's ops are small (a few thousand pixels x 16-256 channels): torch gains little
    by splitting one of them across cores, while independent tiles rendered on separate cores
    scale almost linearly. So on a CPU each render worker runs single-threaded torch ops and
    there is one worker per core (at most 4; beyond that each worker gets more threads). On a
    GPU one worker feeds the device."""
    import torch

    from core.device import pick_device
    from core.profile import profile_for
    prof = profile_for(pick_device(device_name), workers=workers)
    if prof.device.type == "cpu":
        torch.set_num_threads(prof.threads)
    return prof


def build_window(args: argparse.Namespace, settings=None, profile=None):
    """Create the main window for ``args`` (model and image loaded); errors go to dialogs.
    ``profile``: the process's (:func:`process_profile`); by default ``args.device``'s with
    one render worker."""
    from core import zoo
    from core.checkpoints import CheckpointError
    from core.defaults import SAMPLE_IMAGE
    from core.device import pick_device
    from core.profile import profile_for
    from viewer.main_window import MainWindow

    profile = profile or profile_for(pick_device(args.device), workers=1)
    device = profile.device
    win = MainWindow(profile=profile, settings=settings)
    image = args.image or (str(SAMPLE_IMAGE) if SAMPLE_IMAGE.exists() else None)
    if args.checkpoint:  # named on the command line: holds for every image opened
        win.auto_model = False
        ckpt, why = str(zoo.resolve(args.checkpoint)), "named on the command line"
    else:  # the rule, for the first image (open_image applies it to every later one)
        choice = zoo.choose(device, image if image and os.path.isfile(image) else None)
        ckpt, why = str(choice.path), choice.reason
    try:
        model = zoo.load(ckpt, device)
        win.set_model(model, Path(ckpt).stem, why)
    except CheckpointError as exc:
        win.show()
        win.error("Cannot load checkpoint", f"{exc}\n\nOnly bicubic is available until a model "
                  "is loaded (Model → Load Checkpoint).")
    if image:
        win.open_image(image)
    return win


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        profile = process_profile(args.device)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from PySide6 import QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("LIIF Zoom")
    app.setOrganizationName("LIIF Zoom")
    win = build_window(args, profile=profile)
    win.show()
    received = quit_on_signals(app, win)
    status = app.exec()
    return 128 + received[0] if received else status


def quit_on_signals(app, win) -> list:
    """SIGTERM and SIGHUP close the window as its close button does (a running export is
    cancelled and its staged files removed, the render workers stop), then the app quits;
    returns a list that receives the signal's number. A timer lets Python see signals while
    Qt's event loop runs."""
    import signal

    from PySide6 import QtCore

    received: list = []

    def handler(signum, frame):
        if not received:
            received.append(signum)
            QtCore.QTimer.singleShot(0, lambda: (win.close(), app.quit()))

    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, handler)
    tick = QtCore.QTimer(app)
    tick.timeout.connect(lambda: None)
    tick.start(200)
    return received


if __name__ == "__main__":
    sys.exit(main())
