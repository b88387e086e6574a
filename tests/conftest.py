"""Shared fixtures: tiny random models and images, made on the fly."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import torch
from PIL import Image

from core.models.registry import make

torch.set_num_threads(1)

# native kernels (core.kernels) are built into a cache of this test session, not the user's
if "LIIF_ZOOM_CACHE" not in os.environ:
    import atexit
    import shutil
    import tempfile
    os.environ["LIIF_ZOOM_CACHE"] = tempfile.mkdtemp(prefix="liif-zoom-test-cache-")
    atexit.register(shutil.rmtree, os.environ["LIIF_ZOOM_CACHE"], True)

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")


def tiny_spec(local_ensemble=True, feat_unfold=True, cell_decode=True, hidden=(32, 32),
              n_feats=8, n_resblocks=2):
    return {"name": "liif", "args": {
        "encoder_spec": {"name": "edsr-baseline",
                         "args": {"n_resblocks": n_resblocks, "n_feats": n_feats,
                                  "no_upsampling": True}},
        "imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": list(hidden)}},
        "local_ensemble": local_ensemble, "feat_unfold": feat_unfold, "cell_decode": cell_decode}}


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return make(tiny_spec()).eval()


@pytest.fixture
def rand_image():
    rng = np.random.default_rng(0)
    return rng.random((23, 31, 3), dtype=np.float32)


@pytest.fixture
def tiny_checkpoint(tmp_path):
    from core.checkpoints import save_model

    torch.manual_seed(0)
    spec = tiny_spec()
    model = make(spec)
    path = tmp_path / "tiny.safetensors"
    save_model(model, spec, path)
    return path


def shared_path(*parts):
    return os.path.normpath(os.path.join(SHARED, *parts))


def cpu_profile(workers: int = 1, tile: int = 64):
    """The CPU's device profile with ``workers`` render workers and ``tile``-px view tiles
    (small, so that tests see several tiles)."""
    from dataclasses import replace

    from core.profile import profile_for
    return replace(profile_for("cpu", workers=workers), view_tile=tile)


def make_window(qtbot, tmp_path, size=(640, 400), **kw):
    """A shown main window with a tiny model (seed 0), settings in ``tmp_path``, 64-px tiles,
    its error dialogs recorded in ``window.errors`` instead of shown. Shut its scheduler down
    when done (the ``win`` fixtures do)."""
    from PySide6 import QtCore

    from viewer.main_window import MainWindow

    torch.manual_seed(0)
    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(model=make(tiny_spec()).eval(), model_name="tiny", settings=settings,
                   **{"profile": cpu_profile(), **kw})
    w.errors = []
    w.error = lambda title, msg: w.errors.append((title, msg))
    qtbot.addWidget(w)
    if size is not None:  # None: the size the window restored from its settings
        w.resize(*size)
    w.show()
    qtbot.waitExposed(w)
    return w


@pytest.fixture
def image_path(tmp_path):
    """A 160x120 random RGB PNG, ``tmp_path/photo.png``."""
    a = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "photo.png")
    return str(tmp_path / "photo.png")


@pytest.fixture
def win(qtbot, tmp_path):
    """:func:`make_window`'s window, its scheduler shut down after the test."""
    w = make_window(qtbot, tmp_path)
    yield w
    w.scheduler.shutdown()


def forward_image(model, img, out_w: int, out_h: int):
    """The model's training forward (``model(inp, coord, cell)``) on the whole of ``img``
    ``(h, w, 3)`` in [0, 1] at ``out_w x out_h``, as an image in [0, 1]: the reference a
    render of ``Region.full`` must equal."""
    from core.geometry import Region
    h, w = img.shape[:2]
    inp = (torch.from_numpy(img).permute(2, 0, 1)[None] - 0.5) / 0.5
    ys, xs = Region.full(w, h).sample_points(out_w, out_h)
    coord = torch.stack(torch.meshgrid((ys / h * 2 - 1).float(), (xs / w * 2 - 1).float(),
                                       indexing="ij"), -1).view(1, -1, 2)
    cell = torch.tensor([2 / out_h, 2 / out_w]).expand(1, coord.shape[1], 2)
    with torch.no_grad():
        out = model(inp, coord, cell)
    return (out * 0.5 + 0.5).clamp(0, 1).view(out_h, out_w, 3).numpy()
