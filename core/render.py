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

The output is processed in tiles of at most ``chunk`` pixels, so working memory is bounded by
``chunk`` and not by the image or output size. For each tile:

* the latent rows and columns the tile's neighbours use are collected; if they are dense (zoom
  in) their window features come from the latent's per-tile cache
  (:meth:`core.encoding.LatentImage.features`, a stride-1 convolution of each latent tile and
  its halo), if sparse (zoom out) they are computed from the 3x3 neighbourhoods of exactly
  those codes, stacked, with stride 3;
* the ``4 x tile`` feature rows are gathered and decoded in one batch
  (``model.decode_indexed``: row and column coordinate terms, the constant cell term, the
  remaining layers);
* the 4 predictions are blended with the area weights.
"""
from __future__ import annotations

import threading
from typing import Callable, Optional, Tuple

import numpy as np
import torch

from core.device import device_lock
from core.encoding import Cancelled, LatentImage
from core.geometry import Region, iter_tiles
from core.models.implicit import area_weights, neighbour_index

__all__ = ["render", "render_tile"]

DEFAULT_CHUNK = 8192

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
        codes = latent.code_features(int(rows[0]), int(rows[-1]) + 1, int(cols[0]),
                               int(cols[-1]) + 1, cancelled)
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
    rbase = torch.stack([rlut[i - r0] * nc for i in iy])
    coff = torch.stack([clut[j - c0] for j in ix])
    fused = model.decode_grid(table, rbase.to(dev), coff.to(dev), torch.stack(ry).to(dev),
                              torch.stack(rx).to(dev), cell)
    if fused is not None:
        return fused
    index = torch.empty(n * n, th, tw, dtype=torch.long)
    for a in range(n):
        for b in range(n):
            index[a * n + b] = rbase[a][:, None] + coff[b][None, :]
    pred = model.decode_indexed(table, index.flatten().to(dev), [r.to(dev) for r in ry],
                                [r.to(dev) for r in rx], cell,
                                lambda rows, width: _buffers(rows, width, dev)
                                ).view(n * n, th, tw, -1)
    if not ens:
        return pred[0]
    weights = area_weights([r.to(dev)[:, None] for r in ry], [r.to(dev)[None, :] for r in rx])
    out = pred[0] * weights[0].unsqueeze(-1)
    for t in range(1, 4):
        out += pred[t] * weights[t].unsqueeze(-1)
    return out


def render(latent: LatentImage, region: Region, out_w: int, out_h: int,
           chunk: int = DEFAULT_CHUNK,
           progress: Optional[Callable[[int, int], None]] = None,
           cancelled: Optional[Callable[[], bool]] = None,
           window: Optional[Tuple[int, int, int, int]] = None) -> np.ndarray:
    """Render ``region`` of ``latent`` at ``out_w x out_h``.

    Args:
        latent: the encoded image (see :func:`core.encoding.encode`).
        region: source-pixel rectangle (fractional allowed; may extend past the image).
        out_w, out_h: output size in pixels.
        chunk: most output pixels evaluated at once (bounds working memory).
        progress: called with ``(pixels_done, pixels_total)`` after each tile.
        cancelled: polled between tiles; when it returns True :class:`Cancelled` is raised.
        window: ``(c0, r0, c1, r1)``: render only these output columns and rows of the
            ``out_w x out_h`` grid (exactly the same pixels as that crop of the full render).
    Returns:
        ``(r1 - r0, c1 - c0, 3)`` float32 RGB in [0, 1] (the whole ``(out_h, out_w, 3)``
        without ``window``).
    """
    if out_w < 1 or out_h < 1:
        raise ValueError(f"output size must be positive, got {out_w}x{out_h}")
    wc0, wr0, wc1, wr1 = window or (0, 0, out_w, out_h)
    out = np.empty((wr1 - wr0, wc1 - wc0, 3), dtype=np.float32)
    cell = region.cell(out_w, out_h)
    total, done = out.shape[0] * out.shape[1], 0
    for c0, r0, c1, r1 in iter_tiles(wc1 - wc0, wr1 - wr0, chunk, max_side=128):
        if cancelled is not None and cancelled():
            raise Cancelled()
        ys, xs = region.sample_points(out_w, out_h, wc0 + c0, wr0 + r0, wc0 + c1, wr0 + r1)
        with device_lock(latent.device):  # one chunk at a time where the device needs it
            rgb = render_tile(latent, ys, xs, cell, cancelled)
            out[r0:r1, c0:c1] = (rgb * 0.5 + 0.5).clamp_(0, 1).cpu().numpy()
        done += (c1 - c0) * (r1 - r0)
        if progress is not None:
            progress(done, total)
    return out
