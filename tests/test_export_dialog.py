"""The export dialog: where it proposes to write, and never replacing a file unasked."""
import os

import numpy as np
from PIL import Image
from PySide6 import QtWidgets

from core.geometry import Region
from core.io.imageio import LoadedImage
from viewer.export_dialog import MAX_SIDE, ExportDialog


def _dialog(qtbot, folder, stem="photo-liif"):
    img = LoadedImage((np.random.default_rng(0).random((30, 40, 3)) * 255).astype(np.uint8))
    dlg = ExportDialog(None, 40, 30, Region(0, 0, 40, 30), None, str(folder), stem, image=img)
    qtbot.addWidget(dlg)
    return dlg


def test_the_proposed_name_is_a_new_file_each_time(qtbot, tmp_path):
    assert _dialog(qtbot, tmp_path).path.text() == str(tmp_path / "photo-liif.png")
    (tmp_path / "photo-liif.png").write_bytes(b"first export")
    assert _dialog(qtbot, tmp_path).path.text() == str(tmp_path / "photo-liif-2.png")
    (tmp_path / "photo-liif-2.png").write_bytes(b"second export")
    assert _dialog(qtbot, tmp_path).path.text() == str(tmp_path / "photo-liif-3.png")


def test_an_existing_file_is_replaced_only_when_the_user_says_yes(qtbot, tmp_path,
                                                                  monkeypatch):
    asked = []
    answer = [QtWidgets.QMessageBox.StandardButton.No]

    def question(parent, title, text, *a, **k):
        asked.append(text)
        return answer[0]
    monkeypatch.setattr(QtWidgets.QMessageBox, "question", question)
    dlg = _dialog(qtbot, tmp_path)
    target = tmp_path / "mine.png"
    target.write_bytes(b"the user's file")
    dlg.path.setText(str(target))
    dlg._accept()
    assert asked and "mine.png exists" in asked[0] and dlg.result_request is None
    answer[0] = QtWidgets.QMessageBox.StandardButton.Yes
    dlg._accept()
    assert dlg.result_request is not None and dlg.result_request.paths == [str(target)]
    dlg2 = _dialog(qtbot, tmp_path)  # a new file: no question
    asked.clear()
    dlg2._accept()
    assert not asked and dlg2.result_request is not None


def test_the_default_folder_is_the_images_own(qtbot, win, tmp_path, image_path, monkeypatch):
    seen = {}

    def fake_exec(self):
        seen["path"] = self.path.text()
        return QtWidgets.QDialog.DialogCode.Rejected
    monkeypatch.setattr(ExportDialog, "exec", fake_exec)
    assert win.open_image(image_path)
    win.export_dialog()
    assert os.path.dirname(seen["path"]) == os.path.dirname(os.path.abspath(image_path))


def test_the_scale_field_follows_the_size_limit_and_a_gigapixel_export_is_confirmed(
        qtbot, tmp_path, monkeypatch):
    from viewer import export_dialog as ed
    dlg = _dialog(qtbot, tmp_path)
    dlg.region_box.setCurrentText("Whole image")
    dlg.scale.setValue(5000)  # past the side limit: clamped, and the field says by how much
    assert dlg.w.value() <= ed.MAX_SIDE and dlg.h.value() <= ed.MAX_SIDE
    assert abs(dlg.scale.value() - dlg.w.value() / 40) < 0.01
    asked = []
    monkeypatch.setattr(
        QtWidgets.QMessageBox,
        "question",
        lambda *a, **k: asked.append(a[2]) or QtWidgets.QMessageBox.StandardButton.No,
    )
    monkeypatch.setattr(ed, "CONFIRM_OUTPUT", 1000)
    dlg._accept()
    assert asked and "gigapixels" in asked[0] and dlg.result_request is None


