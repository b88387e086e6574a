"""The status bar's texts."""


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
    for caps, want in (({"avx512_bf16": True}, "cpu, bfloat16 encoder"), ({}, "cpu, float32")):
        monkeypatch.setattr(torch._C._cpu, "_get_cpu_capability", lambda c=caps: c)
        w = make_window(qtbot, tmp_path, profile=profile_for("cpu", workers=1))
        try:
            w.status.refresh()
            assert w.status.device.text() == want
            assert w.session.profile is w.profile
        finally:
            w.scheduler.shutdown()
