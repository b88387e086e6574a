"""Synthetic user input for soak tests: random wheel, pan, drag, selection, divider and
mode-key events delivered through Qt's own event paths into a real main window, and a check
that everything visible gets rendered afterwards. Used by the soak benchmark
(``bench/soak.py``) and the suite's short version (``tests/test_soak.py``)."""
from __future__ import annotations

import os
import resource
import time
from typing import Callable, Dict, List, Optional

KEYS = "CVLN+-0F"


def rss_mib() -> float:
    """Resident memory now (MiB), from /proc (falls back to the peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def drive(app, win, n_events: int, seed: int = 0,
          on_sample: Optional[Callable[[int, float], None]] = None,
          sample_every: int = 250) -> Dict[str, object]:
    """Send ``n_events`` random user events to ``win``; returns the per-event GUI times (s),
    the counts per kind and memory samples ``[(event, MiB)]``."""
    import numpy as np
    from PySide6 import QtCore, QtGui
    from PySide6.QtTest import QTest

    Qt = QtCore.Qt
    rng = np.random.default_rng(seed)
    stalls: List[float] = []
    kinds: Dict[str, int] = {}
    mem = []

    def pane():
        return win.panes[int(rng.integers(len(win.panes)))]

    def point(p):
        return QtCore.QPointF(float(rng.uniform(2, p.width() - 2)),
                              float(rng.uniform(2, p.height() - 2)))

    def mouse(p, kind, pos, button, buttons, mods=Qt.KeyboardModifier.NoModifier):
        ev = QtGui.QMouseEvent(kind, pos, p.mapToGlobal(pos), button, buttons, mods)
        app.sendEvent(p, ev)

    def drag(p, mods=Qt.KeyboardModifier.NoModifier, start=None):
        a = start or point(p)
        mouse(p, QtCore.QEvent.Type.MouseButtonPress, a, Qt.MouseButton.LeftButton,
              Qt.MouseButton.LeftButton, mods)
        for _ in range(int(rng.integers(1, 4))):
            b = point(p)
            mouse(p, QtCore.QEvent.Type.MouseMove, b, Qt.MouseButton.NoButton,
                  Qt.MouseButton.LeftButton, mods)
            app.processEvents()
        mouse(p, QtCore.QEvent.Type.MouseButtonRelease, b, Qt.MouseButton.LeftButton,
              Qt.MouseButton.NoButton, mods)

    for n in range(n_events):
        r = float(rng.random())
        p = pane()
        t0 = time.perf_counter()
        if r < 0.40:
            kind = "wheel"
            pos = point(p)
            delta = int(rng.choice([-240, -120, -60, 60, 120, 240]))
            ev = QtGui.QWheelEvent(pos, p.mapToGlobal(pos), QtCore.QPoint(0, 0),
                                   QtCore.QPoint(0, delta), Qt.MouseButton.NoButton,
                                   Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                                   False)
            app.sendEvent(p, ev)
        elif r < 0.70:
            kind = "pan"
            drag(p)
        elif r < 0.78:
            kind = "select"
            drag(p, Qt.KeyboardModifier.ShiftModifier)
        elif r < 0.83:
            kind = "divider"
            x = p.split * p.width() if len(p.methods) == 2 else None
            drag(p, start=QtCore.QPointF(x, p.height() / 2) if x is not None else None)
        elif r < 0.99:
            kind = "key"
            key = KEYS[int(rng.integers(len(KEYS)))]
            QTest.keyClick(win.panes[0], key)
        else:
            kind = "escape"
            QTest.keyClick(win.panes[0], Qt.Key.Key_Escape)
        app.processEvents()
        stalls.append(time.perf_counter() - t0)
        kinds[kind] = kinds.get(kind, 0) + 1
        if n % sample_every == 0 or n == n_events - 1:
            mem.append((n, round(rss_mib(), 1)))
            if on_sample is not None:
                on_sample(n, mem[-1][1])
    return {"stalls": stalls, "kinds": kinds, "memory": mem}


def settle_and_check(app, win, timeout: float = 120.0) -> List[tuple]:
    """Let every pending render finish; return the visible tiles whose full-resolution layer
    (of every method shown) is missing from the cache (empty when all is rendered)."""
    from viewer.scheduler import missing_window
    from viewer.session import effective_method

    deadline = time.time() + timeout
    while time.time() < deadline:
        app.processEvents()
        if win.scheduler.wait_idle(0.2):
            app.processEvents()
            if win.scheduler.wait_idle(0.2):
                break
    st, T = win.session.state, win.scheduler.tile
    missing = []
    for p in win.panes:
        for m in p.methods:
            m = effective_method(m, st.zoom)
            if m == "liif" and win.session.latent is None:
                continue
            for i, j in st.visible_tiles(T):
                tile = win.scheduler.cache.get((m, st.zoom, "full", i, j))
                if tile is None or missing_window(tile, st.tile_window(i, j, T)) is not None:
                    missing.append((m, i, j))
    return missing
