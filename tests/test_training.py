"""Training package: sampler, a tiny run, exact resume, DDP, metrics, evaluation CLI."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from core.metrics import psnr
from training.data import ImageFolder, ImplicitDownsampled

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_images(folder, n=6, size=(110, 120), seed=0):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size[0], 0:size[1]]
    for i in range(n):
        # smooth structured images (learnable), not noise
        f1, f2 = rng.uniform(0.02, 0.15, 2)
        img = np.stack([np.sin(xx * f1 + c) * np.cos(yy * f2 - c) for c in (0, 1, 2)], -1)
        Image.fromarray(((img * 0.5 + 0.5) * 255).astype(np.uint8)).save(f"{folder}/{i:02d}.png")


def tiny_config(tmp_path, data, **over):
    cfg = {
        "name": "tiny", "seed": 0,
        "train": {"data": str(data), "holdout": 1, "repeat": 4, "inp_size": 16, "scale_min": 1,
                  "scale_max": 4, "augment": True, "sample_q": 256, "batch_size": 4},
        "val": {"repeat": 2, "inp_size": 16, "scale_max": 4, "sample_q": 256, "batch_size": 4},
        "model": {"name": "liif", "args": {
            "encoder_spec": {"name": "edsr-baseline",
                             "args": {"n_resblocks": 1, "n_feats": 8, "no_upsampling": True}},
            "imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [32, 32]}}}},
        "optimizer": {"name": "adam", "args": {"lr": 2e-3}},
        "epoch_max": 100, "multi_step_lr": {"milestones": [50], "gamma": 0.5},
        "epoch_val": 1, "save_every_steps": 2}
    cfg.update(over)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_train(*args, env=None):
    return subprocess.run([sys.executable, "-m", "training.train", "--no-progress",
                           "--threads", "2", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, env=env)


def two_samples(tmp_path):
    """A batch of two training samples (16-px LR, 64 query points) from made-up images."""
    make_images(tmp_path / "d")
    ds = ImplicitDownsampled(ImageFolder(tmp_path / "d"), 16, 1, 4, sample_q=64)
    return {k: torch.stack([ds[i][k] for i in range(2)]) for k in ("inp", "coord", "cell", "gt")}


def losses(run):
    with open(run / "log.jsonl") as f:
        return [json.loads(line)["loss"] for line in f]


def test_sampler_shapes_and_skips_bad_images(tmp_path, caplog):
    make_images(tmp_path / "d", n=2)
    (tmp_path / "d" / "broken.png").write_bytes(b"not a png")
    Image.new("RGB", (20, 20)).save(tmp_path / "d" / "small.png")
    with caplog.at_level("WARNING"):
        folder = ImageFolder(tmp_path / "d", min_size=64)
    assert len(folder) == 2
    assert "broken.png" in caplog.text and "small.png" in caplog.text
    ds = ImplicitDownsampled(folder, 16, 1, 4, augment=True, sample_q=100)
    b = ds[0]
    assert b["inp"].shape == (3, 16, 16) and b["coord"].shape == (100, 2)
    assert b["gt"].shape == (100, 3) and b["cell"].shape == (100, 2)
    assert b["coord"].abs().max() < 1
    # the cell is 2 / (HR crop side), the same for all queries
    side = round(2 / float(b["cell"][0, 0]))
    assert 16 <= side <= 64 and torch.allclose(b["cell"], b["cell"][:1].expand(100, 2))
    # deterministic in (seed, epoch, index)
    assert torch.equal(ds[0]["gt"], b["gt"])
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["gt"], b["gt"])


def test_detail_share_draws_distinct_points_mostly_on_edges(tmp_path):
    """``detail_share``: the points stay distinct and deterministic; with all of them drawn by
    detail, a picture that is flat on its left and striped on its right gets most of them on
    the right (uniform: about half); 0 keeps the uniform draw unchanged."""
    d = tmp_path / "d"
    d.mkdir()
    a = np.full((96, 96, 3), 128, np.uint8)
    stripes = (np.arange(48) // 2) % 2 == 0  # 2-px stripes on the right half
    a[:, 48:][:, stripes] = 0
    a[:, 48:][:, ~stripes] = 255
    Image.fromarray(a).save(d / "half.png")
    folder = ImageFolder(d, min_size=64)
    right = {}
    for share in (0.0, 1.0):
        ds = ImplicitDownsampled(folder, 32, 2, 2, augment=False, sample_q=400,
                                 detail_share=share)
        b = ds[0]
        assert len(torch.unique(b["coord"], dim=0)) == 400
        assert torch.equal(ds[0]["coord"], b["coord"])
        right[share] = float(((b["gt"][:, 0] - 0.5).abs() > 0.25).float().mean())  # a stripe
    assert right[1.0] > 0.85 and 0.2 < right[0.0] < 0.8
    plain = ImplicitDownsampled(folder, 32, 2, 2, augment=False, sample_q=400)
    zero = ImplicitDownsampled(folder, 32, 2, 2, augment=False, sample_q=400, detail_share=0.0)
    assert torch.equal(plain[0]["coord"], zero[0]["coord"])
    with pytest.raises(ValueError, match="detail_share"):
        ImplicitDownsampled(folder, 32, 2, 2, sample_q=400, detail_share=1.5)


LMF_TINY = {"name": "lmf", "args": {
    "encoder_spec": {"name": "edsr-baseline",
                     "args": {"n_resblocks": 1, "n_feats": 8, "no_upsampling": True}},
    "hyper_hidden": [32], "render_width": 8, "render_layers": 2, "skip": True}}


@pytest.mark.slow
@pytest.mark.parametrize("family", ["liif", "lmf"])
def test_tiny_run_lowers_the_loss_and_writes_checkpoints(tmp_path, family):
    make_images(tmp_path / "d")
    over = {"model": LMF_TINY} if family == "lmf" else {}
    cfg = tiny_config(tmp_path, tmp_path / "d", **over)
    r = run_train("--config", cfg, "--out", tmp_path / "run", "--max-steps", 40)
    assert r.returncode == 0, r.stderr
    ls = losses(tmp_path / "run")
    assert len(ls) == 40
    assert np.mean(ls[-8:]) < 0.7 * np.mean(ls[:4])
    from core.checkpoints import load_model
    for name in ("last", "best"):
        model, spec, info = load_model(tmp_path / "run" / f"{name}.safetensors")
        assert spec["name"] == family
    assert (tmp_path / "run" / "tb").is_dir()


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path):
    make_images(tmp_path / "d")
    cfg = tiny_config(tmp_path, tmp_path / "d")
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_train("--config", cfg, "--out", a, "--max-steps", 9).returncode == 0
    assert run_train("--config", cfg, "--out", b, "--max-steps", 4).returncode == 0
    r = run_train("--config", cfg, "--out", b, "--max-steps", 9, "--resume")
    assert r.returncode == 0 and "resumed" in r.stderr
    la, lb = losses(a), losses(b)
    assert len(lb) == 9
    assert la[4:] == lb[4:]  # bit-identical after the resume (epoch boundary crossed too)


@pytest.mark.slow
def test_ddp_two_processes_gloo(tmp_path):
    make_images(tmp_path / "d")
    cfg = tiny_config(tmp_path, tmp_path / "d")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    import socket
    with socket.socket() as sock:  # a free port (a fixed one may be held by another run)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                        f"--master_port={port}", "-m", "training.train", "--no-progress",
                        "--config", str(cfg), "--out", str(tmp_path / "ddp"), "--max-steps", "4",
                        "--device", "cpu"],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    check = json.loads((tmp_path / "ddp" / "ddp_check.json").read_text())
    assert check == {"world": 2, "max_abs_diff": 0.0}
    assert len(losses(tmp_path / "ddp")) == 4  # rank 0 logs alone


def test_psnr_matches_hand_computation():
    gt = np.zeros((4, 4, 3))
    pred = gt.copy()
    pred[0, 0, 0] = 0.5  # one sample off by 0.5 among 48
    assert psnr(pred, gt) == pytest.approx(-10 * math.log10(0.25 / 48))
    # Y channel: diff 0.5 in R -> 0.5 * 65.738 / 256 in Y, one pixel among 16
    y = 0.5 * 65.738 / 256
    assert psnr(pred, gt, y_channel=True) == pytest.approx(-10 * math.log10(y * y / 16))
    # shaving removes the border pixel that differs
    assert psnr(pred, gt, shave=1) == math.inf


def test_evaluate_cli_json_shape(tmp_path, tiny_checkpoint):
    make_images(tmp_path / "set" / "HR", n=2, size=(48, 60))
    out = tmp_path / "res.json"
    r = subprocess.run([sys.executable, "-m", "training.evaluate", "--checkpoint",
                        str(tiny_checkpoint), "--data", str(tmp_path / "set"),
                        "--scales", "2,3,12", "--json", str(out)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    assert set(d) == {"dataset", "protocol", "checkpoint", "precision", "degrade",
                      "degrade_steps", "results"}
    assert d["dataset"] == "set" and d["protocol"] == "benchmark" and d["precision"] == "float32"
    assert d["degrade"] == "clean" and d["degrade_steps"] == "none"
    assert d["checkpoint"] == str(tiny_checkpoint)
    assert [(e["scale"], e["method"]) for e in d["results"]] == [
        (s, m) for s in (2, 3, 12) for m in ("liif", "bicubic")]
    assert all(set(e) == {"scale", "method", "psnr"} and isinstance(e["psnr"], float)
               for e in d["results"])
    assert "liif" in r.stdout and "bicubic" in r.stdout
    bad = subprocess.run([sys.executable, "-m", "training.evaluate", "--data",
                          str(tmp_path / "nowhere")], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_holdout_counts_usable_images_only(tmp_path):
    """An unreadable or too-small file among the last ones does not shrink the held-out split
    or leak a held-out image into training."""
    make_images(tmp_path / "d", n=6)
    (tmp_path / "d" / "04b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # sorts among the last
    Image.new("RGB", (20, 20)).save(tmp_path / "d" / "05b.png")  # too small
    train = ImageFolder(tmp_path / "d", skip_last_k=2, min_size=48)
    val = ImageFolder(tmp_path / "d", last_k=2, min_size=48)
    assert [f.name for f in val.files] == ["04.png", "05.png"]
    assert [f.name for f in train.files] == ["00.png", "01.png", "02.png", "03.png"]
    assert [f.name for f in ImageFolder(tmp_path / "d", last_k=2, min_size=48,
                                        cache="none").files] == ["04.png", "05.png"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_signal_saves_the_current_step_and_resume_continues_exactly(tmp_path, sig):
    """SIGINT/SIGTERM: the step in progress finishes, a resumable checkpoint is saved at it,
    one line says so (no traceback); --resume then continues as if never stopped."""
    import signal
    import time

    make_images(tmp_path / "d")
    cfg = tiny_config(tmp_path, tmp_path / "d", save_every_steps=10_000)
    b = tmp_path / "b"
    proc = subprocess.Popen([sys.executable, "-m", "training.train", "--no-progress",
                             "--threads", "2", "--config", str(cfg), "--out", str(b),
                             "--max-steps", "100000"], cwd=ROOT, stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log = b / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and len(log.read_text().splitlines()) >= 3):
        time.sleep(0.05)
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + getattr(signal, sig), err
    assert "Traceback" not in err and f"stopped by {sig}" in err
    k = len(losses(b))
    state = torch.load(b / "last.state.pth", weights_only=True)
    assert state["step"] == k  # saved at the step it stopped on, not at the last save_every
    n = k + 7
    r = run_train("--config", cfg, "--out", b, "--max-steps", n, "--resume")
    assert r.returncode == 0 and "resumed" in r.stderr, r.stderr
    a = tmp_path / "a"
    assert run_train("--config", cfg, "--out", a, "--max-steps", n).returncode == 0
    assert losses(a) == losses(b)


def test_init_section_copies_weights_by_prefix(tmp_path, tiny_checkpoint):
    """A config's init section copies named blocks of another model file (e.g. a teacher's
    encoder blocks) into the new model; a mismatch is one clear error."""
    from core.checkpoints import load_checkpoint
    from core.models.registry import make
    from tests.conftest import tiny_spec
    from training.train import init_from

    spec = tiny_spec(n_resblocks=1)
    model = make(spec)
    n = init_from(model, {"checkpoint": str(tiny_checkpoint), "copy": {
        "encoder.head.0": "encoder.head.0", "encoder.body.0": "encoder.body.1"}}, tmp_path)
    _, src, _ = load_checkpoint(tiny_checkpoint)
    sd = model.state_dict()
    assert n == 6
    assert torch.equal(sd["encoder.body.0.body.0.weight"], src["encoder.body.1.body.0.weight"])
    assert torch.equal(sd["encoder.head.0.bias"], src["encoder.head.0.bias"])
    with pytest.raises(ValueError, match="no tensors under"):
        init_from(model, {"checkpoint": str(tiny_checkpoint), "copy": {"x": "nothing"}}, tmp_path)
    with pytest.raises(ValueError, match="does not fit"):
        init_from(model, {"checkpoint": str(tiny_checkpoint), "copy": {
            "encoder.body.0": "imnet.layers.0"}}, tmp_path)


def test_ssim_matches_a_direct_windowed_computation():
    from core.metrics import Y_COEFFS, ssim
    rng = np.random.default_rng(3)
    a = rng.random((14, 13, 3))
    b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1)
    assert ssim(a, a) == pytest.approx(1.0) and ssim(a, b) == pytest.approx(ssim(b, a))
    # by hand: the mean over the 4 x 3 valid windows of the Gaussian-weighted statistics
    t = np.arange(-5, 6)
    g = np.exp(-t ** 2 / (2 * 1.5 ** 2))
    w2 = np.outer(g, g) / np.outer(g, g).sum()
    ya, yb = a @ Y_COEFFS, b @ Y_COEFFS
    vals = []
    for i in range(14 - 10):
        for j in range(13 - 10):
            pa, pb = ya[i:i + 11, j:j + 11], yb[i:i + 11, j:j + 11]
            ma, mb = (w2 * pa).sum(), (w2 * pb).sum()
            va, vb = (w2 * pa * pa).sum() - ma ** 2, (w2 * pb * pb).sum() - mb ** 2
            cov = (w2 * pa * pb).sum() - ma * mb
            c1, c2 = 0.01 ** 2, 0.03 ** 2
            vals.append(
                ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
            )
    assert ssim(a, b) == pytest.approx(np.mean(vals), abs=1e-12)
    with pytest.raises(ValueError):
        ssim(a[:10], b[:10])


@pytest.mark.slow
def test_distillation_mixes_the_teachers_outputs_into_the_loss(tmp_path, tiny_checkpoint):
    """The distill section: loss = (1 - w) L1(gt) + w L1(teacher), the teacher queried at the
    same input, coordinates and cells; a run with it trains and resumes; bad weights fail
    with one line."""
    import torch.nn.functional as F

    from core.checkpoints import load_model
    from core.models.registry import make
    from training.losses import Teacher, step_loss
    batch = two_samples(tmp_path)
    torch.manual_seed(1)
    student = make(LMF_TINY)
    teacher = Teacher({"teacher": str(tiny_checkpoint), "weight": 0.25}, torch.device("cpu"),
                      tmp_path)
    tm = load_model(tiny_checkpoint)[0]
    inp = (batch["inp"] - 0.5) / 0.5
    with torch.no_grad():
        target = tm(inp, batch["coord"], batch["cell"])
        pred = student(inp, batch["coord"], batch["cell"])
        want = 0.75 * F.l1_loss(pred, (batch["gt"] - 0.5) / 0.5) + 0.25 * F.l1_loss(pred, target)
        got = step_loss(student, batch, torch.device("cpu"), teacher)
    # (the teacher's encoder may run in bfloat16 on this CPU)
    assert abs(float(got) - float(want)) < 2e-3 * float(want)
    assert not any(q.requires_grad for q in teacher.model.parameters())

    cfg = tiny_config(tmp_path, tmp_path / "d", model=LMF_TINY,
                      distill={"teacher": str(tiny_checkpoint), "weight": 0.5})
    r = run_train("--config", cfg, "--out", tmp_path / "run", "--max-steps", 6)
    assert r.returncode == 0 and "distilling from" in r.stderr, r.stderr
    r = run_train("--config", cfg, "--out", tmp_path / "run", "--max-steps", 8, "--resume")
    assert r.returncode == 0 and len(losses(tmp_path / "run")) == 8, r.stderr
    bad = tiny_config(tmp_path, tmp_path / "d", distill={"teacher": str(tiny_checkpoint),
                                                         "weight": 1.5})
    r = run_train("--config", bad, "--out", tmp_path / "bad", "--max-steps", 2)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: distill")


def test_training_precision_names_and_auto(monkeypatch):
    """float32 / bfloat16 by name; auto follows the device's native bfloat16; anything else is
    a ValueError (one line from the CLI)."""
    import training.train as tt
    cpu = torch.device("cpu")
    assert tt.training_dtype("float32", cpu) == torch.float32
    assert tt.training_dtype("bfloat16", cpu) == torch.bfloat16
    for caps, want in (({"avx512_bf16": True}, torch.bfloat16), ({}, torch.float32)):
        monkeypatch.setattr(torch._C._cpu, "_get_cpu_capability", lambda c=caps: c)
        assert tt.training_dtype("auto", cpu) == want
    with pytest.raises(ValueError, match="precision"):
        tt.training_dtype("float16", cpu)


@pytest.mark.slow
def test_bfloat16_training_lowers_the_loss_and_the_teacher_follows(tmp_path, tiny_checkpoint):
    """Mixed-precision steps (--precision bfloat16) train an LMF with distillation; the
    teacher's bfloat16 queries stay within a few levels of its float32 ones; a bad precision
    in the config is a one-line error."""
    from training.train import Teacher
    make_images(tmp_path / "d")
    cfg = tiny_config(tmp_path, tmp_path / "d", model=LMF_TINY,
                      distill={"teacher": str(tiny_checkpoint), "weight": 0.5})
    r = run_train("--config", cfg, "--out", tmp_path / "run", "--max-steps", 40,
                  "--precision", "bfloat16")
    assert r.returncode == 0 and "training steps in bfloat16" in r.stderr, r.stderr
    ls = losses(tmp_path / "run")
    assert len(ls) == 40 and all(math.isfinite(v) for v in ls)
    assert np.mean(ls[-8:]) < 0.7 * np.mean(ls[:4])
    from core.checkpoints import load_model
    model = load_model(tmp_path / "run" / "last.safetensors")[0]
    assert all(q.dtype == torch.float32 for q in model.state_dict().values())

    ds = ImplicitDownsampled(ImageFolder(tmp_path / "d"), 16, 1, 4, sample_q=64)
    b = {k: torch.stack([ds[i][k] for i in range(2)]) for k in ("inp", "coord", "cell")}
    inp = (b["inp"] - 0.5) / 0.5
    spec = {"teacher": str(tiny_checkpoint), "weight": 0.5}
    t32 = Teacher(spec, torch.device("cpu"), tmp_path)(inp, b["coord"], b["cell"])
    t16 = Teacher(spec, torch.device("cpu"), tmp_path, torch.bfloat16)(inp, b["coord"], b["cell"])
    assert t16.dtype == torch.float32
    assert (t16 != t32).any()  # the queries did run in bfloat16 ...
    assert float((t16 - t32).abs().max()) < 4 / 127.5  # ... within 4 levels of 255
    from training.losses import step_loss
    b["gt"] = torch.stack([ds[i]["gt"] for i in range(2)])
    with torch.no_grad():
        l32 = float(step_loss(model, b, torch.device("cpu"), None, torch.float32))
        l16 = float(step_loss(model, b, torch.device("cpu"), None, torch.bfloat16))
    assert l16 != l32 and abs(l16 - l32) < 0.02 * l32

    bad = tiny_config(tmp_path, tmp_path / "d", precision="half")
    r = run_train("--config", bad, "--out", tmp_path / "bad", "--max-steps", 2)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: precision")


@pytest.mark.slow
def test_weight_average_is_saved_validated_and_resumes_exactly(tmp_path):
    """ema: the average follows the formula, is written as ema.safetensors, is what best
    holds, and a resumed run ends with the same average as an uninterrupted one."""
    from core.checkpoints import load_checkpoint
    from training.train import WeightAverage
    lin = torch.nn.Linear(2, 1)
    avg = WeightAverage(lin, 0.5)
    w0 = lin.weight.detach().clone()
    with torch.no_grad():
        lin.weight.add_(1.0)
    avg.update(lin)  # d_1 = min(0.5, 2 / 11)
    d = 2 / 11
    assert torch.allclose(avg.model.weight, d * w0 + (1 - d) * (w0 + 1))
    assert not any(q.requires_grad for q in avg.model.parameters())
    with pytest.raises(ValueError, match="ema"):
        WeightAverage(lin, 1.0)

    make_images(tmp_path / "d")
    cfg = tiny_config(tmp_path, tmp_path / "d", ema=0.9, epoch_val=1)
    a, b = tmp_path / "a", tmp_path / "b"
    r = run_train("--config", cfg, "--out", a, "--max-steps", 9)
    assert r.returncode == 0 and "averaging the weights" in r.stderr, r.stderr
    assert run_train("--config", cfg, "--out", b, "--max-steps", 4).returncode == 0
    r = run_train("--config", cfg, "--out", b, "--max-steps", 9, "--resume")
    assert r.returncode == 0 and "4 updates so far" in r.stderr, r.stderr
    ea, eb = load_checkpoint(a / "ema.safetensors")[1], load_checkpoint(b / "ema.safetensors")[1]
    assert all(torch.equal(ea[k], eb[k]) for k in ea)
    raw = load_checkpoint(a / "last.safetensors")[1]
    assert any(not torch.equal(ea[k], raw[k]) for k in ea)  # an average, not the weights
    assert "(averaged weights)" in r.stderr  # an epoch ended and was validated
    best = load_checkpoint(a / "best.safetensors")
    assert best[2].get("ema") == 0.9


@pytest.mark.slow
def test_ddp_a_signal_to_one_rank_stops_every_rank_after_the_same_step(tmp_path):
    """SIGTERM reaches rank 1 only: the stop flag is all-reduced, so rank 0 stops after the
    same step (instead of hanging in the next all-reduce), saves, and the run resumes."""
    import signal
    import socket
    import time
    make_images(tmp_path / "d")
    cfg = tiny_config(tmp_path, tmp_path / "d")
    run = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                             f"--master_port={port}", "-m", "training.train", "--no-progress",
                             "--config", str(cfg), "--out", str(run), "--device", "cpu"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)

    def rank_pid(rank: int):
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{d}/environ", "rb") as f:
                    environ = f.read().split(b"\0")
            except OSError:
                continue
            if ppid == proc.pid and f"LOCAL_RANK={rank}".encode() in environ:
                return int(d)
        return None

    try:
        end = time.time() + 300
        while time.time() < end and not ((run / "log.jsonl").exists() and len(losses(run)) >= 3):
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            time.sleep(0.2)
        pid = rank_pid(1)
        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "stopped by SIGTERM" in err, err[-2000:]  # said by rank 0, which got no signal
    state = torch.load(run / "last.state.pth", map_location="cpu", weights_only=True)
    assert state["step"] == len(losses(run))  # the last logged step is the saved one
    r = run_train("--config", cfg, "--out", run, "--max-steps", state["step"] + 2, "--resume")
    assert r.returncode == 0 and "resumed" in r.stderr, r.stderr[-2000:]


LMF_ON_TINY_ENCODER = {"name": "lmf", "args": {
    "encoder_spec": {"name": "edsr-baseline",
                     "args": {"n_resblocks": 2, "n_feats": 8, "no_upsampling": True}},
    "hyper_hidden": [32], "render_width": 8, "render_layers": 2, "skip": True}}


def test_a_frozen_shared_encoder_is_run_once_with_the_same_loss(tmp_path, tiny_checkpoint):
    """Decoder-only distillation: with the teacher's encoder frozen in the student, the
    shared step (one encoder pass) gives the loss of the plain step, and its backward
    reaches the decoder only."""
    from core.models.registry import make
    from training.train import Teacher, freeze, init_from, step_loss
    batch = two_samples(tmp_path)
    torch.manual_seed(2)
    student = make(LMF_ON_TINY_ENCODER)
    teacher = Teacher({"teacher": str(tiny_checkpoint), "weight": 0.75}, torch.device("cpu"),
                      tmp_path)
    teacher.dtype = torch.float32  # (the plain path's teacher encoder, for an exact compare)
    assert not teacher.shares_encoder(student)  # other weights
    init_from(student, {"checkpoint": str(tiny_checkpoint), "copy": {"encoder": "encoder"}},
              tmp_path)
    assert not teacher.shares_encoder(student)  # same weights, but trainable
    assert freeze(student, ["encoder"]) > 0
    assert teacher.shares_encoder(student)
    cpu = torch.device("cpu")
    plain = step_loss(student, batch, cpu, teacher)
    shared = step_loss(student, batch, cpu, teacher, shared=True)
    assert float(shared.detach()) == pytest.approx(float(plain.detach()), rel=1e-5)
    shared.backward()
    assert all(q.grad is None for q in student.encoder.parameters())
    assert all(q.grad is not None for q in student.hyper.parameters())
    with pytest.raises(ValueError, match="no submodule 'encoderr'"):
        freeze(student, ["encoderr"])


def test_feature_distillation_adds_the_latent_distance(tmp_path, tiny_checkpoint):
    """``distill: features: f``: the step's loss is the output distillation's plus ``f`` times
    the mean absolute distance between the two encoders' outputs, and it reaches the
    student's encoder; an encoder of another width is one clear error."""
    import torch.nn.functional as F

    from core.models.registry import make
    from training.train import Teacher, step_loss
    batch = two_samples(tmp_path)
    torch.manual_seed(3)
    student = make(LMF_ON_TINY_ENCODER)
    cpu = torch.device("cpu")
    spec = {"teacher": str(tiny_checkpoint), "weight": 0.75}
    plain_teacher = Teacher(spec, cpu, tmp_path)
    feat_teacher = Teacher({**spec, "features": 2.0}, cpu, tmp_path)
    for t in (plain_teacher, feat_teacher):
        t.dtype = torch.float32
    plain = step_loss(student, batch, cpu, plain_teacher)
    with_features = step_loss(student, batch, cpu, feat_teacher)
    inp = (batch["inp"] - 0.5) / 0.5
    with torch.no_grad():
        dist = F.l1_loss(student.encode_features(inp), feat_teacher.features_of(inp))
    assert float(dist) > 0
    assert float(with_features.detach()) == pytest.approx(float(plain.detach()) + 2.0 * float(dist),
                                                          rel=1e-5)
    with_features.backward()
    assert all(q.grad is not None for q in student.encoder.parameters() if q.requires_grad)
    narrow = json.loads(json.dumps(LMF_ON_TINY_ENCODER))
    narrow["args"]["encoder_spec"]["args"]["n_feats"] = 4
    with pytest.raises(ValueError, match="distill features"):
        step_loss(make(narrow), batch, cpu, feat_teacher)


