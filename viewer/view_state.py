"""The view state: which part of the source image a pane shows, and at what resolution.

Units: *source pixels* for positions in the image (see :mod:`core.geometry`), *device pixels*
for the screen (logical widget pixels times the device pixel ratio).

``zoom`` is device pixels per source pixel. At a given zoom, screen pixels form the grid
``G_zoom`` of output pixels of size ``1 / zoom`` anchored at the image origin: grid pixel
``(r, c)`` samples the source point ``((c + 0.5) / zoom, (r + 0.5) / zoom)``. The pane's top-left
device pixel is grid pixel ``(oy, ox)`` (integers), so the pane shows the region
``[ox / zoom, (ox + view_w) / zoom] x [oy / zoom, (oy + view_h) / zoom]``, sampled at exactly
the pane's device resolution. The grid is cut into square tiles of ``T`` grid pixels; tile
``(i, j)`` is the region ``[j T / zoom, (j + 1) T / zoom] x [i T / zoom, (i + 1) T / zoom]``
rendered
at ``T x T``. Because the grid is fixed for a zoom, a tile rendered once is valid wherever
the pan puts it, and tiles meet without seams.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Tuple

from core.geometry import Box, Region

MAX_ZOOM = 256.0


@dataclass
class ViewState:
    """Camera of one or more linked panes.

    Attributes:
        image_w, image_h: source image size (pixels).
        view_w, view_h: pane size in device pixels.
        zoom: device pixels per source pixel.
        cx, cy: source point at the pane centre.
    """

    image_w: int
    image_h: int
    view_w: int = 800
    view_h: int = 600
    zoom: float = 1.0
    cx: float = 0.0
    cy: float = 0.0
    #: the view is "fit to window" (key F, or just opened) until zoomed or panned: a resize
    #: then fits again
    fitted: bool = False

    def __post_init__(self) -> None:
        if self.cx == 0.0 and self.cy == 0.0:
            self.cx, self.cy = self.image_w / 2, self.image_h / 2

    # ---- limits ------------------------------------------------------------------------------
    @property
    def fit_zoom(self) -> float:
        """Zoom at which the whole image fits the pane."""
        return min(self.view_w / self.image_w, self.view_h / self.image_h)

    @property
    def min_zoom(self) -> float:
        return min(self.fit_zoom, 1.0)

    def _clamp(self) -> None:
        self.zoom = min(MAX_ZOOM, max(self.min_zoom, self.zoom))
        # keep the centre inside the image so that it can never be lost
        self.cx = min(max(self.cx, 0.0), float(self.image_w))
        self.cy = min(max(self.cy, 0.0), float(self.image_h))

    # ---- actions -----------------------------------------------------------------------------
    def resize(self, view_w: int, view_h: int) -> None:
        """A new pane size; a fitted view (still as :meth:`fit` left it) fits the new size."""
        still = (self.fitted and math.isclose(self.zoom, self.fit_zoom)
                 and (self.cx, self.cy) == (self.image_w / 2, self.image_h / 2))
        self.view_w, self.view_h = max(1, int(view_w)), max(1, int(view_h))
        if still:
            self.fit()
        else:
            self.fitted = False
        self._clamp()

    def fit(self) -> None:
        """Whole image in the pane, centred (key F); it stays fitted through resizes until
        the next zoom or pan."""
        self.zoom = self.fit_zoom
        self.cx, self.cy = self.image_w / 2, self.image_h / 2
        self.fitted = True
        self._clamp()

    def one_to_one(self) -> None:
        """One device pixel per source pixel, same centre (key 0)."""
        self.zoom = 1.0
        self.fitted = False
        self._clamp()

    def zoom_at(self, factor: float, px: float | None = None, py: float | None = None) -> None:
        """Multiply the zoom by ``factor`` keeping the source point under device pixel
        ``(px, py)`` (default: the pane centre) where it is."""
        px = self.view_w / 2 if px is None else px
        py = self.view_h / 2 if py is None else py
        sx, sy = self.screen_to_source(px, py)
        self.fitted = False
        self.zoom = min(MAX_ZOOM, max(self.min_zoom, self.zoom * factor))
        self.cx = sx - (px - self.view_w / 2) / self.zoom
        self.cy = sy - (py - self.view_h / 2) / self.zoom
        self._clamp()

    def pan(self, dx: float, dy: float) -> None:
        """Move the content by ``(dx, dy)`` device pixels (drag)."""
        if dx or dy:
            self.fitted = False
        self.cx -= dx / self.zoom
        self.cy -= dy / self.zoom
        self._clamp()

    # ---- geometry ----------------------------------------------------------------------------
    def origin(self) -> Tuple[int, int]:
        """Grid pixel ``(ox, oy)`` at the pane's top-left device pixel."""
        return (int(math.floor(self.cx * self.zoom - self.view_w / 2 + 0.5)),
                int(math.floor(self.cy * self.zoom - self.view_h / 2 + 0.5)))

    def visible_region(self) -> Region:
        """The source region the pane shows (may extend past the image)."""
        ox, oy = self.origin()
        z = self.zoom
        return Region(ox / z, oy / z, self.view_w / z, self.view_h / z)

    def screen_to_source(self, px: float, py: float) -> Tuple[float, float]:
        ox, oy = self.origin()
        return (ox + px) / self.zoom, (oy + py) / self.zoom

    def source_to_screen(self, sx: float, sy: float) -> Tuple[float, float]:
        ox, oy = self.origin()
        return sx * self.zoom - ox, sy * self.zoom - oy

    def _shown(self) -> Box:
        """The grid pixels (not source pixels) on both the pane and the image, a partly
        covered grid pixel counted in (empty when there are none)."""
        ox, oy = self.origin()
        gw, gh = self.image_w * self.zoom, self.image_h * self.zoom  # image extent in grid px
        return Box(max(ox, 0), max(oy, 0), math.ceil(min(ox + self.view_w, gw)),
                   math.ceil(min(oy + self.view_h, gh)))

    def visible_tiles(self, tile: int) -> List[Tuple[int, int]]:
        """Tiles ``(i, j)`` of the grid that intersect both the pane and the image, nearest
        to the pane centre first."""
        ox, oy = self.origin()
        x0, y0, x1, y1 = self._shown()
        if x1 <= x0 or y1 <= y0:
            return []
        tiles = [(i, j) for i in range(int(y0 // tile), int(math.ceil(y1 / tile)))
                 for j in range(int(x0 // tile), int(math.ceil(x1 / tile)))]
        mx, my = ox + self.view_w / 2, oy + self.view_h / 2
        tiles.sort(key=lambda t: ((t[1] + 0.5) * tile - mx) ** 2 + ((t[0] + 0.5) * tile - my) ** 2)
        return tiles

    def tile_window(self, i: int, j: int, tile: int) -> Box:
        """The part of screen tile ``(i, j)`` that is on screen and on the image, in the
        tile's own pixels (the whole tile is ``Box(0, 0, tile, tile)``)."""
        x0, y0, x1, y1 = self._shown()
        tx, ty = j * tile, i * tile
        c0 = min(tile, max(0, int(math.floor(x0 - tx))))
        r0 = min(tile, max(0, int(math.floor(y0 - ty))))
        c1 = max(c0, min(tile, int(math.ceil(x1 - tx))))
        r1 = max(r0, min(tile, int(math.ceil(y1 - ty))))
        return Box(c0, r0, c1, r1)

    def tile_region(self, i: int, j: int, tile: int) -> Region:
        """Source region of tile ``(i, j)``."""
        s = tile / self.zoom
        return Region(j * s, i * s, s, s)
