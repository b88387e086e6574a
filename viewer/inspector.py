"""The inspector: intensity profiles along a line, for every method the panes show.

The user draws a line on the image (Ctrl+drag). For each method on screen (LIIF, bicubic,
nearest) the dock plots the intensity along it, sampled where that method was rendered: one
sample per screen pixel of the line at the current zoom, read from the scheduler's cached
tiles (so what is plotted is exactly what is shown, and it updates as renders land; a part
not rendered yet is a gap). Luminance is BT.601 Y in [0, 1]; per-channel shows R, G and B.

:func:`line_profile` uses no Qt (a function of the tile cache and the view) and is tested on
its own; :class:`InspectorDock` is its pyqtgraph view.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from core.render.methods import Method
from viewer.tiles import keys_for

#: BT.601 luma weights (as the evaluation's Y channel, without its offset and range)
LUMA = np.array([0.299, 0.587, 0.114], np.float32)

TileGetter = Callable[[tuple], Optional[np.ndarray]]


def line_profile(get: TileGetter, method: str, zoom: float, tile: int,
                 p0: Tuple[float, float], p1: Tuple[float, float]
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """``(distance, rgb)`` along the source-pixel segment ``p0 -> p1`` for ``method``.

    Samples are one screen pixel apart (``1 / zoom`` source pixels); each takes the rendered
    pixel under it from the best cached layer of the method's own (:func:`viewer.tiles.keys_for`:
    the full pass, else for LIIF the coarse pass, whose pixels are several screen pixels wide).
    ``rgb`` is
    ``(n, 3)`` float32 in [0, 1], NaN where nothing is rendered yet; ``distance`` is in
    source pixels from ``p0``. Tile ``(i, j)`` holds grid pixels ``[j T, (j+1) T)`` with
    grid = source x zoom (see :class:`viewer.view_state.ViewState`)."""
    (x0, y0), (x1, y1) = p0, p1
    length = math.hypot(x1 - x0, y1 - y0)
    n = max(2, int(math.ceil(length * zoom)) + 1)
    t = np.linspace(0.0, 1.0, n)
    gx = (x0 + t * (x1 - x0)) * zoom
    gy = (y0 + t * (y1 - y0)) * zoom
    j = np.floor(gx / tile).astype(np.int64)
    i = np.floor(gy / tile).astype(np.int64)
    out = np.full((n, 3), np.nan, np.float32)
    for ti, tj in set(zip(i.tolist(), j.tolist())):
        sel = (i == ti) & (j == tj)
        # the method's own layers (not the bicubic preview under LIIF: a LIIF profile shows
        # LIIF or nothing)
        keys = [k for k in keys_for(method, zoom, ti, tj) if k.method == method]
        px = gx[sel] - tj * tile
        py = gy[sel] - ti * tile
        vals = np.full((int(sel.sum()), 3), np.nan, np.float32)
        for key in keys:
            arr = get(key)
            if arr is None:
                continue
            f = arr.shape[0] / tile  # 1 for full tiles, less for the coarse pass
            r = np.clip((py * f).astype(np.int64), 0, arr.shape[0] - 1)
            c = np.clip((px * f).astype(np.int64), 0, arr.shape[1] - 1)
            got = arr[r, c, :3].astype(np.float32) / 255.0
            if arr.shape[2] == 4:  # rendered in part: alpha 0 where not yet
                got[arr[r, c, 3] == 0] = np.nan
            fill = np.isnan(vals[:, 0]) & ~np.isnan(got[:, 0])
            vals[fill] = got[fill]
            if not np.isnan(vals[:, 0]).any():
                break
        out[sel] = vals
    return t * length, out


def luminance(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of ``(n, 3)`` RGB in [0, 1] (NaN stays NaN)."""
    return rgb @ LUMA


# ---- the Qt view ---------------------------------------------------------------------------
#: the top of the plot's intensity axis: the band above 1 holds the legend
LEGEND_BAND = 1.5


