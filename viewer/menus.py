"""The window's menus and their shortcuts: File, View, Model, Help. Each action calls the
session (view changes) or the window (dialogs); :class:`Menus` keeps the actions whose
check marks follow the session's state."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from PySide6 import QtGui, QtWidgets

from core.io.formats import open_filter
from core.render.methods import Method
from core.zoo import REGISTRY
from viewer.session import Mode

ZOOM_STEP = 2 ** 0.25
#: Help → Controls
HELP = ("Wheel: zoom about the cursor · Drag: pan · Shift+drag: select a region\n"
        "+ / −: zoom · 0: 1 screen pixel per source pixel · F or double-click: fit · "
        "Z: zoom to a percentage · F11: full screen\n"
        "← / →: previous / next image in the folder · the status bar reads out the pixel "
        "under the pointer\n"
        "C: side by side (LIIF | bicubic) · V: split view (drag the divider) · "
        "L: LIIF only · N: nearest neighbour\n"
        "Ctrl+drag: draw a line for the inspector's profiles · I: show/hide the inspector\n"
        "Ctrl+E: export · Ctrl+C: copy the view · Ctrl+L: load checkpoint · Ctrl+O: open")


def _ask_image(win, title: str, then: Callable[[str], object]) -> None:
    """Ask for an image file (starting in the last folder used) and pass it to ``then``."""
    path, _ = QtWidgets.QFileDialog.getOpenFileName(
        win, title, win.settings.value("last_dir", ""), open_filter())
    if path:
        then(path)


def _ask_model(win, title: str, then: Callable[[str], object]) -> None:
    """Ask for a model file and pass it to ``then``."""
    path, _ = QtWidgets.QFileDialog.getOpenFileName(
        win, title, "", "Models (*.safetensors *.pth *.pt);;All files (*)")
    if path:
        then(path)


def action(owner, menu, text: str, slot: Callable, shortcut: Optional[str] = None,
           checkable: bool = False) -> QtGui.QAction:
    a = QtGui.QAction(text, owner)
    if shortcut:
        a.setShortcut(QtGui.QKeySequence(shortcut))
    a.setCheckable(checkable)
    a.triggered.connect(slot)
    menu.addAction(a)
    return a


@dataclass
class Menus:
    recent: QtWidgets.QMenu
    side: QtGui.QAction
    split: QtGui.QAction
    single: QtGui.QAction
    nearest: QtGui.QAction
    model_info: QtGui.QAction
    automatic: Optional[QtGui.QAction] = None
    #: bundled model files by stem (Model menu), and the Compare With entries by key/stem
    models: Dict[str, QtGui.QAction] = field(default_factory=dict)
    compare: Dict[str, QtGui.QAction] = field(default_factory=dict)

    def sync(self, session) -> None:
        """Check marks and the model line from the session's state."""
        self.side.setChecked(session.mode == Mode.SIDE)
        self.split.setChecked(session.mode == Mode.SPLIT)
        self.single.setChecked(session.mode == Mode.SINGLE and not session.nearest)
        self.nearest.setChecked(session.nearest)
        other = session.other
        key = session.compare_name if other == Method.COMPARE else other
        for k, a in self.compare.items():
            a.setChecked(k == key)
            # the model in use cannot also be its own comparison
            a.setEnabled(k in (Method.BICUBIC, Method.NEAREST) or k != session.model_name)
        if self.automatic is not None:
            self.automatic.setChecked(session.model_reason not in MANUAL_REASONS)
        for stem, a in self.models.items():
            a.setChecked(stem == session.model_name)
        self.model_info.setText(f"In use: {session.model_name or 'none'} on {session.device.type}")


#: the model reasons that mean a person chose the model (not the rule)
MANUAL_REASONS = ("chosen in the Model menu", "named on the command line")


def _bundled(win, menu, group, actions: dict, slot) -> None:
    """One checkable action per bundled model file, calling ``slot(path)``."""
    for bm in REGISTRY:
        if bm.path.is_file():
            a = action(win, menu, f"{bm.label}: {bm.path.name}",
                       lambda _=False, p=str(bm.path): slot(p), checkable=True)
            group.addAction(a)
            actions[bm.path.stem] = a


