"""The fast renderer against the paper-formula oracle and the official-style query."""
import itertools

import numpy as np
import pytest
import torch

from core.geometry import Region
from core.models.registry import make
from core.reference import make_coord, query_official_style, render_naive
from core.render.encoding import encode
from core.render.renderer import render
from tests.conftest import forward_image, tiny_spec


def oracle(model, latent, region, ow, oh):
    out = render_naive(model, latent.full(), region, ow, oh)
    return (out * 0.5 + 0.5).clamp(0, 1).numpy()


SWITCHES = list(itertools.product([True, False], repeat=3))


@pytest.mark.parametrize("ens,unfold,cell", SWITCHES)
def test_fast_path_matches_oracle(ens, unfold, cell, rand_image):
    torch.manual_seed(1)
    model = make(tiny_spec(ens, unfold, cell)).eval()
    latent = encode(model, rand_image, torch.device("cpu"), tile=8)
    rng = np.random.default_rng(2)
    h, w = rand_image.shape[:2]
    cases = [(Region.full(w, h), 2 * w, 2 * h),            # x2, whole image
             (Region.full(w, h), w // 2, h // 2),          # x0.5
             (Region(-0.7, -1.2, 6.3, 4.1), 403, 262),     # ~x64, over the top-left border
             (Region(w - 3.3, h - 2.2, 3.3, 2.2), 23, 17)] # non-integer, bottom-right corner
    for _ in range(4):  # random regions at random scales in [0.5, 64]
        s = float(np.exp(rng.uniform(np.log(0.5), np.log(64))))
        rw, rh = rng.uniform(0.3, w) , rng.uniform(0.3, h)
        ow, oh = max(1, min(160, round(rw * s))), max(1, min(160, round(rh * s)))
        cases.append(
            (Region(rng.uniform(-1, w - rw + 1), rng.uniform(-1, h - rh + 1), rw, rh), ow, oh)
        )
    for region, ow, oh in cases:
        fast = render(latent, region, ow, oh, chunk=777)
        ref = oracle(model, latent, region, ow, oh)
        assert fast.shape == (oh, ow, 3)
        assert np.abs(fast - ref).max() < 1e-5, (region, ow, oh)


def test_integer_scales_match_official_style_query(tiny_model, rand_image):
    latent = encode(tiny_model, rand_image, torch.device("cpu"))
    feat = latent.full()[None]
    h, w = rand_image.shape[:2]
    for s in (1, 2, 3, 4):
        coord = make_coord((h * s, w * s))[None]
        cell = torch.ones_like(coord)
        cell[..., 0] *= 2 / (h * s)
        cell[..., 1] *= 2 / (w * s)
        off = query_official_style(tiny_model, feat, coord, cell, bsize=500)
        off = (off * 0.5 + 0.5).clamp(0, 1).view(h * s, w * s, 3).numpy()
        fast = render(latent, Region.full(w, h), w * s, h * s)
        assert np.abs(fast - off).max() < 1e-5


def test_no_seams_window_equals_crop(tiny_model, rand_image):
    latent = encode(tiny_model, rand_image, torch.device("cpu"))
    region = Region(1.25, 2.5, 17.3, 11.9)
    full = render(latent, region, 211, 137)
    for win in [(0, 0, 50, 40), (13, 7, 211, 137), (100, 100, 101, 101)]:
        c0, r0, c1, r1 = win
        part = render(latent, region, 211, 137, window=win, chunk=300)
        assert np.abs(part - full[r0:r1, c0:c1]).max() < 1e-5


def test_sub_region_render_equals_crop(tiny_model, rand_image):
    latent = encode(tiny_model, rand_image, torch.device("cpu"))
    region = Region(0, 0, 31, 23)
    full = render(latent, region, 124, 92)
    sub = render(latent, region.sub(124, 92, 40, 20, 104, 84), 64, 64)
    assert np.abs(sub - full[20:84, 40:104]).max() < 1e-5


def test_training_forward_is_the_same_function(tiny_model, rand_image):
    """LIIF.forward (used in training) equals the official-style query at random points."""
    inp = (torch.from_numpy(rand_image).permute(2, 0, 1)[None] - 0.5) / 0.5
    coord = torch.rand(1, 300, 2) * 2 - 1
    cell = torch.full((1, 300, 2), 0.03)
    with torch.no_grad():
        a = tiny_model(inp, coord, cell)
        b = query_official_style(tiny_model, tiny_model.encode(inp), coord, cell)
    assert (a - b).abs().max() < 1e-5


def lmf_spec(ens=True, unfold=True, cell=True, skip=False):
    return {"name": "lmf", "args": {
        "encoder_spec": {"name": "edsr-baseline",
                         "args": {"n_resblocks": 1, "n_feats": 8, "no_upsampling": True}},
        "hyper_hidden": [24], "render_width": 8, "render_layers": 3,
        "local_ensemble": ens, "feat_unfold": unfold, "cell_decode": cell, "skip": skip}}


def native_kernel(width: int):
    """The native LMF decoder for ``width``; skips the test where it cannot be built."""
    from core import kernels
    fn = kernels.lmf_grid(width)
    if fn is None:
        pytest.skip("no C compiler: the native decoder cannot be built here")
    return fn


@pytest.fixture(params=["native", "eager"])
def lmf_decoder(request, monkeypatch):
    """Run a test with LMF's fused native decoder (core.kernels), then with eager PyTorch."""
    monkeypatch.setenv("LIIF_ZOOM_KERNELS", "1" if request.param == "native" else "0")
    if request.param == "native":
        native_kernel(8)
    return request.param


@pytest.mark.parametrize("ens,unfold,cell,skip", [s + (False,) for s in SWITCHES]
                         + [(True, True, True, True), (False, True, False, True),
                            (True, False, True, True)])
def test_fast_model_lmf_matches_its_oracle(ens, unfold, cell, skip, rand_image, lmf_decoder):
    torch.manual_seed(3)
    model = make(lmf_spec(ens, unfold, cell, skip)).eval()
    with torch.no_grad():  # non-zero modulations, so that they are exercised
        for p in model.hyper[-1].parameters():
            p.normal_(0, 0.3)
    latent = encode(model, rand_image, torch.device("cpu"), tile=8)
    for region, ow, oh in [(Region.full(31, 23), 62, 46), (Region(-0.5, 3.2, 7.7, 5.1), 90, 61),
                           (Region.full(31, 23), 16, 12)]:
        fast = render(latent, region, ow, oh, chunk=700)
        assert np.abs(fast - oracle(model, latent, region, ow, oh)).max() < 1e-5
    # and the training forward is the same function
    pred = forward_image(model, rand_image, 62, 46)
    assert np.abs(pred - render(latent, Region.full(31, 23), 62, 46)).max() < 1e-5


@pytest.mark.parametrize("width,layers", [(8, 1), (12, 2), (16, 4), (32, 2)])
def test_native_lmf_decoder_equals_eager(width, layers, rand_image, monkeypatch):
    """The fused kernel renders the eager decoder's pixels, zooming in and out, with and
    without the ensemble, on each of its paths this CPU has: AVX2 intrinsics for widths 8 and
    16 (without AVX-512), GCC vectors for other powers of two (32 here), plain loops for the
    rest (12)."""
    native_kernel(width)
    for ens, skip in ((True, True), (False, False)):
        torch.manual_seed(5)
        spec = lmf_spec(ens=ens, skip=skip)
        spec["args"].update(render_width=width, render_layers=layers)
        model = make(spec).eval()
        with torch.no_grad():
            for p in model.hyper[-1].parameters():
                p.normal_(0, 0.3)
        latent = encode(model, rand_image, torch.device("cpu"), tile=8)
        for region, ow, oh in [
            (Region(-0.5, 3.2, 7.7, 5.1), 90, 61),
            (Region.full(31, 23), 16, 12),
        ]:
            monkeypatch.setenv("LIIF_ZOOM_KERNELS", "1")
            native = render(latent, region, ow, oh)
            monkeypatch.setenv("LIIF_ZOOM_KERNELS", "0")
            eager = render(latent, region, ow, oh)
            assert np.abs(native - eager).max() < 1e-5


def test_native_decoder_absent_falls_back_to_eager(rand_image, monkeypatch, tmp_path):
    """Without a C compiler (or with an empty cache and a broken one) LMF renders as before."""
    from core import kernels
    monkeypatch.setattr(kernels, "_loaded", {})
    monkeypatch.setenv("LIIF_ZOOM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no cc, gcc or clang either
    assert kernels.lmf_grid(8) is None
    torch.manual_seed(3)
    model = make(lmf_spec(skip=True)).eval()
    latent = encode(model, rand_image, torch.device("cpu"), tile=8)
    fast = render(latent, Region.full(31, 23), 62, 46)
    assert np.abs(fast - oracle(model, latent, Region.full(31, 23), 62, 46)).max() < 1e-5
    assert not any((tmp_path / "cache").glob("*.so*"))


def test_native_decoder_refuses_indices_outside_the_table():
    from core import kernels
    fn = native_kernel(8)
    table = torch.zeros(5, 2 * 8 * 2 + 3)
    z = torch.zeros
    args = dict(ry=z(2, 3), rx=z(2, 4), win=z(2, 8), cst=z(8), wht=z(1, 8, 8), bh=z(1, 8),
                wo=z(3, 8), bo=z(3))
    with pytest.raises(ValueError, match="outside"):
        kernels.run_lmf_grid(fn, table, 2, True, torch.full((2, 3), 4, dtype=torch.long),
                             torch.ones(2, 4, dtype=torch.long), **args)
    out = kernels.run_lmf_grid(fn, table, 2, True, torch.zeros(2, 3, dtype=torch.long),
                               torch.ones(2, 4, dtype=torch.long), **args)
    assert out.shape == (3, 4, 3)
    with pytest.raises(ValueError, match="do not match"):  # a table too narrow for 3 layers
        kernels.run_lmf_grid(fn, table, 3, True, torch.zeros(2, 3, dtype=torch.long),
                             torch.ones(2, 4, dtype=torch.long), **args)
    with pytest.raises(ValueError, match="do not match"):  # weights of another width
        kernels.run_lmf_grid(kernels.lmf_grid(16) or fn, table, 2, True,
                             torch.zeros(2, 3, dtype=torch.long),
                             torch.ones(2, 4, dtype=torch.long), **args)


def edges_spec():
    """A tiny LMF-with-LIIF-at-edges model (core.models.edges) on lmf_spec's encoder."""
    a = lmf_spec(skip=True)["args"]
    return {"name": "lmf-liif", "args": {
        "encoder_spec": a["encoder_spec"], "hyper_hidden": a["hyper_hidden"],
        "render_width": a["render_width"], "render_layers": a["render_layers"],
        "imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [32, 32]}},
        "threshold": 0.2}}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
@pytest.mark.parametrize("family", ["liif", "lmf", "edges"])
def test_cuda_render_matches_cpu(family, rand_image):
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    spec = {"liif": tiny_spec, "lmf": lambda: lmf_spec(skip=True), "edges": edges_spec}[family]
    model = make(spec()).eval()
    cpu = encode(model, rand_image, torch.device("cpu"))
    gpu = encode(model.to("cuda"), rand_image, torch.device("cuda"))
    for region, ow, oh in [(Region.full(31, 23), 93, 69), (Region(-1, 2.5, 9.3, 6.1), 150, 97)]:
        a = render(gpu, region, ow, oh)
        model.to("cpu")
        b = render(cpu, region, ow, oh)
        model.to("cuda")
        assert np.abs(a - b).max() < 1e-5


def test_lmf_skip_blends_to_bilinear_interpolation(rand_image):
    """With the render MLP's output zeroed, LMF with the skip renders exactly the bilinear
    interpolation of the input (the area weights are bilinear weights), away from the border."""
    torch.manual_seed(5)
    model = make(lmf_spec(skip=True)).eval()
    with torch.no_grad():
        model.render_out.weight.zero_()
        model.render_out.bias.zero_()
    latent = encode(model, rand_image, torch.device("cpu"), tile=8)
    h, w = rand_image.shape[:2]
    out = render(latent, Region.full(w, h), 2 * w, 2 * h)
    inp = torch.from_numpy(rand_image).permute(2, 0, 1)[None]
    ref = torch.nn.functional.interpolate(inp, size=(2 * h, 2 * w), mode="bilinear",
                                          align_corners=False)[0].permute(1, 2, 0).numpy()
    assert np.abs(out - ref)[2:-2, 2:-2].max() < 1e-5


def test_both_families_implement_the_whole_decoder_interface():
    """LIIF and LMF share LocalImplicit (encoder, switches, queries) and each implements the
    decoder methods itself: no method inherited from a sibling family (LMF used to inherit
    LIIF's MLP helpers, broken without an MLP)."""
    from core.models import LIIF, LMF
    from core.models.implicit import LocalImplicit
    assert not issubclass(LMF, LIIF)
    for cls in (LIIF, LMF):
        assert issubclass(cls, LocalImplicit)
        for name in ("code_features", "decode_points", "decode_indexed"):
            assert getattr(cls, name) is not getattr(LocalImplicit, name), (cls, name)


def test_a_gpu_that_is_reported_but_fails_is_not_picked(monkeypatch):
    """pick_device smoke-tests a reported GPU: one whose kernels fail (a wheel without kernels
    for its architecture) falls back to the CPU with a warning, or is a one-line error when
    asked for by name."""
    import core.device as cd
    monkeypatch.setattr(cd.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(cd, "_WORKS", {"cuda": "no kernel image is available for execution"})
    with pytest.warns(UserWarning, match="no kernel image"):
        assert cd.pick_device(None).type == "cpu"
    with pytest.raises(ValueError, match="does not work: no kernel image"):
        cd.pick_device("cuda")
    monkeypatch.setattr(cd, "_WORKS", {})
    assert cd.device_works(torch.device("cpu")) is None


def test_one_thread_at_a_time_drives_a_device_that_needs_it(tiny_model, rand_image, monkeypatch):
    """device_lock: a re-entrant lock for MPS (concurrent use from threads aborts there), a
    no-op on the CPU and CUDA; with it on, threads encode and render one at a time and get
    the same pixels."""
    import threading

    from core.device import device_lock
    assert device_lock("mps") is device_lock("mps") and device_lock("cpu") is not device_lock("cpu")
    monkeypatch.setenv("LIIF_ZOOM_SERIAL_DEVICE", "1")
    lock = device_lock("cpu")
    inside, most = [0], [0]
    real = tiny_model.encode

    def counting(x):  # how many threads are inside the device at once
        assert lock._is_owned()
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        try:
            return real(x)
        finally:
            inside[0] -= 1

    monkeypatch.setattr(tiny_model, "encode", counting)
    lat = encode(tiny_model, rand_image, torch.device("cpu"), tile=8, max_block=8)
    outs = [None] * 4

    def work(k):
        outs[k] = render(lat, Region(k, 0, 20, 15), 40, 30)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1 and all(o is not None for o in outs)
    monkeypatch.setattr(tiny_model, "encode", real)
    free = encode(tiny_model, rand_image, torch.device("cpu"), tile=8, max_block=8)
    for k in range(4):
        assert np.abs(outs[k] - render(free, Region(k, 0, 20, 15), 40, 30)).max() < 1e-6


@pytest.mark.parametrize("spec", ["liif", "lmf"])
def test_the_oracle_keeps_everything_on_the_latents_device(spec):
    """render_naive on the meta device (standing in for a GPU): no operation mixes devices."""
    from core.reference import render_naive
    torch.manual_seed(0)
    model = make(tiny_spec() if spec == "liif" else lmf_spec(skip=True)).eval().to("meta")
    feat = torch.empty(model.latent_dim, 6, 7, device="meta")
    out = render_naive(model, feat, Region(-0.5, 0.3, 5.2, 4.1), 11, 9)
    assert out.device.type == "meta" and tuple(out.shape) == (9, 11, 3)


@pytest.mark.parametrize("kernels", ["0", "1"])
def test_the_gpu_chunk_policy_renders_the_same_pixels_with_few_copies(monkeypatch, rand_image,
                                                                       kernels):
    """With a GPU's chunks (core.profile.GPU_CHUNK) the pixels are those of the CPU's
    chunks; each chunk asks for two host-to-device copies and each render call for one copy
    back (what bench/render_launches.py counts for a 1080p view)."""
    from core.profile import CPU_CHUNK, GPU_CHUNK, profile_for
    monkeypatch.setenv("LIIF_ZOOM_KERNELS", kernels)
    torch.manual_seed(1)
    model = make(tiny_spec()).eval()
    latent = encode(model, rand_image, torch.device("cpu"), tile=8)
    h, w = rand_image.shape[:2]
    region = Region(1.3, 0.6, w - 3.0, h - 2.0)
    cpu = render(latent, region, 300, 200)
    assert profile_for("cpu").chunk == CPU_CHUNK
    latent.chunk = GPU_CHUNK
    calls = {"to": 0, "cpu": 0}
    to, cpu_ = torch.Tensor.to, torch.Tensor.cpu

    def count_to(self, *a, **k):
        calls["to"] += any(isinstance(x, torch.device) for x in a) or "device" in k
        return to(self, *a, **k)

    def count_cpu(self, *a, **k):
        calls["cpu"] += 1
        return cpu_(self, *a, **k)

    monkeypatch.setattr(torch.Tensor, "to", count_to)
    monkeypatch.setattr(torch.Tensor, "cpu", count_cpu)
    gpu = render(latent, region, 300, 200)  # 60000 px: one chunk
    monkeypatch.undo()
    assert np.abs(gpu - cpu).max() < 1e-6
    assert calls == {"to": 2, "cpu": 1}
