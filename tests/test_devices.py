"""The GPU path, on every device this machine has: the CPU always (so that every test here
runs in CI and checks itself), CUDA and Apple's MPS where present (bench/gpu_session.sh runs
this file on a lent GPU). Each compares the device with the CPU: renders at zoom-in and
zoom-out for both model families, a float16 latent, several threads on one device, an
export, both CLIs, a training run with resume, and a simulated out-of-memory error."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from core.geometry import Region
from core.models.registry import make
from core.render.encoding import encode
from core.render.renderer import render
from tests.conftest import tiny_spec
from tests.test_render import lmf_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) + (
    ["mps"] if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else [])
#: largest difference from the CPU's pixels (float32 everywhere; TF32 off in these tests)
TOL = 1e-4


@pytest.fixture(params=DEVICES)
def device(request):
    if request.param == "cuda":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    return torch.device(request.param)


def _model(family: str, device):
    torch.manual_seed(0)
    return make(tiny_spec() if family == "liif" else lmf_spec(skip=True)).eval().to(device)


def _image(h=40, w=52):
    return np.random.default_rng(0).random((h, w, 3), dtype=np.float32)


CASES = [(Region(3.5, 2.25, 12.0, 9.0), 96, 72),    # 8x: dense code windows
         (Region(0, 0, 52, 40), 16, 12),            # 0.3x: sparse codes (zoom out)
         (Region(-2, -1, 20, 15), 61, 47)]          # over the border, non-integer scale


@pytest.mark.parametrize("family", ["liif", "lmf"])
def test_renders_match_the_cpu_at_zoom_in_and_out(device, family):
    img = _image()
    cpu = encode(_model(family, "cpu"), img, torch.device("cpu"))
    dev = encode(_model(family, device), img, device)
    for region, ow, oh in CASES:
        assert np.abs(render(dev, region, ow, oh) - render(cpu, region, ow, oh)).max() < TOL


def test_a_float16_latent_keeps_the_pixels(device):
    img = _image()
    model = _model("liif", device)
    full = encode(model, img, device)
    half = encode(model, img, device, dtype=torch.float16)
    for region, ow, oh in CASES:
        assert np.abs(render(half, region, ow, oh) - render(full, region, ow, oh)).max() < 5e-3


def test_several_threads_on_one_device_give_the_sequential_pixels(device):
    latent = encode(_model("lmf", device), _image(), device)
    want = [render(latent, r, w, h) for r, w, h in CASES]
    got = [None] * len(CASES)

    def work(k):
        for _ in range(3):
            got[k] = render(latent, *CASES[k])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(CASES))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(got, want):
        assert np.array_equal(a, b)


def test_an_export_on_the_device_is_the_cpu_export(device, tmp_path):
    from core.export import export
    from core.io.imageio import LoadedImage
    img = (_image() * 255).astype(np.uint8)
    loaded = LoadedImage(img)
    for d, name in ((torch.device("cpu"), "cpu.png"), (device, "dev.png")):
        latent = encode(_model("lmf", d), img, d)
        export(loaded, Region(1, 1, 40, 30), 120, 90, str(tmp_path / name), latent=latent)
    a = np.asarray(Image.open(tmp_path / "cpu.png")).astype(int)
    b = np.asarray(Image.open(tmp_path / "dev.png")).astype(int)
    assert np.abs(a - b).max() <= 1


def _cli(*args):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)


def test_both_clis_on_the_device(device, tmp_path, tiny_checkpoint):
    """core.upscale and training.evaluate with --device give the CPU's pixels and PSNRs."""
    import json
    src = tmp_path / "in.png"
    Image.fromarray((_image() * 255).astype(np.uint8)).save(src)
    data = tmp_path / "hr"
    data.mkdir()
    for k in range(2):
        Image.fromarray((_image(48, 48) * 255).astype(np.uint8)).save(data / f"{k}.png")
    pixels, psnrs = {}, {}
    for label, d in (("ref", "cpu"), ("dev", device.type)):
        out = tmp_path / f"{label}.png"
        r = _cli("-m", "core.upscale", src, "--scale", 2, "--checkpoint", tiny_checkpoint,
                 "--device", d, "--precision", "float32", "-o", out, "--no-progress")
        assert r.returncode == 0, r.stderr
        pixels[label] = np.asarray(Image.open(out)).astype(int)
        js = tmp_path / f"{label}.json"
        r = _cli("-m", "training.evaluate", "--checkpoint", tiny_checkpoint, "--data", data,
                 "--scales", "2", "--device", d, "--json", js)
        assert r.returncode == 0, r.stderr
        psnrs[label] = list(_numbers(json.loads(js.read_text())))
    assert np.abs(pixels["ref"] - pixels["dev"]).max() <= 1
    assert psnrs["ref"] and np.allclose(psnrs["ref"], psnrs["dev"], atol=0.01)


def _numbers(j):
    if isinstance(j, dict):
        for k in sorted(j):
            if k not in ("seconds", "time", "device", "date"):
                yield from _numbers(j[k])
    elif isinstance(j, list):
        for v in j:
            yield from _numbers(v)
    elif isinstance(j, (int, float)) and not isinstance(j, bool):
        yield float(j)


def test_out_of_memory_on_the_device_is_one_line_and_no_file(device, tmp_path, capsys,
                                                             monkeypatch, tiny_checkpoint):
    from core import upscale
    from core.render import renderer as render_mod
    oom = getattr(torch, "OutOfMemoryError", RuntimeError)

    def boom(*a, **k):
        raise oom(f"{device.type.upper()} out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(render_mod, "render_tile", boom)
    src = tmp_path / "in.png"
    Image.fromarray((_image() * 255).astype(np.uint8)).save(src)
    code = upscale.main([str(src), "--scale", "2", "--checkpoint", str(tiny_checkpoint),
                         "--device", device.type, "-o", str(tmp_path / "o.png"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith("error: out of memory") and len(err) <= 2
    assert not (tmp_path / "o.png").exists()


@pytest.mark.slow
def test_a_short_training_run_resumes_on_the_device(device, tmp_path):
    from tests.test_training import losses, make_images, run_train, tiny_config
    make_images(tmp_path / "d")
    cfg = tiny_config(tmp_path, tmp_path / "d")
    run = tmp_path / "run"
    r = run_train("--config", cfg, "--out", run, "--max-steps", 3, "--device", device.type)
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_train("--config", cfg, "--out", run, "--max-steps", 5, "--resume",
                  "--device", device.type)
    assert r.returncode == 0 and "resumed" in r.stderr, r.stderr[-2000:]
    assert len(losses(run)) == 5 and all(np.isfinite(losses(run)))
