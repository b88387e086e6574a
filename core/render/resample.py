"""Cubic resampling: the bicubic renderer of a region, and a MATLAB-compatible imresize.

Both use Keys' cubic kernel with ``a = -0.5`` (MATLAB's and Pillow's)::

    k(t) = 1.5|t|^3 - 2.5|t|^2 + 1                 for |t| <= 1
           -0.5|t|^3 + 2.5|t|^2 - 4|t| + 2         for 1 < |t| <= 2

and, when shrinking by a factor ``s < 1``, the antialiased kernel ``s k(s t)`` (support
``2 / s``), weights normalised to sum to one.

:func:`render_bicubic` samples the same output-pixel centres as the LIIF renderer
(:mod:`core.geometry`), with edge pixels replicated outside the image, so LIIF and bicubic
panes align pixel for pixel. :func:`imresize` reproduces MATLAB's ``imresize(img, 1/s,
'bicubic')`` with the output rounded for uint8 input: the LR generator of the standard SR
benchmarks. Measured against the Set5/Set14 ``LR_bicubic`` images in ../shared/data/bench, the
edge pixels match only with the edge *replicated* (MATLAB's documented border is symmetric;
the benchmark files were evidently made otherwise), so both functions replicate edges.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Tuple

import numpy as np
import torch

from core.geometry import Region
from core.io.pixels import to_float
from core.lru import LRUCache

__all__ = ["cubic", "render_bicubic", "render_nearest", "imresize"]


def cubic(t: torch.Tensor) -> torch.Tensor:
    """Keys' cubic kernel, ``a = -0.5``."""
    a = t.abs()
    a2, a3 = a * a, a * a * a
    return ((1.5 * a3 - 2.5 * a2 + 1) * (a <= 1)
            + (-0.5 * a3 + 2.5 * a2 - 4 * a + 2) * ((a > 1) & (a <= 2))).to(t.dtype)


class Taps(NamedTuple):
    """One axis of a separable resampling, banded: output sample ``o`` is
    ``sum_t weight[o, t] * src[index[o, t]]``, with ``index`` in ``[lo, hi)`` (edge pixels
    replicated: indices clamped to the source). ``taps`` is ``ceil(4 / s) + 1`` for a scale
    ``s`` (5 when enlarging), so the weights and every intermediate array are sized by the
    output (or the source), never by their product as a dense matrix would be."""

    index: torch.Tensor  # (n_out, taps) long, absolute source indices
    weight: torch.Tensor  # (n_out, taps)
    lo: int
    hi: int


def _taps(centres: torch.Tensor, n_in: int, scale: float,
          dtype: torch.dtype = torch.float64) -> Taps:
    """The cubic taps of sample positions ``centres`` (source-pixel coordinates, pixel ``k``
    centred at ``k + 0.5``) along an axis of ``n_in`` pixels resampled by ``scale``."""
    s = min(1.0, scale)
    support = 2.0 / s
    t = centres.double() - 0.5  # in index units
    first = torch.floor(t - support).long() + 1
    n = int(math.ceil(2 * support)) + 1
    k = first[:, None] + torch.arange(n)[None, :]
    w = s * cubic((t[:, None] - k.double()) * s)
    w = w / w.sum(1, keepdim=True)
    k = k.clamp(0, n_in - 1)  # replicate the edge pixels
    return Taps(k, w.to(dtype), int(k.min()), int(k.max()) + 1)


#: below this many elements (16 MB in float32) an axis is resampled by a dense matrix
#: product (faster on the viewer's small tiles); above it by gathers, tap by tap
DENSE_MAX = 1 << 22


def _resample_axis(src: torch.Tensor, taps: Taps, axis: int, offset: int) -> torch.Tensor:
    """Resample ``src`` (3-D, its ``axis`` starting at source index ``offset``) along
    ``axis``, in ``src``'s dtype: a matrix product where the dense matrix is small
    (:data:`DENSE_MAX`), else one gather and one multiply-add per tap."""
    n_out, span = taps.index.shape[0], taps.hi - taps.lo
    if n_out * span <= DENSE_MAX:
        mat = torch.zeros(n_out, span, dtype=src.dtype)
        mat.scatter_add_(1, taps.index - taps.lo, taps.weight.to(src.dtype))
        part = src.narrow(axis, taps.lo - offset, span)
        if axis == 0:
            return (mat @ part.reshape(span, -1)).view(n_out, *part.shape[1:])
        return torch.einsum("px,yxc->ypc", mat, part)
    shape = [1, 1, 1]
    shape[axis] = -1
    out = None
    for t in range(taps.index.shape[1]):
        g = src.index_select(axis, taps.index[:, t] - offset)
        wt = taps.weight[:, t].view(shape)
        out = g.mul_(wt) if out is None else out.addcmul_(g, wt)
    return out


