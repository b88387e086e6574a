"""The upscale CLI and the export front door."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from core.checkpoints import load_model
from core.export import export
from core.geometry import Region
from core.io.imageio import load_image
from core.profile import profile_for
from core.render.encoding import Cancelled, encode
from core.render.renderer import render

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "core.upscale", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


@pytest.fixture
def photo(tmp_path):
    a = (np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)
    p = tmp_path / "in.png"
    Image.fromarray(a).save(p)
    return p


@pytest.mark.slow
def test_cli_scale_region_and_formats(tmp_path, photo, tiny_checkpoint):
    for ext in ("png", "jpg", "tif", "webp"):
        out = tmp_path / f"o.{ext}"
        r = run_cli(photo, "--scale", 2.5, "--checkpoint", tiny_checkpoint, "-o", out)
        assert r.returncode == 0, r.stderr
        assert Image.open(out).size == (60, 50)
    out = tmp_path / "r.png"
    r = run_cli(photo, "--region", "2.5,3,10,5", "--size", "64x32", "--checkpoint",
                tiny_checkpoint, "-o", out)
    assert r.returncode == 0, r.stderr
    # the file equals the renderer's pixels for the same region and size, with the same
    # arithmetic (bfloat16 encoding where this CPU has it natively, unless --precision float32)
    model, _, _ = load_model(tiny_checkpoint)
    img = load_image(photo)
    fast = profile_for("cpu").compute_dtype
    ref = render(encode(model, img.rgb, "cpu", compute_dtype=fast), Region(2.5, 3, 10, 5), 64, 32)
    assert np.abs(np.asarray(Image.open(out)) / 255.0 - ref).max() <= 0.5 / 255 + 1e-6
    r = run_cli(photo, "--region", "2.5,3,10,5", "--size", "64x32", "--checkpoint",
                tiny_checkpoint, "--precision", "float32", "-o", out, "--overwrite")
    assert r.returncode == 0, r.stderr
    ref = render(encode(model, img.rgb, "cpu"), Region(2.5, 3, 10, 5), 64, 32)
    assert np.abs(np.asarray(Image.open(out)) / 255.0 - ref).max() <= 0.5 / 255 + 1e-6
    r = run_cli(photo, "--scale", 3, "--method", "bicubic", "-o", tmp_path / "b.png")
    assert r.returncode == 0 and Image.open(tmp_path / "b.png").size == (72, 60)


@pytest.mark.parametrize("args", [
    ["missing.png", "--scale", "2"],
    ["{bad}", "--scale", "2"],
    ["{photo}", "--scale", "-1"],
    ["{photo}", "--size", "12by3"],
    ["{photo}", "--scale", "2", "--checkpoint", "{bad}"],
    ["{photo}", "--scale", "2", "--region", "1,2,3"],
    ["{photo}", "--scale", "inf"],
    ["{photo}", "--scale", "nan"],
    ["{photo}", "--scale", "1e9"],
    ["{photo}", "--size", "99999999x2"],
    ["{photo}", "--scale", "2", "--region", "nan,0,4,4"],
    ["{photo}", "--scale", "2", "--region", "0,0,inf,4"],
    ["{photo}", "--scale", "2", "--region", "0,0,1e12,1e12"],
    ["{photo}", "--size", "64x64", "--region", "0,0,1e12,1e12"],
    ["{photo}", "--size", "64x64", "--region", "30,0,5,5"],
    ["{photo}", "--size", "64x64", "--region=-10,-10,9,9"],
    ["{photo}", "--size", "64x64", "--region", "-10,-10,9,9"],
    ["{photo}", "--size", "64x64", "--region", "a,b,c,d"],
    ["{photo}", "--scale", "2", "--quality", "0"],
    ["{photo}", "--size", "70000x10", "--method", "bicubic", "-o", "{jpg}"],
])
def test_cli_bad_input_one_line_error_no_file(tmp_path, photo, args):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    out = tmp_path / "out.png"
    args = [a.format(photo=photo, bad=bad, jpg=tmp_path / "out.jpg") for a in args]
    r = run_cli(*args, "-o", out) if "-o" not in args else run_cli(*args)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("model ")]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert sorted(os.listdir(tmp_path)) == sorted(["bad.png", "in.png"])


def test_export_streams_in_bands_equal_to_one_render(tmp_path, tiny_model):
    rgb = np.random.default_rng(0).random((16, 16, 3), dtype=np.float32)
    from core.io.imageio import LoadedImage
    img = LoadedImage(rgb, None, False, 8, "x")
    lat = encode(tiny_model, rgb, "cpu")
    export(img, Region.full(16, 16), 70, 50, str(tmp_path / "a.png"), latent=lat, band_pixels=300)
    full = render(lat, Region.full(16, 16), 70, 50)
    got = np.asarray(Image.open(tmp_path / "a.png"))
    assert np.array_equal(got, np.round(full * 255).astype(np.uint8))


def test_export_keeps_alpha_grey_and_16bit(tmp_path, tiny_model):
    from core.io.imageio import LoadedImage
    rgb = np.random.default_rng(0).random((10, 12, 3), dtype=np.float32)
    grey = np.repeat(rgb[..., :1], 3, 2)
    alpha = np.linspace(0, 1, 120, dtype=np.float32).reshape(10, 12)
    img = LoadedImage(grey, alpha, True, 16, "x")
    lat = encode(tiny_model, grey, "cpu")
    export(img, Region.full(12, 10), 24, 20, str(tmp_path / "g.png"), latent=lat)
    back = load_image(tmp_path / "g.png")
    assert back.grey and back.bits == 16 and back.alpha is not None
    assert back.rgb.shape == (20, 24, 3)
    export(img, Region.full(12, 10), 24, 20, str(tmp_path / "g.tif"), method="bicubic")
    back = load_image(tmp_path / "g.tif")  # 16-bit grey + alpha, through tifffile
    assert back.grey and back.bits == 16 and back.alpha is not None
    rgb16 = LoadedImage(rgb, None, False, 16, "x")
    export(rgb16, Region.full(12, 10), 24, 20, str(tmp_path / "c.tif"), method="bicubic")
    back = load_image(tmp_path / "c.tif")  # 16-bit RGB stays 16-bit (it came out 8-bit once)
    assert not back.grey and back.bits == 16
    assert len(np.unique(back.rgb)) > 256


def test_cancelled_export_leaves_no_file(tmp_path, tiny_model):
    from core.io.imageio import LoadedImage
    rgb = np.random.default_rng(0).random((16, 16, 3), dtype=np.float32)
    img = LoadedImage(rgb, None, False, 8, "x")
    lat = encode(tiny_model, rgb, "cpu")
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 3

    for ext in ("png", "jpg"):
        with pytest.raises(Cancelled):
            export(img, Region.full(16, 16), 200, 200, str(tmp_path / f"c.{ext}"), latent=lat,
                   band_pixels=2000, cancelled=cancelled)
        calls.clear()
    assert os.listdir(tmp_path) == []


def test_too_large_for_in_memory_format_is_refused(tmp_path, photo):
    r = run_cli(photo, "--size", "40000x40000", "--method", "bicubic", "-o", tmp_path / "x.jpg")
    assert r.returncode == 2 and "use PNG" in r.stderr
    assert not (tmp_path / "x.jpg").exists()


def test_cli_and_evaluate_use_the_viewers_default_and_say_which(tmp_path, photo):
    """One rule for the default model: the upscale CLI and the evaluation CLI take the model
    core.defaults picks for the device (the viewer's), and name it on stderr / in the JSON."""
    from core.zoo import clean_default

    want = clean_default("cpu")
    r = run_cli(photo, "--scale", 2, "--device", "cpu", "-o", tmp_path / "o.png")
    assert r.returncode == 0, r.stderr
    assert f"model {want.stem} (" in r.stderr
    assert f"on cpu, {profile_for('cpu').arithmetic}" in r.stderr  # and how it computes
    hr = tmp_path / "set" / "HR"
    hr.mkdir(parents=True)
    Image.open(photo).save(hr / "a.png")
    js = tmp_path / "e.json"
    e = subprocess.run([sys.executable, "-m", "training.evaluate", "--data", str(hr.parent),
                        "--scales", "2", "--device", "cpu", "--json", str(js)],
                       capture_output=True, text=True, cwd=ROOT)
    assert e.returncode == 0, e.stderr
    assert f"model {want.stem} (" in e.stderr
    import json
    assert os.path.samefile(json.load(open(js))["checkpoint"], want)


def test_region_partly_outside_continues_the_border(tmp_path, photo):
    """Up to the image's size beyond an edge is allowed; it shows the border continued."""
    out = tmp_path / "o.png"
    r = run_cli(photo, "--region=-24,0,48,20", "--size", "96x40", "--method", "bicubic",
                "-o", out)
    assert r.returncode == 0, r.stderr
    a = np.asarray(Image.open(out)).astype(int)
    # the left half lies outside: each row is constant there, and equals the first column's
    # colour continued (bicubic replicates the edge)
    assert np.abs(a[:, :40] - a[:, :1]).max() <= 1
    assert a.shape == (40, 96, 3)


def test_outputs_honour_the_umask_and_keep_an_overwritten_files_mode(tmp_path, photo):
    out = tmp_path / "o.png"
    old = os.umask(0o027)
    try:
        assert run_cli(photo, "--scale", 2, "--method", "bicubic", "-o", out).returncode == 0
    finally:
        os.umask(old)
    assert (os.stat(out).st_mode & 0o777) == 0o640
    os.chmod(out, 0o604)
    assert run_cli(photo, "--scale", 3, "--method", "bicubic", "-o", out,
                   "--overwrite").returncode == 0
    assert (os.stat(out).st_mode & 0o777) == 0o604 and Image.open(out).size == (72, 60)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_signal_during_export_leaves_no_file(tmp_path, sig):
    """A long PNG export stopped by a signal: one line, status 128+n, no output or .part."""
    import signal
    import time

    a = (np.random.default_rng(0).random((200, 300, 3)) * 255).astype(np.uint8)
    src = tmp_path / "in.png"
    Image.fromarray(a).save(src)
    out = tmp_path / "big.png"
    # (a shell that starts jobs in the background makes them ignore SIGINT, and Python keeps
    # an inherited SIG_IGN; a user's terminal does not: give the child the default)
    proc = subprocess.Popen([sys.executable, "-m", "core.upscale", str(src), "--size",
                             "20000x12000", "--method", "bicubic", "-o", str(out)],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while time.time() < deadline and not any(n.endswith(".part.png") for n in os.listdir(tmp_path)):
        time.sleep(0.02)
    assert proc.poll() is None, "finished before the signal"
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    num = getattr(signal, sig)
    assert proc.returncode == 128 + num, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("error:")
    assert sorted(os.listdir(tmp_path)) == ["in.png"]


@pytest.mark.slow
def test_batch_folder_glob_skip_overwrite_and_bad_files(tmp_path, tiny_checkpoint):
    """Several inputs into a folder: names from the pattern, existing outputs skipped (or
    replaced with --overwrite), a bad input reported while the rest go on (status 1), one
    summary line and one model line."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg", "sub/c.png"):
        Image.fromarray((rng.random((10, 12, 3)) * 255).astype(np.uint8)).save(src / name)
    (src / "bad.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    r = run_cli(src, "--scale", 2, "--checkpoint", tiny_checkpoint, "-o", out)
    assert r.returncode == 1, r.stderr
    assert sorted(os.listdir(out)) == ["a-liif-x2.png", "b-liif-x2.png", "c-liif-x2.png"]
    assert Image.open(out / "c-liif-x2.png").size == (24, 20)
    err = r.stderr.splitlines()
    assert any(ln.startswith("model tiny (LIIF") for ln in err)
    assert any(ln.startswith("error:") and "bad.png" in ln for ln in err)
    assert "3 written, 0 skipped" in err[-1] and "1 failed" in err[-1]
    # a glob (not recursive) picks a.png and bad.png
    r = run_cli(str(src / "*.png"), "--scale", 2, "--method", "bicubic", "-o", out)
    assert r.returncode == 1 and "1 written, 0 skipped" in r.stderr and "1 failed" in r.stderr
    assert (out / "a-bicubic-x2.png").exists() and not (out / "c-bicubic-x2.png").exists()
    (out / "a-liif-x2.png").write_bytes(b"old")
    r = run_cli(src / "a.png", src / "b.jpg", "--scale", 2, "--checkpoint", tiny_checkpoint,
                "-o", out)
    assert r.returncode == 0 and "0 written, 2 skipped" in r.stderr
    assert (out / "a-liif-x2.png").read_bytes() == b"old"
    r = run_cli(src / "a.png", src / "b.jpg", "--scale", 2, "--checkpoint", tiny_checkpoint,
                "-o", out, "--overwrite", "--name", "{stem}.{ext}.webp")
    assert r.returncode == 0 and "2 written" in r.stderr
    assert {"a.png.webp", "b.jpg.webp"} <= set(os.listdir(out))
    # two inputs with one name: refused before anything is written
    r = run_cli(src / "a.png", src / "sub" / "c.png", "--scale", 2, "-o", tmp_path / "o2",
                "--name", "same.png", "--method", "bicubic")
    assert r.returncode == 2 and "both write same.png" in r.stderr
    assert not (tmp_path / "o2").exists()


@pytest.mark.slow
def test_progress_appears_for_runs_over_a_second(tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(0).random((300, 400, 3)) * 255).astype(np.uint8)).save(
        src
    )
    r = run_cli(src, "--size", "9000x6750", "--method", "bicubic", "-o", tmp_path / "o.png")
    assert r.returncode == 0, r.stderr
    assert "upscaling" in r.stderr and "100%" in r.stderr and "wrote" in r.stderr


def test_output_names_mean_what_they_say(tmp_path, photo):
    """An output file with an unknown or no extension is an error, not a folder; a single
    existing output is refused without --overwrite; a missing folder is found before any work;
    a large job says its size first."""
    for name in ("out.xyz", "a.jp2", "noext"):
        r = run_cli(photo, "--scale", 2, "--method", "bicubic", "-o", tmp_path / name)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and name in r.stderr, r.stderr
        assert not (tmp_path / name).exists()
    out = tmp_path / "o.png"
    assert run_cli(photo, "--scale", 2, "--method", "bicubic", "-o", out).returncode == 0
    before = out.read_bytes()
    r = run_cli(photo, "--scale", 3, "--method", "bicubic", "-o", out)
    assert r.returncode == 2 and "--overwrite" in r.stderr and out.read_bytes() == before
    r = run_cli(photo, "--scale", 2, "--method", "bicubic", "-o", tmp_path / "no" / "o.png")
    assert r.returncode == 2 and "does not exist" in r.stderr
    import signal
    big = tmp_path / "big.png"
    proc = subprocess.Popen([sys.executable, "-m", "core.upscale", str(photo), "--scale", "500",
                             "--method", "nearest", "-o", str(big), "--no-progress"],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    first = proc.stderr.readline()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert "12000x10000 (120 Mpx)" in first and not big.exists()
    # above 1 Gpx only with --yes, said with its time estimate before any work
    r = run_cli(photo, "--scale", 1600, "-o", big, "--no-progress")
    err = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and "(1,229 Mpx, about" in err and "add --yes" in err, r.stderr
    assert not big.exists()


def test_typos_and_version_and_same_names(tmp_path, photo):
    r = run_cli(photo, "--scael", 2, "-o", tmp_path / "o.png")
    assert r.returncode == 2 and "--scael" in r.stderr and "did you mean --scale" in r.stderr
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("python -m core.upscale ")
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        Image.open(photo).save(tmp_path / d / "same.png")
    args = (tmp_path / "a" / "same.png", tmp_path / "b" / "same.png", "--scale", 2, "--method",
            "bicubic")
    r = run_cli(*args, "-o", tmp_path / "out")
    assert r.returncode == 2 and "{parent}" in r.stderr
    r = run_cli(*args, "-o", tmp_path / "out", "--name", "{parent}-{stem}.png")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["a-same.png", "b-same.png"]


def test_out_of_memory_is_one_line_not_a_traceback(tmp_path, photo, monkeypatch, capsys):

    from core import upscale
    oom = getattr(torch, "OutOfMemoryError", RuntimeError)

    def boom(*a, **k):
        raise oom("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(upscale, "export", boom)
    assert upscale.main([str(photo), "--scale", "2", "--method", "bicubic", "-o",
                         str(tmp_path / "o.png"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: out of memory")
    assert "--device cpu" in err[0]  # a GPU ran out: the CPU has more memory
    assert not (tmp_path / "o.png").exists()


def test_the_cli_keeps_one_bands_latent_and_writes_the_whole_images_pixels(tmp_path,
                                                                          tiny_checkpoint):
    """The CLI's latent budget is what one band spans (times a margin), far below the whole
    latent of a large photo, and the bands it renders under it are the whole-image render."""
    from core.geometry import Region
    from core.upscale import CLI_LATENT_BUDGET, band_budget
    w, h = 8944, 6708  # 60 Mpx at x1.1: about 0.6 GiB, not the whole 15 GB
    b = band_budget(CLI_LATENT_BUDGET, Region(0, 0, w, h), round(w * 1.1), round(h * 1.1), 64,
                    w * 256)
    assert 0.4 * (1 << 30) < b < CLI_LATENT_BUDGET
    assert band_budget(None, Region(0, 0, 100, 80), 2000, 1600, 16, 100 * 32) > 0
    # a 96 x 80 photo at x3 in bands of about 30 rows (a 16-code latent row is 3 KB here)
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((80, 96, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    env = dict(os.environ, LIIF_ZOOM_LATENT_MB="0.05")  # a budget of ~50 KB: many evictions
    for name, e in (("banded.png", env), ("whole.png", None)):
        r = subprocess.run([sys.executable, "-m", "core.upscale", str(tmp_path / "a.png"),
                            "--scale", "3", "--checkpoint", str(tiny_checkpoint),
                            "--precision", "float32", "-o", str(tmp_path / name),
                            "--no-progress"], cwd=ROOT, env=e, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "banded.png")),
                          np.asarray(Image.open(tmp_path / "whole.png")))


def test_a_region_past_the_border_continues_it_for_every_method(tmp_path, tiny_checkpoint,
                                                                 capsys):
    """No invented colour beyond the image: the columns left of it repeat the border's
    values for LIIF as for bicubic; a negative X needs no '=' (argparse took it for an
    option)."""
    from core.upscale import main
    a = (np.random.default_rng(3).random((16, 16, 3)) * 255).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "a.png")
    outs = {}
    for method in ("liif", "bicubic", "nearest"):
        out = tmp_path / f"{method}.png"
        assert main([str(tmp_path / "a.png"), "--region", "-8,0,16,16", "--scale", "1",
                     "--method", method, "--checkpoint", str(tiny_checkpoint),
                     "-o", str(out)]) == 0, capsys.readouterr().err
        outs[method] = np.asarray(Image.open(out)).astype(int)
    for method, o in outs.items():
        left = o[:, :8]  # x in [-8, 0): beyond the image
        assert (left == left[:, :1]).all(), method  # constant along x: the border continued
    # and near the image's own edge column (the models' value at x = 0, bicubic's pixel 0)
    assert np.abs(outs["liif"][:, 0] - a[:, 0]).mean() < 60
    capsys.readouterr()
    code = main([str(tmp_path / "a.png"), "--region", "-100,-100,50,50", "--scale", "1",
                 "--method", "bicubic", "-o", str(tmp_path / "far.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "region" in err[0] and "expected" not in err[0], err


def test_a_missing_input_is_said_before_any_model_and_a_stretch_is_noted(tmp_path, capsys):
    from core.upscale import main
    code = main([str(tmp_path / "missing.png"), "--scale", "2", "--checkpoint",
                 str(tmp_path / "no-model.safetensors"), "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "missing.png" in err[0] and "no such file" in err[0]
    a = (np.random.default_rng(0).random((20, 40, 3)) * 255).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "a.png")
    assert main([str(tmp_path / "a.png"), "--size", "80x80", "--method", "bicubic",
                 "-o", str(tmp_path / "sq.png")]) == 0
    assert "stretched" in capsys.readouterr().err
    assert main([str(tmp_path / "a.png"), "--size", "80x40", "--method", "bicubic",
                 "-o", str(tmp_path / "ok.png")]) == 0
    assert "stretched" not in capsys.readouterr().err


def test_the_progress_bar_counts_the_encoding_and_moves_steadily(tmp_path, tiny_checkpoint,
                                                                monkeypatch):
    """A job whose latent is encoded band by band (a --region here): the bar moves with the
    rows to its end (it sat at a few per cent, then jumped to 100 % at the end), and shows a
    percentage, not a count that reads like pixels."""
    import tqdm as tqdm_module

    from core import upscale
    seen, formats = [], []
    real = tqdm_module.tqdm

    class Recorder(real):
        def __init__(self, *a, **k):
            formats.append(k.get("bar_format"))
            super().__init__(*a, **k)

        def update(self, n=1):
            super().update(n)
            seen.append((self.n, self.total))
    monkeypatch.setattr(tqdm_module, "tqdm", Recorder)
    monkeypatch.setattr(upscale, "CLI_BAND_PIXELS", 20_000)  # several bands
    a = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "a.png")
    assert upscale.main([str(tmp_path / "a.png"), "--region", "0,0,160,120", "--scale", "2",
                         "--checkpoint", str(tiny_checkpoint), "-o",
                         str(tmp_path / "o.png")]) == 0
    assert formats and "percentage" in formats[0]
    ns = [n for n, _ in seen]
    total = seen[-1][1]
    assert ns == sorted(ns) and ns[-1] == total
    assert len(set(ns)) >= 4 and ns[-2] >= 0.5 * total, (ns, total)
