"""Bicubic renderer geometry and the MATLAB-compatible imresize."""
import glob
import os

import numpy as np
import pytest
from PIL import Image

from core.geometry import Region
from core.render.resample import imresize, render_bicubic
from tests.conftest import shared_path


def test_bicubic_matches_pillow_inside_for_integer_upscale():
    img = np.random.default_rng(0).random((20, 30), dtype=np.float32)
    for s in (2, 3):
        pil = np.asarray(Image.fromarray(img, "F").resize((30 * s, 20 * s), Image.BICUBIC))
        ours = render_bicubic(img, Region.full(30, 20), 30 * s, 20 * s)
        m = 3 * s  # Pillow renormalises at the borders; we replicate edges
        assert np.abs(ours[m:-m, m:-m] - pil[m:-m, m:-m]).max() < 1e-5


def test_bicubic_downscale_is_antialiased_like_pillow():
    img = np.random.default_rng(1).random((64, 64), dtype=np.float32)
    pil = np.asarray(Image.fromarray(img, "F").resize((16, 16), Image.BICUBIC))
    ours = render_bicubic(img, Region.full(64, 64), 16, 16)
    assert np.abs(ours[3:-3, 3:-3] - pil[3:-3, 3:-3]).max() < 1e-5


def test_bicubic_window_equals_crop_and_constant_is_preserved():
    img = np.random.default_rng(2).random((20, 30, 3), dtype=np.float32)
    r = Region(-2.5, 3.25, 20.5, 11)
    full = render_bicubic(img, r, 97, 61)
    part = render_bicubic(img, r, 97, 61, window=(10, 20, 50, 61))
    assert np.abs(part - full[20:61, 10:50]).max() < 1e-6
    const = render_bicubic(np.full((5, 5), 0.3, np.float32), Region(0, 0, 5, 5), 17, 3)
    assert np.allclose(const, 0.3, atol=1e-6)


HR = sorted(glob.glob(shared_path("data", "bench", "Set5", "HR", "*.png"))
            + glob.glob(shared_path("data", "bench", "Set14", "HR", "*.png")))


@pytest.mark.skipif(not HR, reason="../shared/data/bench not present")
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_imresize_matches_matlab_lr_of_set5_set14(scale):
    total = bad = 0
    for f in HR:
        hr = np.asarray(Image.open(f))
        h, w = hr.shape[:2]
        hr = hr[:h // scale * scale, :w // scale * scale]
        d = os.path.dirname(os.path.dirname(f))
        name = os.path.splitext(os.path.basename(f))[0]
        lr = np.asarray(Image.open(f"{d}/LR_bicubic/X{scale}/{name}x{scale}.png"))
        ours = imresize(hr, 1 / scale)
        assert ours.shape == lr.shape
        diff = np.abs(ours.astype(int) - lr.astype(int))
        total += diff.size
        bad += int((diff > 1).sum())
    assert bad / total <= 0.01
