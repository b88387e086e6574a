"""Model files: project format, official layout, and refusal of bad files."""
import os

import numpy as np
import pytest
import torch

from core.checkpoints import CheckpointError, load_checkpoint, load_model, save_model
from core.geometry import Region
from core.models.registry import list_models, make
from core.reference import make_coord, query_official_style
from core.render.encoding import encode
from core.render.renderer import render
from tests.conftest import shared_path, tiny_spec


def test_registry_lists_and_refuses_duplicates():
    from core.models.registry import register
    assert {"liif", "edsr-baseline", "rdn", "mlp"} <= set(list_models())
    with pytest.raises(KeyError):
        register("liif")(object)


def test_project_format_round_trip(tmp_path, tiny_model, rand_image):
    path = tmp_path / "m.safetensors"
    save_model(tiny_model, tiny_spec(), path, info={"note": "x"})
    model, spec, info = load_model(path)
    assert spec == tiny_spec() and info == {"note": "x"}
    want = tiny_model.state_dict()
    for k, v in model.state_dict().items():  # identical weights (loaded channels-last)
        assert torch.equal(v, want[k]), k
    r = Region.full(31, 23)
    a = render(encode(tiny_model, rand_image, "cpu"), r, 40, 30)
    b = render(encode(model, rand_image, "cpu"), r, 40, 30)
    assert np.abs(a - b).max() < 1e-6  # the layout changes only the summation order


