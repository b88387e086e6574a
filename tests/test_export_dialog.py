"""The export dialog: where it proposes to write, and never replacing a file unasked."""
import os

import numpy as np
from PySide6 import QtWidgets

from core.geometry import Region
from core.imageio import LoadedImage
from viewer.export_dialog import ExportDialog


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
    monkeypatch.setattr(QtWidgets.QMessageBox, "question",
                        lambda *a, **k: asked.append(a[2]) or QtWidgets.QMessageBox.StandardButton.No)
    monkeypatch.setattr(ed, "CONFIRM_OUTPUT", 1000)
    dlg._accept()
    assert asked and "gigapixels" in asked[0] and dlg.result_request is None