def build_menus(win) -> Menus:
    """The menu bar of ``win`` (the main window)."""
    ses = win.session
    mb = win.menuBar()
    f = mb.addMenu("&File")
    action(win, f, "&Open…", lambda: _ask_image(win, "Open image", win.open_image), "Ctrl+O")
    recent = f.addMenu("Open &Recent")
    action(win, f, "Open &Reference (higher resolution, for PSNR/SSIM)…",
           lambda: _ask_image(win, "Open reference (the same picture at a higher resolution)",
                              win.open_reference))
    action(win, f, "&Export…", win.export_dialog, "Ctrl+E")
    f.addSeparator()
    action(win, f, "&Quit", win.close, "Ctrl+Q")
    v = mb.addMenu("&View")
    action(win, v, "Zoom &In", lambda: ses.zoom_at(ZOOM_STEP), "+")
    action(win, v, "Zoom In (=)", lambda: ses.zoom_at(ZOOM_STEP), "=")
    action(win, v, "Zoom &Out", lambda: ses.zoom_at(1 / ZOOM_STEP), "-")
    action(win, v, "&Actual Pixels (1:1)", ses.one_to_one, "0")
    action(win, v, "&Fit to Window (or double-click)", ses.fit, "F")
    z = v.addMenu("&Zoom To")
    action(win, z, "&Other… (%)", lambda: win.zoom_to(), "Z")
    for pct in (25, 50, 100, 200, 400, 800, 1600):
        action(win, z, f"{pct} %", lambda _=False, q=pct: win.zoom_to(q))
    action(win, v, "F&ull Screen", win.toggle_full_screen, "F11")
    action(win, v, "&Next Image in the Folder", lambda: win.step_image(1), "Right")
    action(win, v, "&Previous Image in the Folder", lambda: win.step_image(-1), "Left")
    v.addSeparator()
    side = action(win, v, "&Compare Side by Side (LIIF | bicubic, or the Model menu's "
                  "comparison)", lambda: ses.set_mode(Mode.SIDE), "C", True)
    split = action(win, v, "Split / S&wipe Compare", lambda: ses.set_mode(Mode.SPLIT), "V", True)
    single = action(win, v, "&LIIF Only", lambda: ses.set_mode(Mode.SINGLE), "L", True)
    nearest = action(win, v, "&Nearest Neighbour (source pixels)", ses.toggle_nearest, "N", True)
    v.addSeparator()
    act = win.inspector.toggleViewAction()
    act.setText("&Inspector (line profile; Ctrl+drag draws the line)")
    act.setShortcut(QtGui.QKeySequence("I"))
    v.addAction(act)
    action(win, v, "Clear Selection and Line", ses.clear_selection, "Esc")
    action(win, v, "&Copy View (as shown, all panes)", win.copy_view, "Ctrl+C")
    m = mb.addMenu("&Model")
    action(win, m, "&Load Checkpoint…",
           lambda: _ask_model(win, "Load checkpoint", win.load_checkpoint), "Ctrl+L")
    menus = Menus(recent, side, split, single, nearest, model_info=None)
    menus.automatic = action(win, m, "&Automatic (by the image: the photo model for lossy "
                             "ones)", win.use_rule, checkable=True)
    _bundled(win, m, QtGui.QActionGroup(win), menus.models, win.load_checkpoint)
    m.addSeparator()
    cm = m.addMenu("&Compare With (second pane, or right of the divider)")
    cgroup = QtGui.QActionGroup(win)
    for key, label in ((Method.BICUBIC, "&Bicubic"), (Method.NEAREST, "&Nearest neighbour")):
        a = action(win, cm, label, lambda _=False, k=key: win.compare_with(k), checkable=True)
        cgroup.addAction(a)
        menus.compare[key] = a
    cm.addSeparator()
    _bundled(win, cm, cgroup, menus.compare, win.compare_with_checkpoint)
    action(win, cm, "Another &Model File…",
           lambda: _ask_model(win, "Compare with model", win.compare_with_checkpoint))
    menus.model_info = m.addAction("")
    menus.model_info.setEnabled(False)
    h = mb.addMenu("&Help")
    action(win, h, "&Controls", win.show_help, "F1")
    return menus


class RecentFiles:
    """File → Open Recent: the last ``limit`` images opened, kept in ``settings``."""

    def __init__(self, menu: QtWidgets.QMenu, settings, open_image: Callable[[str], bool],
                 limit: int = 10) -> None:
        self.menu, self.settings, self.open_image, self.limit = menu, settings, open_image, limit
        self.refresh()

    def paths(self) -> List[str]:
        """The stored paths, newest first. (QSettings reads a one-entry list back from its
        file as a plain string: that is one path, not a list of characters.)"""
        recent = self.settings.value("recent") or []
        if isinstance(recent, str):
            recent = [recent]
        return [str(p) for p in recent if p]

    def add(self, path: str) -> None:
        import os
        path = os.path.abspath(path)
        recent = [p for p in self.paths() if p != path]
        self.settings.setValue("recent", [path] + recent[:self.limit - 1])
        self.refresh()

    def refresh(self) -> None:
        self.menu.clear()
        recent = self.paths()
        for p in recent:
            a = self.menu.addAction(p)
            a.triggered.connect(lambda _=False, p=p: self.open_image(p))
        self.menu.setEnabled(bool(recent))
