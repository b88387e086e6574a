"""Training never continues from a broken state, and a broken config is one line."""
import copy
import math

import pytest
import torch
import yaml

from tests.test_training import LMF_TINY, losses, make_images, run_train, tiny_config
from training import train as tt
from training.losses import LOSSES, step_loss


def base_cfg(data="d"):
    return {
        "name": "tiny", "seed": 0,
        "train": {"data": data, "holdout": 1, "repeat": 4, "inp_size": 16, "scale_min": 1,
                  "scale_max": 4, "augment": True, "sample_q": 256, "batch_size": 4},
        "val": {"repeat": 2, "inp_size": 16, "scale_max": 4, "sample_q": 256, "batch_size": 4},
        "model": copy.deepcopy(LMF_TINY),
        "optimizer": {"name": "adam", "args": {"lr": 2e-3}},
        "epoch_max": 100, "multi_step_lr": {"milestones": [50], "gamma": 0.5},
        "epoch_val": 1, "save_every_steps": 2}


def edit(path, value):
    """A copy of the base config with ``path`` (dotted) set to ``value`` (DELETE removes)."""
    cfg = base_cfg()
    *parents, last = path.split(".")
    node = cfg
    for p in parents:
        node = node[p]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return yaml.safe_dump(cfg)


DELETE = object()
BROKEN = [
    ("missing epoch_max", edit("epoch_max", DELETE), "epoch_max"),
    ("missing optimizer", edit("optimizer", DELETE), "optimizer"),
    ("missing lr", edit("optimizer.args", {}), "optimizer.args.lr"),
    ("zero batch", edit("train.batch_size", 0), "train.batch_size"),
    ("zero repeat", edit("train.repeat", 0), "train.repeat"),
    ("zero sample_q", edit("train.sample_q", 0), "train.sample_q"),
    ("negative inp_size", edit("train.inp_size", -1), "train.inp_size"),
    ("unknown model argument", edit("model.args.render_widht", 8), "render_widht"),
    ("unknown model", edit("model.name", "liif2"), "liif2"),
    ("unknown encoder", edit("model.args.encoder_spec.name", "edsr-large"), "edsr-large"),
    ("invalid YAML", "train: [1, 2\nmodel: {", "YAML"),
    ("scale_min above scale_max", edit("train.scale_min", 5), "scale_min"),
    ("typo", edit("train.batchsize", 8), "did you mean train.batch_size"),
    ("unknown top-level key", edit("epochs", 3), "epochs"),
    ("bad precision", edit("precision", "half"), "precision"),
    ("ema out of range", edit("ema", 1.5), "ema"),
    (
        "distill weight zero",
        edit("distill", {"teacher": "x.safetensors", "weight": 0}),
        "distill.weight",
    ),
    ("lr a string", edit("optimizer.args.lr", "fast"), "optimizer.args.lr"),
    ("milestones not integers", edit("multi_step_lr.milestones", ["a"]), "milestones"),
    ("gamma zero", edit("multi_step_lr.gamma", 0), "gamma"),
    ("unknown cache", edit("train.cache", "disk"), "train.cache"),
    ("augment a string", edit("train.augment", "yes"), "train.augment"),
    ("a list", "- 1\n- 2\n", "mapping"),
    ("empty file", "", "mapping"),
    ("bad degrade", edit("degrade", {"jpeg": {"quality": [90, 10]}}), "jpeg.quality"),
    ("unknown loss", edit("loss", "l3"), "loss"),
    ("train not a mapping", edit("train", 5), "train"),
    ("fractional epoch_max", edit("epoch_max", 2.5), "epoch_max"),
    ("sgd", edit("optimizer.name", "sgd"), "optimizer.name"),
    ("zero save_every_steps", edit("save_every_steps", 0), "save_every_steps"),
    ("bool seed", edit("seed", True), "seed"),
]


