"""The Qt viewer, offscreen (pytest-qt)."""
import os

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6 import QtCore

from core.geometry import Box, Region
from core.models.registry import make
from tests.conftest import cpu_profile, tiny_spec
from viewer.export_dialog import ExportRequest
from viewer.main_window import MainWindow


def settle(qtbot, w):
    assert w.scheduler.wait_idle(60)
    qtbot.wait(20)


def shown_part_rendered(w, zoom, i, j, level="full"):
    """Whether the cached LIIF tile (i, j) holds at least its on-screen part."""
    from viewer.scheduler import missing_window
    tile = w.scheduler.cache.get(("liif", zoom, level, i, j))
    return tile is not None and missing_window(tile, w.session.state.tile_window(i, j, 64)) is None


def test_open_image_renders_the_view(qtbot, win, image_path):
    assert win.open_image(image_path)
    settle(qtbot, win)
    assert win.session.image.width == 160 and win.session.latent is not None
    st = win.session.state
    keys = [("liif", st.zoom, "full", i, j) for i, j in st.visible_tiles(64)]
    # below 1:1 the LIIF pane shows the filtered source
    if st.zoom < 1:
        keys = [("bicubic", st.zoom, "full", i, j) for i, j in st.visible_tiles(64)]
    assert keys and all(k in win.scheduler.cache for k in keys)
    assert "photo.png" in win.windowTitle()
    assert win.settings.value("recent")[0].endswith("photo.png")


def test_zoom_step_rerenders_new_region_at_new_resolution(qtbot, win, image_path):
    win.open_image(image_path)
    win.session.one_to_one()
    settle(qtbot, win)
    r1, z1 = win.session.state.visible_region(), win.session.state.zoom
    win.session.zoom_at(2.0)
    settle(qtbot, win)
    r2, z2 = win.session.state.visible_region(), win.session.state.zoom
    assert z2 == pytest.approx(2 * z1)
    assert r2.w == pytest.approx(r1.w / 2, abs=1) and r2.h == pytest.approx(r1.h / 2, abs=1)
    tiles = win.session.state.visible_tiles(64)
    for i, j in tiles:  # rendered from the implicit function at the new zoom, full resolution
        tile = win.scheduler.cache.get(("liif", z2, "full", i, j))
        assert tile is not None and tile.shape[:2] == (64, 64)
        assert shown_part_rendered(win, z2, i, j)
    assert "2×" in win.status.zoom.text() or "2" in win.status.zoom.text()


def test_several_liif_workers_render_the_same_tiles(qtbot, tmp_path, image_path):
    """Two LIIF workers sharing the queue (the CPU set-up of viewer.app) deliver every tile,
    pixel for pixel what one renderer gives, and encode each latent tile once."""
    from core.render.encoding import encode
    from core.render.renderer import render
    torch.manual_seed(0)
    model = make(tiny_spec()).eval()
    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(model=model, model_name="tiny", settings=settings,
                   profile=cpu_profile(workers=2))
    qtbot.addWidget(w)
    try:
        w.resize(640, 400)
        w.show()
        w.scheduler.background_encoding = False
        w.open_image(image_path)
        w.session.set_mode("single")
        calls = []
        block = w.session.latent._encode_block
        w.session.latent._encode_block = lambda tiles: calls.append(tiles) or block(tiles)
        w.session.state.zoom = 3.0
        w.session.view_changed()
        settle(qtbot, w)
        assert len({t for c in calls for t in [(y, x) for y in range(c.r0, c.r1)
                                               for x in range(c.c0, c.c1)]}) \
            == sum(c.width * c.height for c in calls)  # no tile encoded twice
        ref = encode(model, w.session.image.rgb, "cpu")
        for i, j in w.session.state.visible_tiles(64):
            tile = w.scheduler.cache.get(("liif", 3.0, "full", i, j))
            assert shown_part_rendered(w, 3.0, i, j)
            c0, r0, c1, r1 = w.session.state.tile_window(i, j, 64)
            want = render(ref, w.session.state.tile_region(i, j, 64), 64, 64)[r0:r1, c0:c1]
            got = tile[r0:r1, c0:c1, :3].astype(int)
            assert np.abs(got - np.round(want * 255).astype(int)).max() <= 1
    finally:
        w.scheduler.shutdown()


