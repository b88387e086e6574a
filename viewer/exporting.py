"""The viewer's side of an export: a progress dialog with Cancel over
:func:`core.export.export_many`, run in the background (:class:`viewer.background.Background`).

The all-or-nothing commit of several files lives in core; here only what a person sees: the
progress, a cancel that leaves every target as it was, and one line or one dialog at the end;
after a successful export an "Open folder" button in the status bar (for :data:`SHOW_OPEN_MS`)
opens the folder in the system's file manager.
"""
from __future__ import annotations

import os
from typing import Callable, Mapping, Optional

from PySide6 import QtCore, QtGui, QtWidgets

from core.export import export_many
from core.io.imageio import ImageError
from core.render.encoding import Cancelled
from viewer.background import Background, Task
from viewer.export_dialog import ExportRequest

#: how long the "Open folder" button stays after an export
SHOW_OPEN_MS = 30_000


class ExportRunner(QtCore.QObject):
    """Runs one export at a time for ``parent`` (the main window): ``report(message)`` puts a
    line in the status bar, ``fail(title, message)`` shows an error dialog."""

    def __init__(self, parent: QtWidgets.QWidget, background: Background,
                 report: Callable[[str], None], fail: Callable[[str, str], None],
                 bar: Optional[QtWidgets.QStatusBar] = None,
                 hold: Optional[Callable[[bool], None]] = None) -> None:
        super().__init__(parent)
        self.parent_widget, self.background = parent, background
        #: ``hold(True)`` while an export runs (the viewer holds its background encoding,
        #: which would compete for the same cores), ``hold(False)`` after
        self.hold = hold
        self.report, self.fail = report, fail
        self.folder: Optional[str] = None  #: where the last export went
        self.open_button = QtWidgets.QPushButton("Open folder")
        self.open_button.setFlat(True)
        self.open_button.hide()
        self.open_button.clicked.connect(self.open_folder)
        self._hide_timer = QtCore.QTimer(self)
        self._hide_timer.setSingleShot(True)
        self._hide_timer.timeout.connect(self.open_button.hide)
        if bar is not None:
            bar.insertPermanentWidget(0, self.open_button)
        #: the export running, if any (:class:`viewer.background.Task`)
        self.task: Optional[Task] = None
        self.dialog: Optional[QtWidgets.QProgressDialog] = None

    def start(self, req: ExportRequest, image, latents: Mapping[str, object]) -> None:
        dlg = QtWidgets.QProgressDialog("Exporting…", "Cancel", 0, 1000, self.parent_widget)
        dlg.setWindowModality(QtCore.Qt.WindowModality.WindowModal)
        dlg.setMinimumDuration(0)
        self.dialog = dlg

        def work(task: Task):
            return export_many(image, req.region, req.out_w, req.out_h,
                               list(zip(req.methods, req.paths)), latents, quality=req.quality,
                               progress=task.progress, cancelled=task.cancelled,
                               keep_exif=req.keep_exif)

        if self.hold is not None:
            self.hold(True)
        self.task = self.background.run(work, self._done, name="export",
                                        on_progress=self._progress)
        dlg.canceled.connect(self.task.cancel)

    def _progress(self, done: int, total: int) -> None:
        if self.dialog is not None and total:
            self.dialog.setValue(int(1000 * done / total))

    def _done(self, paths, error) -> None:
        if self.hold is not None:
            self.hold(False)
        if self.dialog is not None:
            self.dialog.reset()
            self.dialog = None
        if isinstance(error, Cancelled):
            self.report("export cancelled; nothing written, no file changed")
        elif isinstance(error, (ImageError, OSError, ValueError)):
            self.fail("Export failed", str(error))
        elif error is not None:  # keep the app alive whatever happens
            self.fail("Export failed", f"{type(error).__name__}: {error}")
        else:
            self.report(f"exported {', '.join(paths)}")
            self.folder = os.path.dirname(os.path.abspath(paths[0]))
            self.open_button.setToolTip(f"Show {self.folder} in the file manager")
            self.open_button.show()
            self._hide_timer.start(SHOW_OPEN_MS)

    def open_folder(self) -> None:
        """Show the last export's folder in the system's file manager."""
        if self.folder and not QtGui.QDesktopServices.openUrl(
                QtCore.QUrl.fromLocalFile(self.folder)):
            self.fail("Open folder", f"no file manager could open {self.folder}")

    def shutdown(self, timeout: float = 30.0) -> None:
        """Cancel a running export and wait for it (its staged files are removed)."""
        if self.task is not None:
            self.task.cancel()
            self.task.join(timeout)
