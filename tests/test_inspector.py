"""The inspector: line profiles read from the rendered tiles, and its dock in the window."""

import numpy as np
from PIL import Image
from PySide6 import QtCore
from PySide6.QtTest import QTest

from tests.conftest import make_window
from viewer.inspector import line_profile, luminance


def test_line_profile_reads_the_rendered_pixels_with_gaps_and_coarse_fallback():
    T, z = 8, 2.0
    # tile (0, 0): full, value = column index * 10; tile (0, 1): coarse only (2x2 px);
    # tile (0, 2): rendered in part (alpha 0 in its right half)
    full = np.zeros((T, T, 3), np.uint8)
    full[:] = (np.arange(T) * 10)[None, :, None]
    coarse = np.full((2, 2, 3), 200, np.uint8)
    part = np.zeros((T, T, 4), np.uint8)
    part[..., :3] = 50
    part[:, :T // 2, 3] = 255
    cache = {("liif", z, "full", 0, 0): full, ("liif", z, "coarse", 0, 1): coarse,
             ("liif", z, "full", 0, 2): part}
    # a horizontal line through grid row 2, grid x 0.5 .. 31.5 (source x 0.25 .. 15.75)
    d, rgb = line_profile(cache.get, "liif", z, T, (0.25, 1.0), (15.75, 1.0))
    assert len(d) == 32 and d[0] == 0 and abs(d[-1] - 15.5) < 1e-9
    gx = np.linspace(0.5, 31.5, 32)
    col = gx.astype(int)
    np.testing.assert_allclose(rgb[col < 8, 0], (col[col < 8] * 10) / 255, atol=1e-6)
    assert np.allclose(rgb[(col >= 8) & (col < 16), 0], 200 / 255)
    assert np.allclose(rgb[(col >= 16) & (col < 20), 0], 50 / 255)
    assert np.isnan(rgb[(col >= 20) & (col < 24)]).all()  # not rendered yet: a gap
    assert np.isnan(rgb[col >= 24]).all()                  # no tile at all
    assert np.allclose(luminance(np.array([[1.0, 1.0, 1.0]], np.float32)), 1.0)
    # bicubic has no coarse layer
    _, b = line_profile(cache.get, "bicubic", z, T, (0.25, 1.0), (15.75, 1.0))
    assert np.isnan(b).all()


def test_inspector_dock_plots_every_shown_method(qtbot, tmp_path):
    a = (np.random.default_rng(0).random((60, 80, 3)) * 255).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "p.png")
    w = make_window(qtbot, tmp_path, size=(800, 500))
    try:
        assert w.open_image(str(tmp_path / "p.png"))
        w.session.zoom_at(4.0)  # above 1:1, so LIIF renders
        assert w.session.mode == "side" and w.session.shown_methods() == ["liif", "bicubic"]
        QTest.keyClick(w.panes[0], "I")  # the inspector first: showing it resizes the panes
        assert w.inspector.isVisible()
        w.show_inspector()
        qtbot.wait(50)
        pane = w.panes[0]
        st = w.session.state
        assert pane.height() > 200
        p0 = QtCore.QPoint(int(pane.width() * 0.2), int(pane.height() * 0.3))
        p1 = QtCore.QPoint(int(pane.width() * 0.8), int(pane.height() * 0.7))
        ctrl = QtCore.Qt.KeyboardModifier.ControlModifier
        QTest.mousePress(pane, QtCore.Qt.MouseButton.LeftButton, ctrl, p0)
        QTest.mouseMove(pane, p1)
        QTest.mouseRelease(pane, QtCore.Qt.MouseButton.LeftButton, ctrl, p1)
        assert w.session.profile_line is not None and w.inspector.isVisible()
        assert w.scheduler.wait_idle(60)
        qtbot.waitUntil(lambda: all(np.isfinite(y).all() for y in
                                    [c[1] for c in w.inspector.curve_data().values()]) and
                        set(w.inspector.curve_data()) == {"liif", "bicubic"}, timeout=20000)
        data = w.inspector.curve_data()
        (x0, y0), (x1, y1) = w.session.profile_line
        n = int(np.ceil(np.hypot(x1 - x0, y1 - y0) * st.zoom)) + 1
        assert len(data["liif"][1]) == n
        assert not np.allclose(data["liif"][1], data["bicubic"][1])  # two different renders
        w.inspector.mode.setCurrentIndex(1)  # per channel
        assert {"liif R", "liif G", "liif B", "bicubic R"} <= set(w.inspector.curve_data())
        w.session.clear_selection()
        assert w.session.profile_line is None
    finally:
        w.scheduler.shutdown()


def profiled_window(qtbot, tmp_path, size, line):
    """A window on a random 80x60 image at 4x, the inspector showing the profiles along
    ``line`` (LIIF and bicubic, side by side)."""
    a = (np.random.default_rng(0).random((60, 80, 3)) * 255).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "p.png")
    w = make_window(qtbot, tmp_path, size=size)
    assert w.open_image(str(tmp_path / "p.png"))
    w.session.zoom_at(4.0)
    w.show_inspector()
    w.session.set_profile_line(*line)
    assert w.scheduler.wait_idle(60)
    qtbot.waitUntil(lambda: len(w.inspector.curve_data()) == 2, timeout=20000)
    return w


def test_opening_another_image_clears_the_inspector(qtbot, tmp_path):
    """The line and its curves belong to the image they were drawn on."""
    w = profiled_window(qtbot, tmp_path, (800, 500), ((10.0, 10.0), (30.0, 20.0)))
    a = (np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "q.png")
    try:
        assert w.open_image(str(tmp_path / "q.png"))
        assert w.session.profile_line is None
        qtbot.wait(300)
        assert not w.inspector.curve_data()
        assert "Ctrl+drag" in w.inspector.info.text()
    finally:
        w.scheduler.shutdown()


def test_the_legend_sits_above_the_curves(qtbot, tmp_path):
    """Intensities lie in [0, 1]: the legend (one row) stays in the band above 1."""
    w = profiled_window(qtbot, tmp_path, (900, 700), ((10.0, 10.0), (60.0, 40.0)))
    try:
        qtbot.wait(50)
        vb = w.inspector.plot.getViewBox()
        legend = w.inspector.legend.sceneBoundingRect()
        bottom = vb.mapSceneToView(legend.bottomLeft()).y()
        assert bottom > 1.0, bottom
    finally:
        w.scheduler.shutdown()


def test_the_inspector_legend_names_the_panes(win, qtbot, image_path):
    assert win.open_image(image_path)
    win.session.set_profile_line((2, 2), (40, 30))
    qtbot.waitUntil(lambda: set(win.inspector.curve_data()) == {"liif", "bicubic"},
                    timeout=20000)
    names = {item.name() for item in win.inspector.plot.listDataItems()}
    assert names == {"LIIF: tiny", "bicubic"}
