"""Ground truth: each pane's method against a higher-resolution reference of the image."""
import os

import numpy as np
import pytest
from PIL import Image

from core.geometry import Region
from core.io.imageio import LoadedImage
from core.metrics import psnr, ssim
from core.render.resample import imresize, render_bicubic
from tests.conftest import make_window
from viewer.groundtruth import comparison_window, reference_scale, visible_metrics


def smooth(h, w, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    f = rng.uniform(0.03, 0.12, 3)
    return np.stack([0.5 + 0.4 * np.sin(xx * f[c] + yy * f[(c + 1) % 3] + c) for c in range(3)], -1)


def test_window_snaps_to_reference_pixels_and_metrics_are_the_evaluations():
    hr = smooth(80, 96)
    lr = imresize((hr * 255).round().astype(np.uint8), 0.5).astype(np.float32) / 255
    img, ref = LoadedImage(lr), LoadedImage(hr.astype(np.float32))
    assert reference_scale(img, ref) == 2.0
    with pytest.raises(ValueError):
        reference_scale(img, LoadedImage(hr[:, :50].astype(np.float32)))
    assert comparison_window(Region(10.3, 5.6, 20, 15), img, ref) == (20, 11, 61, 42)
    assert comparison_window(Region(-5, -5, 100, 100), img, ref) == (0, 0, 96, 80)
    assert comparison_window(Region(0, 0, 48, 40), img, ref, max_pixels=900) == (32, 26, 64, 53)
    res = visible_metrics(img, ref, Region(0, 0, 48, 40), {
        "bicubic": lambda r, w, h: render_bicubic(lr, r, w, h)})
    want = np.clip(render_bicubic(lr, Region(0, 0, 48, 40), 96, 80), 0, 1)
    assert res["bicubic"] == (pytest.approx(psnr(want, hr)), pytest.approx(ssim(want, hr)))
    assert 20 < res["bicubic"][0] < 60 and 0.5 < res["bicubic"][1] <= 1


def test_open_reference_shows_psnr_and_ssim_per_pane(qtbot, tmp_path):
    hr = (smooth(80, 96) * 255).round().astype(np.uint8)
    Image.fromarray(hr).save(tmp_path / "hr.png")
    Image.fromarray(imresize(hr, 0.5)).save(tmp_path / "lr.png")
    w = make_window(qtbot, tmp_path, size=(700, 400))
    try:
        assert w.open_image(str(tmp_path / "lr.png"))
        Image.fromarray(hr[:, :60]).save(tmp_path / "wrong.png")
        n = len(w.errors)
        assert not w.open_reference(str(tmp_path / "wrong.png")) and len(w.errors) == n + 1
        assert w.open_reference(str(tmp_path / "hr.png"))
        qtbot.waitUntil(lambda: "liif" in w.status.last_metrics, timeout=30000)
        text, full = w.status.metrics.text(), w.status.metrics.toolTip()
        assert "tiny" in text and "bicubic" in text  # short on the bar ...
        assert "LIIF: tiny" in full and "bicubic" in full and "SSIM" in full  # ... in full here
        assert set(w.status.last_metrics) == {"liif", "bicubic"}
        # a new image drops the reference
        w.open_image(str(tmp_path / "hr.png"))
        assert w.session.reference is None
        qtbot.waitUntil(lambda: not w.status.metrics.isVisible(), timeout=5000)
    finally:
        w.scheduler.shutdown()


QUIT_SCRIPT = r'''
import sys
from PySide6 import QtCore, QtWidgets
from viewer.app import build_window, parse_args
app = QtWidgets.QApplication([])
from core.profile import profile_for
win = build_window(parse_args([sys.argv[1], "--device", "cpu"]),
                   profile=profile_for("cpu", workers=2))
win.show()
win.error = lambda t, m: print("ERR", t, m)
assert win.open_reference(sys.argv[2])
assert win.compare_with_checkpoint(sys.argv[3])
win.session.zoom_at(4.0)
QtCore.QTimer.singleShot(int(sys.argv[4]), win.close)
QtCore.QTimer.singleShot(int(sys.argv[4]) + 10, app.quit)
sys.exit(app.exec())
'''


@pytest.mark.slow
@pytest.mark.parametrize("after_ms", [300, 800, 1500])
def test_quitting_while_measuring_and_rendering_exits_cleanly(tmp_path, after_ms):
    """Closing the window while a reference is being measured and two models render ends
    with status 0 (a thread left inside torch at exit aborted the process: status 134)."""
    import subprocess
    import sys

    from core import zoo
    from core.defaults import SAMPLE_IMAGE
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = Image.open(SAMPLE_IMAGE)
    src.resize((src.width * 2, src.height * 2), Image.BICUBIC).save(tmp_path / "ref.png")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path),
               PYTHONPATH=root)
    r = subprocess.run([sys.executable, "-c", QUIT_SCRIPT, str(SAMPLE_IMAGE),
                        str(tmp_path / "ref.png"), str(zoo.get("photo").path), str(after_ms)],
                       capture_output=True, text=True, env=env, timeout=300, cwd=root)
    assert r.returncode == 0 and "terminate called" not in r.stderr, r.stderr[-2000:]
    assert "ERR" not in r.stdout