def test_liif_renders_only_the_shown_part_of_edge_tiles(qtbot, win, image_path):
    """Tiles at the edge of the view are rendered in part (RGBA, alpha 0 elsewhere) and
    completed when a later view shows the rest, pixel for pixel what a whole render gives."""
    from core.render.renderer import render
    win.open_image(image_path)
    win.session.set_mode("single")
    st = win.session.state
    st.zoom, st.cx, st.cy = 4.0, 40.3, 30.1
    win.session.view_changed()
    settle(qtbot, win)
    edge = [(i, j) for i, j in st.visible_tiles(64) if st.tile_window(i, j, 64) != (0, 0, 64, 64)]
    assert edge
    i, j = edge[0]
    part = win.scheduler.cache.get(("liif", 4.0, "full", i, j))
    c0, r0, c1, r1 = st.tile_window(i, j, 64)
    assert part.shape == (64, 64, 4) and part[r0:r1, c0:c1, 3].all()
    assert (part[..., 3] == 0).sum() == 64 * 64 - (c1 - c0) * (r1 - r0)
    win.grab()  # the partial tile draws over the coarser layers without error
    st.cx, st.cy = (j + 0.5) * 16, (i + 0.5) * 16  # centre on that tile: all of it shown
    win.session.view_changed()
    settle(qtbot, win)
    assert st.tile_window(i, j, 64) == (0, 0, 64, 64)
    full = win.scheduler.cache.get(("liif", 4.0, "full", i, j))
    want = render(win.session.latent, st.tile_region(i, j, 64), 64, 64)
    assert full.shape == (64, 64, 3) and np.array_equal(full, np.round(want * 255).astype(np.uint8))


def test_stale_render_is_cancelled(qtbot, win, image_path, monkeypatch):
    import core.render.methods as render_mod
    import viewer.scheduler as sched_mod
    real_render = render_mod.render
    started = []

    def slow_render(latent, region, w, h, cancelled=None, **kw):
        started.append(region)
        for _ in range(400):  # a slow tile: polls for cancellation like the real renderer
            if cancelled():
                raise sched_mod.Cancelled()
            import time
            time.sleep(0.005)
        return real_render(latent, region, w, h, cancelled=cancelled, **kw)

    win.open_image(image_path)
    settle(qtbot, win)
    monkeypatch.setattr(render_mod, "render", slow_render)
    sched = win.scheduler
    before = sched.cancelled_jobs
    win.session.state.zoom = 8.0
    win.session.view_changed()
    qtbot.waitUntil(lambda: bool(started), timeout=5000)  # the z=8 pass is running
    monkeypatch.setattr(render_mod, "render", real_render)
    win.session.zoom_at(2.0)  # makes it stale
    settle(qtbot, win)
    assert sched.cancelled_jobs > before
    assert not [k for k in sched.cache._d if k[0] == "liif" and k[1] == 8.0]
    z_new = win.session.state.zoom
    assert all(shown_part_rendered(win, z_new, i, j)
               for i, j in win.session.state.visible_tiles(64))


def test_linked_panes_show_the_same_region(qtbot, win, image_path):
    win.open_image(image_path)
    win.session.set_mode("side") if win.session.mode != "side" else None
    qtbot.wait(50)
    assert len(win.panes) == 2
    a, b = win.panes
    assert a.device_size() == b.device_size()
    win.session.zoom_at(3.0, 10, 10)
    win.session.pan(-25, 7)
    settle(qtbot, win)
    st = win.session.state
    for i, j in st.visible_tiles(64):  # both methods rendered for the same tiles
        assert shown_part_rendered(win, st.zoom, i, j)
        assert ("bicubic", st.zoom, "full", i, j) in win.scheduler.cache
    assert [p.methods for p in win.panes] == [["liif"], ["bicubic"]]
    win.session.set_mode("split")
    assert len(win.panes) == 1 and win.panes[0].methods == ["liif", "bicubic"]
    win.session.toggle_nearest()
    assert win.panes[0].methods == ["liif", "nearest"]


def test_export_writes_chosen_size_and_cancel_leaves_nothing(qtbot, win, image_path, tmp_path):
    win.open_image(image_path)
    out = str(tmp_path / "out.png")
    win.start_export(ExportRequest(Region(10, 10, 50, 40), 125, 100, ["liif"], [out], 95))
    qtbot.waitUntil(lambda: win.exports.dialog is None, timeout=60000)
    assert Image.open(out).size == (125, 100)
    big = str(tmp_path / "big.png")
    win.start_export(ExportRequest(Region(0, 0, 160, 120), 4000, 3000, ["liif", "bicubic"],
                                   [big, str(tmp_path / "big2.png")], 95))
    qtbot.wait(100)
    win.exports.dialog.canceled.emit()  # the user presses Cancel
    qtbot.waitUntil(lambda: win.exports.dialog is None, timeout=60000)
    assert sorted(os.listdir(tmp_path)) == ["out.png", "photo.png", "s.ini"]
    assert not win.errors


