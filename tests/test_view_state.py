"""The pure-Python view state."""
import pytest

from viewer.view_state import MAX_ZOOM, ViewState


def test_fit_and_one_to_one():
    st = ViewState(600, 400, 1200, 600)
    st.fit()
    assert st.zoom == pytest.approx(1.5)
    r = st.visible_region()
    assert r.x <= 0 and r.x + r.w >= 600 and r.h == pytest.approx(400, abs=1)
    st.one_to_one()
    assert st.zoom == 1.0


def test_zoom_about_cursor_keeps_the_point_under_it():
    st = ViewState(600, 400, 800, 600)
    st.fit()
    before = st.screen_to_source(100, 150)
    st.zoom_at(3.0, 100, 150)
    after = st.screen_to_source(100, 150)
    assert after == pytest.approx(before, abs=1 / st.zoom)
    st.zoom_at(1e9)
    assert st.zoom == MAX_ZOOM >= 100


def test_tiles_cover_the_view_and_tile_regions_partition_the_grid():
    st = ViewState(600, 400, 500, 300, zoom=4.0, cx=300, cy=200)
    tiles = st.visible_tiles(128)
    r = st.visible_region()
    xs = [st.tile_region(i, j, 128) for i, j in tiles]
    assert min(t.x for t in xs) <= r.x and max(t.x + t.w for t in xs) >= r.x + r.w
    a, b = st.tile_region(3, 4, 128), st.tile_region(3, 5, 128)
    assert a.x + a.w == pytest.approx(b.x)
    st.pan(40, 0)  # drag right by 40 device px -> content moves right, view moves left
    assert st.visible_region().x == pytest.approx(r.x - 10)


def test_tile_vocabulary_one_rule_for_layers():
    from viewer.tiles import Level, Method, TileKey, keys_for, layers, methods_needed
    k = TileKey(Method.LIIF, 2.0, Level.FULL, 3, 4)
    assert k == ("liif", 2.0, "full", 3, 4) and hash(k) == hash(("liif", 2.0, "full", 3, 4))
    assert {k: 1}[("liif", 2.0, "full", 3, 4)] == 1
    assert [(x.method, x.level) for x in layers("liif")] == [
        ("liif", "full"), ("liif", "coarse"), ("bicubic", "full")]
    assert keys_for("nearest", 1.5, 0, 7) == [("nearest", 1.5, "full", 0, 7)]
    # side by side LIIF | nearest needs the bicubic preview too; previews first
    assert methods_needed(["liif", "nearest"]) == ["bicubic", "nearest", "liif"]
    assert methods_needed(["bicubic"]) == ["bicubic"]


def test_a_fitted_view_fits_again_after_a_resize_until_zoomed_or_panned():
    st = ViewState(600, 400, 1200, 600)
    st.fit()
    st.resize(300, 300)  # the window was made smaller after F: still the whole image
    assert st.zoom == pytest.approx(0.5) and (st.cx, st.cy) == (300, 200)
    st.zoom_at(2.0)
    st.resize(1200, 600)  # zoomed by hand: a resize keeps the zoom
    assert st.zoom == pytest.approx(1.0)
    st.fit()  # 1.5 in 1200x600
    st.pan(10, 0)
    st.resize(600, 600)  # panned by hand: the zoom stays
    assert st.zoom == pytest.approx(1.5)


def test_box_is_whole_pixels_and_shrinks_outward():
    """core.geometry.Box: an integer pixel box (columns [c0, c1), rows [r0, r1)), a tuple
    where one is expected; shrinking to a coarser grid rounds outward and clips."""
    from core.geometry import Box, iter_chunks
    b = Box(3, 5, 61, 64)
    assert (b.width, b.height, b.empty) == (58, 59, False) and b == (3, 5, 61, 64)
    assert b.shrunk(4, 64) == Box(0, 1, 16, 16)
    assert Box(2, 2, 2, 9).empty and Box.whole(8, 6) == (0, 0, 8, 6)
    chunks = list(iter_chunks(300, 200, 8192, max_side=128))
    assert all(isinstance(c, Box) and c.width * c.height <= 8192 for c in chunks)
    assert sum(c.width * c.height for c in chunks) == 300 * 200
