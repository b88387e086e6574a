"""The main window: it builds the panes, menus, status bar, inspector and dialogs, and shows
the session's state. It holds no view logic of its own:

* the :class:`~viewer.session.Session` is the state (image, models, view, compare mode,
  selection, line); panes send their input straight to it;
* the :class:`~viewer.scheduler.RenderScheduler` subscribes to the session and renders what
  it shows; the window subscribes too, to repaint and update the status bar;
* background work (decoding, metrics, export) goes through :class:`~viewer.background.Background`;
  an export is :func:`core.export.export_many` under a progress dialog
  (:class:`~viewer.exporting.ExportRunner`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from core.io.colour import ToSRGB
from core.io.imageio import MAX_PIXELS, ImageError, LoadedImage, image_size, load_image
from core.profile import DeviceProfile, profile_for
from viewer.background import Background
from viewer.canvas import Pane, to_qimage
from viewer.display import display_pixels, neighbours, transparency_mask
from viewer.export_dialog import ExportDialog, ExportRequest
from viewer.exporting import ExportRunner
from viewer.inspector import InspectorDock
from viewer.menus import HELP, RecentFiles, build_menus
from viewer.models import ModelLoader
from viewer.scheduler import RenderScheduler
from viewer.session import Event, Mode, Session
from viewer.statusbar import StatusBar

#: above this many pixels the viewer asks before opening an image
ASK_PIXELS = 100_000_000


class MainWindow(QtWidgets.QMainWindow):
    """The window of one :class:`Session`. Its public methods are what menus and dialogs
    call; view changes go to :attr:`session` directly."""

    tileReady = QtCore.Signal()
    passDone = QtCore.Signal(str, float)
    renderError = QtCore.Signal(str)

    def __init__(self, model=None, model_name: str = "", profile: Optional[DeviceProfile] = None,
                 settings: Optional[QtCore.QSettings] = None) -> None:
        super().__init__()
        self.setWindowTitle("LIIF Zoom")
        #: how this window computes (core.profile): one CPU render worker unless told
        self.profile = profile or profile_for("cpu", workers=1)
        self.session = Session(self.profile)
        self.session.model, self.session.model_name = model, model_name
        #: pick the model for each opened image by core.zoo.choose (off when the
        #: command line named a checkpoint, or the window was made with a model); the Model
        #: menu overrides it for the open image
        self.auto_model = model is None
        self.models = ModelLoader(self.session, lambda t, m: self.error(t, m))
        self.source_qimage: Optional[QtGui.QImage] = None
        self.display_colour: Optional[ToSRGB] = None  # the open image's profile -> sRGB
        self.transparency: Optional[QtGui.QImage] = None  # see viewer.canvas.PaneHost
        self.settings = settings or QtCore.QSettings("LIIF Zoom", "LIIF Zoom")
        self.background = Background(self)
        self._decoding = False
        self.scheduler = RenderScheduler(
            tile=self.profile.view_tile,
            liif_workers=self.profile.workers,
            on_tile=lambda key: self.tileReady.emit(),
            on_pass=lambda kind, s: self.passDone.emit(kind, s),
            on_error=lambda msg: self.renderError.emit(msg),
        )
        self.scheduler.follow(self.session)  # before the window: it renders, we repaint
        self.tileReady.connect(self._repaint, QtCore.Qt.ConnectionType.QueuedConnection)
        self.renderError.connect(lambda m: self.statusBar().showMessage(f"render error: {m}", 8000))
        self.exports = ExportRunner(self, self.background,
                                    lambda msg: self.statusBar().showMessage(msg, 8000),
                                    lambda title, msg: self.error(title, msg),
                                    self.statusBar(), hold=self.scheduler.pause_background)

        central = QtWidgets.QWidget()
        self.layout_ = QtWidgets.QHBoxLayout(central)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.layout_.setSpacing(2)
        self.setCentralWidget(central)
        self.panes: List[Pane] = []
        self.inspector = InspectorDock(self, self.session, self.scheduler)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.BottomDockWidgetArea, self.inspector)
        self.inspector.hide()
        self.status = StatusBar(self.statusBar(), self.session, self.background)
        self.passDone.connect(self.status.pass_done, QtCore.Qt.ConnectionType.QueuedConnection)
        self.menus = build_menus(self)
        self.recent = RecentFiles(self.menus.recent, self.settings, self.open_image)
        self._build_panes()
        self.session.subscribe(self._on_session)
        self.setAcceptDrops(True)
        self.resize(1280, 800)
        geometry = self.settings.value("geometry")
        if geometry is not None:  # the size and place it had when it was last closed
            self.restoreGeometry(geometry)

    def _on_session(self, event: str) -> None:
        """Show a change of the session (the scheduler has already asked for the tiles)."""
        if event == Event.MODE:
            self._build_panes()
        if event in (Event.SOURCE, Event.MODE, Event.VIEW, Event.REFERENCE):
            self.status.schedule_metrics()
        if event == Event.LINE and self.session.profile_line is not None \
                and not self.inspector.isVisible():
            self.show_inspector()
        if event in (Event.LINE, Event.VIEW, Event.SOURCE):  # (a new image clears the line)
            self.inspector.schedule()
        if event in (Event.MODE, Event.SOURCE):  # (the check marks change with these only)
            self.menus.sync(self.session)
        self.status.refresh()
        for p in self.panes:
            p.update()

    def _build_panes(self) -> None:
        for p in self.panes:
            self.layout_.removeWidget(p)
            p.hide()  # at once: deleteLater waits for the event loop, and until then the
            p.deleteLater()  # old pane would still be painted (and its tiles requested)
        self.panes = [Pane(self, list(s)) for s in self.session.snapshot.panes]
        for p in self.panes:
            self.layout_.addWidget(p, 1)
        self.panes[0].setFocus()
        QtCore.QTimer.singleShot(0, lambda: self.pane_resized(self.panes[0]))

    def pane_resized(self, pane: Pane) -> None:
        if self.panes and pane is self.panes[0]:
            self.session.resize(*pane.device_size())

    def cursor_moved(self, pane: Pane, at) -> None:
        """The readout under the pointer: its source coordinates, the source pixel's own
        values and what each pane shows there (the panes are linked: the same point)."""
        st, image = self.session.state, self.session.image
        if at is None or st is None or image is None:
            self.statusBar().clearMessage()
            return
        sx, sy = st.screen_to_source(*at)
        if not (0 <= sx < image.width and 0 <= sy < image.height):
            self.statusBar().clearMessage()
            return
        v = image.pixels[int(sy), int(sx)]
        parts = [f"x {sx:.1f}  y {sy:.1f}", "source " + ",".join(str(int(c)) for c in v)]
        for p in self.panes:
            got = p.value_at(*at)
            if got is not None:
                label = self.session.label(got[0]).split(":")[0]
                parts.append(f"{label} " + ",".join(str(c) for c in got[1]))
        self.statusBar().showMessage(" · ".join(parts))

    def toggle_full_screen(self) -> None:
        """F11: full screen and back."""
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    def zoom_to(self, percent: Optional[float] = None) -> None:
        """Zoom to ``percent`` (100: one screen pixel per source pixel) about the view's
        centre; without one, ask for it."""
        st = self.session.state
        if st is None:
            return
        if percent is None:
            percent, ok = QtWidgets.QInputDialog.getDouble(
                self, "Zoom to", "Zoom (%; 100 = one screen pixel per source pixel):",
                round(st.zoom * 100, 1), 1.0, 1e5, 1)
            if not ok:
                return
        self.session.zoom_at(percent / 100 / st.zoom)

    def step_image(self, step: int) -> bool:
        """Open the next (``step`` 1) or previous (-1) image of the folder (wrapping); one that
        cannot be read is passed over with its dialog."""
        if self.session.image is None or not self.session.image.path:
            return False
        return any(self.open_image(p) for p in neighbours(self.session.image.path, step))

    def _repaint(self) -> None:
        for p in self.panes:
            p.update()
        if self.session.profile_line is not None:
            self.inspector.schedule()

    # ---- image ------------------------------------------------------------------------------
    def open_image(self, path: str) -> bool:
        """Open ``path``; on failure show a dialog and keep the current image."""
        try:
            w, h = image_size(path)
            if (
                w * h > ASK_PIXELS
                and QtWidgets.QMessageBox.question(
                    self,
                    "Large image",
                    f"{os.path.basename(path)} is {w}x{h} ({w * h / 1e6:.0f} Mpx). Opening it "
                    "needs a lot of memory. Open it anyway?",
                )
                != QtWidgets.QMessageBox.StandardButton.Yes
            ):
                return False
            image, arr = self._decode(path, None)  # (above ASK_PIXELS the user said yes)
        except (ImageError, OSError) as exc:
            self.error("Cannot open image", str(exc))
            return False
        except MemoryError:
            self.error("Cannot open image", f"cannot read image {path}: not enough memory")
            return False
        if image is None:
            return False
        if self.auto_model:
            self.models.apply_rule(path)
            self.status.refresh()
        self.set_image(image, arr)
        notes = image.notes()
        if self.transparency is not None:
            notes.append("transparent: shown over a checkerboard")
        if self.display_colour is not None:
            notes.append(f"colour profile {self.display_colour.name!r}, shown converted to sRGB")
        if notes:
            self.statusBar().showMessage(f"{os.path.basename(path)}: {'; '.join(notes)}", 10000)
        self.recent.add(path)
        self.settings.setValue("last_dir", os.path.dirname(os.path.abspath(path)))
        self.setWindowTitle(f"LIIF Zoom — {os.path.basename(path)}")
        return True

    def _decode(self, path: str, max_pixels: Optional[int], display: bool = True):
        """``(LoadedImage, uint8 RGB or None)`` of ``path`` (the uint8 copy, for drawing, only
        with ``display``), decoded in the background while the window stays responsive;
        ``(None, None)`` while another image is still being opened."""
        if self._decoding:
            self.statusBar().showMessage("still opening the previous image", 4000)
            return None, None

        def work(task):
            image = load_image(path, max_pixels=max_pixels)
            return image, (display_pixels(image) if display else None)

        self._decoding = True
        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.CursorShape.WaitCursor)
        self.statusBar().showMessage(f"opening {os.path.basename(path)}…")
        try:
            return self.background.wait(work, name="decode")
        finally:
            self._decoding = False
            QtWidgets.QApplication.restoreOverrideCursor()
            self.statusBar().clearMessage()

    def set_image(self, image: LoadedImage, arr: Optional[np.ndarray] = None) -> None:
        """Show ``image``; ``arr`` is its :func:`display_pixels` when already made (off the
        GUI thread)."""
        arr = display_pixels(image) if arr is None else arr
        self.display_colour = ToSRGB.for_profile(image.meta.icc)
        for pane in self.panes:
            pane.forget_shown()
        # converted (a copy) to the layout the painter draws from, not converted per paint
        self.source_qimage = to_qimage(arr).convertToFormat(QtGui.QImage.Format.Format_RGB32)
        self.transparency = transparency_mask(image)
        self.session.set_image(image, *self.panes[0].device_size())

    # ---- ground truth ------------------------------------------------------------------------
    def open_reference(self, path: str) -> bool:
        """Measure the panes against ``path``, a higher-resolution version of the open image:
        PSNR and SSIM of each pane's render over the view (see viewer.groundtruth)."""
        if self.session.image is None:
            self.error("Cannot use reference", "Open an image first.")
            return False
        try:
            # its header first: a reference of the wrong shape is refused before decoding
            # (a small file may declare a huge one); then the same size limit as an image
            from viewer.groundtruth import size_scale
            size_scale(self.session.image, *image_size(path))
            ref, _ = self._decode(path, MAX_PIXELS, display=False)
            if ref is None:
                return False
            self.session.set_reference(ref)
        except (ImageError, OSError, ValueError) as exc:
            self.error("Cannot use reference", str(exc))
            return False
        except MemoryError:
            self.error("Cannot use reference", f"cannot read {path}: not enough memory")
            return False
        return True

    # ---- models -----------------------------------------------------------------------------
    def set_model(self, model, name: str, reason: str = "") -> None:
        self.session.set_model(model, name, reason)

    def compare_with(self, other: str) -> None:
        """Compare with bicubic or nearest neighbour (drops a compare model)."""
        if self.session.compare_model is not None:
            self.session.set_compare_model(None)
        self.session.set_other(other)

    def compare_with_checkpoint(self, path: str) -> bool:
        """Show the model in ``path`` beside the one in use (side by side or split); on
        failure a dialog, and the comparison stays as it was."""
        model = self.models.load(path, "The comparison stays as it was.")
        if model is None:
            return False
        if model is self.session.model:  # (core.zoo loads a file once: the same object)
            self.error("Compare with", f"{Path(path).stem} is the model in use already: "
                       "compare it with another model, bicubic or nearest neighbour.")
            return False
        self.session.set_compare_model(model, Path(path).stem)
        if self.session.mode == Mode.SINGLE:
            self.session.set_mode(Mode.SIDE)
        return True

    def use_rule(self) -> None:
        """Model → Automatic: the model the rule picks for the open image, from now on."""
        self.auto_model = True
        self.models.apply_rule(self.session.image.path if self.session.image is not None else None)
        self._on_session(Event.SOURCE)

    def load_checkpoint(self, path: str) -> bool:
        model = self.models.load(path, "The current model stays in use.")
        if model is None:
            return False
        self.set_model(model, Path(path).stem, "chosen in the Model menu")
        return True

    # ---- inspector --------------------------------------------------------------------------
    def show_inspector(self) -> None:
        """Show the inspector dock at a height that leaves the panes most of the window."""
        self.inspector.show()
        self.resizeDocks([self.inspector], [max(160, self.height() // 3)],
                         QtCore.Qt.Orientation.Vertical)

    # ---- export ------------------------------------------------------------------------------
    def export_dialog(self) -> None:
        ses, img = self.session, self.session.image
        if img is None:
            self.error("Export", "Open an image first.")
            return
        stem = Path(img.path).stem or "export"
        # the last folder exported to, else the image's own (where the README says)
        folder = self.settings.value("export_dir", "") or (
            os.path.dirname(os.path.abspath(img.path)) if img.path else "")
        dlg = ExportDialog(self, img.width, img.height, ses.state.visible_region(),
                           ses.selection, folder, stem + "-liif",
                           compare=ses.compare_name or None, image=img,
                           seconds=ses.export_seconds)
        if dlg.exec() == QtWidgets.QDialog.DialogCode.Accepted and dlg.result_request:
            self.start_export(dlg.result_request)

    def start_export(self, req: ExportRequest) -> None:
        """Run ``req`` in the background with a progress dialog and Cancel."""
        ses = self.session
        latents = ses.latents()
        missing = [m for m in req.methods if m in latents and latents[m] is None]
        if missing:
            self.error("Export", "No model is loaded for "
                       f"{', '.join(missing)}; choose bicubic or load a checkpoint.")
            return
        self.settings.setValue("export_dir", os.path.dirname(os.path.abspath(req.paths[0])))
        self.exports.start(req, ses.image, latents)

    def copy_view(self) -> None:
        """Put the panes, as shown, on the clipboard as one image."""
        QtWidgets.QApplication.clipboard().setImage(self.centralWidget().grab().toImage())
        self.statusBar().showMessage("view copied to the clipboard", 3000)

    # ---- misc --------------------------------------------------------------------------------
    def error(self, title: str, message: str) -> None:
        QtWidgets.QMessageBox.critical(self, title, message)

    def show_help(self) -> None:
        QtWidgets.QMessageBox.information(self, "Controls", HELP)

    def dragEnterEvent(self, ev) -> None:
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev) -> None:
        urls = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if urls:
            self.open_image(urls[0])

    def closeEvent(self, ev) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        # every thread that may be inside torch is stopped and joined: one still running when
        # the interpreter exits aborts the process ("terminate called without an active
        # exception", status 134)
        self.exports.shutdown()
        self.status.shutdown()
        self.background.shutdown()
        self.scheduler.shutdown()
        super().closeEvent(ev)
