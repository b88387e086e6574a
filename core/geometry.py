"""Regions of the continuous image and where output pixels sample them.

Convention (shared by the LIIF renderer, the bicubic renderer, the viewer and export): a
region ``(x, y, w, h)`` is the rectangle ``[x, x+w] x [y, y+h]`` in source-pixel coordinates
(pixel ``(i, j)`` covers ``[j, j+1] x [i, i+1]``). Rendering it at ``out_w x out_h`` splits it
into equal output pixels; output pixel ``(r, c)`` samples its centre::

    x_c = x + (c + 0.5) * w / out_w,     y_r = y + (r + 0.5) * h / out_h

and its cell (the output pixel's size in source pixels) is ``(h / out_h, w / out_w)``. Two
renders of the same region at the same size are therefore aligned pixel for pixel, and a
sub-rectangle of a render equals the render of the matching sub-region.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Optional, Tuple

import torch


@dataclass(frozen=True)
class Region:
    """A rectangle of the continuous source image: left ``x``, top ``y``, width ``w``, height
    ``h``."""

    x: float
    y: float
    w: float
    h: float

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.x, self.y, self.w, self.h)):
            raise ValueError(f"region numbers must be finite, got {self.x},{self.y},{self.w},"
                             f"{self.h}")
        if not (self.w > 0 and self.h > 0):
            raise ValueError(f"region width and height must be positive, got {self.w}x{self.h}")

    @classmethod
    def full(cls, width: int, height: int) -> "Region":
        return cls(0.0, 0.0, float(width), float(height))

    @classmethod
    def parse(cls, text: str) -> "Region":
        """``"X,Y,W,H"`` (numbers, fractional allowed)."""
        parts = text.split(",")
        if len(parts) != 4:
            raise ValueError(f"region must be X,Y,W,H, got {text!r}")
        try:
            nums = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"region must be four numbers X,Y,W,H, got {text!r}") from None
        return cls(*nums)

    def inside(self, width: float, height: float) -> Optional["Region"]:
        """This region cut to ``[0, width] x [0, height]`` (an image), or None if it does not
        overlap it."""
        x0, y0 = max(self.x, 0.0), max(self.y, 0.0)
        x1, y1 = min(self.x + self.w, float(width)), min(self.y + self.h, float(height))
        return Region(x0, y0, x1 - x0, y1 - y0) if x1 > x0 and y1 > y0 else None

    def sub(self, out_w: int, out_h: int, c0: int, r0: int, c1: int, r1: int) -> "Region":
        """The region sampled by output columns ``c0:c1`` and rows ``r0:r1``."""
        sx, sy = self.w / out_w, self.h / out_h
        return Region(self.x + c0 * sx, self.y + r0 * sy, (c1 - c0) * sx, (r1 - r0) * sy)

    def sample_points(self, out_w: int, out_h: int, c0: int = 0, r0: int = 0,
                      c1: int | None = None, r1: int | None = None,
                      inside: Tuple[int, int] | None = None
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Sample coordinates ``(ys, xs)`` (float64) of output rows ``r0:r1``, columns ``c0:c1``.

        ``inside = (w, h)``: points beyond an image of that size are moved onto its border
        (``x`` into ``[0, w]``, ``y`` into ``[0, h]``), so a region that reaches past the
        image continues its border, as bicubic's replicated edge does, instead of asking a
        model for coordinates it never saw."""
        c1 = out_w if c1 is None else c1
        r1 = out_h if r1 is None else r1
        xs = self.x + (torch.arange(c0, c1, dtype=torch.float64) + 0.5) * (self.w / out_w)
        ys = self.y + (torch.arange(r0, r1, dtype=torch.float64) + 0.5) * (self.h / out_h)
        if inside is not None:
            xs, ys = xs.clamp(0, inside[0]), ys.clamp(0, inside[1])
        return ys, xs

    def cell(self, out_w: int, out_h: int) -> Tuple[float, float]:
        """Size ``(cell_y, cell_x)`` of one output pixel in source pixels."""
        return self.h / out_h, self.w / out_w


class Box(NamedTuple):
    """An integer pixel box of a grid (an output, a screen tile): columns ``[c0, c1)``, rows
    ``[r0, r1)``. :class:`Region` is the continuous rectangle of the source image; a ``Box``
    is always whole pixels of something rendered."""

    c0: int
    r0: int
    c1: int
    r1: int

    @classmethod
    def whole(cls, w: int, h: int) -> "Box":
        return cls(0, 0, w, h)

    @property
    def width(self) -> int:
        return self.c1 - self.c0

    @property
    def height(self) -> int:
        return self.r1 - self.r0

    @property
    def empty(self) -> bool:
        return self.c1 <= self.c0 or self.r1 <= self.r0

    def shrunk(self, f: int, size: int) -> "Box":
        """This box of a ``size`` grid in the pixels of the same grid at ``size // f``,
        rounded outward."""
        n = size // f
        return Box(self.c0 // f, self.r0 // f, min(n, -(-self.c1 // f)),
                   min(n, -(-self.r1 // f)))


def iter_chunks(out_w: int, out_h: int, max_pixels: int, max_side: int = 4096):
    """Split an ``out_w x out_h`` output into row-major render chunks (:class:`Box`) of at
    most ``max_pixels`` pixels and ``max_side`` columns."""
    tw = min(out_w, max_side, max(1, max_pixels))
    th = max(1, min(out_h, max_pixels // tw))
    for r0 in range(0, out_h, th):
        for c0 in range(0, out_w, tw):
            yield Box(c0, r0, min(c0 + tw, out_w), min(r0 + th, out_h))