class InspectorDock(QtWidgets.QDockWidget):
    """A dock with the line profiles of the methods on screen (see the module docstring).

    ``update_profiles(curves)`` takes ``{method: (distance, rgb)}``."""

    PENS = {Method.LIIF: (255, 200, 0), Method.BICUBIC: (90, 170, 255),
            Method.NEAREST: (200, 200, 200)}
    CHANNELS = {"R": (255, 80, 80), "G": (80, 220, 80), "B": (90, 140, 255)}

    def __init__(self, parent=None, session=None, scheduler=None) -> None:
        super().__init__("Inspector: line profile", parent)
        self.setObjectName("inspector")
        #: where the line and the rendered pixels come from (the window's); without them the
        #: dock only shows what :meth:`update_profiles` is given
        self.session, self.scheduler = session, scheduler
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(60)  # coalesce tile arrivals
        self._timer.timeout.connect(self.refresh)
        self.visibilityChanged.connect(lambda _: self.schedule())
        w = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(w)
        lay.setContentsMargins(4, 4, 4, 4)
        row = QtWidgets.QHBoxLayout()
        self.info = QtWidgets.QLabel("Ctrl+drag on the image to draw a line")
        self.mode = QtWidgets.QComboBox()
        self.mode.addItems(["luminance", "per channel"])
        self.mode.currentIndexChanged.connect(lambda _: self._redraw())
        row.addWidget(self.info, 1)
        row.addWidget(self.mode)
        lay.addLayout(row)
        self.plot = pg.PlotWidget()
        self.plot.setLabel("bottom", "distance along the line (source px)")
        self.plot.setLabel("left", "intensity")
        # intensities lie in [0, 1]: the band above 1 is left for the legend, one row at the
        # top, so that it never covers a curve
        self.plot.setYRange(0, LEGEND_BAND, padding=0)
        self.plot.getAxis("left").setTicks([[(v / 4, f"{v / 4:g}") for v in range(5)]])
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.legend = self.plot.addLegend(offset=(10, 2), brush=pg.mkBrush(30, 30, 34, 170),
                                          labelTextSize="8pt", verticalSpacing=-4)
        lay.addWidget(self.plot)
        self.setWidget(w)
        self._curves: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
        self._labels: Dict[str, str] = {}
        self._items: Dict[object, str] = {}  # plotted item -> method (and channel)

    def schedule(self) -> None:
        """Refresh soon (once for a burst of tile arrivals)."""
        if not self._timer.isActive():
            self._timer.start()

    def refresh(self) -> None:
        """Recompute the profiles from what is rendered now, for every method on screen."""
        if not self.isVisible() or self.session is None:
            return
        line, st = self.session.profile_line, self.session.state
        if line is None or st is None:
            self.update_profiles({}, "Ctrl+drag on the image to draw a line")
            return
        T = self.scheduler.tile
        curves = {m: line_profile(self.scheduler.cache.get, m, st.zoom, T, *line)
                  for m in self.session.shown_methods()}
        (x0, y0), (x1, y1) = line
        from viewer.statusbar import below_one_to_one
        below = below_one_to_one(self.session)
        self.update_profiles(curves, (
            f"({x0:.1f}, {y0:.1f}) → ({x1:.1f}, {y1:.1f}), "
            f"{((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5:.1f} source px at {st.zoom:.3g}×"
            + (f" ({below}: the model panes show the filtered source)" if below else "")),
            {m: self.session.label(m) for m in curves})

    def update_profiles(self, curves: Dict[str, Tuple[np.ndarray, np.ndarray]],
                        text: str = "", labels: Optional[Dict[str, str]] = None) -> None:
        """Plot ``curves`` (``{method: (distance, rgb)}``), each named in the legend by
        ``labels[method]`` (the pane's name, e.g. ``LIIF: photo model``; the method's name
        without one)."""
        self._curves = curves
        self._labels = dict(labels or {})
        if text:
            self.info.setText(text)
        self._redraw()

    def _redraw(self) -> None:
        self.plot.clear()
        self.legend.clear()
        self.legend.setColumnCount(max(1, len(self._curves)))
        self._items = {}
        per_channel = self.mode.currentIndex() == 1
        for method, (d, rgb) in self._curves.items():
            colour = self.PENS.get(method, (255, 255, 255))
            label = self._labels.get(method, method)
            if per_channel:
                for k, (ch, c) in enumerate(self.CHANNELS.items()):
                    style = QtCore.Qt.PenStyle.SolidLine if method == Method.LIIF else \
                        QtCore.Qt.PenStyle.DashLine
                    item = self.plot.plot(d, rgb[:, k], pen=pg.mkPen(c, width=1.5, style=style),
                                          name=f"{label} (R, G, B)" if k == 0 else None,
                                          connect="finite")
                    self._items[item] = f"{method} {ch}"
            else:
                item = self.plot.plot(d, luminance(rgb), pen=pg.mkPen(colour, width=2),
                                      name=label, connect="finite")
                self._items[item] = method

    def curve_data(self) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
        """What the plot shows now: ``{name: (x, y)}`` (for tests and export)."""
        out = {}
        for item in self.plot.listDataItems():
            x, y = item.getData()
            out[self._items.get(item, item.name())] = (x, y)
        return out