def test_official_release_layout_loads(tmp_path, rand_image):
    """A file in the official {'model': {'name','args','sd'}} layout, full-size paper model."""
    torch.manual_seed(0)
    spec = {"name": "liif", "args": {
        "encoder_spec": {"name": "edsr-baseline", "args": {"no_upsampling": True}},
        "imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [256, 256, 256, 256]}}}}
    ref = make(spec)
    sd = ref.state_dict()
    assert "encoder.sub_mean.weight" in sd and "imnet.layers.8.weight" in sd
    assert "encoder.body.16.weight" in sd and "encoder.head.0.weight" in sd
    path = tmp_path / "edsr-baseline-liif.pth"
    torch.save({"model": {"name": "liif", "args": spec["args"], "sd": sd},
                "optimizer": {"name": "adam", "args": {"lr": 1e-4}}, "epoch": 1000}, path)
    model, spec2, info = load_model(path)
    assert spec2["name"] == "liif"
    img = rand_image[:12, :12]
    a = render(encode(ref.eval(), img, "cpu"), Region.full(12, 12), 24, 24)
    b = render(encode(model, img, "cpu"), Region.full(12, 12), 24, 24)
    assert np.abs(a - b).max() < 1e-6  # loaded channels-last: only the summation order differs


class Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/liif-zoom-pwned",))


@pytest.mark.parametrize("kind", ["empty", "garbage", "truncated", "pickle-code", "foreign",
                                  "wrong-weights", "missing"])
def test_bad_files_give_one_clear_error(tmp_path, tiny_checkpoint, kind):
    path = tmp_path / f"bad-{kind}.pth"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(b"hello, I am not a model" * 10)
    elif kind == "truncated":
        data = tiny_checkpoint.read_bytes()
        path = tmp_path / "bad.safetensors"
        path.write_bytes(data[:len(data) // 2])
    elif kind == "pickle-code":
        if os.path.exists("/tmp/liif-zoom-pwned"):
            os.unlink("/tmp/liif-zoom-pwned")
        torch.save({"model": Evil()}, path)
    elif kind == "foreign":
        torch.save({"state_dict": {"w": torch.zeros(3)}}, path)
    elif kind == "wrong-weights":
        torch.save({"model": {"name": "liif", "args": tiny_spec()["args"],
                              "sd": {"w": torch.zeros(3)}}}, path)
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg
    assert not os.path.exists("/tmp/liif-zoom-pwned")


PAPER_PTH = shared_path("models", "edsr-baseline-liif.pth")


def test_convert_command_writes_a_self_describing_copy(tmp_path, tiny_checkpoint):
    from core.checkpoints import file_sha256, main

    out = tmp_path / "converted.safetensors"
    assert main(["convert", str(tiny_checkpoint), str(out), "--licence", "MIT",
                 "--copyright", "Copyright (c) test"]) == 0
    spec, sd, info = load_checkpoint(out)
    spec0, sd0, _ = load_checkpoint(tiny_checkpoint)
    assert spec == spec0 and sd.keys() == sd0.keys()
    assert all(torch.equal(sd[k], sd0[k]) for k in sd)
    assert info["source_sha256"] == file_sha256(tiny_checkpoint)
    assert info["licence"] == "MIT" and info["copyright"] == "Copyright (c) test"
    assert main(["convert", str(tmp_path / "missing.pth"), str(tmp_path / "x.safetensors")]) == 2
    assert not (tmp_path / "x.safetensors").exists()


@pytest.mark.skipif(not os.path.isfile(PAPER_PTH), reason="../shared/models is not here")
def test_bundled_paper_model_renders_what_the_official_code_renders(rand_image):
    """The bundled conversion holds the release's exact weights, and the fast renderer gives
    the official query's pixels from it (within 1e-5) at integer and fractional scales."""
    from core import zoo

    spec, sd, info = load_checkpoint(zoo.get("paper").path)
    ospec, osd, _ = load_checkpoint(PAPER_PTH)
    assert spec == ospec and sd.keys() == osd.keys()
    assert all(torch.equal(sd[k], osd[k]) for k in sd)
    assert info["source_sha256"] == \
        "1cf77e16f33ee17bd04049f497eaea1e06f25585dbb1919e4c7cd1d9d4d23d57"
    model, _, _ = load_model(PAPER_PTH)
    img = rand_image[:14, :17]
    latent = encode(model, img, "cpu")
    feat = latent.full()[None]
    for oh, ow in ((28, 34), (51, 40)):
        coord = make_coord((oh, ow))[None]
        cell = torch.ones_like(coord)
        cell[..., 0] *= 2 / oh
        cell[..., 1] *= 2 / ow
        with torch.no_grad():
            off = query_official_style(model, feat, coord, cell, bsize=700)
        off = (off * 0.5 + 0.5).clamp(0, 1).view(oh, ow, 3).numpy()
        fast = render(latent, Region.full(17, 14), ow, oh)
        assert np.abs(fast - off).max() < 1e-5


def _write_st(path, tensors, spec_text, info_text=None):
    from safetensors.torch import save_file
    meta = {"format": "liif-zoom/1", "spec": spec_text}
    if info_text is not None:
        meta["info"] = info_text
    save_file(tensors, str(path), metadata=meta)
    return path


def test_hostile_specs_are_refused_before_allocating(tmp_path):
    """A few hundred bytes asking for a huge model, a deeply nested spec, absurd numbers:
    each a one-line CheckpointError, quickly, without building the model."""
    import json
    import resource
    import time

    huge = {"name": "liif", "args": {
        "encoder_spec": {"name": "edsr-baseline", "args": {"n_resblocks": 20000, "n_feats": 4096}},
        "imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [65536] * 4}}}}
    cases = {
        "huge": (json.dumps(huge), "more than the 1 tensors"),
        "deep": ("[" * 10000 + "]" * 10000, "nested more than"),
        "long": ("[" + "1," * 100000 + "1]", "more than the 65536"),
        "big-int": (json.dumps({"name": "mlp", "args": {"in_dim": 10 ** 12, "out_dim": 3}}),
                    "above the 65536"),
        "not-json": ("{'name': ", "not valid JSON"),
        "unknown": (json.dumps({"name": "no-such-model", "args": {}}), "cannot be built"),
        "bad-args": (json.dumps({"name": "mlp", "args": {"bogus": 1}}), "cannot be built"),
        "nan-arg": ('{"name": "mlp", "args": {"in_dim": NaN, "out_dim": 3}}', "non-finite"),
    }
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for name, (text, why) in cases.items():
        p = _write_st(tmp_path / f"{name}.safetensors", {"a": torch.zeros(1)}, text)
        t = time.time()
        with pytest.raises(CheckpointError, match=why) as ei:
            load_model(p)
        assert str(p) in str(ei.value) and "\n" not in str(ei.value)
        assert time.time() - t < 5, name
    deep_info = _write_st(tmp_path / "info.safetensors", {"a": torch.zeros(1)},
                          json.dumps(huge), "{" * 50 + "}" * 50)
    with pytest.raises(CheckpointError, match="nested"):
        load_model(deep_info)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 200_000  # KiB


def test_shape_mismatch_and_non_finite_weights_are_refused(tmp_path):
    import json

    torch.manual_seed(0)
    spec = tiny_spec()
    sd = {k: v.clone() for k, v in make(spec).state_dict().items()}
    k0 = "imnet.layers.0.weight"
    bad = dict(sd)
    bad[k0] = torch.zeros(3, 3)
    p = _write_st(tmp_path / "shape.safetensors", bad, json.dumps(spec))
    with pytest.raises(CheckpointError, match=rf"{k0} is \[3, 3\] in the file"):
        load_model(p)
    for v in (float("nan"), float("inf")):
        bad = dict(sd)
        bad[k0] = sd[k0].clone()
        bad[k0][0, 0] = v
        p = _write_st(tmp_path / "nan.safetensors", bad, json.dumps(spec))
        with pytest.raises(CheckpointError, match="NaN or infinite"):
            load_model(p)


def test_loading_a_model_stays_light():
    """Start-up: checking and loading a bundled model must not pull in torch's compiler
    stack (torch._dynamo, sympy: 0.75 s of every CLI start, once set off by the encoder's
    constant tensors built on the meta device)."""
    import subprocess
    import sys
    code = ("import sys; from core.checkpoints import load_model; "
            "from core.zoo import REGISTRY; "
            "[load_model(m.path) for m in REGISTRY if m.path.is_file()]; "
            "heavy = [m for m in ('torch._dynamo', 'sympy') if m in sys.modules]; "
            "print(','.join(heavy) or 'none')")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "none"