def same_function_then_backward(before, grown) -> None:
    """A grown model computes what ``before`` did (random points); then a backward through it,
    so that the caller can look at its gradients."""
    inp = torch.rand(1, 3, 9, 11)
    coord = torch.rand(1, 300, 2) * 2 - 1
    cell = torch.full((1, 300, 2), 2 / 40)
    with torch.no_grad():
        ref = before(inp, coord, cell)
    out = grown(inp, coord, cell)
    assert (out - ref).abs().max() < 1e-5
    out.square().mean().backward()


def test_widening_an_lmf_decoder_keeps_its_function_and_breaks_symmetry(tmp_path):
    """init ``widen: true``: a 2-layer, 8-wide render MLP widened to 13 (uneven copies) gives
    the same outputs; the copies of a unit then get different gradients; narrowing and
    widening a LIIF model are clear errors."""
    from core.checkpoints import save_model
    from core.models.registry import make
    from tests.conftest import tiny_spec
    from training.train import init_from
    from training.widen import widen_lmf
    torch.manual_seed(4)
    narrow = make(LMF_ON_TINY_ENCODER)
    with torch.no_grad():  # modulations that depend on the code (the init's are constant)
        for q in narrow.hyper.parameters():
            q.normal_(0, 0.3)
    src = tmp_path / "narrow.safetensors"
    save_model(narrow, LMF_ON_TINY_ENCODER, src)
    spec = json.loads(json.dumps(LMF_ON_TINY_ENCODER))
    spec["args"]["render_width"] = 13
    wide = make(spec)
    copy = {k: k for k in ("encoder", "hyper", "render_in", "render_hidden", "render_out")}
    assert init_from(wide, {"checkpoint": str(src), "copy": copy, "widen": True}, tmp_path) > 0
    same_function_then_backward(narrow, wide)
    g = wide.render_in.weight.grad
    assert not torch.allclose(g[0], g[8])  # unit 0 and its copy 8 now learn apart
    with pytest.raises(ValueError, match="cannot narrow"):
        widen_lmf(wide.state_dict(), 8)
    with pytest.raises(ValueError, match="LMF models only"):
        init_from(make(tiny_spec()), {"checkpoint": str(src), "copy": {}, "widen": True},
                  tmp_path)