@pytest.mark.parametrize("what, text, word", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_configs_are_one_line_errors_naming_the_key(tmp_path, capsys, what, text, word):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    assert tt.main(["--config", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and word in err[0], err
    assert not (tmp_path / "run" / "last.state.pth").exists()


def test_the_shipped_configs_pass_the_schema():
    from pathlib import Path

    from training.config import load_config
    root = Path(__file__).resolve().parent.parent / "training" / "configs"
    files = sorted(root.rglob("*.yaml"))
    assert len(files) >= 5
    for f in files:
        load_config(f)


def test_losses_come_from_the_registry():
    a, b = torch.tensor([0.0, 1.0]), torch.tensor([0.5, 0.0])
    assert float(LOSSES["l1"](a, b)) == pytest.approx(0.75)
    assert float(LOSSES["l2"](a, b)) == pytest.approx(0.625)
    assert float(LOSSES["charbonnier"](a, b)) == pytest.approx(
        (math.sqrt(0.25 + 1e-6) + math.sqrt(1 + 1e-6)) / 2)


@pytest.mark.slow
def test_resume_with_another_models_run_is_refused(tmp_path):
    make_images(tmp_path / "d")
    cfg = tiny_config(tmp_path, tmp_path / "d")
    assert run_train("--config", cfg, "--out", tmp_path / "run", "--max-steps", 2).returncode == 0
    other = tiny_config(tmp_path, tmp_path / "d", model=LMF_TINY)
    r = run_train("--config", other, "--out", tmp_path / "run", "--max-steps", 4, "--resume")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: --resume")
    assert "model spec differs" in r.stderr


@pytest.mark.slow
def test_resume_refuses_non_finite_weights(tmp_path):
    make_images(tmp_path / "d")
    cfg = tiny_config(tmp_path, tmp_path / "d")
    assert run_train("--config", cfg, "--out", tmp_path / "run", "--max-steps", 2).returncode == 0
    path = tmp_path / "run" / "last.state.pth"
    state = torch.load(path, weights_only=True)
    k = next(iter(state["model"]))
    state["model"][k] = state["model"][k] * float("nan")
    torch.save(state, path)
    r = run_train("--config", cfg, "--out", tmp_path / "run", "--max-steps", 4, "--resume")
    assert r.returncode == 2 and "not finite" in r.stderr.strip().splitlines()[-1]


def test_a_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    make_images(tmp_path / "d")
    calls = {"n": 0}

    def nan_after_five(pred, target):
        calls["n"] += 1
        v = (pred - target).abs().mean()
        return v * float("nan") if calls["n"] > 5 else v

    monkeypatch.setitem(LOSSES, "nan-after-five", nan_after_five)
    cfg = tiny_config(tmp_path, tmp_path / "d", loss="nan-after-five")
    run = tmp_path / "run"
    assert tt.main(["--config", str(cfg), "--out", str(run), "--max-steps", "20",
                    "--no-progress", "--threads", "1"]) == 1
    err = capsys.readouterr().err
    assert "error: the loss is nan at step 6" in err
    state = torch.load(run / "last.state.pth", weights_only=True)
    assert state["step"] == 5  # the last save (the end of epoch 1), finite
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert len(losses(run)) == 5


@pytest.mark.slow
def test_a_kill_between_the_two_writes_resumes_from_one_consistent_state(tmp_path):
    """The checkpoint file holds the weights: app-format weights newer than it (a kill right
    after writing them) do not leak into the resume."""
    make_images(tmp_path / "d")
    cfg = tiny_config(tmp_path, tmp_path / "d", save_every_steps=3)
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_train("--config", cfg, "--out", a, "--max-steps", 9).returncode == 0
    assert run_train("--config", cfg, "--out", b, "--max-steps", 3).returncode == 0
    from core.checkpoints import load_checkpoint, save_model
    from core.models.registry import make
    spec = load_checkpoint(b / "last.safetensors")[0]
    torch.manual_seed(99)
    save_model(make(spec), spec, b / "last.safetensors")  # as if a later step's weights
    r = run_train("--config", cfg, "--out", b, "--max-steps", 9, "--resume")
    assert r.returncode == 0, r.stderr
    assert losses(a) == losses(b)


@pytest.mark.slow
def test_a_run_folder_from_before_the_one_file_checkpoint_still_resumes(tmp_path):
    make_images(tmp_path / "d")
    cfg = tiny_config(tmp_path, tmp_path / "d", save_every_steps=3)
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_train("--config", cfg, "--out", a, "--max-steps", 6).returncode == 0
    assert run_train("--config", cfg, "--out", b, "--max-steps", 3).returncode == 0
    path = b / "last.state.pth"
    state = torch.load(path, weights_only=True)
    for k in ("model", "ema", "spec"):
        state.pop(k)
    torch.save(state, path)
    r = run_train("--config", cfg, "--out", b, "--max-steps", 6, "--resume")
    assert r.returncode == 0 and "resumed" in r.stderr, r.stderr
    assert losses(a) == losses(b)


@pytest.mark.slow
def test_a_degraded_run_trains(tmp_path):
    make_images(tmp_path / "d")
    cfg = tiny_config(
        tmp_path,
        tmp_path / "d",
        model=LMF_TINY,
        degrade={
            "clean": 0.2,
            "noise": {"p": 0.5, "sigma": [1, 5]},
            "jpeg": {"p": 0.8, "quality": [40, 90]},
        },
    )
    r = run_train("--config", cfg, "--out", tmp_path / "run", "--max-steps", 6)
    assert r.returncode == 0, r.stderr
    assert len(losses(tmp_path / "run")) == 6


def test_step_loss_is_the_registrys_loss():
    from core.models.registry import make
    torch.manual_seed(0)
    model = make(LMF_TINY)
    b = {"inp": torch.rand(2, 3, 8, 8), "coord": torch.rand(2, 16, 2) * 2 - 1,
         "cell": torch.full((2, 16, 2), 0.1), "gt": torch.rand(2, 16, 3)}
    with torch.no_grad():
        pred = model((b["inp"] - 0.5) / 0.5, b["coord"], b["cell"])
        want = LOSSES["charbonnier"](pred, (b["gt"] - 0.5) / 0.5)
        got = step_loss(model, b, torch.device("cpu"), loss="charbonnier")
    assert float(got) == pytest.approx(float(want))


def test_corrupt_or_foreign_state_files_are_one_line_errors(tmp_path, capsys):
    """Empty, random, truncated, a list, no optimizer, wrong shapes, a foreign optimizer:
    ``--resume`` says so in one line (status 2), never a traceback."""
    import numpy as np
    make_images(tmp_path / "d")
    cfg = tiny_config(tmp_path, tmp_path / "d")
    good = tmp_path / "good"
    args = ["--config", str(cfg), "--no-progress", "--threads", "1", "--val-data", "none"]
    assert tt.main(args + ["--out", str(good), "--max-steps", "2"]) == 0
    state_bytes = (good / "last.state.pth").read_bytes()
    state = torch.load(good / "last.state.pth", weights_only=True)
    no_opt = {k: v for k, v in state.items() if k != "optimizer"}
    wrong = dict(state, model={k: torch.zeros(2, 2) for k in state["model"]})
    foreign = dict(state, optimizer={"state": {}, "param_groups": [{"params": [0]}]})
    texts = {"not": b"", "random": np.random.default_rng(0).bytes(3000),
             "truncated": state_bytes[:len(state_bytes) // 2]}
    objects = {"a list": [1, 2, 3], "no optimizer": no_opt, "wrong shapes": wrong,
               "foreign optimizer": foreign, "a tensor": torch.zeros(3)}
    capsys.readouterr()
    for name in list(texts) + list(objects):
        run = tmp_path / name.replace(" ", "-")
        run.mkdir()
        if name in texts:
            (run / "last.state.pth").write_bytes(texts[name])
        else:
            torch.save(objects[name], run / "last.state.pth")
        code = tt.main(args + ["--out", str(run), "--max-steps", "4", "--resume"])
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.startswith("error:") or "Traceback" in ln]
        assert code == 2 and len(lines) == 1 and "--resume" in lines[0], (name, err)


def test_listing_with_cache_none_passes_over_bad_files(tmp_path):
    """``cache: none`` lists files by the same checks load_image makes (a bomb's header is
    refused, a JPEG XL is listed), and a file that fails later gives way to the next one."""
    import imagecodecs
    import numpy as np
    from PIL import Image

    from tests.test_fuzz import _png_with_size
    from training.data import ImageFolder
    make_images(tmp_path / "d", n=3)
    a = (np.random.default_rng(0).random((100, 120, 3)) * 255).astype(np.uint8)
    (tmp_path / "d" / "10.jxl").write_bytes(imagecodecs.jpegxl_encode(a, lossless=True))
    png = (tmp_path / "d" / "00.png").read_bytes()
    (tmp_path / "d" / "20-bomb.png").write_bytes(_png_with_size(png, 30000, 30000))
    cut = tmp_path / "d" / "30-cut.png"
    cut.write_bytes(png[:len(png) // 3])
    with Image.open(cut) as im:
        assert im.size == (120, 110)  # its header reads
    folder = ImageFolder(tmp_path / "d", cache="none", min_size=48)
    names = [f.name for f in folder.files]
    assert "10.jxl" in names and "20-bomb.png" not in names and "30-cut.png" in names
    got = [folder[i] for i in range(len(folder))]
    assert all(g.ndim == 3 and g.shape[2] == 3 for g in got)
    assert np.array_equal(got[names.index("30-cut.png")], got[0])  # the next one: 00.png
    assert folder.failed == {cut}


@pytest.mark.slow
def test_two_quick_signals_say_which_step_was_saved(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from tests.test_training import ROOT
    make_images(tmp_path / "d")
    cfg = tiny_config(tmp_path, tmp_path / "d", save_every_steps=1)
    run = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "training.train", "--config", str(cfg), "--out",
                          str(run), "--no-progress", "--threads", "1"], cwd=ROOT,
                         stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not ((run / "log.jsonl").exists() and len(losses(run)) >= 3) and time.time() - t0 < 120:
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=120)[1]
    assert p.returncode == 128 + signal.SIGTERM, err
    last = err.strip().splitlines()[-1]
    assert "before the first step" not in last and "continue with --resume" in last, last
