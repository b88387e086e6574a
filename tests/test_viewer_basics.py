"""What every photo viewer has: a pixel readout, typed and preset zooms, the folder's next and
previous images, full screen, double-click to fit, a remembered window size, copying the view,
transparency over a checkerboard, a busy sign while a pane renders."""

import numpy as np
from PIL import Image
from PySide6 import QtCore, QtWidgets
from PySide6.QtTest import QTest

from tests.conftest import make_window


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
    assert win.session.image.path == c
    QTest.keyClick(win.panes[0], QtCore.Qt.Key.Key_Right)  # wraps (the .txt is no image)
    assert win.session.image.path == a
    QTest.keyClick(win.panes[0], QtCore.Qt.Key.Key_Left)
    assert win.session.image.path == c


def test_zoom_to_a_percentage_presets_and_double_click_fit(qtbot, win, image_path,
                                                           monkeypatch):
    assert win.open_image(image_path)
    win.zoom_to(400)
    assert abs(win.session.state.zoom - 4.0) < 1e-9
    monkeypatch.setattr(QtWidgets.QInputDialog, "getDouble", lambda *a, **k: (250.0, True))
    QTest.keyClick(win.panes[0], QtCore.Qt.Key.Key_Z)
    assert abs(win.session.state.zoom - 2.5) < 1e-9
    pane = win.panes[0]
    QTest.mouseDClick(pane, QtCore.Qt.MouseButton.LeftButton, pos=pane.rect().center())
    assert abs(win.session.state.zoom - win.session.state.fit_zoom) < 1e-9


def test_the_status_bar_reads_out_the_pixel_under_the_pointer(qtbot, win, tmp_path):
    a = np.zeros((30, 40, 3), np.uint8)
    a[:, :, 0] = 200
    a[10, 20] = (1, 2, 3)
    Image.fromarray(a).save(tmp_path / "p.png")
    assert win.open_image(str(tmp_path / "p.png"))
    win.zoom_to(800)
    assert win.scheduler.wait_idle(60)
    qtbot.wait(50)
    st = win.session.state
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


def test_the_window_size_is_remembered(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path, size=(700, 500))  # (the offscreen screen is 800x600)
    w.close()
    w2 = make_window(qtbot, tmp_path, size=None)
    try:
        assert (w2.width(), w2.height()) == (700, 500)
    finally:
        w2.scheduler.shutdown()


def test_copy_view_puts_the_panes_on_the_clipboard(win, qtbot, image_path):
    from PySide6 import QtWidgets
    assert win.open_image(image_path)
    QtWidgets.QApplication.clipboard().clear()
    win.copy_view()
    img = QtWidgets.QApplication.clipboard().image()
    assert not img.isNull() and img.width() == win.centralWidget().width()


def test_a_transparent_image_is_shown_over_a_checkerboard(qtbot, win, tmp_path):
    """Transparent pixels show the checkerboard, not the colours they happen to hold; opaque
    ones their own; the status bar says so."""
    import numpy as np
    from PIL import Image
    a = np.zeros((60, 80, 4), np.uint8)
    a[..., 0] = 255  # red everywhere, but only the left half is opaque
    a[:, :40, 3] = 255
    Image.fromarray(a, "RGBA").save(tmp_path / "t.png")
    assert win.open_image(str(tmp_path / "t.png"))
    assert win.transparency is not None
    assert "checkerboard" in win.statusBar().currentMessage()
    assert win.scheduler.wait_idle(60)
    qtbot.wait(100)
    assert win.panes[1].methods == ["bicubic"]  # (the tiny test model's colours are noise)
    pane = win.panes[1]
    img = pane.grab().toImage()
    st = win.session.state
    ox, oy = st.origin()
    d = pane.devicePixelRatioF()

    def at(sx, sy):  # the colour drawn at source point (sx, sy)
        c = img.pixelColor(int((sx * st.zoom - ox) / d), int((sy * st.zoom - oy) / d))
        return c.red(), c.green(), c.blue()
    left, right = at(20, 30), at(60, 30)
    assert left[0] > 200 and left[1] < 60  # opaque red
    assert right[0] == right[1] == right[2] and right[0] in (153, 204)  # grey checker


def test_a_model_pane_says_it_is_rendering_while_the_preview_stands_in(qtbot, win,
                                                                      image_path):
    assert win.open_image(image_path)
    win.session.zoom_at(4.0)
    assert win.scheduler.wait_idle(60)
    pane = win.panes[0]
    assert pane.methods == ["liif"] and pane._model_layer_shown("liif")
    win.scheduler.cache.clear()  # as right after a zoom: only the preview (or nothing)
    assert not pane._model_layer_shown("liif")
