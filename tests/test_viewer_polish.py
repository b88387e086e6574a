"""The export dialog does what the user means; small things of the viewer (issue 21)."""
import os

import pytest

from core.geometry import Region
from tests.conftest import make_window
from viewer.export_dialog import MAX_SIDE, ExportDialog


def test_current_view_at_fit_is_the_image_not_the_letterbox(qtbot):
    # a 1000x750 image fitted in a tall window: the view reaches beyond the image above/below
    dlg = ExportDialog(None, 1000, 750, Region(0, -214, 1000, 1178), None)
    qtbot.addWidget(dlg)
    dlg.region_box.setCurrentText("Current view")
    assert dlg.region == Region(0, 0, 1000, 750)
    dlg.scale.setValue(1.0)
    assert (dlg.w.value(), dlg.h.value()) == (1000, 750)


def test_the_aspect_holds_at_the_size_limit_and_the_estimate_shows(qtbot):
    dlg = ExportDialog(None, 6000, 4000, Region(0, 0, 6000, 4000), None,
                       seconds=lambda region, px: px / 1.7e6)
    qtbot.addWidget(dlg)
    dlg.region_box.setCurrentText("Whole image")
    dlg.scale.setValue(50)
    assert dlg.w.value() == MAX_SIDE and dlg.h.value() == round(4000 * MAX_SIDE / 6000)
    assert "Mpx" in dlg.estimate.text() and "min" in dlg.estimate.text()
    dlg.scale.setValue(4)
    assert (dlg.w.value(), dlg.h.value()) == (24000, 16000)
    assert "384.0 Mpx" in dlg.estimate.text()


def test_the_default_path_is_absolute(qtbot):
    dlg = ExportDialog(None, 100, 80, Region(0, 0, 100, 80), None)
    qtbot.addWidget(dlg)
    assert os.path.isabs(dlg.path.text())


def test_export_offers_a_shown_second_model(qtbot):
    dlg = ExportDialog(None, 100, 80, Region(0, 0, 100, 80), None, compare="paper")
    qtbot.addWidget(dlg)
    dlg.method.setCurrentText("LIIF and second model")
    dlg.path.setText("/tmp/x.png")
    req = dlg.request()
    assert req.methods == ["liif", "compare"]
    assert req.paths == ["/tmp/x-liif.png", "/tmp/x-compare.png"]


def test_n_twice_returns_to_the_model_comparison(win, image_path, tiny_checkpoint):
    assert win.open_image(image_path)
    assert win.compare_with_checkpoint(str(tiny_checkpoint))
    assert win.session.other == "compare"
    win.session.toggle_nearest()
    assert win.session.other == "nearest"
    win.session.toggle_nearest()
    assert win.session.other == "compare"


def test_the_image_as_its_own_reference_says_identical(win, qtbot, image_path):
    assert win.open_image(image_path)
    assert win.open_reference(image_path)
    qtbot.waitUntil(lambda: "liif" in win.status.last_metrics, timeout=30000)
    text, full = win.status.metrics.text(), win.status.metrics.toolTip()
    assert "∞/1.000" in text and "inf" not in text and "identical (∞ dB)" in full


def test_the_inspector_legend_names_the_panes(win, qtbot, image_path):
    assert win.open_image(image_path)
    win.session.set_profile_line((2, 2), (40, 30))
    qtbot.waitUntil(lambda: set(win.inspector.curve_data()) == {"liif", "bicubic"},
                    timeout=20000)
    names = {item.name() for item in win.inspector.plot.listDataItems()}
    assert names == {"LIIF: tiny", "bicubic"}


def test_the_window_size_is_remembered(qtbot, tmp_path):
    w = make_window(qtbot, tmp_path, size=(700, 500))  # (the offscreen screen is 800x600)
    w.close()
    w2 = make_window(qtbot, tmp_path, size=None)
    try:
        assert (w2.width(), w2.height()) == (700, 500)
    finally:
        w2.scheduler.shutdown()


def test_the_status_bar_fits_a_1024_px_window_with_a_reference(qtbot, tmp_path, image_path):
    w = make_window(qtbot, tmp_path, size=(1024, 560))
    try:
        assert w.open_image(image_path)
        w.status.last_times.update(preview=0.128, coarse=3.934, full=4.501)
        w.status._measured(w.status._metrics_gen, {"liif": (32.63, 0.959),
                                                   "bicubic": (56.5, 0.999)}, None)
        from core.models.registry import make
        from tests.test_training import LMF_TINY
        w.session.model = make(LMF_TINY)  # the photo model's family (no "slow on a CPU")
        w.session.model_name = "lmf-edsr6-photo"
        w.session.model_reason = "JPEG q≈72 → photo model"
        w.status.refresh()
        w.status.metrics.show()
        w.status._encode_timer.stop()  # the worst case: the encoding progress bar showing
        w.status.progress.show()
        qtbot.wait(50)
        labels = [w.status.zoom, w.status.region, w.status.metrics, w.status.time,
                  w.status.device, w.status.model]
        assert all(lab.width() >= lab.sizeHint().width() for lab in labels), \
            [(lab.text(), lab.width(), lab.sizeHint().width()) for lab in labels]
    finally:
        w.scheduler.shutdown()


