"""LMF with LIIF at the edges (core.models.edges): per pixel exactly one of its two decoders."""
import numpy as np
import pytest
import torch

from core.checkpoints import load_model, save_model
from core.geometry import Region
from core.models.edges import compose
from core.models.implicit import neighbour_index
from core.models.registry import make
from core.render.encoding import encode
from core.render.renderer import render
from tests.conftest import forward_image

ENCODER = {"name": "edsr-baseline", "args": {"n_resblocks": 1, "n_feats": 8, "no_upsampling": True}}
IMNET = {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [32, 32]}}
LMF_ARGS = {"hyper_hidden": [24], "render_width": 8, "render_layers": 3}
THRESHOLD = 0.2


def picture() -> np.ndarray:
    """Smooth gradients with a sharp bright square and a fainter one (a contrast near the
    threshold): both kinds of pixel."""
    y, x = np.mgrid[0:23, 0:31] / 40.0
    img = np.stack([0.3 + 0.3 * x, 0.4 + 0.2 * y, 0.5 - 0.2 * x * y], -1)
    img[6:14, 9:19] = 0.95
    img[15:20, 2:8] += 0.24
    return img.astype(np.float32)


@pytest.fixture
def trio(tmp_path):
    """An LMF and a LIIF model on one encoder, and the LMF-with-LIIF-at-edges model made of
    them (through a saved file, as the bundled one is)."""
    torch.manual_seed(7)
    lmf = make({"name": "lmf", "args": {"encoder_spec": ENCODER, "skip": True, **LMF_ARGS}}).eval()
    with torch.no_grad():
        for p in lmf.hyper[-1].parameters():
            p.normal_(0, 0.3)
    liif = make({"name": "liif", "args": {"encoder_spec": ENCODER, "imnet_spec": IMNET}}).eval()
    liif.encoder.load_state_dict(lmf.encoder.state_dict())
    spec = {"name": "lmf-liif", "args": {"encoder_spec": ENCODER, "imnet_spec": IMNET,
                                         "threshold": THRESHOLD, **LMF_ARGS}}
    both = make(spec)
    both.load_state_dict(compose(lmf.state_dict(), liif.state_dict()))
    save_model(both, spec, tmp_path / "edges.safetensors")
    return lmf, liif, load_model(tmp_path / "edges.safetensors", torch.device("cpu"))[0]


def hard_mask(img: np.ndarray, region: Region, ow: int, oh: int) -> np.ndarray:
    """The rule of the module docstring, from the picture itself (mid-grey outside)."""
    y = img @ np.array([0.299, 0.587, 0.114])
    p = np.pad(y, 1, constant_values=0.5)
    score = np.zeros_like(y)
    for dy in range(3):
        for dx in range(3):
            score = np.maximum(score, np.abs(p[dy:dy + y.shape[0], dx:dx + y.shape[1]] - y))
    ys, xs = region.sample_points(ow, oh, inside=(img.shape[1], img.shape[0]))
    best = np.zeros((oh, ow))
    for o in (-1.0, 1.0):
        iy = neighbour_index(ys, img.shape[0], o, True).numpy()
        for q in (-1.0, 1.0):
            ix = neighbour_index(xs, img.shape[1], q, True).numpy()
            best = np.maximum(best, score[iy][:, ix])
    return best > THRESHOLD


@pytest.mark.parametrize("kernels", ["1", "0"])
def test_each_pixel_is_lmf_or_liif_by_the_rule(trio, kernels, monkeypatch):
    """Rendered (native LMF kernel and eager), zoomed in, out and past the border: hard
    pixels are the LIIF model's, the others the LMF model's, both present."""
    monkeypatch.setenv("LIIF_ZOOM_KERNELS", kernels)
    lmf, liif, both = trio
    img = picture()
    lats = [encode(m, img, torch.device("cpu"), tile=8) for m in (lmf, liif, both)]
    for region, ow, oh in [(Region.full(31, 23), 62, 46), (Region(-0.5, 3.2, 17.7, 9.1), 90, 61),
                           (Region.full(31, 23), 16, 12)]:
        a, b, c = (render(lat, region, ow, oh, chunk=700) for lat in lats)
        hard = hard_mask(img, region, ow, oh)
        assert 0.05 < hard.mean() < 0.95
        assert np.abs(c[hard] - b[hard]).max() < 1e-5
        assert np.abs(c[~hard] - a[~hard]).max() < 1e-5


