"""The export dialog: which region, what size, which method(s), which format and file."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Callable, List, Optional

from PySide6 import QtCore, QtWidgets

from core.defaults import duration
from core.export import CONFIRM_OUTPUT, estimate_bytes
from core.geometry import Region
from core.io import formats
from core.io.imageio import ImageError, LoadedImage
from core.render.methods import Method
from viewer.background import Background

#: (name, extension) of every format the app writes (core.io.formats' table)
FORMATS = [(f.name, f.exts[0]) for f in formats.FORMATS if f.writable]
MAX_SIDE = 65536
#: above this many output pixels (all files) the size line turns into a warning
WARN_PIXELS = 100_000_000


def _human_bytes(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n} bytes"


@dataclass
class ExportRequest:
    region: Region
    out_w: int
    out_h: int
    methods: List[str]
    paths: List[str]
    quality: int
    keep_exif: bool = True


def output_paths(path: str, methods: List[str]) -> List[str]:
    """One file per method; with several, ``name-liif.ext``, ``name-bicubic.ext``, ..."""
    if len(methods) == 1:
        return [path]
    stem, ext = os.path.splitext(path)
    return [f"{stem}-{m}{ext}" for m in methods]


def method_choices(compare: Optional[str] = None) -> dict:
    """The dialog's method choices, ``{label: [method, ...]}``; with a second model shown
    (``compare``: its name) it can be exported too, alone or beside LIIF."""
    L, C, B, N = Method.LIIF, Method.COMPARE, Method.BICUBIC, Method.NEAREST
    base = {L.label: [L], B.label: [B], N.label: [N], "both": [L, B]}
    if not compare:
        return base
    return {L.label: [L], f"{C.label} ({compare})": [C], f"{L.label} and {C.label}": [L, C],
            **{k: v for k, v in base.items() if k != L.label}}


def free_name(folder: str, stem: str, ext: str) -> str:
    """``folder/stem.ext``, or ``stem-2.ext``, ``stem-3.ext``, ... the first that does not
    exist: a repeated export proposes a new file, never the last one's."""
    path = os.path.join(folder, f"{stem}{ext}")
    k = 2
    while os.path.lexists(path):
        path = os.path.join(folder, f"{stem}-{k}{ext}")
        k += 1
    return path


def _pictures() -> str:
    """The user's Pictures folder if there is one, else the home folder: never the folder the
    app was started from."""
    home = os.path.expanduser("~")
    pics = os.path.join(home, "Pictures")
    return pics if os.path.isdir(pics) else home


