"""Render any region of a latent image at any output size: the fast path.

``render(latent, region, out_w, out_h)`` evaluates the model's implicit function (LIIF,
:mod:`core.models.liif`, or its fast sibling LMF, :mod:`core.models.lmf`) at the
output-pixel centres of :mod:`core.geometry`. It exploits two facts:

1. everything the decoder computes from a latent code alone can be computed once per code:
   for LIIF the latent part of the first (affine) MLP layer, a 3x3 convolution of the latent
   map (the *P map*); for LMF the latent MLP's modulations. The model computes these
   *code features* (``model.code_features``) only for the codes the queries touch;
2. output samples form a grid, so the four ensemble neighbours, relative coordinates and area
   weights of a query factor into a row part and a column part.

The output is processed in chunks of at most ``chunk`` pixels, so working memory is bounded by
``chunk`` and not by the image or output size; the device profile (:mod:`core.profile`) sizes them
(small on a CPU, where the decoder's activations then stay in cache; large on a GPU, where
each chunk costs a fixed number of kernel launches). For each chunk:

* the latent rows and columns the tile's neighbours use are collected; if they are dense (zoom
  in) their window features come from the latent's per-tile cache
  (:meth:`core.render.encoding.LatentImage.features`, a stride-1 convolution of each latent tile and
  its halo), if sparse (zoom out) they are computed from the 3x3 neighbourhoods of exactly
  those codes, stacked, with stride 3;
* the ``4 x tile`` feature rows are gathered and decoded in one batch
  (``model.decode_indexed``: row and column coordinate terms, the constant cell term, the
  remaining layers);
* the 4 predictions are blended with the area weights.

Device residency: the per-chunk indices and relative coordinates are 1-D (one entry per
output row or column), built on the host and copied in two transfers (integers, floats);
everything per pixel is built on the device, and the result stays there until one copy back
per :func:`render` call. ``bench/render_launches.py`` counts the launches and copies of a
1080p view (docs/BENCHMARKS.md).
"""
from __future__ import annotations

import threading
from typing import Callable, Optional, Tuple

import numpy as np
import torch

from core.device import device_lock
from core.geometry import Box, Region, iter_chunks
from core.models.implicit import neighbour_index
from core.profile import CPU_CHUNK
from core.render.encoding import Cancelled, LatentImage

__all__ = ["render", "render_tile"]

_workspace = threading.local()