def test_two_file_export_cancelled_after_the_first_changes_nothing(qtbot, win, image_path,
                                                                    tmp_path):
    """Cancel while the second of two files renders: the first (already complete) is not
    left behind, an existing target keeps its content, and the message says so."""
    win.open_image(image_path)
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    first.write_bytes(b"the user's older file")
    win.start_export(ExportRequest(Region(0, 0, 160, 120), 3000, 2250, ["bicubic", "liif"],
                                   [str(first), str(second)], 95))
    qtbot.waitUntil(lambda: win.exports.dialog is not None
                    and win.exports.dialog.value() > 520, timeout=60000)
    win.exports.dialog.canceled.emit()
    qtbot.waitUntil(lambda: win.exports.dialog is None, timeout=60000)
    assert first.read_bytes() == b"the user's older file"
    assert sorted(os.listdir(tmp_path)) == ["a.png", "photo.png", "s.ini"]
    assert "nothing written" in win.statusBar().currentMessage()


@pytest.mark.parametrize("method", ["bicubic", "nearest"])
def test_cancel_stops_a_bicubic_or_nearest_export_too(qtbot, win, image_path, tmp_path,
                                                       method):
    """Cancel while a bicubic or nearest export renders: the existing file is kept and the
    status says nothing was written (these renderers never looked at the cancel flag)."""
    win.open_image(image_path)
    target = tmp_path / "old.png"
    target.write_bytes(b"the user's older file")
    win.start_export(ExportRequest(Region(0, 0, 160, 120), 8000, 6000, [method],
                                   [str(target)], 95))
    qtbot.waitUntil(lambda: win.exports.dialog is not None, timeout=60000)
    win.exports.dialog.canceled.emit()
    qtbot.waitUntil(lambda: win.exports.dialog is None, timeout=120000)
    assert target.read_bytes() == b"the user's older file"
    assert sorted(os.listdir(tmp_path)) == ["old.png", "photo.png", "s.ini"]
    assert "nothing written" in win.statusBar().currentMessage()


def test_export_error_is_shown_and_app_keeps_running(qtbot, win, image_path, tmp_path):
    win.open_image(image_path)
    bad = str(tmp_path / "no-such-dir" / "x.png")
    win.start_export(ExportRequest(Region(0, 0, 10, 10), 20, 20, ["bicubic"], [bad], 95))
    qtbot.waitUntil(lambda: win.exports.dialog is None, timeout=30000)
    assert win.errors and "x.png" in win.errors[-1][1]
    assert win.session.image is not None


def test_bad_files_give_error_dialog_and_keep_current_image(qtbot, win, image_path, tmp_path):
    win.open_image(image_path)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert not win.open_image(str(bad))
    assert win.errors and "broken.jpg" in win.errors[-1][1]
    assert win.session.image.path == image_path
    ckpt = tmp_path / "bad.safetensors"
    ckpt.write_bytes(b"nope")
    assert not win.load_checkpoint(str(ckpt))
    assert "bad.safetensors" in win.errors[-1][1] and win.session.model_name == "tiny"


def test_load_checkpoint_reencodes_and_shows_name(qtbot, win, image_path, tiny_checkpoint):
    win.open_image(image_path)
    old = win.session.latent
    assert win.load_checkpoint(str(tiny_checkpoint))
    assert win.session.latent is not old and win.session.model_name == "tiny"
    assert "tiny" in win.status.model.text()


