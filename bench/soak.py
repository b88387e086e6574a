"""Soak: thousands of random wheel, pan, drag, selection, divider and mode-key events into
the real main window, then settle; the longest UI stall, its p99 and memory over time.

    QT_QPA_PLATFORM=offscreen python bench/soak.py [IMAGE] [--events 20000] [--seed 0]
        [--window 1280x800] [--checkpoint C] [--json OUT]

Events go through Qt's own delivery (``QTest`` for keys, so that menu shortcuts fire as
they do for a user; ``QApplication.sendEvent`` for wheel and mouse). Between events the
event loop runs, so the workers' tiles are painted as they land. A *stall* is the GUI
thread's time to handle one event plus the event-loop turn after it (what a user feels as
lag). The pytest suite runs a short version (tests/test_soak.py) with :func:`drive`.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.soak import drive, settle_and_check  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("image", nargs="?")
    p.add_argument("--checkpoint")
    p.add_argument("--events", type=int, default=20000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--window", default="1280x800")
    p.add_argument("--json")
    args = p.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import numpy as np
    import PySide6
    from PySide6 import QtCore, QtWidgets

    from viewer.app import build_window, parse_args, process_profile

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    settings = QtCore.QSettings("/tmp/liif-zoom-soak.ini", QtCore.QSettings.Format.IniFormat)
    a = ([args.image] if args.image else []) + (
        ["--checkpoint", args.checkpoint] if args.checkpoint else []
    )
    win = build_window(parse_args(a), settings=settings, profile=process_profile())
    win.error = lambda title, msg: (_ for _ in ()).throw(RuntimeError(f"{title}: {msg}"))
    w, h = map(int, args.window.split("x"))
    win.resize(w, h)
    win.show()
    t0 = time.time()
    none0 = sys.getrefcount(None)
    res = drive(app, win, args.events, args.seed,
                on_sample=lambda n, m: print(f"event {n}: {m:.0f} MiB, "
                                             f"{time.time() - t0:.0f} s", flush=True),
                sample_every=max(1, args.events // 20))
    missing = settle_and_check(app, win)
    gc.collect()
    s = np.array(res["stalls"]) * 1000
    out = {
        "events": args.events, "seconds": round(time.time() - t0, 1),
        "pyside6": PySide6.__version__, "python": sys.version.split()[0],
        "model": win.session.model_name,
        "image": f"{win.session.image.width}x{win.session.image.height}",
        "window": args.window, "kinds": res["kinds"],
        "stall_ms": {"median": round(float(np.median(s)), 2),
                     "p99": round(float(np.percentile(s, 99)), 1),
                     "max": round(float(s.max()), 1)},
        "memory_mib": res["memory"], "missing_tiles_after_settle": len(missing),
        "none_refcount_change": sys.getrefcount(None) - none0,
    }
    win.scheduler.shutdown()
    print(json.dumps({k: v for k, v in out.items() if k != "memory_mib"}, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