def _buffers(rows: int, width: int, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """Two reusable ``(rows, width)`` float32 buffers for this thread and device.

    The decoder's activations are large (``4 x chunk x hidden``); allocating them afresh for
    every tile costs as much as the matrix products (fresh pages are faulted in), so each
    thread keeps a pair and the layers ping-pong between them."""
    key = (str(device), width)
    bufs = getattr(_workspace, "bufs", {})
    pair = bufs.get(key)
    if pair is None or pair[0].shape[0] < rows:
        pair = (torch.empty(rows, width, device=device), torch.empty(rows, width, device=device))
        bufs = {key: pair}  # keep one pair per thread
        _workspace.bufs = bufs
    return pair[0][:rows], pair[1][:rows]


def _code_feature_grid(latent: LatentImage, rows: torch.Tensor, cols: torch.Tensor,
                       cancelled: Optional[Callable[[], bool]]
                       ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Code features at the grid ``rows x cols`` (sorted unique latent indices).

    Returns ``(table, row_lut, col_lut, n_cols)``: ``table`` is ``(n_rows * n_cols, K)``, and
    latent row ``rows[0] + k`` is table row block ``row_lut[k]`` (likewise for columns)."""
    model = latent.model
    halo = model.window_halo
    k = 2 * halo + 1

    def axis(idx: torch.Tensor):
        lo, hi = int(idx[0]), int(idx[-1])
        span = hi - lo + 1
        if span <= k * len(idx):  # dense: take the whole window
            src = torch.arange(lo - halo, hi + halo + 1)
            lut = torch.arange(span)
            return src, lut, 1, span, True
        # sparse: each needed code's own neighbourhood, side by side
        src = (idx[:, None] + torch.arange(-halo, halo + 1)[None, :]).flatten()
        lut = torch.full((span,), -1, dtype=torch.long)
        lut[idx - lo] = torch.arange(len(idx))
        return src, lut, k, len(idx), False

    rsrc, rlut, rstride, nr, rdense = axis(rows)
    csrc, clut, cstride, nc, cdense = axis(cols)
    if rdense and cdense:  # cached per latent tile (the viewer's passes share them)
        codes = latent.code_features(Box(int(cols[0]), int(rows[0]), int(cols[-1]) + 1,
                                         int(rows[-1]) + 1), cancelled)
    else:
        codes = latent.features_of(latent.take(rsrc, csrc, cancelled), stride=(rstride, cstride))
    assert codes.shape[1:] == (nr, nc)
    return codes.permute(1, 2, 0).reshape(nr * nc, -1), rlut, clut, nc


@torch.no_grad()
def render_tile(latent: LatentImage, ys: torch.Tensor, xs: torch.Tensor,
                cell: Tuple[float, float],
                cancelled: Optional[Callable[[], bool]] = None) -> torch.Tensor:
    """The model at the grid ``ys x xs`` (float64 source-pixel coordinates): normalised RGB
    ``(len(ys), len(xs), 3)`` on the latent's device."""
    model = latent.model
    dev = latent.device
    h, w = latent.height, latent.width
    ens = model.local_ensemble
    offsets = (-1.0, 1.0) if ens else (0.0,)
    iy = [neighbour_index(ys, h, o, ens) for o in offsets]
    ix = [neighbour_index(xs, w, o, ens) for o in offsets]
    ry = [(2.0 * (ys - (i.double() + 0.5))).float() for i in iy]
    rx = [(2.0 * (xs - (j.double() + 0.5))).float() for j in ix]
    rows = torch.unique(torch.cat(iy))
    cols = torch.unique(torch.cat(ix))
    table, rlut, clut, nc = _code_feature_grid(latent, rows, cols, cancelled)
    r0, c0 = int(rows[0]), int(cols[0])

    th, tw = len(ys), len(xs)
    n = len(offsets)
    rbase = torch.stack([rlut[i - r0] * nc for i in iy])  # (n, th): table row of each row
    coff = torch.stack([clut[j - c0] for j in ix])  # (n, tw)
    # two host-to-device copies per chunk: the integers, then the floats
    ints = torch.cat([rbase, coff], 1).to(dev, non_blocking=True)
    flts = torch.cat([torch.stack(ry), torch.stack(rx)], 1).to(dev, non_blocking=True)
    rbase, coff, ryd, rxd = ints[:, :th], ints[:, th:], flts[:, :th], flts[:, th:]
    fused = model.decode_grid(table, rbase, coff, ryd, rxd, cell)
    if fused is not None:
        return fused
    # index[a * n + b, r, c] = rbase[a, r] + coff[b, c], built on the device
    index = (rbase[:, None, :, None] + coff[None, :, None, :]).reshape(-1)
    pred = model.decode_indexed(table, index, list(ryd), list(rxd), cell,
                                lambda rows, width: _buffers(rows, width, dev)
                                ).view(n * n, th, tw, -1)
    if not ens:
        return pred[0]
    # area weights (core.models.implicit.area_weights) for the whole grid at once: neighbour
    # (a, b) is weighted by the area of the diagonally opposite one, (1 - a, 1 - b)
    areas = (ryd[:, None, :, None] * rxd[None, :, None, :]).abs_().add_(1e-9)  # (2, 2, th, tw)
    weights = areas.flip(0, 1).div_(areas.sum((0, 1))).view(4, th, tw, 1)
    return (pred * weights).sum(0)


def _encode_reads(latent: LatentImage, region: Region,
                  cancelled: Optional[Callable[[], bool]]) -> None:
    """Encode the latent codes a render of ``region`` reads (with the 2 codes around that the
    ensemble and the 3x3 unfolding reach) in large blocks, one encoder halo per block, before
    the chunks run: left to them, each chunk would encode the few tiles it touches, paying
    the halo for every small block. Skipped where those codes would not fit the latent's
    budget (the chunks then encode what they need as they go)."""
    reads = Region(region.x - 2, region.y - 2, region.w + 4, region.h + 4)
    inside = reads.inside(latent.width, latent.height)
    if inside is None:
        return
    if latent.budget is None or inside.w * inside.h * latent.code_bytes <= latent.budget:
        latent.ensure_region(inside, cancelled)


def render(latent: LatentImage, region: Region, out_w: int, out_h: int,
           chunk: Optional[int] = None,
           progress: Optional[Callable[[int, int], None]] = None,
           cancelled: Optional[Callable[[], bool]] = None,
           window: Optional[Tuple[int, int, int, int]] = None) -> np.ndarray:
    """Render ``region`` of ``latent`` at ``out_w x out_h``.

    Args:
        latent: the encoded image (see :func:`core.render.encoding.encode`).
        region: source-pixel rectangle (fractional allowed; may extend past the image, where
            the border is continued: points beyond it are moved onto it).
        out_w, out_h: output size in pixels.
        chunk: most output pixels evaluated at once (bounds working memory); default: the
            latent's (its device profile's, :mod:`core.profile`).
        progress: called with ``(pixels_done, pixels_total)`` after each chunk.
        cancelled: polled between chunks; when it returns True :class:`Cancelled` is raised.
        window: ``(c0, r0, c1, r1)``: render only these output columns and rows of the
            ``out_w x out_h`` grid (exactly the same pixels as that crop of the full render).
    Returns:
        ``(r1 - r0, c1 - c0, 3)`` float32 RGB in [0, 1] (the whole ``(out_h, out_w, 3)``
        without ``window``).
    """
    if out_w < 1 or out_h < 1:
        raise ValueError(f"output size must be positive, got {out_w}x{out_h}")
    dev = latent.device
    max_px, max_side = latent.chunk or CPU_CHUNK
    if chunk is not None:
        max_px, max_side = chunk, CPU_CHUNK[1]
    wc0, wr0, wc1, wr1 = window or (0, 0, out_w, out_h)
    out = torch.empty((wr1 - wr0, wc1 - wc0, 3), dtype=torch.float32, device=dev)
    cell = region.cell(out_w, out_h)
    total, done = out.shape[0] * out.shape[1], 0
    _encode_reads(latent, region.sub(out_w, out_h, wc0, wr0, wc1, wr1), cancelled)
    for c0, r0, c1, r1 in iter_chunks(wc1 - wc0, wr1 - wr0, max_px, max_side=max_side):
        if cancelled is not None and cancelled():
            raise Cancelled()
        ys, xs = region.sample_points(out_w, out_h, wc0 + c0, wr0 + r0, wc0 + c1, wr0 + r1,
                                      inside=(latent.width, latent.height))
        with device_lock(dev):  # one chunk at a time where the device needs it
            rgb = render_tile(latent, ys, xs, cell, cancelled)
            torch.clamp(rgb * 0.5 + 0.5, 0, 1, out=out[r0:r1, c0:c1])
        done += (c1 - c0) * (r1 - r0)
        if progress is not None:
            progress(done, total)
    with device_lock(dev):
        return out.cpu().numpy()  # the one device-to-host copy (none on a CPU)