def test_deepening_the_latent_mlp_keeps_the_function_and_trains_every_layer(tmp_path):
    """init ``deepen: true``: a latent MLP with one hidden layer grown to three (identity layers
    before its last) gives the same outputs, and the new layers get gradients; a depth that is
    not the source's widths followed by copies of its last is a clear error."""
    from core.checkpoints import save_model
    from core.models.registry import make
    from training.train import init_from
    from training.widen import deepen_lmf
    torch.manual_seed(5)
    shallow = make(LMF_ON_TINY_ENCODER)
    with torch.no_grad():
        for q in shallow.hyper.parameters():
            q.normal_(0, 0.3)
    src = tmp_path / "shallow.safetensors"
    save_model(shallow, LMF_ON_TINY_ENCODER, src)
    hidden = list(LMF_ON_TINY_ENCODER["args"]["hyper_hidden"])
    spec = json.loads(json.dumps(LMF_ON_TINY_ENCODER))
    spec["args"]["hyper_hidden"] = hidden + [hidden[-1]] * 2
    deep = make(spec)
    copy = {k: k for k in ("encoder", "hyper", "render_in", "render_hidden", "render_out")}
    assert init_from(deep, {"checkpoint": str(src), "copy": copy, "deepen": True}, tmp_path) > 0
    same_function_then_backward(shallow, deep)
    assert all(deep.hyper[i].weight.grad.abs().sum() > 0 for i in range(len(deep.hyper)))
    with pytest.raises(ValueError, match="cannot deepen"):
        deepen_lmf(shallow.state_dict(), [hidden[-1] + 1])