def test_the_training_forward_is_the_same_function(trio):
    """The reference path (training, evaluation's oracle) follows the same rule."""
    lmf, liif, both = trio
    img = picture()
    pred = forward_image(both, img, 62, 46)
    lat = encode(both, img, torch.device("cpu"), tile=8)
    assert np.abs(pred - render(lat, Region.full(31, 23), 62, 46)).max() < 1e-5
    a, b = (render(encode(m, img, torch.device("cpu"), tile=8), Region.full(31, 23), 62, 46)
            for m in (lmf, liif))
    hard = hard_mask(img, Region.full(31, 23), 62, 46)
    assert np.abs(pred[hard] - b[hard]).max() < 1e-5
    assert np.abs(pred[~hard] - a[~hard]).max() < 1e-5


def test_compose_refuses_two_encoders(trio):
    lmf, liif, _ = trio
    other = {k: v + 0.01 if k.startswith("encoder.") else v for k, v in liif.state_dict().items()}
    with pytest.raises(ValueError, match="share one encoder"):
        compose(lmf.state_dict(), other)


def test_the_join_command_makes_the_same_model_and_refuses_others(trio, tmp_path, capsys):
    """``python -m training.edges LMF LIIF OUT``: the file renders as the model joined in
    memory; the models the wrong way round, or on two encoders, are one error line each."""
    from training.edges import main
    lmf, liif, both = trio
    lmf_spec = {"name": "lmf", "args": {"encoder_spec": ENCODER, "skip": True, **LMF_ARGS}}
    liif_spec = {"name": "liif", "args": {"encoder_spec": ENCODER, "imnet_spec": IMNET}}
    save_model(lmf, lmf_spec, tmp_path / "lmf.safetensors")
    save_model(liif, liif_spec, tmp_path / "liif.safetensors")
    out = tmp_path / "joined.safetensors"
    assert main([str(tmp_path / "lmf.safetensors"), str(tmp_path / "liif.safetensors"), str(out),
                 "--threshold", str(THRESHOLD)]) == 0
    joined = load_model(out, torch.device("cpu"))[0]
    img = picture()
    a, b = (render(encode(m, img, torch.device("cpu"), tile=8), Region.full(31, 23), 50, 40)
            for m in (joined, both))
    assert np.array_equal(a, b)
    capsys.readouterr()
    assert main([str(tmp_path / "liif.safetensors"), str(tmp_path / "lmf.safetensors"),
                 str(tmp_path / "x.safetensors")]) == 2
    torch.manual_seed(9)
    other = make(liif_spec)
    save_model(other, liif_spec, tmp_path / "other.safetensors")
    assert main([str(tmp_path / "lmf.safetensors"), str(tmp_path / "other.safetensors"),
                 str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: the first model must be an LMF model with skip (its colour channels)",
                   "error: the LMF and LIIF models do not share one encoder"]
    assert not (tmp_path / "x.safetensors").exists()


def test_the_formula_oracle_refuses_it(trio):
    """core.reference.render_naive writes out LIIF's and LMF's formulas only: given the edges
    model it says so instead of rendering it as an LMF."""
    from core.reference import render_naive
    _, _, both = trio
    with pytest.raises(TypeError, match="LIIF and LMF"):
        render_naive(both, torch.zeros(both.latent_dim, 4, 5), Region.full(5, 4), 10, 8)
