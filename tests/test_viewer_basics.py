"""What every photo viewer has: a pixel readout, typed and preset zooms, the folder's next and
previous images, full screen, double-click to fit."""
import numpy as np
from PIL import Image
from PySide6 import QtCore, QtWidgets
from PySide6.QtTest import QTest


def _three(tmp_path):
    paths = []
    for k, name in enumerate(("a.png", "b.png", "c.png")):
        a = np.full((30, 40, 3), 50 * k, np.uint8)
        Image.fromarray(a).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    (tmp_path / "notes.txt").write_text("not an image")
    return paths


def test_next_and_previous_image_in_the_folder_wrap_around(qtbot, win, tmp_path):
    a, b, c = _three(tmp_path)
    assert win.open_image(b)
    QTest.keyClick(win.panes[0], QtCore.Qt.Key.Key_Right)
    assert win.image.path == c
    QTest.keyClick(win.panes[0], QtCore.Qt.Key.Key_Right)  # wraps (the .txt is no image)
    assert win.image.path == a
    QTest.keyClick(win.panes[0], QtCore.Qt.Key.Key_Left)
    assert win.image.path == c


def test_zoom_to_a_percentage_presets_and_double_click_fit(qtbot, win, image_path,
                                                           monkeypatch):
    assert win.open_image(image_path)
    win.zoom_to(400)
    assert abs(win.state.zoom - 4.0) < 1e-9
    monkeypatch.setattr(QtWidgets.QInputDialog, "getDouble", lambda *a, **k: (250.0, True))
    QTest.keyClick(win.panes[0], QtCore.Qt.Key.Key_Z)
    assert abs(win.state.zoom - 2.5) < 1e-9
    pane = win.panes[0]
    QTest.mouseDClick(pane, QtCore.Qt.MouseButton.LeftButton, pos=pane.rect().center())
    assert abs(win.state.zoom - win.state.fit_zoom) < 1e-9


def test_the_status_bar_reads_out_the_pixel_under_the_pointer(qtbot, win, tmp_path):
    a = np.zeros((30, 40, 3), np.uint8)
    a[:, :, 0] = 200
    a[10, 20] = (1, 2, 3)
    Image.fromarray(a).save(tmp_path / "p.png")
    assert win.open_image(str(tmp_path / "p.png"))
    win.zoom_to(800)
    assert win.scheduler.wait_idle(60)
    qtbot.wait(50)
    st = win.state
    ox, oy = st.origin()
    at = ((20.5 * st.zoom - ox), (10.5 * st.zoom - oy))  # device pixels over pixel (20, 10)
    win.cursor_moved(win.panes[0], at)
    text = win.statusBar().currentMessage()
    assert "x 20.5  y 10.5" in text and "source 1,2,3" in text, text
    assert "bicubic " in text  # the second pane's value at the same point
    win.cursor_moved(win.panes[0], None)
    assert win.statusBar().currentMessage() == ""


def test_f11_toggles_full_screen(qtbot, win):
    win.toggle_full_screen()
    qtbot.waitUntil(win.isFullScreen, timeout=3000)
    win.toggle_full_screen()
    qtbot.waitUntil(lambda: not win.isFullScreen(), timeout=3000)