class ExportDialog(QtWidgets.QDialog):
    """Choose region (selection / current view / whole image), output size (W x H or scale,
    aspect lock), method (LIIF, bicubic, both), format and quality, and the file."""

    def __init__(self, parent, image_w: int, image_h: int, view: Region,
                 selection: Optional[Region], default_dir: str = "", stem: str = "export",
                 compare: Optional[str] = None, image: Optional[LoadedImage] = None,
                 seconds: Optional[Callable[[Region, int], Optional[float]]] = None) -> None:
        super().__init__(parent)
        #: ``seconds(region, output_pixels, measure)``: the whole export's time, encoding the
        #: region's source pixels not encoded yet included; None until the costs are measured
        #: unless ``measure`` (which the background estimate does; None: no time shown)
        self.seconds = seconds
        #: the image, for the file-size estimate and what the format keeps (None: neither)
        self.image = image
        # the current view cut to the image: at fit it also holds the letterbox around it
        view = view.inside(image_w, image_h) or view
        #: the method choices: label -> methods (core.render.methods' names); one file per method
        self.choices = method_choices(compare)
        self.setWindowTitle("Export region")
        self.regions = {"Whole image": Region.full(image_w, image_h), "Current view": view}
        if selection is not None:
            self.regions = {"Selection": selection, **self.regions}
        form = QtWidgets.QFormLayout(self)
        self._size_rows(form)
        self._format_rows(form)
        self._file_rows(form, default_dir, stem)
        self._connect()
        #: the file-size estimate encodes a mosaic of patches (up to seconds for HEIC): in
        #: the background, once typing stops; ``_bytes_asked`` numbers the requests so that
        #: only the latest one's answer is shown
        self._bytes_timer = QtCore.QTimer(self)
        self._bytes_timer.setSingleShot(True)
        self._bytes_timer.setInterval(150)
        self._bytes_timer.timeout.connect(self._estimate_bytes)
        self._background = Background(self)
        self._bytes_asked = 0
        self.file_bytes: Optional[int] = None
        self._from_scale()
        self._show_notes()
        self.result_request: Optional[ExportRequest] = None

    # ---- building ----------------------------------------------------------------------------
    def _size_rows(self, form: QtWidgets.QFormLayout) -> None:
        """Region, scale, output size and the estimate line."""
        self.region_box = QtWidgets.QComboBox()
        self.region_box.addItems(list(self.regions))
        form.addRow("Region", self.region_box)
        self.region_label = QtWidgets.QLabel()
        form.addRow("", self.region_label)
        self.scale = QtWidgets.QDoubleSpinBox()
        self.scale.setRange(0.01, 1000.0)
        self.scale.setDecimals(3)
        self.scale.setValue(4.0)
        form.addRow("Scale", self.scale)
        size = QtWidgets.QHBoxLayout()
        self.w = QtWidgets.QSpinBox()
        self.h = QtWidgets.QSpinBox()
        for s in (self.w, self.h):
            s.setRange(1, MAX_SIDE)
        self.lock = QtWidgets.QCheckBox("lock aspect")
        self.lock.setChecked(True)
        size.addWidget(self.w)
        size.addWidget(QtWidgets.QLabel("x"))
        size.addWidget(self.h)
        size.addWidget(self.lock)
        form.addRow("Size (px)", size)
        self.estimate = QtWidgets.QLabel()
        self.estimate.setWordWrap(True)
        form.addRow("", self.estimate)

    def _format_rows(self, form: QtWidgets.QFormLayout) -> None:
        """Method, format, quality, the format's notes and the metadata choice."""
        self.method = QtWidgets.QComboBox()
        self.method.addItems(list(self.choices))
        form.addRow("Method", self.method)
        self.format = QtWidgets.QComboBox()
        self.format.addItems([f for f, _ in FORMATS])
        form.addRow("Format", self.format)
        self.quality = QtWidgets.QSpinBox()
        self.quality.setRange(1, 100)
        self.quality.setValue(95)
        form.addRow("Quality (lossy formats)", self.quality)
        self.format_notes = QtWidgets.QLabel()
        self.format_notes.setWordWrap(True)
        form.addRow("", self.format_notes)
        self.keep_exif = QtWidgets.QCheckBox("Keep camera data (EXIF: camera, date, GPS)")
        self.keep_exif.setChecked(True)
        self.keep_exif.setToolTip("The colour profile is always kept; untick to leave out "
                                  "what the photo says about where and how it was taken.")
        form.addRow("Metadata", self.keep_exif)

    def _file_rows(self, form: QtWidgets.QFormLayout, default_dir: str, stem: str) -> None:
        """The file name (a free one in the image's folder) and the dialog's buttons."""
        row = QtWidgets.QHBoxLayout()
        folder = default_dir if default_dir and os.path.isdir(default_dir) \
            and os.access(default_dir, os.W_OK) else _pictures()
        self.path = QtWidgets.QLineEdit(free_name(folder, stem, ".png"))
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row.addWidget(self.path)
        row.addWidget(browse)
        form.addRow("File", row)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _connect(self) -> None:
        self._updating = False
        self.region_box.currentIndexChanged.connect(self._from_scale)
        self.scale.valueChanged.connect(self._from_scale)
        self.w.valueChanged.connect(lambda _: self._from_size("w"))
        self.h.valueChanged.connect(lambda _: self._from_size("h"))
        self.format.currentIndexChanged.connect(self._format_changed)
        self.method.currentIndexChanged.connect(lambda _: self._estimate())
        self.quality.valueChanged.connect(lambda _: self._estimate())
        self.keep_exif.toggled.connect(lambda _: self._estimate())

    # ---- size bookkeeping --------------------------------------------------------------------
    @property
    def region(self) -> Region:
        return self.regions[self.region_box.currentText()]

    def _from_scale(self, *_):
        if self._updating:
            return
        self._updating = True
        r = self.region
        self.region_label.setText(f"x={r.x:.1f} y={r.y:.1f}  {r.w:.1f} x {r.h:.1f} source px")
        # one factor for both sides, lowered as a whole where a side would pass the limit:
        # the aspect is the region's at any scale
        s = min(self.scale.value(), MAX_SIDE / r.w, MAX_SIDE / r.h)
        self.w.setValue(max(1, round(r.w * s)))
        self.h.setValue(max(1, round(r.h * s)))
        if s < self.scale.value():  # clamped at the size limit: the field says so
            self.scale.setValue(s)
        self._updating = False
        self._estimate()

    def _from_size(self, which: str):
        if self._updating:
            return
        self._updating = True
        r = self.region
        s = self.w.value() / r.w if which == "w" else self.h.value() / r.h
        if self.lock.isChecked():
            s = min(s, MAX_SIDE / r.w, MAX_SIDE / r.h)
            self.w.setValue(max(1, round(r.w * s)))
            self.h.setValue(max(1, round(r.h * s)))
        self.scale.setValue(s)
        self._updating = False
        self._estimate()

    def _estimate(self) -> None:
        """Show the estimates now and ask for a new file-size estimate once input settles."""
        self._show_estimate()
        if self.image is not None:
            self._bytes_timer.start()

    def _show_estimate(self) -> None:
        """The output's size, how long it will take (:attr:`seconds`) and
        (after :meth:`_estimate_bytes`) its file size; a warning above :data:`WARN_PIXELS`."""
        px = self.w.value() * self.h.value()
        n = len(self.choices.get(self.method.currentText(), [Method.LIIF]))
        text = f"{self.w.value()} × {self.h.value()} = {px / 1e6:,.1f} Mpx" + (
            f" per file, {n} files" if n > 1 else "")
        t = self.export_seconds(n * px)
        if t is not None:
            text += f"; about {duration(t)}"
        if self.file_bytes is not None:
            text += f"; about {_human_bytes(self.file_bytes)}" + (" each" if n > 1 else "")
        large = n * px > WARN_PIXELS
        if large:
            text = "Large: " + text
        self.estimate.setStyleSheet("color: #c0392b;" if large else "")
        self.estimate.setText(text)
        self._grow()

    def export_seconds(self, out_px: int) -> Optional[float]:
        """About how long ``out_px`` output pixels of the chosen region take (None until the
        background estimate has measured the costs: never on the GUI thread)."""
        return None if self.seconds is None else self.seconds(self.region, out_px, False)

    def _estimate_bytes(self) -> None:
        """Ask for the file-size estimate of the current settings in the background; the
        answer is shown if nothing changed meanwhile."""
        ext = FORMATS[self.format.currentIndex()][1]
        self._bytes_asked += 1
        asked = self._bytes_asked
        args = (self.image, self.region, self.w.value(), self.h.value(), ext,
                self.quality.value(), self.keep_exif.isChecked())
        seconds, region = self.seconds, self.region

        def work(task):
            if seconds is not None:  # the time's costs, measured here the first time
                with contextlib.suppress(RuntimeError, MemoryError):  # (no time shown then)
                    seconds(region, 1, True)
            return estimate_bytes(*args)

        def done(result: Optional[int], error: Optional[BaseException]) -> None:
            if asked != self._bytes_asked:
                return  # settings changed since: a newer request is on its way
            if isinstance(error, (ImageError, OSError, ValueError, MemoryError)):
                result = None
            elif error is not None:
                raise error
            self.file_bytes = result
            self._show_estimate()

        self._background.run(work, done, name="size-estimate")

    def _show_notes(self) -> None:
        """What the chosen format does with this image (flattened alpha, sRGB colours)."""
        notes = [] if self.image is None else self.image.notes(
            formats.format_of("x" + FORMATS[self.format.currentIndex()][1]).pil)
        notes = [n for n in notes if "animation" not in n]
        self.format_notes.setText("; ".join(notes))
        self.format_notes.setVisible(bool(notes))
        self._grow()

    def _grow(self) -> None:
        """Make room for texts that grew after the dialog was shown (notes, a longer
        estimate): the layout squeezed them into clipped lines before."""
        if not self.isVisible():
            return
        lay = self.layout()
        need = lay.totalHeightForWidth(self.width()) if lay.hasHeightForWidth() \
            else lay.totalSizeHint().height()
        if need > self.height():
            self.resize(self.width(), need)

    def _format_changed(self, *_):
        ext = FORMATS[self.format.currentIndex()][1]
        stem = os.path.splitext(self.path.text())[0]
        self.path.setText(stem + ext)
        self.file_bytes = None
        self._show_notes()
        self._estimate()

    def _browse(self):
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export to", self.path.text(),
            formats.save_filter())
        if path:
            self.path.setText(path)

    def request(self) -> ExportRequest:
        methods = self.choices[self.method.currentText()]
        path = self.path.text().strip()
        if not os.path.splitext(path)[1]:
            path += FORMATS[self.format.currentIndex()][1]
        return ExportRequest(self.region, self.w.value(), self.h.value(), methods,
                             output_paths(path, methods), self.quality.value(),
                             self.keep_exif.isChecked())

    def _accept(self):
        if not self.path.text().strip():
            QtWidgets.QMessageBox.warning(self, "Export", "Choose a file to export to.")
            return
        request = self.request()
        px = request.out_w * request.out_h * len(request.paths)
        if (
            px > CONFIRM_OUTPUT
            and QtWidgets.QMessageBox.question(
                self,
                "A very large export",
                f"{px / 1e9:,.1f} gigapixels"
                + (f", about {duration(t)} here" if (t := self.export_seconds(px)) else "")
                + ", and gigabytes on disk. Start it?",
                QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No,
                QtWidgets.QMessageBox.StandardButton.No,
            )
            != QtWidgets.QMessageBox.StandardButton.Yes
        ):
            return
        there = [p for p in request.paths if os.path.lexists(p)]
        if (
            there
            and QtWidgets.QMessageBox.question(
                self,
                "Replace?",
                "\n".join(os.path.basename(p) for p in there)
                + (" exists" if len(there) == 1 else " exist")
                + " already. Replace "
                + ("it?" if len(there) == 1 else "them?"),
                QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No,
                QtWidgets.QMessageBox.StandardButton.No,
            )
            != QtWidgets.QMessageBox.StandardButton.Yes
        ):
            return
        self.result_request = request
        self.accept()