def test_hostile_checkpoint_gives_a_dialog_and_keeps_the_model(qtbot, win, image_path,
                                                                tmp_path):
    """A deeply nested spec, a huge spec and NaN weights: one dialog each, same model."""
    import json

    from safetensors.torch import save_file
    win.open_image(image_path)
    model, latent = win.session.model, win.session.latent
    nan = {k: v.clone() for k, v in make(tiny_spec()).state_dict().items()}
    next(iter(nan.values())).fill_(float("nan"))
    files = {
        "deep": ({"a": torch.zeros(1)}, "[" * 5000 + "]" * 5000),
        "huge": ({"a": torch.zeros(1)}, json.dumps({"name": "mlp", "args": {
            "in_dim": 60000, "out_dim": 60000, "hidden_list": [60000] * 50}})),
        "nan": (nan, json.dumps(tiny_spec())),
    }
    for name, (sd, spec) in files.items():
        p = tmp_path / f"{name}.safetensors"
        save_file(sd, str(p), metadata={"format": "liif-zoom/1", "spec": spec})
        n = len(win.errors)
        assert not win.load_checkpoint(str(p))
        assert len(win.errors) == n + 1 and "current model stays" in win.errors[-1][1]
        assert win.session.model is model and win.session.latent is latent


def test_compare_any_two_models_side_by_side_and_split(qtbot, win, image_path, tmp_path):
    """The second pane can show another model: both render their own tiles from their own
    latents, the labels name them, and the View keys keep working."""
    from core.checkpoints import save_model
    torch.manual_seed(1)
    spec = tiny_spec(hidden=(16,))
    save_model(make(spec), spec, tmp_path / "other.safetensors")
    win.open_image(image_path)
    win.session.zoom_at(2.0)
    assert win.compare_with_checkpoint(str(tmp_path / "other.safetensors"))
    assert [p.methods for p in win.panes] == [["liif"], ["compare"]]
    settle(qtbot, win)
    st = win.session.state
    i, j = st.visible_tiles(64)[0]
    a = win.scheduler.cache.get(("liif", st.zoom, "full", i, j))
    b = win.scheduler.cache.get(("compare", st.zoom, "full", i, j))
    assert a is not None and b is not None and not np.array_equal(a, b)
    assert win.session.label("compare") == "LIIF: other"
    assert not any(a.isChecked() for a in win.menus.compare.values())  # not in the menu
    win.session.set_mode("split")
    assert [p.methods for p in win.panes] == [["liif", "compare"]]
    win.session.toggle_nearest()  # N: nearest neighbour instead
    assert [p.methods for p in win.panes] == [["liif", "nearest"]]
    win.compare_with("bicubic")
    assert [p.methods for p in win.panes] == [["liif", "bicubic"]]
    assert win.session.compare_model is None and win.menus.compare["bicubic"].isChecked()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"junk")
    assert not win.compare_with_checkpoint(str(bad)) and win.errors


def test_main_opens_bundled_sample_with_bundled_model(qtbot, tmp_path):
    from core import zoo
    from viewer.app import build_window, parse_args
    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = build_window(parse_args([]), settings=settings)
    qtbot.addWidget(w)
    cpu, paper = zoo.get("cpu").path.stem, zoo.get("paper").path.stem
    try:
        assert w.session.image is not None and w.session.latent is not None
        # on a CPU the CPU model is the default; the status bar names it
        assert w.session.model_name == cpu and type(w.session.model).__name__ == "LMF"
        assert w.status.model.text().startswith(cpu) and "LMF" in w.status.model.toolTip()
        assert w.menus.models[cpu].isChecked()
        # the Model menu switches to the paper model (and the latent is re-encoded)
        old = w.session.latent
        w.menus.models[paper].trigger()
        assert w.session.model_name == paper and type(w.session.model).__name__ == "LIIF"
        assert w.session.latent is not old and w.status.model.text().startswith(paper)
        assert "LIIF model" in w.status.model.toolTip()
        assert w.menus.models[paper].isChecked() and not w.menus.models[cpu].isChecked()
        # Model → Compare With → the CPU model: paper model | CPU model, labelled
        w.menus.compare[cpu].trigger()
        assert [p.methods for p in w.panes] == [["liif"], ["compare"]]
        assert w.session.label("compare") == f"LIIF: {cpu}"
        assert w.menus.compare[cpu].isChecked()
    finally:
        w.scheduler.shutdown()


def test_default_model_per_device():
    from core import zoo
    assert list(zoo.bundled()) == ["paper", "cpu", "photo", "photo16", "edges"]  # paper first
    assert zoo.clean_default("cpu") == zoo.get("cpu").path
    assert zoo.clean_default("cuda") == zoo.get("paper").path
    assert zoo.clean_default("mps") == zoo.get("paper").path
    assert zoo.photo_default("cpu") == zoo.get("photo").path
    assert zoo.photo_default("cuda") == zoo.get("photo16").path