_taps_cache = LRUCache(256, size=lambda v: 1)  # (centres, n_in, scale) -> float32 Taps


def _taps_cached(centres: torch.Tensor, n_in: int, scale: float) -> Taps:
    """:func:`_taps` in float32, memoised (the 256 most recent): the viewer's bicubic tiles
    in one row share their row taps, those in one column their column taps."""
    key = (centres.numpy().tobytes(), n_in, scale)
    hit = _taps_cache.get(key)
    if hit is None:
        hit = _taps(centres, n_in, scale, torch.float32)
        _taps_cache.put(key, hit)
    return hit


def render_nearest(image: np.ndarray, region: Region, out_w: int, out_h: int,
                   window: Tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Nearest-neighbour samples of ``image`` at the output-pixel centres of ``region`` (the
    centres :func:`render_bicubic` and LIIF sample; edge pixels replicated outside), shown to
    see the source pixels. ``window`` as in :func:`render_bicubic`. Returns float32."""
    ys, xs = region.sample_points(out_w, out_h, *(window or ()))
    iy = np.clip(np.floor(ys.numpy()).astype(int), 0, image.shape[0] - 1)
    ix = np.clip(np.floor(xs.numpy()).astype(int), 0, image.shape[1] - 1)
    return to_float(image[iy[:, None], ix[None, :]])


def render_bicubic(image: np.ndarray, region: Region, out_w: int, out_h: int,
                   window: Tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Bicubic render of ``region`` of ``image`` (``(H, W)`` or ``(H, W, C)``; uint8, uint16
    or float in [0, 1], :mod:`core.io.pixels`) at ``out_w x out_h``, sampling output-pixel
    centres as :func:`core.render.renderer.render` does.

    Antialiased when the output is smaller than the region. ``window = (c0, r0, c1, r1)``
    renders only those output columns and rows. Returns float32, not clamped.
    """
    h, w = image.shape[:2]
    ys, xs = region.sample_points(out_w, out_h, *(window or ()))
    ty = _taps_cached(ys, h, out_h / region.h)
    tx = _taps_cached(xs, w, out_w / region.w)
    src = torch.from_numpy(to_float(image[ty.lo:ty.hi, tx.lo:tx.hi]))
    squeeze = src.ndim == 2
    if squeeze:
        src = src[..., None]
    # the pass that leaves the smaller intermediate first (memory and work by the output)
    if len(xs) * (ty.hi - ty.lo) <= len(ys) * (tx.hi - tx.lo):
        out = _resample_axis(_resample_axis(src, tx, 1, tx.lo), ty, 0, ty.lo)
    else:
        out = _resample_axis(_resample_axis(src, ty, 0, ty.lo), tx, 1, tx.lo)
    out = out.numpy()
    return out[..., 0] if squeeze else out


def imresize(img: np.ndarray, scale: float | None = None,
             size_hw: Tuple[int, int] | None = None) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` (antialiasing on).

    ``img`` is ``(H, W)`` or ``(H, W, C)``, uint8 or float. Give ``scale`` (output = ceil(in *
    scale), as MATLAB) or ``size_hw``. uint8 input gives uint8 output rounded half away from
    zero, like MATLAB (which also rounds between its row and column passes); float input
    gives float64.
    """
    h, w = img.shape[:2]
    if size_hw is None:
        if scale is None:
            raise ValueError("give scale or size_hw")
        size_hw = (int(math.ceil(h * scale)), int(math.ceil(w * scale)))
        sy = sx = float(scale)
    else:
        sy, sx = size_hw[0] / h, size_hw[1] / w
    oh, ow = size_hw
    x = torch.from_numpy(img.astype(np.float64))
    squeeze = x.ndim == 2
    if squeeze:
        x = x[..., None]
    # MATLAB maps output pixel centres u (1-based) to input x = u / s + 0.5 (1 - 1/s):
    # in 0-based pixel-centre coordinates this is the centre (i + 0.5) / s.
    cy = (torch.arange(oh, dtype=torch.float64) + 0.5) / sy
    cx = (torch.arange(ow, dtype=torch.float64) + 0.5) / sx
    order = ("y", "x") if sy <= sx else ("x", "y")  # MATLAB resizes the smaller scale first
    for n, axis in enumerate(order):
        if n == 1 and img.dtype == np.uint8:  # MATLAB keeps the class between passes
            x = torch.clamp(torch.floor(x + 0.5), 0, 255)
        if axis == "y":
            x = _resample_axis(x, _taps(cy, h, sy), 0, 0)
        else:
            x = _resample_axis(x, _taps(cx, w, sx), 1, 0)
    out = x.numpy()
    if squeeze:
        out = out[..., 0]
    if img.dtype == np.uint8:
        return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)
    return out
