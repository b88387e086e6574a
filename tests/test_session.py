"""The viewer's Qt-free session: its rules and its notifications, without a window."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from core.io.imageio import LoadedImage
from core.models.registry import make
from core.profile import profile_for
from tests.conftest import tiny_spec
from viewer.session import Session


@pytest.fixture
def session():
    s = Session(replace(profile_for("cpu"), latent_tile=8))
    s.events = []
    s.subscribe(s.events.append)
    return s


def image(w=40, h=30):
    return LoadedImage(np.random.default_rng(0).random((h, w, 3), dtype=np.float32))


def test_image_and_model_make_the_latent(session):
    session.set_image(image(), 200, 100)
    assert session.latent is None and session.events == ["source"]  # no model yet
    assert session.state.zoom == pytest.approx(min(200 / 40, 100 / 30))  # fitted
    torch.manual_seed(0)
    session.set_model(make(tiny_spec()).eval(), "tiny")
    assert session.latent is not None and session.latent.width == 40
    old = session.latent
    session.set_image(image(20, 10), 200, 100)
    assert session.latent is not old and session.latent.width == 20
    assert session.events == ["source"] * 3


def test_modes_and_methods(session):
    session.set_image(image(), 200, 100)
    assert session.mode == "side" and session.pane_methods() == [["liif"], ["bicubic"]]
    assert session.shown_methods() == ["bicubic"]  # no model: no LIIF
    session.set_model(make(tiny_spec()).eval(), "tiny")
    session.zoom_at(4.0)
    assert session.shown_methods() == ["liif", "bicubic"]
    session.toggle_nearest()
    assert session.pane_methods() == [["liif"], ["nearest"]]
    assert session.render_methods() == ["bicubic", "nearest", "liif"]  # preview under LIIF
    session.set_mode("split")
    assert session.pane_methods() == [["liif", "nearest"]]
    session.set_mode("split")  # its own key again: LIIF only, which is LIIF (nearest off)
    assert session.mode == "single" and session.pane_methods() == [["liif"]]
    assert not session.nearest and session.other == "bicubic"
    session.toggle_nearest()  # N in LIIF only: the source pixels instead
    assert session.pane_methods() == [["nearest"]]
    session.toggle_nearest()
    assert session.pane_methods() == [["liif"]]
    session.set_image(image(400, 300), 200, 100)  # fitted below 1:1: LIIF shows the
    assert session.state.zoom < 1 and session.shown_methods() == ["bicubic"]  # filtered source
    with pytest.raises(ValueError):
        session.set_mode("sideways")
    assert session.events.count("mode") == 5 and "view" in session.events


def test_selection_is_clamped_and_cleared_with_the_line(session):
    session.set_selection((0, 0), (5, 5))
    assert session.selection is None  # no image yet
    session.set_image(image(), 200, 100)
    session.set_selection((35.5, -3), (50, 12.25))
    r = session.selection
    assert (r.x, r.y, r.w, r.h) == (35.5, 0.0, 4.5, 12.25)
    session.set_selection((10, 10), (10.2, 20))
    assert session.selection is None  # thinner than half a pixel
    session.set_profile_line((1, 2), (3, 4))
    assert session.profile_line == ((1.0, 2.0), (3.0, 4.0))
    session.set_selection((1, 1), (9, 9))
    session.clear_selection()
    assert session.selection is None and session.profile_line is None
    assert session.events[-2:] == ["selection", "line"]


def test_compare_with_a_second_model(session):
    torch.manual_seed(0)
    a, b = make(tiny_spec()).eval(), make(tiny_spec(hidden=(16,))).eval()
    session.set_model(a, "a")
    session.set_image(image(), 200, 100)
    session.zoom_at(4.0)
    session.set_compare_model(b, "b")
    assert session.other == "compare" and session.pane_methods() == [["liif"], ["compare"]]
    assert session.compare_latent is not None and session.compare_latent is not session.latent
    assert session.render_methods() == ["bicubic", "liif", "compare"]
    assert session.label("liif") == "LIIF: a" and session.label("compare") == "LIIF: b"
    session.set_mode("split")
    assert session.pane_methods() == [["liif", "compare"]]
    old = session.compare_latent
    session.set_image(image(20, 10), 200, 100)  # a new image re-encodes both
    assert session.compare_latent is not old and session.compare_latent.width == 20
    session.toggle_nearest()
    assert session.pane_methods() == [["liif", "nearest"]]
    session.set_other("compare")
    assert session.pane_methods() == [["liif", "compare"]]
    session.set_compare_model(None)
    assert session.other == "bicubic" and session.compare_latent is None
    with pytest.raises(ValueError):
        session.set_other("compare")


def test_liif_only_after_nearest_shows_liif(session):
    """N then L: LIIF only shows LIIF (it showed nearest, labelled so, with both ticked)."""
    session.set_image(image(), 200, 100)
    session.set_model(make(tiny_spec()).eval(), "tiny")
    session.toggle_nearest()
    session.set_mode("single")
    assert session.pane_methods() == [["liif"]] and not session.nearest
    session.set_mode("side")
    assert session.pane_methods() == [["liif"], ["bicubic"]]
