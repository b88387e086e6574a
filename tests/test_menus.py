"""The menus and mode keys: File → Open Recent across restarts, the compare modes."""
import os

from tests.conftest import make_window


def test_open_recent_keeps_whole_paths_across_a_restart(qtbot, tmp_path, image_path):
    """QSettings reads a one-entry list back from its file as a string: that is one path
    (it was split into single characters: "/", "w", "o", ...)."""
    w = make_window(qtbot, tmp_path)
    try:
        assert w.open_image(image_path)
        w.settings.sync()
    finally:
        w.scheduler.shutdown()
        w.close()
    w = make_window(qtbot, tmp_path)  # a restart: the same settings file
    try:
        texts = [a.text() for a in w.menus.recent.actions()]
        assert texts == [os.path.abspath(image_path)]
        other = tmp_path / "copy.png"
        other.write_bytes(open(image_path, "rb").read())
        assert w.open_image(str(other))
        texts = [a.text() for a in w.menus.recent.actions()]
        assert texts == [str(other), os.path.abspath(image_path)]
    finally:
        w.scheduler.shutdown()


def test_liif_only_is_ticked_alone_and_shows_liif_after_nearest(qtbot, tmp_path, image_path):
    w = make_window(qtbot, tmp_path)
    try:
        assert w.open_image(image_path)
        w.session.toggle_nearest()  # N
        assert w.menus.nearest.isChecked()
        w.session.set_mode("single")  # L
        assert [p.methods for p in w.panes] == [["liif"]]
        assert w.menus.single.isChecked() and not w.menus.nearest.isChecked()
        w.session.toggle_nearest()  # N in LIIF only: the source pixels, and only N ticked
        assert [p.methods for p in w.panes] == [["nearest"]]
        assert w.menus.nearest.isChecked() and not w.menus.single.isChecked()
    finally:
        w.scheduler.shutdown()


def test_automatic_gives_the_rules_model_back_and_a_model_is_never_its_own_comparison(
        qtbot, tmp_path, image_path):
    from core import zoo
    cpu, paper = zoo.get("cpu").path, zoo.get("paper").path
    w = make_window(qtbot, tmp_path)
    try:
        assert w.open_image(image_path)
        w.menus.models[paper.stem].trigger()  # chosen by hand
        assert w.session.model_name == paper.stem and not w.menus.automatic.isChecked()
        w.menus.automatic.trigger()  # the rule again: a PNG on a CPU
        assert w.session.model_name == cpu.stem and w.menus.automatic.isChecked()
        assert "PNG" in w.session.model_reason
        assert not w.menus.compare[cpu.stem].isEnabled()
        assert w.menus.compare[paper.stem].isEnabled()
        assert not w.compare_with_checkpoint(str(cpu)) and "in use already" in w.errors[-1][1]
        assert w.compare_with_checkpoint(str(paper))
    finally:
        w.scheduler.shutdown()


def test_n_twice_returns_to_the_model_comparison(win, image_path, tiny_checkpoint):
    assert win.open_image(image_path)
    assert win.compare_with_checkpoint(str(tiny_checkpoint))
    assert win.session.other == "compare"
    win.session.toggle_nearest()
    assert win.session.other == "nearest"
    win.session.toggle_nearest()
    assert win.session.other == "compare"
