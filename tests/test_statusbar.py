"""The status bar's texts."""
import pytest

from tests.conftest import make_window


def test_render_times_say_what_they_are(qtbot, win, image_path):
    assert win.open_image(image_path)
    win.session.zoom_at(4.0)
    assert win.scheduler.wait_idle(60)
    qtbot.waitUntil(lambda: win.status.time.text() != "–", timeout=10000)
    win.status.refresh()
    text = win.status.time.text()
    assert text.startswith("render ") and text.endswith(" ms"), text
    assert "milliseconds" in win.status.time.toolTip()


def test_encoding_that_stops_at_the_budget_says_so(qtbot, win, image_path):
    assert win.open_image(image_path)
    lat = win.session.latent
    win.scheduler.background_encoding = False
    lat.budget = 1  # (far below one block: background encoding stops at once)
    assert lat.at_budget and lat.n_encoded < lat.n_tiles
    win.status.show_encoding()
    assert "budget" in win.status.progress.format()
    assert "encoded where you look" in win.status.progress.toolTip()


def test_below_one_to_one_the_readouts_say_liif_is_the_filtered_source(qtbot, win,
                                                                       tmp_path):
    import numpy as np
    from PIL import Image

    from viewer.statusbar import below_one_to_one
    a = (np.random.default_rng(0).random((600, 800, 3)) * 255).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "big.png")
    assert win.open_image(str(tmp_path / "big.png"))
    win.zoom_to(50)
    assert "below 1:1" in below_one_to_one(win.session)
    win.session.set_profile_line((100.0, 100.0), (600.0, 400.0))
    win.show_inspector()
    win.inspector.refresh()
    assert "filtered source" in win.inspector.info.text()
    win.zoom_to(200)
    assert below_one_to_one(win.session) == ""


def test_the_device_and_its_arithmetic_are_said(qtbot, tmp_path, monkeypatch):
    """The status bar names the device and the encoder's arithmetic from the device profile:
    bfloat16 where the CPU multiplies it natively, float32 elsewhere (one profile a window)."""
    import torch

    from core.profile import profile_for
    from tests.conftest import make_window
    for caps, want in (({"avx512_bf16": True}, "cpu bf16"), ({}, "cpu")):
        monkeypatch.setattr(torch._C._cpu, "_get_cpu_capability", lambda c=caps: c)
        w = make_window(qtbot, tmp_path, profile=profile_for("cpu", workers=1))
        try:
            w.status.refresh()
            assert w.status.device.text() == want
            assert w.profile.describe() in w.status.device.toolTip()
            assert w.session.profile is w.profile
        finally:
            w.scheduler.shutdown()


@pytest.mark.parametrize("bf16", [False, True])
def test_the_status_bar_fits_a_1024_px_window_with_a_reference(qtbot, tmp_path, image_path,
                                                               monkeypatch, bf16):
    import torch

    from core.profile import profile_for
    monkeypatch.setattr(torch._C._cpu, "_get_cpu_capability", lambda: {"avx512_bf16": bf16})
    w = make_window(qtbot, tmp_path, size=(1024, 560), profile=profile_for("cpu", workers=1))
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