def test_a_reference_that_declares_a_huge_size_is_refused_with_a_dialog(qtbot, tmp_path):
    """A tiny PNG declaring 24000x16000 (384 Mpx) is refused by the image size limit before
    any allocation; a MemoryError while decoding is a dialog too."""
    import struct
    import zlib

    hr = (smooth(40, 48) * 255).round().astype(np.uint8)
    Image.fromarray(hr).save(tmp_path / "lr.png")
    raw = b"\x89PNG\r\n\x1a\n"

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    data = raw + chunk(b"IHDR", struct.pack(">IIBBBBB", 24000, 16000, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    (tmp_path / "huge.png").write_bytes(data)
    w = make_window(qtbot, tmp_path, size=(500, 400))
    try:
        assert w.open_image(str(tmp_path / "lr.png"))
        assert not w.open_reference(str(tmp_path / "huge.png"))
        assert w.errors and "huge.png" in w.errors[-1][1]
        import viewer.main_window as mw

        def no_memory(*a, **k):
            raise MemoryError()
        real = mw.load_image
        mw.load_image = no_memory
        try:
            assert not w.open_reference(str(tmp_path / "lr.png"))
        finally:
            mw.load_image = real
        assert "not enough memory" in w.errors[-1][1]
    finally:
        w.scheduler.shutdown()


def test_a_reference_of_the_wrong_shape_is_refused_before_it_is_decoded(qtbot, tmp_path):
    """The aspect ratio is checked from the header: nothing is decoded for a reference
    that cannot be the open image at a larger size."""
    import viewer.main_window as mw
    hr = (smooth(40, 48) * 255).round().astype(np.uint8)
    Image.fromarray(hr).save(tmp_path / "lr.png")
    Image.fromarray(np.zeros((100, 300, 3), np.uint8)).save(tmp_path / "wide.png")
    w = make_window(qtbot, tmp_path, size=(500, 400))
    decoded = []
    real = mw.load_image
    try:
        assert w.open_image(str(tmp_path / "lr.png"))
        mw.load_image = lambda path, *a, **k: decoded.append(path) or real(path, *a, **k)
        assert not w.open_reference(str(tmp_path / "wide.png"))
        assert w.errors and "aspect ratio" in w.errors[-1][1] and decoded == []
    finally:
        mw.load_image = real
        w.scheduler.shutdown()


def test_the_image_as_its_own_reference_says_identical(win, qtbot, image_path):
    assert win.open_image(image_path)
    assert win.open_reference(image_path)
    qtbot.waitUntil(lambda: "liif" in win.status.last_metrics, timeout=30000)
    text, full = win.status.metrics.text(), win.status.metrics.toolTip()
    assert "∞/1.000" in text and "inf" not in text and "identical (∞ dB)" in full
