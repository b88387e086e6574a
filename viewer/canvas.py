"""The pane widget: draws the tiles of one or two render methods and forwards input.

A :class:`Pane` owns no state of its own beyond the mouse gesture in progress: it reads the
shared :class:`~viewer.view_state.ViewState`, draws what the scheduler's cache holds for the
current zoom, and turns input into calls on the session (zoom, pan, selection, line): a wheel event
reaches the view state in three hops (pane, session, ViewState).

What is drawn for a tile, best first: the full-resolution tile of the pane's method; for
LIIF, its coarse pass scaled up, then the bicubic tile; finally the source image scaled by Qt
(instant, so nothing is ever blank). Below one device pixel per source pixel the LIIF pane
shows the filtered (antialiased bicubic) source.

Colour: the renderers work on the image's own values; a pane converts what it draws from the
image's colour profile to sRGB (:class:`core.io.colour.ToSRGB`; the screen's own profile is not
known to Qt on every platform), so a Display-P3 photo looks as it does in photo tools.
"""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Dict, List, Optional, Protocol, Tuple

import numpy as np
import pyqtgraph.functions as pgf
from PySide6 import QtCore, QtGui, QtWidgets

from core.io.colour import ToSRGB
from viewer.tiles import Method, keys_for

if TYPE_CHECKING:
    from viewer.scheduler import RenderScheduler
    from viewer.session import Session

BACKGROUND = QtGui.QColor(38, 38, 42)


def to_qimage(arr: np.ndarray) -> QtGui.QImage:
    """uint8 ``(H, W, 3)`` or ``(H, W, 4)`` (a tile rendered in part: alpha 0 where not yet
    rendered) -> QImage (shares memory: keep ``arr`` alive while drawing)."""
    f = QtGui.QImage.Format
    return pgf.ndarray_to_qimage(arr, f.Format_RGBA8888 if arr.shape[2] == 4 else f.Format_RGB888)


_CHECKER: list = []


def checkerboard() -> QtGui.QPixmap:
    """A 16-px tile of four 8-px squares, light and mid grey (made once)."""
    if not _CHECKER:
        pm = QtGui.QPixmap(16, 16)
        pm.fill(QtGui.QColor(204, 204, 204))
        p = QtGui.QPainter(pm)
        p.fillRect(0, 0, 8, 8, QtGui.QColor(153, 153, 153))
        p.fillRect(8, 8, 8, 8, QtGui.QColor(153, 153, 153))
        p.end()
        _CHECKER.append(pm)
    return _CHECKER[0]


class PaneHost(Protocol):
    """What a pane reads from: the session (state, and where its input goes: zoom, pan,
    selection, line), the scheduler's cache, the source image for the instant fallback
    (already in the display's colours), and the image's conversion to the display's colours
    (None when its values are sRGB already); it tells its host when it is resized (the first
    pane's size is the view's)."""

    session: "Session"
    scheduler: "RenderScheduler"
    source_qimage: Optional[QtGui.QImage]
    display_colour: Optional[ToSRGB]
    #: an image with alpha: ``1 - alpha`` at source resolution (Alpha8), where the panes show
    #: a checkerboard through the picture; None for an opaque image
    transparency: Optional[QtGui.QImage]

    def pane_resized(self, pane: "Pane") -> None: ...

    def cursor_moved(self, pane: "Pane", at: Optional[Tuple[float, float]]) -> None:
        """The pointer is over device pixel ``at`` of ``pane`` (None: it left)."""


