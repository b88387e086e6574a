"""Tiled, lazy encoding equals the untiled encoder."""
import numpy as np
import pytest
import torch

from core.geometry import Box, Region
from core.models.registry import make
from core.render.encoding import encode
from core.render.renderer import render


@pytest.mark.parametrize("encoder", [
    {"name": "edsr-baseline", "args": {"n_resblocks": 3, "n_feats": 8, "no_upsampling": True}},
    {"name": "rdn", "args": {"G0": 8, "RDNconfig": "A", "no_upsampling": True}},
])
def test_tiled_encoding_equals_untiled(encoder):
    torch.manual_seed(0)
    model = make({"name": "liif", "args": {
        "encoder_spec": encoder,
        "imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [16]}}}}).eval()
    rgb = np.random.default_rng(0).random((45, 70, 3), dtype=np.float32)
    whole = encode(model, rgb, torch.device("cpu"), tile=1000, lazy=False).full()
    assert whole.shape == (8, 45, 70)
    # one tile per encoder pass; blocks of up to 2x2 tiles
    for block in (16, 32):
        tiled = encode(model, rgb, torch.device("cpu"), tile=16, max_block=block).full()
        assert (whole - tiled).abs().max() < 1e-5
    # blocks of whatever is missing, after a few tiles were encoded on their own
    lat = encode(model, rgb, torch.device("cpu"), tile=16, max_block=48)
    lat.ensure_region(Region(30, 20, 1, 1))
    lat.ensure(Box(0, 0, 1, 1))
    assert lat.n_encoded == 2
    lat.ensure_region(Region(10, 5, 50, 35))  # a block around the first tiles, clipped
    assert (whole - lat.full()).abs().max() < 1e-5


def test_lazy_encoding_touches_only_needed_tiles(tiny_model):
    rgb = np.random.default_rng(0).random((200, 300, 3), dtype=np.float32)
    latent = encode(tiny_model, rgb, torch.device("cpu"), tile=32)
    assert latent.n_encoded == 0
    render(latent, Region(2, 3, 20, 10), 80, 40)  # a corner
    assert 0 < latent.n_encoded <= 2
    assert latent.n_encoded < latent.n_tiles


def test_fp16_latent_is_close(tiny_model, rand_image):
    a = encode(tiny_model, rand_image, torch.device("cpu"))
    b = encode(tiny_model, rand_image, torch.device("cpu"), dtype=torch.float16)
    r = Region.full(31, 23)
    diff = np.abs(render(a, r, 93, 69) - render(b, r, 93, 69)).max()
    assert 0 < diff < 5e-3
    assert b.nbytes() * 2 == a.nbytes()


def test_bfloat16_compute_is_close_and_keeps_the_colours():
    """The viewer's and the CLI's fast arithmetic: the bundled CPU model's encoder and code
    features in bfloat16 change its renders by under two 8-bit levels at the worst pixel and
    by more than 60 dB PSNR over the image (measured: 75 dB), and the input
    colours the model carries in its latent (LMF's skip) are not rounded."""
    from core.checkpoints import load_model
    from core.defaults import RESOURCES, SAMPLE_IMAGE
    from core.io.imageio import load_image
    torch.set_num_threads(1)
    model = load_model(RESOURCES / "lmf-edsr6-cpu.safetensors")[0]
    rgb = load_image(SAMPLE_IMAGE).rgb[100:164, 200:280]
    a = encode(model, rgb, "cpu", tile=32)
    b = encode(model, rgb, "cpu", tile=32, compute_dtype=torch.bfloat16)
    fa, fb = a.full(), b.full()
    assert fb.dtype == torch.float32
    assert torch.equal(fa[-3:], fb[-3:])  # the colours, exactly
    assert 0 < (fa[:-3] - fb[:-3]).abs().max() < 0.1
    r = Region.full(80, 64)
    for size in ((320, 256), (27, 21)):  # zoom in (cached features), zoom out (sparse)
        pa, pb = render(a, r, *size), render(b, r, *size)
        assert 0 < np.abs(pa - pb).max() < 2 / 255
        assert 10 * np.log10(1 / np.mean((pa - pb) ** 2)) > 60


def test_the_profile_computes_in_bfloat16_where_the_cpu_has_it(monkeypatch):
    """The device profile's arithmetic follows the CPU's flags; --precision float32 forces
    float32, bfloat16 forces bfloat16; a GPU stays float32 unless forced."""
    from core.profile import profile_for

    def compute(device="cpu", precision="auto"):
        return profile_for(device, precision).compute_dtype
    for caps, want in (({"avx512_bf16": True}, torch.bfloat16),
                       ({"amx_bf16": True, "avx512_bf16": False}, torch.bfloat16),
                       ({"avx512_bf16": False}, torch.float32), ({}, torch.float32)):
        monkeypatch.setattr(torch._C._cpu, "_get_cpu_capability", lambda c=caps: c)
        assert compute() == want
        assert profile_for("cpu").bf16_native == (want == torch.bfloat16)
        assert compute(precision="float32") == torch.float32
        assert compute(precision="bfloat16") == torch.bfloat16
    assert compute("meta") == torch.float32  # not a CPU

    def broken():
        raise RuntimeError("no such thing")
    monkeypatch.setattr(torch._C._cpu, "_get_cpu_capability", broken)
    assert compute() == torch.float32
    with pytest.raises(ValueError, match="precision must be one of"):
        profile_for("cpu", "float16")


def test_concurrent_ensure_encodes_each_tile_once(tiny_model):
    """Render workers share a latent: a tile being encoded by one is waited for by the other."""
    import threading
    import time
    rgb = np.random.default_rng(1).random((100, 130, 3), dtype=np.float32)
    lat = encode(tiny_model, rgb, torch.device("cpu"), tile=16, max_block=48)
    encoded = []
    block = lat._encode_block

    def slow_block(tiles):
        time.sleep(0.02)  # long enough for the other thread to find the tiles pending
        encoded.extend((y, x) for y in range(tiles.r0, tiles.r1)
                       for x in range(tiles.c0, tiles.c1))
        block(tiles)

    lat._encode_block = slow_block
    threads = [threading.Thread(target=lat.ensure_region, args=(Region(0, 0, 130, 100),))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(encoded) == sorted(set(encoded)) and len(encoded) == lat.n_tiles
    whole = encode(tiny_model, rgb, torch.device("cpu"), lazy=False, tile=1000).full()
    assert (whole - lat.full()).abs().max() < 1e-5


def test_features_cached_per_tile_equal_direct(tiny_model):
    """Per-code features read through the tile cache equal the model's on the padded map,
    before (computed directly) and after (cached) the neighbouring tiles are encoded."""
    rgb = np.random.default_rng(2).random((70, 90, 3), dtype=np.float32)
    lat = encode(tiny_model, rgb, torch.device("cpu"), tile=16, feature_cache_bytes=40_000)
    with torch.no_grad():
        want = tiny_model.code_features(
            encode(tiny_model, rgb, torch.device("cpu"), lazy=False, tile=1000).full()[None],
            padding=1)[0]
    a = lat.code_features(Box(5, 20, 50, 37))
    assert not lat._features  # neighbours were not encoded: nothing cached
    assert (a - want[:, 20:37, 5:50]).abs().max() < 1e-5
    lat.encode_all()
    b = lat.code_features(Box(0, 0, 90, 70))
    assert lat._features and lat._features.total <= 40_000  # cached, within its bound
    assert (b - want).abs().max() < 1e-5
    assert torch.equal(lat.code_features(Box(60, 3, 70, 9)), b[:, 3:9, 60:70])


def test_background_encoding_goes_outward_from_the_view(tiny_model):
    rgb = np.random.default_rng(2).random((300, 400, 3), dtype=np.float32)
    lat = encode(tiny_model, rgb, torch.device("cpu"), tile=16, max_block=64)
    assert lat.encode_next(near=(220.0, 350.0))
    # the block of 4x4 tiles holding that point (rows 192-255, columns 320-383) comes first
    assert set(lat._tiles) == {(ty, tx) for ty in range(12, 16) for tx in range(20, 24)}
    assert lat.encode_next(near=(220.0, 350.0))
    # then the nearest other block: the one at the right edge (1 tile wide)
    assert lat.n_encoded == 16 + 4 * 1
    assert {tx for (_, tx) in lat._tiles} == set(range(20, 25))
    lat2 = encode(tiny_model, rgb, torch.device("cpu"), tile=16, max_block=64)
    assert lat2.encode_next()  # without a view: row-major
    assert set(lat2._tiles) == {(ty, tx) for ty in range(4) for tx in range(4)}
    while lat2.encode_next(near=(0.0, 0.0)):
        pass
    assert lat2.n_encoded == lat2.n_tiles


def test_a_latent_budget_bounds_memory_and_renders_the_same_pixels(tiny_model):
    """Under a budget of a few tiles the latent keeps at most that (plus one tile), drops the
    least recently used, encodes again what a render reads, and renders what an unbounded
    latent renders; background encoding stops at the budget."""
    from core.geometry import Region
    from core.render.renderer import render
    rng = np.random.default_rng(3)
    img = rng.random((70, 90, 3), dtype=np.float32)
    free = encode(tiny_model, img, torch.device("cpu"), tile=16, max_block=32, budget_bytes=None)
    tile_bytes = 16 * 16 * free.channels * 4
    small = encode(tiny_model, img, torch.device("cpu"), tile=16, max_block=32,
                   budget_bytes=3 * tile_bytes)
    for region in (Region.full(90, 70), Region(10.5, 3, 40, 30), Region(50, 40, 40, 30)):
        a = render(free, region, 120, 90)
        b = render(small, region, 120, 90)
        assert np.abs(a - b).max() < 1e-5
        assert small.nbytes() <= 4 * tile_bytes
    assert small.evicted > 0 and small.n_encoded < small.n_tiles
    assert free.evicted == 0 and free.n_encoded == free.n_tiles
    # background encoding: at the budget it stops instead of filling memory
    bg = encode(tiny_model, img, torch.device("cpu"), tile=16, max_block=32,
                budget_bytes=5 * tile_bytes)
    steps = 0
    while bg.encode_next() and steps < 100:
        steps += 1
    assert bg.nbytes() <= 5 * tile_bytes + 4 * tile_bytes and steps < bg.n_tiles


def test_the_default_budget_follows_the_machine(monkeypatch):
    from core.profile import BUDGET_CEILING, default_budget
    monkeypatch.delenv("LIIF_ZOOM_LATENT_MB", raising=False)
    b = default_budget("cpu")
    assert 0 < b <= BUDGET_CEILING
    monkeypatch.setenv("LIIF_ZOOM_LATENT_MB", "64")
    assert default_budget("cpu") == 64 << 20
    monkeypatch.delenv("LIIF_ZOOM_LATENT_MB")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda dev=None: (1 << 30, 80 << 30))
    assert default_budget("cuda") == (1 << 30) // 2  # half the free GPU memory


def test_progress_is_counted_in_pixels(tiny_model, tmp_path):
    """Encoding and exporting report pixels (edge tiles are smaller than whole ones), so
    that every progress bar and estimate counts one unit."""
    from core.export import export
    from core.io.imageio import LoadedImage
    rgb = np.random.default_rng(1).random((50, 70, 3), dtype=np.float32)
    lat = encode(tiny_model, rgb, torch.device("cpu"), tile=16, max_block=32)
    seen = []
    lat.encode_all(progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (50 * 70, 50 * 70) and all(t == 3500 for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and lat.encoded_fraction == 1.0
    rows = []
    export(LoadedImage(rgb), Region.full(70, 50), 140, 100, str(tmp_path / "o.png"), "liif",
           encode(tiny_model, rgb, torch.device("cpu")), band_pixels=140 * 30,
           progress=lambda d, t: rows.append((d, t)))
    assert rows[-1] == (140 * 100, 140 * 100) and len(rows) == 4