def test_bad_file_opens_a_real_error_dialog(qtbot, tmp_path):
    from PySide6 import QtWidgets
    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    bad = tmp_path / "notes.png"
    bad.write_text("hello")
    seen = []

    def close_box():
        box = QtWidgets.QApplication.activeModalWidget()
        if isinstance(box, QtWidgets.QMessageBox):
            seen.append(box.text())
            box.accept()
        else:
            QtCore.QTimer.singleShot(20, close_box)

    QtCore.QTimer.singleShot(20, close_box)
    assert not w.open_image(str(bad))
    assert seen and "notes.png" in seen[0]
    w.scheduler.shutdown()


def test_viewer_export_equals_cli_pixel_for_pixel(qtbot, win, image_path, tmp_path,
                                                  tiny_checkpoint):
    import subprocess
    import sys
    win.load_checkpoint(str(tiny_checkpoint))
    win.open_image(image_path)
    a = str(tmp_path / "viewer.png")
    win.start_export(ExportRequest(Region(12.5, 7.25, 40, 30), 133, 100, ["liif"], [a], 95))
    qtbot.waitUntil(lambda: win.exports.dialog is None, timeout=60000)
    b = str(tmp_path / "cli.png")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-m", "core.upscale", image_path, "--region",
                        "12.5,7.25,40,30", "--size", "133x100", "--checkpoint",
                        str(tiny_checkpoint), "--device", "cpu", "-o", b],
                       capture_output=True, text=True, cwd=root)
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_encode_jobs_cover_the_view_in_balanced_pieces(workers):
    """The latent under a view is encoded in pieces of whole tiles, at most one block each,
    covering the view exactly once, at least one per LIIF worker, of about equal size."""
    from core.render.encoding import encode
    from viewer.scheduler import RenderScheduler
    from viewer.tiles import Method
    rgb = np.random.default_rng(0).random((300, 400, 3), dtype=np.float32)
    sched = RenderScheduler(tile=64, liif_workers=workers)
    try:
        lat = encode(make(tiny_spec()).eval(), rgb, torch.device("cpu"), tile=16, max_block=128)
        sched.latent = lat
        for view in (Region(50.3, 40.7, 100, 60), Region(10, 10, 300, 200), Region(380, 5, 40, 20)):
            jobs = sched._encode_jobs(lat, Method.ENCODE, 2.0, view)
            y1, x1 = min(300, int(view.y + view.h) + 3), min(400, int(view.x + view.w) + 3)
            ys = range(max(0, int(view.y) - 2) // 16, (y1 - 1) // 16 + 1)
            xs = range(max(0, int(view.x) - 2) // 16, (x1 - 1) // 16 + 1)
            want = {(y, x) for y in ys for x in xs}
            pieces = [{(y, x) for y in range(int(r.y) // 16, -(-int(r.y + r.h) // 16))
                       for x in range(int(r.x) // 16, -(-int(r.x + r.w) // 16))}
                      for r in (j.region for j in jobs)]
            assert sum(len(p) for p in pieces) == len(want) and set().union(*pieces) == want
            assert all(r.w <= 128 and r.h <= 128 for r in (j.region for j in jobs))
            assert len(jobs) >= min(workers, len(want))
            sizes = [len(p) for p in pieces]
            assert max(sizes) <= 2 * min(sizes)
        lat.ensure_region(Region(0, 0, 400, 300))  # all encoded: nothing to do
        assert sched._encode_jobs(lat, Method.ENCODE, 2.0, Region(10, 10, 300, 200)) == []
        # the background encoder starts from the centre of the first view, then from where
        # the view is heading: its centre plus its last step (at most a view per axis)
        sched.request(2.0, [(0, 0), (0, 1)], ["bicubic"],
                      lambda i, j: Region(100 + 20 * j, 50 + 10 * i, 20, 10))
        assert sched.focus == (55.0, 120.0)
        sched.request(2.0, [(0, 0), (0, 1)], ["bicubic"],
                      lambda i, j: Region(110 + 20 * j, 47 + 10 * i, 20, 10))
        assert sched.focus == (49.0, 140.0)  # moved +10 right, -3 up: encode further on
        sched.request(2.0, [(0, 0), (0, 1)], ["bicubic"],
                      lambda i, j: Region(300 + 20 * j, 47 + 10 * i, 20, 10))
        assert sched.focus == (52.0, 360.0)  # a jump: at most one view width ahead
        lat2 = encode(make(tiny_spec()).eval(), rgb, torch.device("cpu"), tile=16,
                      max_block=64)
        sched.latent, sched.background_encoding = lat2, True
        assert sched._idle_encode_step()  # the first block encoded is the one ahead
        assert lat2.is_encoded(Box(360, 52, 361, 53)) and not lat2.is_encoded(Box(300, 52, 301, 53))
    finally:
        sched.shutdown()


def test_mode_switch_hides_the_old_panes_at_once(qtbot, win, image_path):
    """Old panes are deleted later (by the event loop); until then they must not be shown,
    painted or asked for tiles."""
    win.open_image(image_path)
    if win.session.mode != "side":
        win.session.set_mode("side")
    qtbot.wait(10)
    old = list(win.panes)
    assert len(old) == 2 and all(p.isVisible() for p in old)
    win.session.set_mode("single")
    assert win.session.mode == "single" and len(win.panes) == 1
    assert not any(p.isVisible() for p in old)
    qtbot.waitUntil(lambda: win.panes[0].isVisible())


def test_decoding_does_not_block_the_gui_thread(qtbot, win, image_path, monkeypatch):
    """A slow decoder runs in a worker: the GUI thread's timers keep firing meanwhile."""
    import time

    import viewer.main_window as mw
    real = mw.load_image

    def slow(path, max_pixels=None):
        time.sleep(0.6)
        return real(path, max_pixels=max_pixels)

    monkeypatch.setattr(mw, "load_image", slow)
    ticks = []
    timer = QtCore.QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(20)
    try:
        assert win.open_image(image_path)
    finally:
        timer.stop()
    assert win.session.image is not None and win.session.image.width == 160
    assert len(ticks) >= 10  # the event loop ran all along (about 30 ticks in 0.6 s)
    assert max(b - a for a, b in zip(ticks, ticks[1:])) < 0.3


def test_sigterm_closes_the_viewer_cleanly(tmp_path, image_path):
    """The viewer handles SIGTERM like the CLI: it closes its window (cancelling a running
    export, whose staged files go) and exits with 128 + the signal, no traceback."""
    import signal
    import subprocess
    import sys
    import time
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "main.py", str(image_path), "--device", "cpu"],
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(6)  # started, the image open
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and "terminate called" not in err


def test_closing_the_window_during_an_export_leaves_no_file(qtbot, win, image_path, tmp_path):
    win.open_image(image_path)
    out = tmp_path / "exports"
    out.mkdir()
    win.start_export(ExportRequest(Region(0, 0, 160, 120), 4000, 3000, ["liif", "bicubic"],
                                   [str(out / "a.png"), str(out / "b.png")], 95))
    qtbot.waitUntil(lambda: win.exports.dialog is not None and win.exports.dialog.value() > 0,
                    timeout=60000)
    win.close()  # what SIGTERM does in the app (viewer.app.quit_on_signals)
    assert not win.exports.task.running
    assert os.listdir(out) == []  # neither the targets nor a staged file


def test_out_of_memory_in_background_encoding_stops_it_once(qtbot, win, image_path, monkeypatch):
    """A (simulated) CUDA out-of-memory in the idle loop stops background encoding for the
    image, frees the tile cache and says so once: no retry storm of error callbacks."""
    import torch
    errors = []
    win.scheduler.on_error = errors.append
    win.open_image(image_path)
    settle(qtbot, win)
    lat = win.session.latent
    oom = getattr(torch, "OutOfMemoryError", RuntimeError)

    def boom(*a, **k):
        raise oom("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(lat, "encode_next", boom)
    lat._tiles.clear()  # something left to encode
    lat._bytes = 0
    with win.scheduler._liif.cond:
        win.scheduler._liif.cond.notify_all()
    qtbot.wait(1500)
    assert win.scheduler.idle_stopped
    assert sum("out of memory" in e for e in errors) == 1 and len(errors) == 1
    assert not win.scheduler._has_idle_work()


def test_an_export_holds_background_encoding_and_lets_it_go_after(qtbot, win, image_path,
                                                                  tmp_path):
    """The viewer's export must not compete with its own background encoding for the
    cores (a 13-Mpx export took twice the CLI's time beside it)."""
    assert win.open_image(image_path)
    win.start_export(ExportRequest(Region(0, 0, 160, 120), 1600, 1200, ["bicubic"],
                                   [str(tmp_path / "o.png")], 95))
    assert win.scheduler.held
    qtbot.waitUntil(lambda: win.exports.dialog is None, timeout=60000)
    assert not win.scheduler.held and (tmp_path / "o.png").exists()