def test_the_file_size_estimate_holds_for_a_photo_and_a_flat_graphic(tmp_path):
    """Within 1.5x of the real file for PNG, JPEG and WebP on both, and for AVIF, HEIC and JPEG
    XL on the graphic (one patch from the middle was off by 3-356x on flat graphics: it stood
    for the whole by its flattest part; a mosaic of patches left HEIC 3.3x and JPEG XL 2.4x
    high there, whose seams cost those codecs more than the whole picture does)."""
    from PIL import ImageDraw

    from core.export import estimate_bytes, export
    from core.io.imageio import load_image
    g = Image.new("RGB", (600, 400), (240, 240, 235))
    draw = ImageDraw.Draw(g)
    for k in range(8):
        draw.rectangle([20 + 70 * k, 30, 70 + 70 * k, 350], fill=(30 * k, 100, 200 - 20 * k))
    draw.text((100, 360), "a flat graphic with some text", fill=(0, 0, 0))
    g.save(tmp_path / "flat.png")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:400, 0:600]
    photo = np.stack([128 + 60 * np.sin(xx / (17 + 5 * c) + yy / 23) for c in range(3)], -1)
    photo = np.clip(photo + rng.normal(0, 6, photo.shape), 0, 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    for name in ("flat", "photo"):
        img = load_image(tmp_path / f"{name}.png")
        slow = (".avif", ".heic", ".jxl") if name == "flat" else ()
        for ext in (".png", ".jpg", ".webp") + slow:
            est = estimate_bytes(img, Region.full(600, 400), 2400, 1600, ext, quality=90)
            out = tmp_path / f"o-{name}{ext}"
            export(img, Region.full(600, 400), 2400, 1600, str(out), "bicubic", quality=90)
            ratio = est / os.path.getsize(out)
            assert 1 / 1.5 <= ratio <= 1.5, (name, ext, ratio)


def test_the_time_estimate_is_measured_and_counts_the_encoding_still_to_do():
    """core.rates: per-pixel costs measured on this machine; the paper model's encoder (16
    blocks) costs more than the CPU model's (6), LIIF's decoder far more than LMF's; the
    estimate adds the encoding left, with the halo overhead of narrow bands; none on a GPU."""
    from core import zoo
    from core.profile import profile_for
    from core.rates import export_seconds, rates_for
    prof = profile_for("cpu")
    cpu, paper = zoo.load("cpu"), zoo.load("paper")
    rc, rp = rates_for(cpu, prof), rates_for(paper, prof)
    assert rates_for(cpu, prof) is rc  # measured once
    assert 0 < rc.encode < rp.encode and 0 < rc.pixel < rp.pixel
    assert rates_for(cpu, profile_for("meta")) is None
    render = export_seconds(cpu, prof, 52e6, 13e6)
    whole = export_seconds(cpu, prof, 52e6, 13e6, 13e6)
    assert abs(whole - render - 13e6 * rc.encode * rc.halo(512)) < 1e-6 * whole
    assert export_seconds(cpu, prof, 52e6, 13e6, 13e6, block_rows=64) > whole
    assert rc.halo(64) > rc.halo(512) > 1
    # without ``measure`` nothing is timed (the dialog's GUI thread): None until measured
    from core.models.registry import make
    from tests.conftest import tiny_spec
    tiny = make(tiny_spec()).eval()
    assert rates_for(tiny, prof, measure=False) is None
    assert export_seconds(tiny, prof, 1e6, 1e5, measure=False) is None
    assert rates_for(tiny, prof, measure=False) is None
    assert rates_for(tiny, prof) is rates_for(tiny, prof, measure=False) is not None


def test_notes_that_appear_after_the_dialog_is_shown_are_not_clipped(qtbot, tmp_path):
    img = LoadedImage((np.random.default_rng(0).random((80, 120, 3)) * 255).astype(np.uint8),
                      np.full((80, 120), 0.5, np.float32))
    dlg = ExportDialog(None, 120, 80, Region(0, 0, 120, 80), None, str(tmp_path), "t",
                       image=img, seconds=lambda region, px, measure=True: px / 1e6)
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    dlg.format.setCurrentText("JPEG")  # a note on flattening the transparency appears
    qtbot.wait(50)
    note = dlg.format_notes
    assert note.isVisible() and "flattened" in note.text()
    assert note.height() >= note.heightForWidth(note.width()) - 1


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
                       seconds=lambda region, px, measure=True: px / 1.7e6)
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


def test_the_dialog_estimates_the_file_size_and_says_what_the_format_does(qtbot, tmp_path):
    """The size line gains the file size (a patch encoded as the export would), turns into a
    warning above 100 Mpx, and a format without alpha says it flattens."""
    import numpy as np

    from core.export import export
    from core.io.imageio import LoadedImage
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