def test_copy_view_puts_the_panes_on_the_clipboard(win, qtbot, image_path):
    from PySide6 import QtWidgets
    assert win.open_image(image_path)
    QtWidgets.QApplication.clipboard().clear()
    win.copy_view()
    img = QtWidgets.QApplication.clipboard().image()
    assert not img.isNull() and img.width() == win.centralWidget().width()


def _p3_profile() -> bytes:
    from PySide6 import QtGui
    return bytes(QtGui.QColorSpace(QtGui.QColorSpace.NamedColorSpace.DisplayP3).iccProfile())


def test_a_profile_converts_to_srgb_and_srgb_is_left_alone():
    import numpy as np
    from PIL import ImageCms

    from core.colour import ToSRGB
    conv = ToSRGB.for_profile(_p3_profile())
    assert conv is not None and conv.name == "Display P3"
    # sRGB's pure red is about (234, 51, 35) in Display P3
    red = conv(np.array([[[234, 51, 35]]], np.uint8))[0, 0].astype(int)
    assert red[0] >= 252 and red[1] <= 6 and red[2] <= 6
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert ToSRGB.for_profile(srgb) is None and ToSRGB.for_profile(None) is None
    assert ToSRGB.for_profile(b"not a profile") is None  # logged, values shown as they are


@pytest.mark.parametrize("tagged", [True, False])
def test_the_viewer_shows_a_p3_photo_in_srgb(win, qtbot, tmp_path, tagged):
    """A Display-P3 photo is drawn converted to sRGB (its values as they are otherwise);
    the model and the exports still see its own values."""
    import numpy as np
    from PIL import Image
    a = np.empty((60, 80, 3), np.uint8)
    a[:] = (234, 51, 35)
    path = tmp_path / "p3.png"
    Image.fromarray(a).save(path, icc_profile=_p3_profile() if tagged else None)
    assert win.open_image(str(path))
    assert (win.display_colour is not None) == tagged
    assert win.session.image.pixels[5, 5].tolist() == [234, 51, 35]
    pane = win.panes[-1]  # bicubic: a flat image stays flat

    def centre():
        c = pane.grab().toImage().pixelColor(pane.width() // 2, pane.height() // 2)
        return c.red(), c.green(), c.blue()

    want = (255, 0, 0) if tagged else (234, 51, 35)
    qtbot.waitUntil(lambda: max(abs(x - y) for x, y in zip(centre(), want)) <= 6, timeout=10000)


def test_the_dialog_estimates_the_file_size_and_says_what_the_format_does(qtbot, tmp_path):
    """The size line gains the file size (a patch encoded as the export would), turns into a
    warning above 100 Mpx, and a format without alpha says it flattens."""
    import numpy as np

    from core.export import export
    from core.imageio import LoadedImage
    rng = np.random.default_rng(0)
    img = LoadedImage((rng.random((80, 100, 3)) * 255).astype(np.uint8),
                      np.ones((80, 100), np.float32))
    dlg = ExportDialog(None, 100, 80, Region(0, 0, 100, 80), None, image=img)
    qtbot.addWidget(dlg)
    dlg.region_box.setCurrentText("Whole image")
    dlg.scale.setValue(2)
    qtbot.waitUntil(lambda: dlg.file_bytes is not None, timeout=3000)
    assert "kB" in dlg.estimate.text() or "MB" in dlg.estimate.text()
    out = tmp_path / "o.png"
    export(img, Region(0, 0, 100, 80), 200, 160, str(out), method="bicubic")
    assert 0.6 < dlg.file_bytes / os.path.getsize(out) < 1.6
    assert not dlg.format_notes.isVisible() or not dlg.format_notes.text()
    dlg.format.setCurrentText("BMP")
    assert "flattened onto white" in dlg.format_notes.text()
    dlg.scale.setValue(120)
    assert dlg.estimate.text().startswith("Large:")


def test_after_an_export_open_folder_shows_it(win, qtbot, image_path, tmp_path, monkeypatch):
    from PySide6 import QtGui

    from viewer.export_dialog import ExportRequest
    opened = []
    monkeypatch.setattr(QtGui.QDesktopServices, "openUrl",
                        staticmethod(lambda url: opened.append(url.toLocalFile()) or True))
    win.open_image(image_path)
    out_dir = tmp_path / "exports"
    out_dir.mkdir()
    assert not win.exports.open_button.isVisible()
    win.start_export(ExportRequest(Region(0, 0, 40, 30), 80, 60, ["bicubic"],
                                   [str(out_dir / "a.png")], 95))
    qtbot.waitUntil(lambda: win.exports.open_button.isVisible(), timeout=30000)
    win.exports.open_button.click()
    assert opened == [str(out_dir)]


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
    st = win.state
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