@pytest.mark.slow
def test_a_frozen_encoder_run_keeps_it_and_resumes(tmp_path, tiny_checkpoint):
    """A config with ``freeze`` and a list of ``init`` sections: the encoder comes from one
    file and stays exactly as it was, the decoder trains, the run resumes exactly; a bad
    freeze name or init entry is one line."""
    from core.checkpoints import load_checkpoint
    make_images(tmp_path / "d")
    init = [{"checkpoint": str(tiny_checkpoint), "copy": {"encoder": "encoder"}}]
    cfg = tiny_config(tmp_path, tmp_path / "d", model=LMF_ON_TINY_ENCODER, freeze=["encoder"],
                      init=init, distill={"teacher": str(tiny_checkpoint), "weight": 0.75},
                      ema=0.9)
    run = tmp_path / "run"
    r = run_train("--config", cfg, "--out", run, "--max-steps", 4)
    assert r.returncode == 0, r.stderr
    assert "encoded once a step" in r.stderr
    _, src, _ = load_checkpoint(tiny_checkpoint)
    for name in ("last", "ema"):  # the average too: averaging a constant would round it
        _, got, _ = load_checkpoint(run / f"{name}.safetensors")
        enc = [k for k in got if k.startswith("encoder.")]
        assert enc and all(torch.equal(got[k], src[k]) for k in enc), name
    r = run_train("--config", cfg, "--out", run, "--max-steps", 6, "--resume")
    assert r.returncode == 0 and "resumed" in r.stderr, r.stderr
    straight = tmp_path / "straight"
    assert run_train("--config", cfg, "--out", straight, "--max-steps", 6).returncode == 0
    assert losses(run) == losses(straight)
    for bad, msg in (({"freeze": ["nothing"]}, "no submodule 'nothing'"),
                     ({"init": [{"copy": {}}]}, "init [0]: missing checkpoint")):
        cfg = tiny_config(tmp_path, tmp_path / "d", model=LMF_ON_TINY_ENCODER, **bad)
        r = run_train("--config", cfg, "--out", tmp_path / "bad", "--max-steps", 1)
        assert r.returncode == 2 and msg in r.stderr.strip().splitlines()[-1], r.stderr
