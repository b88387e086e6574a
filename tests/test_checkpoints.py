"""Model files: project format, official layout, and refusal of bad files."""
import os
import pickle

import numpy as np
import pytest
import torch

from core.checkpoints import CheckpointError, load_model, save_model
from core.encoding import encode
from core.geometry import Region
from core.registry import list_models, make
from core.render import render
from tests.conftest import tiny_spec


def test_registry_lists_and_refuses_duplicates():
    from core.registry import register
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
