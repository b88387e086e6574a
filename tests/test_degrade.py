"""Degradations of training LR (training/degrade.py) and the evaluation's fixed ones."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from tests.test_training import ROOT, make_images
from training.data import ImplicitDownsampled
from training.degrade import (
    Degradation,
    add_noise,
    block_phase,
    gaussian_blur,
    jpeg,
    parse_eval,
    resize,
    seeded_rng,
)

FULL = {"clean": 0.2, "blur": {"p": 0.3, "sigma": [0.2, 1.0]},
        "resize": {"kernels": ["bicubic", "bilinear", "area"], "weights": [0.6, 0.2, 0.2]},
        "noise": {"p": 0.5, "sigma": [1, 10], "poisson": 0.3, "gray": 0.4},
        "jpeg": {"p": 0.9, "quality": [30, 95], "twice": 0.2}}


def photo(h=96, w=96, seed=0):
    """Smooth colour gradients with a few edges: JPEG leaves visible blocks on it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    f = rng.uniform(0.02, 0.2, 6)
    img = np.stack([128 + 90 * np.sin(xx * f[c] + yy * f[c + 3] + c) for c in range(3)], -1)
    img[h // 3:, w // 2:] -= 60
    return np.clip(img, 0, 255).astype(np.uint8)


def test_same_seed_same_pixels_and_steps_vary_across_samples():
    d = Degradation.from_config(FULL)
    hr = photo(144, 144)
    a = d(hr, (48, 48), seeded_rng(3, 1, 7))
    b = d(hr, (48, 48), seeded_rng(3, 1, 7))
    assert a.shape == (48, 48, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    records = []
    for i in range(200):
        rec = []
        d(hr, (48, 48), seeded_rng(3, 1, i), rec)
        records.append(rec)
    clean = sum(r == [] for r in records) / len(records)
    assert 0.1 < clean < 0.3  # 'clean: 0.2' leaves that share untouched
    words = " ".join(w for r in records for w in r)
    for kind in ("blur", "bilinear", "area", "gauss", "poisson", "gray", "jpeg q"):
        assert kind in words
    assert any(sum(w.startswith("jpeg") for w in r) == 2 for r in records)  # twice
    qs = [int(w.split()[1][1:]) for r in records for w in r if w.startswith("jpeg")]
    assert min(qs) >= 30 and max(qs) <= 95


def test_clean_pairs_are_the_plain_bicubic_ones():
    d = Degradation.from_config({"clean": 1.0, "jpeg": {"p": 1.0}})
    hr = photo(96, 96)
    assert np.array_equal(d(hr, (32, 32), seeded_rng(0)), resize(hr, (32, 32), "bicubic"))
    # and the sampler without a degradation is unchanged by the option's existence
    ds = [hr] * 4
    plain = ImplicitDownsampled(ds, 32, 2, 3, True, 100, seed=5)
    same = ImplicitDownsampled(ds, 32, 2, 3, True, 100, seed=5,
                               degrade=Degradation.from_config({"clean": 1.0}))
    for i in range(4):
        a, b = plain[i], same[i]
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_degraded_sampler_is_reproducible_per_epoch_and_index():
    d = Degradation.from_config(FULL)
    ds = [photo(150, 170, s) for s in range(3)]
    s1 = ImplicitDownsampled(ds, 32, 1, 4, True, 64, seed=2, degrade=d)
    s2 = ImplicitDownsampled(ds, 32, 1, 4, True, 64, seed=2, degrade=d)
    s1.set_epoch(3)
    s2.set_epoch(3)
    assert all(torch.equal(s1[i]["inp"], s2[i]["inp"]) for i in range(3))
    s2.set_epoch(4)
    assert not all(torch.equal(s1[i]["inp"], s2[i]["inp"]) for i in range(3))


@pytest.mark.parametrize("sigma", [2.0, 5.0, 10.0])
def test_gaussian_noise_has_the_declared_sigma(sigma):
    flat = np.full((256, 256, 3), 128, np.uint8)
    out = add_noise(flat, sigma, np.random.default_rng(0)).astype(np.float32)
    assert out.std() == pytest.approx(sigma, rel=0.02)
    # colour noise: channels independent; grey noise: the same on all three
    assert abs(np.corrcoef(out[..., 0].ravel(), out[..., 1].ravel())[0, 1]) < 0.05
    grey = add_noise(flat, sigma, np.random.default_rng(0), gray=True).astype(np.int16)
    assert np.array_equal(grey[..., 0], grey[..., 1]) and grey.std() == pytest.approx(
        sigma, rel=0.02
    )


def test_poisson_noise_has_the_declared_sigma_at_mid_grey_and_grows_with_signal():
    rng = np.random.default_rng(1)
    mid = add_noise(np.full((256, 256, 3), 128, np.uint8), 6.0, rng, poisson=True)
    dark = add_noise(np.full((256, 256, 3), 32, np.uint8), 6.0, rng, poisson=True)
    assert mid.astype(np.float32).std() == pytest.approx(6.0, rel=0.06)
    assert dark.astype(np.float32).std() < 0.6 * mid.astype(np.float32).std()


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.5])
def test_blur_spreads_an_edge_by_sigma(sigma):
    img = np.zeros((9, 61, 3), np.uint8)
    img[:, 30:] = 255
    out = gaussian_blur(img, sigma).astype(np.float64)[4, :, 0]
    d = np.diff(out)  # the edge's derivative: the kernel itself
    x = np.arange(len(d)) - 29.0  # d[j] = 255 k[j - 29]
    assert np.sqrt((d * x ** 2).sum() / d.sum()) == pytest.approx(sigma, rel=0.02)


