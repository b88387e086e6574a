"""The one rule that picks the model for an input (core.zoo.choose), the formats
table it reads (core.io.formats), and the front doors that follow it."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core import zoo
from core.checkpoints import save_model
from core.io import formats
from core.models.registry import make
from tests.conftest import cpu_profile, make_window, tiny_spec


def picture(path, fmt=None, **kw):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:48]
    img = np.stack([128 + 100 * np.sin(xx * 0.2 + c) * np.cos(yy * 0.15) for c in range(3)], -1)
    img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path, fmt, **kw)
    return str(path)


@pytest.mark.parametrize("q", [15, 50, 72, 90, 97])
def test_jpeg_quality_is_read_back_from_the_quantisation_tables(tmp_path, q):
    kind = formats.inspect_input(picture(tmp_path / "a.jpg", quality=q))
    assert kind == formats.InputKind("JPEG", True, q) and kind.describe() == f"JPEG q≈{q}"


def test_inspect_input_looks_at_the_content(tmp_path):
    assert formats.inspect_input(picture(tmp_path / "a.png")).describe() == "PNG (lossless)"
    assert not formats.inspect_input(picture(tmp_path / "a.tif")).lossy
    assert not formats.inspect_input(picture(tmp_path / "a.bmp")).lossy
    assert not formats.inspect_input(picture(tmp_path / "l.webp", lossless=True)).lossy
    assert formats.inspect_input(picture(tmp_path / "y.webp", quality=80)).lossy
    # the content decides, not the name
    assert not formats.inspect_input(picture(tmp_path / "png.jpg", "PNG")).lossy
    assert formats.inspect_input(picture(tmp_path / "jpeg.png", "JPEG")).quality == 75


def test_every_list_of_formats_comes_from_the_table():
    from viewer.export_dialog import FORMATS as EXPORT
    assert formats.WRITE_FORMATS == {e: f.pil for f in formats.FORMATS if f.writable
                                     for e in f.exts}
    assert all(f"*{e}" in formats.open_filter() for e in formats.READ_EXTS)
    assert [n for n, _ in EXPORT] == [f.name for f in formats.FORMATS if f.writable]
    assert {e for _, e in EXPORT} <= set(formats.WRITE_FORMATS)
    heic = next(f for f in formats.FORMATS if f.name == "HEIC")
    assert (".heic" in formats.READ_EXTS) == heic.readable and ".heic" in formats.KNOWN_EXTS


@pytest.fixture
def models(tmp_path, monkeypatch):
    """Tiny model files standing in for the bundled ones (different weights)."""
    paths = {}
    for i, key in enumerate(("paper", "cpu", "photo", "photo16")):
        torch.manual_seed(i)
        paths[key] = tmp_path / f"tiny-{key}.safetensors"
        save_model(make(tiny_spec()), tiny_spec(), paths[key])
    monkeypatch.setattr(zoo, "bundled", lambda: dict(paths))
    return paths


def test_lossy_inputs_get_the_photo_model_and_lossless_the_clean_one(tmp_path, models):
    jpg = picture(tmp_path / "a.jpg", quality=72)
    png = picture(tmp_path / "a.png")
    c = zoo.choose("cpu", jpg)
    assert c.path == models["photo"] and c.reason == "JPEG q≈72 → photo model"
    c = zoo.choose("cuda", jpg)  # on a GPU the 16-block photo model costs little
    assert c.path == models["photo16"] and c.reason == "JPEG q≈72 → photo model (16 blocks)"
    assert zoo.choose("mps", jpg).path == models["photo16"]
    c = zoo.choose("cpu", png)
    assert c.path == models["cpu"] and c.reason.startswith("PNG (lossless) → ")
    assert zoo.choose("cuda", png).path == models["paper"]
    assert zoo.choose("cpu", picture(tmp_path / "w.webp", quality=60)).path == models["photo"]
    assert zoo.resolve("photo") == models["photo"]
    assert zoo.resolve("x/y.safetensors") == Path("x/y.safetensors")


def test_without_a_photo_model_everything_gets_the_clean_one(tmp_path, models, monkeypatch):
    del models["photo"]
    monkeypatch.setattr(zoo, "bundled", lambda: dict(models))
    # with one photo model, every device gets it
    assert zoo.choose("cpu", picture(tmp_path / "a.jpg")).path == models["photo16"]
    del models["photo16"]
    assert zoo.choose("cpu", picture(tmp_path / "a.jpg")).path == models["cpu"]
    assert zoo.choose("cuda", picture(tmp_path / "a.jpg")).path == models["paper"]


def test_upscale_cli_chooses_per_file_in_a_batch_and_says_why(tmp_path, models, capsys):
    from core import upscale
    src = tmp_path / "in"
    src.mkdir()
    picture(src / "a.png")
    picture(src / "b.jpg", quality=60)
    assert upscale.main([str(src), "--scale", "2", "-o", str(tmp_path / "out"),
                         "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "model tiny-photo (" in err and "(JPEG q≈60 → photo model)" in err
    assert "model tiny-cpu (" in err and "PNG (lossless) → " in err
    assert "2 written" in err
    # --checkpoint takes a bundled model's key and holds for every input
    assert upscale.main([str(src), "--scale", "2", "-o", str(tmp_path / "o2"), "--no-progress",
                         "--checkpoint", "paper"]) == 0
    err = capsys.readouterr().err
    assert "model tiny-paper (" in err and "tiny-photo" not in err


def test_evaluate_follows_the_rule_for_degraded_lr(tmp_path, models, capsys):
    from training import evaluate
    hr = tmp_path / "set" / "HR"
    hr.mkdir(parents=True)
    picture(hr / "a.png")
    assert evaluate.main(["--data", str(hr.parent), "--scales", "2", "--degrade", "jpeg75"]) == 0
    assert "model tiny-photo (" in capsys.readouterr().err
    assert evaluate.main(["--data", str(hr.parent), "--scales", "2"]) == 0
    assert "model tiny-cpu (" in capsys.readouterr().err


def test_viewer_picks_per_image_and_the_menu_overrides_for_the_open_one(qtbot, tmp_path, models):
    from PySide6 import QtCore

    from viewer.main_window import MainWindow
    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, profile=cpu_profile())
    w.errors = []
    w.error = lambda title, msg: w.errors.append((title, msg))
    qtbot.addWidget(w)
    w.show()
    try:
        assert w.auto_model
        assert w.open_image(picture(tmp_path / "a.jpg", quality=72))
        assert w.session.model_name == "tiny-photo"
        assert "JPEG q≈72 → photo model" in w.status.model.text()
        assert w.open_image(picture(tmp_path / "b.png"))
        assert w.session.model_name == "tiny-cpu" and "PNG (lossless)" in w.status.model.text()
        assert w.load_checkpoint(str(models["paper"]))
        assert w.session.model_name == "tiny-paper" and "Model menu" in w.status.model.text()
        assert w.open_image(picture(tmp_path / "c.jpg"))
        assert w.session.model_name == "tiny-photo" and not w.errors
    finally:
        w.scheduler.shutdown()


def test_a_window_made_with_a_model_keeps_it(qtbot, tmp_path, models):
    w = make_window(qtbot, tmp_path)
    try:
        assert not w.auto_model
        assert w.open_image(picture(tmp_path / "a.jpg"))
        assert w.session.model_name == "tiny"
    finally:
        w.scheduler.shutdown()


def test_models_by_name_are_loaded_once_per_file_and_device(tmp_path, models):
    """The zoo's one cache: the same key or file gives the same ready model (the viewer's
    rule, its comparison pane and a CLI batch share it); a changed file is loaded anew."""
    a = zoo.load("cpu")
    assert zoo.load("cpu") is a and zoo.load(str(models["cpu"])) is a
    assert not a.training and zoo.load("paper") is not a
    assert zoo.get("photo").key == "photo" and zoo.get("photo").card.suffix == ".md"
    with pytest.raises(KeyError, match="bundled: paper, cpu, photo, photo16, edges"):
        zoo.get("nope")
    save_model(make(tiny_spec()), tiny_spec(), models["cpu"])  # replaced on disk
    import os
    os.utime(models["cpu"], ns=(1, 1))
    assert zoo.load("cpu") is not a


def test_a_near_lossless_jpeg_gets_the_clean_model(tmp_path, models):
    c = zoo.choose("cpu", picture(tmp_path / "fine.jpg", quality=99))
    assert c.path == models["cpu"] and "near lossless" in c.reason
    assert zoo.choose("cpu", picture(tmp_path / "q97.jpg", quality=97)).path == models["photo"]