class Pane(QtWidgets.QWidget):
    """One view of the image. ``methods`` has one entry, or two for the split (swipe) mode,
    where ``methods[0]`` is left of the divider and ``methods[1]`` right of it."""

    def __init__(self, controller: PaneHost, methods: List[str], parent=None) -> None:
        super().__init__(parent)
        self.c = controller
        self.methods = list(methods)
        self.split = 0.5  # divider position, fraction of the width
        self._drag: Optional[str] = None
        self._last: Optional[QtCore.QPointF] = None
        self._sel_start: Optional[Tuple[float, float]] = None
        # tiles converted to the display's colours, by the id of the cached array (a tile
        # array is never changed in place: a new render is a new array)
        self._shown: Dict[int, Tuple[weakref.ref, np.ndarray, QtGui.QImage]] = {}
        self.setMouseTracking(True)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(120, 90)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding,
                           QtWidgets.QSizePolicy.Policy.Expanding)

    # ---- geometry ----------------------------------------------------------------------------
    def dpr(self) -> float:
        return float(self.devicePixelRatioF())

    def device_size(self) -> Tuple[int, int]:
        d = self.dpr()
        return max(1, round(self.width() * d)), max(1, round(self.height() * d))

    def resizeEvent(self, ev) -> None:
        self.c.pane_resized(self)
        super().resizeEvent(ev)

    # ---- drawing -----------------------------------------------------------------------------
    def paintEvent(self, ev) -> None:
        p = QtGui.QPainter(self)
        p.fillRect(self.rect(), BACKGROUND)
        st, sched = self.c.session.state, self.c.scheduler
        if st is None or self.c.session.image is None or sched.plan is None \
                or sched.plan.snapshot.view is None:
            p.setPen(QtGui.QColor(200, 200, 200))
            p.drawText(self.rect(), QtCore.Qt.AlignmentFlag.AlignCenter,
                       "Open an image (Ctrl+O) or drop one here")
            return
        d = self.dpr()
        p.scale(1 / d, 1 / d)  # draw in device pixels
        ox, oy = st.origin()
        iw, ih = st.image_w * st.zoom, st.image_h * st.zoom
        image_rect = QtCore.QRectF(-ox, -oy, iw, ih)
        vw, vh = self.device_size()
        parts = [(self.methods[0], QtCore.QRectF(0, 0, vw, vh))]
        if len(self.methods) == 2:
            x = round(self.split * vw)
            parts = [(self.methods[0], QtCore.QRectF(0, 0, x, vh)),
                     (self.methods[1], QtCore.QRectF(x, 0, vw - x, vh))]
        plan = sched.plan  # what the scheduler planned for this view: drawn, not recomputed
        T = plan.tile
        tiles = plan.tiles
        keep = []  # arrays must outlive the QImages drawn from them
        overlay = self._transparency_layer(image_rect, vw, vh)  # once a paint, for all parts
        for method, clip in parts:
            p.save()
            p.setClipRect(clip.intersected(image_rect))
            m = plan.snapshot.shown.get(method, method)
            for (i, j) in tiles:
                target = QtCore.QRectF(j * T - ox, i * T - oy, T, T)
                if not target.intersects(clip):
                    continue
                self._draw_tile(p, m, i, j, target, keep)
            if overlay is not None:
                p.drawImage(QtCore.QPointF(0, 0), overlay)
            p.restore()
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, False)
        if len(self.methods) == 2:  # the divider: yellow on a dark edge, seen on any picture
            x = round(self.split * vw)
            p.setPen(QtGui.QPen(QtGui.QColor(0, 0, 0, 170), 4 * d))
            p.drawLine(QtCore.QPointF(x, 0), QtCore.QPointF(x, vh))
            p.setPen(QtGui.QPen(QtGui.QColor(255, 210, 0), 2 * d))
            p.drawLine(QtCore.QPointF(x, 0), QtCore.QPointF(x, vh))
        self._draw_selection(p, d)
        self._draw_line(p, d)
        self._draw_labels(p, parts, d)

    def _draw_tile(self, p: QtGui.QPainter, method: str, i: int, j: int,
                   target: QtCore.QRectF, keep: list) -> None:
        """Draw the best complete layer of tile ``(i, j)`` (LIIF full, LIIF coarse, bicubic
        preview, or the source scaled by Qt), then any better layer rendered in part (the
        visible part of a tile at the edge of an earlier view) over it."""
        st, cache = self.c.session.state, self.c.scheduler.cache
        layers = [cache.get(k) for k in keys_for(method, st.zoom, i, j)]
        base = next((k for k, a in enumerate(layers) if a is not None and a.shape[2] == 3),
                    len(layers))
        if base == len(layers):
            self._draw_source(p, i, j, target)
        for arr in reversed(layers[:base + 1]):
            if arr is None:
                continue
            keep.append(arr)
            p.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform,
                            arr.shape[0] != target.height())
            p.drawImage(target, self._display_qimage(arr))

    def _transparency_layer(self, image_rect: QtCore.QRectF, vw: int,
                            vh: int) -> Optional[QtGui.QImage]:
        """For a transparent image, what goes over its pixels: a checkerboard of 8-px squares
        (as photo tools show transparency) weighted by ``1 - alpha`` (scaled to the zoom by
        Qt, smoothly), so shown = rgb * alpha + checker * (1 - alpha) and the colours a
        transparent pixel happens to hold are never shown as if opaque. One buffer per pane
        size, refilled each paint; None for an opaque image."""
        mask = getattr(self.c, "transparency", None)
        if mask is None:
            return None
        layer = getattr(self, "_layer", None)
        if layer is None or (layer.width(), layer.height()) != (vw, vh):
            layer = self._layer = QtGui.QImage(vw, vh,
                                               QtGui.QImage.Format.Format_ARGB32_Premultiplied)
        lp = QtGui.QPainter(layer)
        lp.fillRect(layer.rect(), QtGui.QBrush(checkerboard()))
        lp.setCompositionMode(QtGui.QPainter.CompositionMode.CompositionMode_DestinationIn)
        lp.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform, True)
        lp.drawImage(image_rect, mask)
        lp.end()
        return layer

    def forget_shown(self) -> None:
        """Drop the converted tiles (another image, another profile)."""
        self._shown = {}

    def _display_qimage(self, arr: np.ndarray) -> QtGui.QImage:
        """``arr`` (a cached tile: the image's own values) as a QImage in the display's
        colours; each tile is converted once, then reused."""
        conv = self.c.display_colour
        if conv is None:
            return to_qimage(arr)
        hit = self._shown.get(id(arr))
        if hit is not None and hit[0]() is arr:
            return hit[2]
        if len(self._shown) > 1024:  # forget the tiles the cache has dropped
            self._shown = {k: v for k, v in self._shown.items() if v[0]() is not None}
        shown = conv(arr)
        q = to_qimage(shown)
        self._shown[id(arr)] = (weakref.ref(arr), shown, q)
        return q

    def _draw_source(self, p: QtGui.QPainter, i: int, j: int,
                     target: QtCore.QRectF) -> None:
        """Immediate fallback: the source image scaled by Qt, without smoothing. It is on
        screen only until the bicubic preview arrives, and smooth scaling would cost the GUI
        thread time the preview workers wait for."""
        src = self.c.source_qimage
        if src is None:
            return
        reg = self.c.session.state.tile_region(i, j, self.c.scheduler.tile)
        p.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform, False)
        p.drawImage(target, src, QtCore.QRectF(reg.x, reg.y, reg.w, reg.h))

    def _draw_selection(self, p: QtGui.QPainter, d: float) -> None:
        sel = self.c.session.selection
        if sel is None:
            return
        st = self.c.session.state
        x0, y0 = st.source_to_screen(sel.x, sel.y)
        x1, y1 = st.source_to_screen(sel.x + sel.w, sel.y + sel.h)
        p.setPen(QtGui.QPen(QtGui.QColor(80, 200, 255), 1.5 * d, QtCore.Qt.PenStyle.DashLine))
        p.setBrush(QtGui.QColor(80, 200, 255, 40))
        p.drawRect(QtCore.QRectF(x0, y0, x1 - x0, y1 - y0))

    def _draw_line(self, p: QtGui.QPainter, d: float) -> None:
        """The inspector's line, with a dot at its start."""
        line = self.c.session.profile_line
        if line is None:
            return
        st = self.c.session.state
        a = QtCore.QPointF(*st.source_to_screen(*line[0]))
        b = QtCore.QPointF(*st.source_to_screen(*line[1]))
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, True)
        p.setPen(QtGui.QPen(QtGui.QColor(255, 60, 200), 2 * d))
        p.drawLine(a, b)
        p.setBrush(QtGui.QColor(255, 60, 200))
        p.drawEllipse(a, 3 * d, 3 * d)
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, False)

    def _model_layer_shown(self, method: str) -> bool:
        """Whether every visible tile of ``method`` shows one of its own layers (coarse or
        full), not the bicubic preview standing in for it."""
        plan, sched = self.c.scheduler.plan, self.c.scheduler
        own = [k for k in keys_for(method, plan.snapshot.view.zoom, 0, 0) if k.method == method]
        for i, j in plan.tiles:
            if not any(sched.cache.get(k._replace(i=i, j=j)) is not None for k in own):
                return False
        return True

    def _draw_labels(self, p: QtGui.QPainter, parts, d: float) -> None:
        f = p.font()
        f.setPixelSize(round(12 * d))
        p.setFont(f)
        shown = self.c.scheduler.plan.snapshot.shown
        for n, (method, clip) in enumerate(parts):
            m = shown.get(method, method)
            text = self.c.session.label(method) + (" (filtered source below 1:1)"
                                                    if m != method else "")
            if method == Method.LIIF and self.c.session.latent is None:
                text = "LIIF: no model loaded (Model → Load Checkpoint)"
            elif Method(m).is_model and not self._model_layer_shown(m):
                text += " · rendering…"  # (bicubic's preview stands in for it meanwhile)
            fm = QtGui.QFontMetrics(f)
            w = fm.horizontalAdvance(text) + 12 * d
            x = clip.left() + 8 * d if n == 0 else clip.right() - w - 8 * d
            box = QtCore.QRectF(x, 8 * d, w, fm.height() + 6 * d)
            p.fillRect(box, QtGui.QColor(0, 0, 0, 150))
            p.setPen(QtGui.QColor(255, 255, 255))
            p.drawText(box, QtCore.Qt.AlignmentFlag.AlignCenter, text)

    # ---- input -------------------------------------------------------------------------------
    def wheelEvent(self, ev: QtGui.QWheelEvent) -> None:
        delta = ev.angleDelta().y()
        if delta == 0:
            delta = ev.pixelDelta().y() * 2
        if delta == 0:
            return
        d = self.dpr()
        pos = ev.position()
        self.c.session.zoom_at(2.0 ** (delta / 120.0 / 4.0), pos.x() * d, pos.y() * d)
        ev.accept()

    def _near_divider(self, x: float) -> bool:
        return len(self.methods) == 2 and abs(x - self.split * self.width()) < 6

    def mousePressEvent(self, ev: QtGui.QMouseEvent) -> None:
        if ev.button() != QtCore.Qt.MouseButton.LeftButton or self.c.session.state is None:
            return
        pos = ev.position()
        if self._near_divider(pos.x()):
            self._drag = "divider"
        elif ev.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier:
            self._drag = "select"
            d = self.dpr()
            self._sel_start = self.c.session.state.screen_to_source(pos.x() * d, pos.y() * d)
        elif ev.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier:
            self._drag = "line"
            d = self.dpr()
            self._sel_start = self.c.session.state.screen_to_source(pos.x() * d, pos.y() * d)
        else:
            self._drag = "pan"
            self.setCursor(QtCore.Qt.CursorShape.ClosedHandCursor)
        self._last = pos

    def mouseDoubleClickEvent(self, ev: QtGui.QMouseEvent) -> None:
        """Double-click: fit to window (as F)."""
        if ev.button() == QtCore.Qt.MouseButton.LeftButton:
            self.c.session.fit()

    def value_at(self, px: float, py: float) -> Optional[Tuple[str, Tuple[int, int, int]]]:
        """``(method, (r, g, b))`` drawn at device pixel ``(px, py)`` of this pane (the best
        layer in the cache, the image's own 8-bit values), or None where nothing is yet."""
        st = self.c.session.state
        if st is None:
            return None
        method = self.methods[0] if len(self.methods) == 1 or px < self.split * \
            self.device_size()[0] else self.methods[1]
        m = self.c.scheduler.plan.snapshot.shown.get(method, method)
        T = self.c.scheduler.tile
        ox, oy = st.origin()
        gx, gy = int(px) + ox, int(py) + oy
        i, j = gy // T, gx // T
        for key in keys_for(m, st.zoom, i, j):
            arr = self.c.scheduler.cache.get(key)
            if arr is None:
                continue
            r, c = (gy - i * T) * arr.shape[0] // T, (gx - j * T) * arr.shape[1] // T
            if arr.shape[2] == 4 and arr[r, c, 3] == 0:
                continue  # not rendered there yet
            return method, tuple(int(v) for v in arr[r, c, :3])
        return None

    def leaveEvent(self, ev) -> None:
        self.c.cursor_moved(self, None)

    def mouseMoveEvent(self, ev: QtGui.QMouseEvent) -> None:
        pos = ev.position()
        if self._drag is None:
            shape = (QtCore.Qt.CursorShape.SplitHCursor if self._near_divider(pos.x())
                     else QtCore.Qt.CursorShape.ArrowCursor)
            self.setCursor(shape)
            d = self.dpr()
            self.c.cursor_moved(self, (pos.x() * d, pos.y() * d))
            return
        d = self.dpr()
        if self._drag == "divider":
            self.split = min(1.0, max(0.0, pos.x() / max(1, self.width())))
            self.update()
        elif self._drag == "select":
            sx, sy = self.c.session.state.screen_to_source(pos.x() * d, pos.y() * d)
            self.c.session.set_selection(self._sel_start, (sx, sy))
        elif self._drag == "line":
            sx, sy = self.c.session.state.screen_to_source(pos.x() * d, pos.y() * d)
            self.c.session.set_profile_line(self._sel_start, (sx, sy))
        elif self._drag == "pan":
            delta = pos - self._last
            self.c.session.pan(delta.x() * d, delta.y() * d)
        self._last = pos

    def mouseReleaseEvent(self, ev: QtGui.QMouseEvent) -> None:
        self._drag = None
        self.setCursor(QtCore.Qt.CursorShape.ArrowCursor)