@pytest.mark.parametrize("phase", [(0, 0), (3, 5), (7, 1), (11, 14)])
def test_jpeg_block_boundaries_fall_at_the_declared_phase(phase):
    out = jpeg(photo(128, 128), 25, phase)
    assert out.shape == (128, 128, 3)
    assert block_phase(out, 0) == phase[0] % 8 and block_phase(out, 1) == phase[1] % 8


def test_jpeg_is_pillows_libjpeg_with_420_chroma():
    import io
    img = photo(64, 64)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=60, subsampling=2)
    assert np.array_equal(jpeg(img, 60), np.asarray(Image.open(buf).convert("RGB")))


@pytest.mark.parametrize("cfg, word", [
    ({"clean": 1.5}, "clean"), ({"jpeg": {"quality": [90, 30]}}, "jpeg.quality"),
    ({"jpeg": {"qualty": [30, 90]}}, "jpeg.qualty"), ({"nois": {}}, "nois"),
    ({"noise": {"sigma": 5}}, "noise.sigma"), ({"resize": {"kernels": ["lanczos"]}}, "kernels"),
    ({"resize": {"kernels": ["area"], "weights": [0]}}, "weights"), ("jpeg", "mapping"),
    ({"blur": {"p": "often"}}, "blur.p"), ({"jpeg": []}, "jpeg")])
def test_bad_settings_are_one_line_errors_naming_the_key(cfg, word):
    with pytest.raises(ValueError) as e:
        Degradation.from_config(cfg)
    assert word in str(e.value) and "\n" not in str(e.value)


def test_eval_degradations_parse_and_repeat_exactly():
    assert parse_eval("clean").steps == () and parse_eval("").spec == "clean"
    d = parse_eval("noise5+jpeg75")
    assert d.steps == (("noise", 5), ("jpeg", 75)) and "JPEG q75" in d.describe()
    lr = photo(40, 56)
    a, b = d(lr, "baby.png|x4"), d(lr, "baby.png|x4")
    assert np.array_equal(a, b) and not np.array_equal(a, d(lr, "bird.png|x4"))
    assert np.array_equal(parse_eval("jpeg75")(lr, "k"), jpeg(lr, 75))
    for bad in ("jpeg", "jpeg101", "noise0", "blur2", "jpeg75+"):
        with pytest.raises(ValueError):
            parse_eval(bad)


def test_evaluate_degrade_is_applied_and_recorded(tmp_path, tiny_checkpoint):
    make_images(tmp_path / "set" / "HR", n=2, size=(48, 64))
    outs = {}
    for spec in ("clean", "jpeg50"):
        out = tmp_path / f"{spec}.json"
        r = subprocess.run([sys.executable, "-m", "training.evaluate", "--checkpoint",
                            str(tiny_checkpoint), "--data", str(tmp_path / "set"), "--scales",
                            "2", "--degrade", spec, "--json", str(out)],
                           capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 0, r.stderr
        outs[spec] = json.loads(out.read_text())
        assert f"LR {spec}" in r.stdout
    assert outs["jpeg50"]["degrade"] == "jpeg50" and "JPEG q50" in outs["jpeg50"]["degrade_steps"]
    bic = {k: [e["psnr"] for e in v["results"] if e["method"] == "bicubic"][0]
           for k, v in outs.items()}
    assert bic["jpeg50"] < bic["clean"]
    bad = subprocess.run([sys.executable, "-m", "training.evaluate", "--data",
                          str(tmp_path / "set"), "--degrade", "jpg75"],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "jpg75" in bad.stderr
