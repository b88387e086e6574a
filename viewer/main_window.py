"""The main window: menus, panes, status bar; the controller between input, view state,
scheduler and core."""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch
from PySide6 import QtCore, QtGui, QtWidgets

from core.atomic import staged
from core.checkpoints import CheckpointError, load_model
from core.encoding import Cancelled
from core.export import export
from core.formats import open_filter
from core.imageio import ImageError, LoadedImage, image_size, load_image
from viewer.canvas import Pane, to_qimage
from viewer.export_dialog import ExportDialog, ExportRequest
from viewer.inspector import InspectorDock, line_profile
from viewer.scheduler import RenderScheduler
from viewer.session import Session

#: above this many pixels the viewer asks before opening an image
ASK_PIXELS = 100_000_000
ZOOM_STEP = 2 ** 0.25
LATENT_TILE = 32  # latent tile side: small, so that a view encodes little beyond what it shows
MAX_RECENT = 10


def _to_u8(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.round(rgb * 255).astype(np.uint8))


class MainWindow(QtWidgets.QMainWindow):
    """Controller and window. Public slots are what menus, keys and panes call."""

    tileReady = QtCore.Signal()
    passDone = QtCore.Signal(str, float)
    renderError = QtCore.Signal(str)
    exportProgress = QtCore.Signal(int, int)
    exportDone = QtCore.Signal(str, str)  # (error message or "", paths)
    decoded = QtCore.Signal()  # the background decoder finished (see _decode)
    metricsReady = QtCore.Signal(int, object)  # (generation, {method: (psnr, ssim)})

    def __init__(self, model=None, model_name: str = "", device: torch.device | str = "cpu",
                 settings: Optional[QtCore.QSettings] = None, tile: int = 256,
                 liif_workers: int = 1) -> None:
        super().__init__()
        self.setWindowTitle("LIIF Zoom")
        #: everything that is not Qt (image, model, latent, camera, compare mode, selection,
        #: inspector line); this window observes it (see _on_session)
        self.session = Session(device, LATENT_TILE)
        self.session.model, self.session.model_name = model, model_name
        self.source_qimage: Optional[QtGui.QImage] = None
        self.last_times = {}
        self.settings = settings or QtCore.QSettings("LIIF Zoom", "LIIF Zoom")
        self.scheduler = RenderScheduler(
            tile=tile, liif_workers=liif_workers, on_tile=lambda key: self.tileReady.emit(),
            on_pass=lambda kind, s: self.passDone.emit(kind, s),
            on_error=lambda msg: self.renderError.emit(msg))
        self.tileReady.connect(self._repaint, QtCore.Qt.ConnectionType.QueuedConnection)
        self.passDone.connect(self._pass_done, QtCore.Qt.ConnectionType.QueuedConnection)
        self.renderError.connect(lambda m: self.statusBar().showMessage(f"render error: {m}", 8000))
        self.exportProgress.connect(self._export_progress)
        self.exportDone.connect(self._export_done)
        self._export_cancel = threading.Event()
        self._export_thread: Optional[threading.Thread] = None
        self._progress_dialog: Optional[QtWidgets.QProgressDialog] = None
        self._decoding = False
        #: pick the model for each opened image by core.defaults.choose_model (off when the
        #: command line named a checkpoint, or the window was made with a model); the Model
        #: menu overrides it for the open image
        self.auto_model = model is None
        self._rule_models: dict = {}  # path -> model loaded for the rule

        self.central = QtWidgets.QWidget()
        self.layout_ = QtWidgets.QHBoxLayout(self.central)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.layout_.setSpacing(2)
        self.setCentralWidget(self.central)
        self.panes: List[Pane] = []
        self.inspector = InspectorDock(self)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.BottomDockWidgetArea, self.inspector)
        self.inspector.hide()
        self.inspector.visibilityChanged.connect(lambda _: self._schedule_inspector())
        self._inspector_timer = QtCore.QTimer(self)
        self._inspector_timer.setSingleShot(True)
        self._inspector_timer.setInterval(60)  # coalesce tile arrivals
        self._inspector_timer.timeout.connect(self.refresh_inspector)
        self._metrics_timer = QtCore.QTimer(self)
        self._metrics_timer.setSingleShot(True)
        self._metrics_timer.setInterval(300)  # after the view settles
        self._metrics_timer.timeout.connect(self._start_metrics)
        self._metrics_gen = 0
        self.metricsReady.connect(self._metrics_done)
        self._build_status()
        self._build_menus()
        self._build_panes()
        self.session.subscribe(self._on_session)
        self.setAcceptDrops(True)
        self.resize(1280, 800)
        self._encode_timer = QtCore.QTimer(self)
        self._encode_timer.timeout.connect(self._update_encode_progress)
        self._encode_timer.start(200)

    # ---- the session's state, read by the panes, the scheduler and tests -----------------------
    device = property(lambda self: self.session.device)
    model = property(lambda self: self.session.model)
    model_name = property(lambda self: self.session.model_name)
    image = property(lambda self: self.session.image)
    latent = property(lambda self: self.session.latent)
    state = property(lambda self: self.session.state)
    mode = property(lambda self: self.session.mode)
    nearest = property(lambda self: self.session.nearest)
    selection = property(lambda self: self.session.selection)
    profile_line = property(lambda self: self.session.profile_line)

    def _on_session(self, event: str) -> None:
        """Turn a change of the session into Qt work."""
        if event == "source":
            self.scheduler.set_source(self.image, self.latent, self.session.compare_latent)
            self.view_changed()
            self._update_status()
        if event == "mode":
            self._sync_mode_actions()
            self._build_panes()
        if event == "view":
            self.view_changed()
        if event in ("source", "mode", "view", "reference"):
            self._schedule_metrics()
        if event in ("selection", "line"):
            if event == "line":
                self._schedule_inspector()
            for p in self.panes:
                p.update()

    # ---- construction ------------------------------------------------------------------------
    def _build_status(self) -> None:
        sb = self.statusBar()
        self.lbl_zoom = QtWidgets.QLabel()
        self.lbl_region = QtWidgets.QLabel()
        self.lbl_time = QtWidgets.QLabel()
        self.lbl_device = QtWidgets.QLabel()
        self.lbl_model = QtWidgets.QLabel()
        self.lbl_metrics = QtWidgets.QLabel()
        self.lbl_metrics.hide()
        self.progress = QtWidgets.QProgressBar()
        self.progress.setMaximumWidth(160)
        self.progress.setFormat("encoding %p%")
        self.progress.hide()
        for w in (self.lbl_zoom, self.lbl_region, self.lbl_metrics, self.lbl_time, self.progress,
                  self.lbl_device, self.lbl_model):
            sb.addPermanentWidget(w)
        self._update_status()

    def _action(self, menu, text, slot, shortcut=None, checkable=False) -> QtGui.QAction:
        a = QtGui.QAction(text, self)
        if shortcut:
            a.setShortcut(QtGui.QKeySequence(shortcut))
        a.setCheckable(checkable)
        a.triggered.connect(slot)
        menu.addAction(a)
        return a

    def _build_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self._action(f, "&Open…", self.open_dialog, "Ctrl+O")
        self.recent_menu = f.addMenu("Open &Recent")
        self._action(f, "Open &Reference (higher resolution, for PSNR/SSIM)…",
                     self.open_reference_dialog)
        self._action(f, "&Export…", self.export_dialog, "Ctrl+E")
        f.addSeparator()
        self._action(f, "&Quit", self.close, "Ctrl+Q")
        v = mb.addMenu("&View")
        self._action(v, "Zoom &In", lambda: self.zoom_step(ZOOM_STEP), "+")
        self._action(v, "Zoom In (=)", lambda: self.zoom_step(ZOOM_STEP), "=")
        self._action(v, "Zoom &Out", lambda: self.zoom_step(1 / ZOOM_STEP), "-")
        self._action(v, "&Actual Pixels (1:1)", self.one_to_one, "0")
        self._action(v, "&Fit to Window", self.fit, "F")
        v.addSeparator()
        self.act_side = self._action(v, "&Compare Side by Side (LIIF | bicubic, or the Model "
                                     "menu's comparison)",
                                     lambda: self.set_mode("side"), "C", True)
        self.act_split = self._action(v, "Split / S&wipe Compare",
                                      lambda: self.set_mode("split"), "V", True)
        self.act_single = self._action(v, "&LIIF Only", lambda: self.set_mode("single"), "L", True)
        self.act_nearest = self._action(v, "&Nearest Neighbour (source pixels)",
                                        self.toggle_nearest, "N", True)
        v.addSeparator()
        act = self.inspector.toggleViewAction()
        act.setText("&Inspector (line profile; Ctrl+drag draws the line)")
        act.setShortcut(QtGui.QKeySequence("I"))
        v.addAction(act)
        self._action(v, "Clear Selection and Line", self.clear_selection, "Esc")
        m = mb.addMenu("&Model")
        self._action(m, "&Load Checkpoint…", self.load_checkpoint_dialog, "Ctrl+L")
        self.model_actions = {}
        group = QtGui.QActionGroup(self)
        self._bundled_actions(m, group, self.model_actions, self.load_checkpoint)
        m.addSeparator()
        cm = m.addMenu("&Compare With (second pane, or right of the divider)")
        cgroup = QtGui.QActionGroup(self)
        self.compare_actions = {}
        for key, label in (("bicubic", "&Bicubic"), ("nearest", "&Nearest neighbour")):
            a = self._action(cm, label, lambda _=False, k=key: self.compare_with(k),
                             checkable=True)
            cgroup.addAction(a)
            self.compare_actions[key] = a
        cm.addSeparator()
        self._bundled_actions(cm, cgroup, self.compare_actions, self.compare_with_checkpoint)
        self._action(cm, "Another &Model File…", self.compare_checkpoint_dialog)
        self.model_info = m.addAction("")
        self.model_info.setEnabled(False)
        h = mb.addMenu("&Help")
        self._action(h, "&Controls", self.show_help, "F1")
        self._refresh_recent()
        self._sync_mode_actions()

    def _bundled_actions(self, menu, group, actions: dict, slot) -> None:
        """One checkable action per bundled model file, calling ``slot(path)``; kept in
        ``actions`` by the file's stem."""
        from core.defaults import BUNDLED
        for bm in BUNDLED:
            if bm.path.is_file():
                a = self._action(menu, f"{bm.label}: {bm.path.name}",
                                 lambda _=False, p=str(bm.path): slot(p), checkable=True)
                group.addAction(a)
                actions[bm.path.stem] = a

    def _build_panes(self) -> None:
        for p in self.panes:
            self.layout_.removeWidget(p)
            p.hide()  # at once: deleteLater waits for the event loop, and until then the
            p.deleteLater()  # old pane would still be painted (and its tiles requested)
        self.panes = [Pane(self, s) for s in self.session.pane_methods()]
        for p in self.panes:
            self.layout_.addWidget(p, 1)
        self.panes[0].setFocus()
        QtCore.QTimer.singleShot(0, lambda: self.pane_resized(self.panes[0]))

    # ---- image and model ---------------------------------------------------------------------
    def open_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open image", self.settings.value("last_dir", ""),
            open_filter())
        if path:
            self.open_image(path)

    def open_image(self, path: str) -> bool:
        """Open ``path``; on failure show a dialog and keep the current image."""
        try:
            w, h = image_size(path)
            max_pixels = None
            if w * h > ASK_PIXELS:
                ans = QtWidgets.QMessageBox.question(
                    self, "Large image",
                    f"{os.path.basename(path)} is {w}x{h} ({w * h / 1e6:.0f} Mpx). Opening it "
                    "needs a lot of memory. Open it anyway?")
                if ans != QtWidgets.QMessageBox.StandardButton.Yes:
                    return False
            if self._decoding:
                self.statusBar().showMessage("still opening the previous image", 4000)
                return False
            QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.CursorShape.WaitCursor)
            self.statusBar().showMessage(f"opening {os.path.basename(path)}…")
            try:
                image, arr = self._decode(path, max_pixels)
            finally:
                QtWidgets.QApplication.restoreOverrideCursor()
                self.statusBar().clearMessage()
        except (ImageError, OSError) as exc:
            self.error("Cannot open image", str(exc))
            return False
        except MemoryError:
            self.error("Cannot open image", f"cannot read image {path}: not enough memory")
            return False
        if self.auto_model:
            self._apply_model_rule(path)
        self.set_image(image, arr)
        self._add_recent(path)
        self.settings.setValue("last_dir", os.path.dirname(os.path.abspath(path)))
        self.setWindowTitle(f"LIIF Zoom — {os.path.basename(path)}")
        return True

    def _decode(self, path: str, max_pixels: Optional[int], display: bool = True):
        """``(LoadedImage, uint8 RGB or None)`` of ``path`` (the uint8 copy, for drawing, only
        with ``display``), decoded in a worker thread while this (the GUI) thread keeps
        processing events: the window repaints and stays responsive however slow the file
        is. Errors of the decoder are re-raised here."""
        result = {}
        loop = QtCore.QEventLoop()
        self.decoded.connect(loop.quit, QtCore.Qt.ConnectionType.QueuedConnection)

        def work():
            try:
                image = load_image(path, max_pixels=max_pixels)
                result["value"] = (image, _to_u8(image.rgb) if display else None)
            except BaseException as exc:  # handed to the GUI thread
                result["error"] = exc
            finally:
                self.decoded.emit()

        self._decoding = True
        try:
            threading.Thread(target=work, name="decode", daemon=True).start()
            loop.exec()
        finally:
            self._decoding = False
            self.decoded.disconnect(loop.quit)
        if "error" in result:
            raise result["error"]
        return result["value"]

    # ---- ground truth ------------------------------------------------------------------------
    def open_reference_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open reference (the same picture at a higher resolution)",
            self.settings.value("last_dir", ""),
            open_filter())
        if path:
            self.open_reference(path)

    def open_reference(self, path: str) -> bool:
        """Measure the panes against ``path``, a higher-resolution version of the open image:
        the status bar shows each method's PSNR and SSIM over the view (viewer.groundtruth)."""
        if self.image is None:
            self.error("Open reference", "Open an image first, then its reference.")
            return False
        try:
            ref, _ = self._decode(path, None, display=False)
            self.session.set_reference(ref)
        except (ImageError, OSError, ValueError) as exc:
            self.error("Cannot use reference", str(exc))
            return False
        return True

    def _schedule_metrics(self) -> None:
        if self.session.reference is not None:
            self._metrics_timer.start()
        else:
            self.lbl_metrics.hide()

    def _start_metrics(self) -> None:
        """Compute the metrics of the view in a thread; a newer view makes it stale."""
        from viewer.groundtruth import renderers_for, visible_metrics
        ses = self.session
        if ses.reference is None or ses.state is None:
            return
        self._metrics_gen += 1
        gen = self._metrics_gen
        shown = ses.shown_methods()
        latents = {"liif": ses.latent, "compare": ses.compare_latent}
        fns = {m: f for m, f in renderers_for(ses.image, latents).items() if m in shown}
        args = (ses.image, ses.reference, ses.state.visible_region(), fns)
        self.lbl_metrics.setText("vs reference: measuring…")
        self.lbl_metrics.show()

        def work():
            try:
                res = visible_metrics(*args, cancelled=lambda: gen != self._metrics_gen)
            except Exception as exc:  # shown, never fatal
                res = {"error": str(exc)}
            self.metricsReady.emit(gen, res)

        threading.Thread(target=work, name="metrics", daemon=True).start()

    def _metrics_done(self, gen: int, res: dict) -> None:
        if gen != self._metrics_gen:
            return
        self.last_metrics = res
        if "error" in res:
            self.lbl_metrics.setText(f"vs reference: {res['error']}")
        elif not res:
            self.lbl_metrics.setText("vs reference: view too small")
        else:
            self.lbl_metrics.setText("vs reference: " + " · ".join(
                f"{self.session.label(m)} {p:.2f} dB / SSIM {q:.3f}" for m, (p, q) in res.items()))

    def set_image(self, image: LoadedImage, arr: Optional[np.ndarray] = None) -> None:
        arr = _to_u8(image.rgb) if arr is None else arr
        # converted (a copy) to the layout the painter draws from, not converted per paint
        self.source_qimage = to_qimage(arr).convertToFormat(QtGui.QImage.Format.Format_RGB32)
        self.session.set_image(image, *self.panes[0].device_size())

    def set_model(self, model, name: str, reason: str = "") -> None:
        self.session.set_model(model, name, reason)

    def _apply_model_rule(self, path: Optional[str]) -> None:
        """Use the model :func:`core.defaults.choose_model` picks for the image in ``path``
        (each loaded once); on a load failure, a dialog and the current model stays."""
        from core.defaults import choose_model
        choice = choose_model(self.device, path)
        if self.model is not None and self.model_name == choice.path.stem:
            self.session.model_reason = choice.reason
            self._update_status()
            return
        model = self._rule_models.get(choice.path)
        if model is None:
            model = self._load_or_explain(str(choice.path), "The current model stays in use.")
            if model is None:
                return
            self._rule_models[choice.path] = model
        self.set_model(model, choice.path.stem, choice.reason)

    def compare_with(self, other: str) -> None:
        """Compare with bicubic or nearest neighbour (drops a compare model)."""
        if self.session.compare_model is not None:
            self.session.set_compare_model(None)
        self.session.set_other(other)

    def compare_checkpoint_dialog(self) -> None:
        path = self._ask_model_file("Compare with model")
        if path:
            self.compare_with_checkpoint(path)

    def compare_with_checkpoint(self, path: str) -> bool:
        """Show the model in ``path`` beside the one in use (side by side or split); on
        failure a dialog, and the comparison stays as it was."""
        model = self._load_or_explain(path, "The comparison stays as it was.")
        if model is None:
            return False
        self.session.set_compare_model(model, Path(path).stem)
        if self.session.mode == "single":
            self.session.set_mode("side")
        return True

    def load_checkpoint_dialog(self) -> None:
        path = self._ask_model_file("Load checkpoint")
        if path:
            self.load_checkpoint(path)

    def _ask_model_file(self, title: str) -> str:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, title, "", "Models (*.safetensors *.pth *.pt);;All files (*)")
        return path

    def _load_or_explain(self, path: str, keeps: str):
        """The model in ``path``, or None after a dialog that says why and what ``keeps``."""
        try:
            return load_model(path, self.device)[0]
        except CheckpointError as exc:
            self.error("Cannot load checkpoint", f"{exc}\n\n{keeps}")
        except (Exception, RecursionError) as exc:  # never lose the window to a bad file
            self.error("Cannot load checkpoint", f"cannot load checkpoint {path}: "
                       f"{type(exc).__name__}: {exc}\n\n{keeps}")
        return None

    def load_checkpoint(self, path: str) -> bool:
        model = self._load_or_explain(path, "The current model stays in use.")
        if model is None:
            return False
        self.set_model(model, Path(path).stem, "chosen in the Model menu")
        return True

    # ---- view actions ------------------------------------------------------------------------
    def pane_resized(self, pane: Pane) -> None:
        if pane is self.panes[0]:
            self.session.resize(*pane.device_size())

    def zoom_at(self, factor: float, px: float, py: float) -> None:
        self.session.zoom_at(factor, px, py)

    def zoom_step(self, factor: float) -> None:
        self.session.zoom_at(factor)

    def pan(self, dx: float, dy: float) -> None:
        self.session.pan(dx, dy)

    def fit(self) -> None:
        self.session.fit()

    def one_to_one(self) -> None:
        self.session.one_to_one()

    def set_mode(self, mode: str) -> None:
        """Side by side, split or LIIF only (the current mode's key returns to LIIF only)."""
        self.session.set_mode(mode)

    def toggle_nearest(self) -> None:
        self.session.toggle_nearest()

    def _sync_mode_actions(self) -> None:
        self.act_side.setChecked(self.mode == "side")
        self.act_split.setChecked(self.mode == "split")
        self.act_single.setChecked(self.mode == "single")
        self.act_nearest.setChecked(self.nearest)
        other = self.session.other
        key = self.session.compare_name if other == "compare" else other
        for k, a in getattr(self, "compare_actions", {}).items():
            a.setChecked(k == key)

    def set_selection(self, a, b) -> None:
        self.session.set_selection(a, b)

    def clear_selection(self) -> None:
        self.session.clear_selection()

    def set_profile_line(self, a, b) -> None:
        """The inspector's line from source point ``a`` to ``b``; shows the inspector."""
        if not self.inspector.isVisible():
            self.show_inspector()
        self.session.set_profile_line(a, b)

    def show_inspector(self) -> None:
        """Show the inspector dock at a height that leaves the panes most of the window."""
        self.inspector.show()
        self.resizeDocks([self.inspector], [max(160, self.height() // 3)],
                         QtCore.Qt.Orientation.Vertical)

    def _schedule_inspector(self) -> None:
        if not self._inspector_timer.isActive():
            self._inspector_timer.start()

    def shown_methods(self) -> List[str]:
        """The methods the panes show now, in pane order (LIIF only with a model)."""
        return self.session.shown_methods()

    def refresh_inspector(self) -> None:
        """Recompute the profiles from what is rendered now (see viewer.inspector)."""
        if not self.inspector.isVisible():
            return
        line, st = self.profile_line, self.state
        if line is None or st is None:
            self.inspector.update_profiles({}, "Ctrl+drag on the image to draw a line")
            return
        T = self.scheduler.tile
        curves = {m: line_profile(self.scheduler.cache.get, m, st.zoom, T, *line)
                  for m in self.shown_methods()}
        (x0, y0), (x1, y1) = line
        self.inspector.update_profiles(curves, (
            f"({x0:.1f}, {y0:.1f}) → ({x1:.1f}, {y1:.1f}), "
            f"{((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5:.1f} source px at {st.zoom:.3g}×"))

    def methods(self) -> List[str]:
        """What the scheduler renders for the panes: every layer they draw, previews first."""
        return self.session.render_methods()

    def view_changed(self) -> None:
        """Re-query what the panes show now; called after every change of the view."""
        if self.state is not None:
            st, T = self.state, self.scheduler.tile
            methods = self.methods()
            # previews first in the method list so their worker starts at once
            self.scheduler.request(st.zoom, st.visible_tiles(T), methods,
                                   lambda i, j: st.tile_region(i, j, T),
                                   lambda i, j: st.tile_window(i, j, T))
        self._update_status()
        for p in self.panes:
            p.update()
        if self.profile_line is not None:
            self._schedule_inspector()

    def _repaint(self) -> None:
        for p in self.panes:
            p.update()
        if self.profile_line is not None:
            self._schedule_inspector()

    def _pass_done(self, kind: str, seconds: float) -> None:
        self.last_times[kind] = seconds
        self._update_status()

    def _update_status(self) -> None:
        st = self.state
        if st is None:
            self.lbl_zoom.setText("no image")
            self.lbl_region.setText("")
        else:
            r = st.visible_region()
            self.lbl_zoom.setText(f"zoom {st.zoom:.3g}× (screen px per source px)")
            self.lbl_region.setText(f"view x {r.x:.1f}, y {r.y:.1f}, {r.w:.1f} × {r.h:.1f} px")
        t = self.last_times
        parts = [f"{k} {t[k] * 1000:.0f} ms" for k in ("preview", "coarse", "full") if k in t]
        self.lbl_time.setText("last render: " + (", ".join(parts) if parts else "–"))
        self.lbl_device.setText(f"device {self.device.type}")
        family = f" ({type(self.model).__name__})" if self.model is not None else ""
        why = f" · {self.session.model_reason}" if self.session.model_reason else ""
        self.lbl_model.setText(f"model {self.model_name or 'none'}{family}{why}")
        for stem, act in getattr(self, "model_actions", {}).items():
            act.setChecked(stem == self.model_name)
        if hasattr(self, "model_info"):
            self.model_info.setText(f"In use: {self.model_name or 'none'} on {self.device.type}")

    def _update_encode_progress(self) -> None:
        lat = self.latent
        if lat is None or lat.n_encoded >= lat.n_tiles:
            self.progress.hide()
            return
        self.progress.show()
        self.progress.setMaximum(lat.n_tiles)
        self.progress.setValue(lat.n_encoded)

    # ---- export ------------------------------------------------------------------------------
    def export_dialog(self) -> None:
        if self.image is None:
            self.error("Export", "Open an image first.")
            return
        stem = Path(self.image.path).stem or "export"
        dlg = ExportDialog(self, self.image.width, self.image.height, self.state.visible_region(),
                           self.selection, self.settings.value("export_dir", ""), stem + "-liif")
        if dlg.exec() == QtWidgets.QDialog.DialogCode.Accepted and dlg.result_request:
            self.start_export(dlg.result_request)

    def start_export(self, req: ExportRequest) -> None:
        """Run ``req`` in a background thread with a progress dialog and Cancel."""
        if "liif" in req.methods and self.latent is None:
            self.error("Export", "No model is loaded; choose bicubic or load a checkpoint.")
            return
        self._export_cancel.clear()
        dlg = QtWidgets.QProgressDialog("Exporting…", "Cancel", 0, 1000, self)
        dlg.setWindowModality(QtCore.Qt.WindowModality.WindowModal)
        dlg.setMinimumDuration(0)
        dlg.canceled.connect(self._export_cancel.set)
        self._progress_dialog = dlg
        n = len(req.methods)

        image, latent = self.image, self.latent

        def work():
            # all or nothing: every method renders into a staged file beside its target, and
            # the targets are replaced only when all are complete; a cancel or an error
            # removes the staged files and leaves every target as it was
            try:
                with staged(req.paths) as tmps:
                    for k, (m, tmp) in enumerate(zip(req.methods, tmps)):
                        export(image, req.region, req.out_w, req.out_h, tmp, m, latent,
                               quality=req.quality,
                               progress=lambda d, t, k=k: self.exportProgress.emit(k * t + d, n * t),
                               cancelled=self._export_cancel.is_set)
                self.exportDone.emit("", ", ".join(req.paths))
            except Cancelled:
                self.exportDone.emit("cancelled", "")
            except (ImageError, OSError, ValueError) as exc:
                self.exportDone.emit(str(exc), "")
            except Exception as exc:  # keep the app alive whatever happens
                self.exportDone.emit(f"{type(exc).__name__}: {exc}", "")

        self.settings.setValue("export_dir", os.path.dirname(os.path.abspath(req.paths[0])))
        self._export_thread = threading.Thread(target=work, daemon=True)
        self._export_thread.start()

    def _export_progress(self, done: int, total: int) -> None:
        if self._progress_dialog is not None and total:
            self._progress_dialog.setValue(int(1000 * done / total))

    def _export_done(self, err: str, paths: str) -> None:
        if self._progress_dialog is not None:
            self._progress_dialog.reset()
            self._progress_dialog = None
        if err == "cancelled":
            self.statusBar().showMessage("export cancelled; nothing written, no file changed",
                                         5000)
        elif err:
            self.error("Export failed", err)
        else:
            self.statusBar().showMessage(f"exported {paths}", 8000)

    # ---- misc --------------------------------------------------------------------------------
    def error(self, title: str, message: str) -> None:
        QtWidgets.QMessageBox.critical(self, title, message)

    def show_help(self) -> None:
        QtWidgets.QMessageBox.information(self, "Controls", (
            "Wheel: zoom about the cursor · Drag: pan · Shift+drag: select a region\n"
            "+ / −: zoom · 0: 1 screen pixel per source pixel · F: fit\n"
            "C: side by side (LIIF | bicubic) · V: split view (drag the divider) · "
            "L: LIIF only · N: nearest neighbour\n"
            "Ctrl+drag: draw a line for the inspector's profiles · I: show/hide the inspector\n"
            "Ctrl+E: export · Ctrl+L: load checkpoint · Ctrl+O: open"))

    def _add_recent(self, path: str) -> None:
        path = os.path.abspath(path)
        recent = [p for p in (self.settings.value("recent") or []) if p != path]
        self.settings.setValue("recent", [path] + recent[:MAX_RECENT - 1])
        self._refresh_recent()

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.value("recent") or []
        if isinstance(recent, str):
            recent = [recent]
        for p in recent:
            a = self.recent_menu.addAction(p)
            a.triggered.connect(lambda _=False, p=p: self.open_image(p))
        self.recent_menu.setEnabled(bool(recent))

    def dragEnterEvent(self, ev) -> None:
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev) -> None:
        urls = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if urls:
            self.open_image(urls[0])

    def closeEvent(self, ev) -> None:
        self._export_cancel.set()
        if self._export_thread is not None:
            self._export_thread.join(timeout=30)
        self.scheduler.shutdown()
        super().closeEvent(ev)
