r"""LMF with LIIF at the edges: the paper's decoder only where the picture needs it.

A distilled LMF decoder (:mod:`core.models.lmf`) on the paper model's encoder reproduces the
paper model (LIIF, :mod:`core.models.liif`) closely in smooth areas and loses most of what it
loses at strong edges (``bench/gap_where.py``; docs/TRAINING.md, "Where the rest of the gap
is"). This model holds both decoders on one encoder and lets a cheap rule pick, per output
pixel::

    score(v)   = max over the 3x3 neighbourhood n of v of |Y(n) - Y(v)|     (per latent code)
    hard(x)    = max over the 4 ensemble codes v_t of x of score(v_t) > threshold
    I(x)       = LIIF(x) if hard(x) else LMF(x)

``Y`` is the BT.601 luma of the input colour the latent carries (LMF's ``skip`` channels, in
[0, 1] units; outside the image the latent is zero, as for the unfolding). So a pixel whose
four codes all sit in low-contrast input gets LMF's few thousand multiply-adds, and a pixel
near a strong input edge the paper decoder's 4 x 256-wide MLP, computed exactly as
:class:`~core.models.liif.LIIF` computes it (same P map, same ensemble).

The code features (:meth:`code_features`) are LMF's columns, then LIIF's P map, then the score.
The fast paths run LMF on the whole chunk and recompute the hard pixels with LIIF;
:meth:`query_pixels` (training, reference) computes both everywhere and selects.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from core.models.implicit import LocalImplicit, area_weights, neighbour_index
from core.models.liif import decode_p_rows, split_first_layer
from core.models.lmf import LMF
from core.models.registry import make, register

#: BT.601 luma weights (core.metrics's, without the 16-235 scaling)
_LUMA = (0.299, 0.587, 0.114)


@register("lmf-liif")
class LMFEdges(LMF):
    """LMF everywhere, LIIF where the input has strong local contrast (module docstring).

    Args:
        encoder_spec, hyper_hidden, render_width, render_layers: LMF's (``skip`` is always on:
            the rule reads the input colour it carries).
        imnet_spec: the LIIF decoder's MLP (``in_dim`` filled in), as in LIIF.
        threshold: luma contrast (0-1) above which a code counts as an edge.
    """

    def __init__(self, encoder_spec: Dict[str, Any], imnet_spec: Dict[str, Any],
                 hyper_hidden: Sequence[int] = (256,), render_width: int = 16,
                 render_layers: int = 4, threshold: float = 0.3) -> None:
        super().__init__(encoder_spec, hyper_hidden, render_width, render_layers, skip=True)
        c = self.encoder.out_dim
        self.imnet = make(imnet_spec, args={"in_dim": 9 * c + 4})
        self.threshold = float(threshold)
        self.lmf_columns = 2 * render_layers * render_width + 3

    # ---- code features -----------------------------------------------------------------------
    def _first_layer(self):
        """LIIF's first layer split on the encoder's channels (not the colours)."""
        return split_first_layer(self.imnet, self.encoder.out_dim)

    def _p_map(self, feat: torch.Tensor, stride, padding: int) -> torch.Tensor:
        """LIIF's P map ``Wz zhat + b1`` of the encoder channels (not the colours)."""
        w_lat, _, _, b = self._first_layer()
        f = feat[:, :self.encoder.out_dim].contiguous(memory_format=torch.channels_last)
        with torch.autocast(feat.device.type, enabled=False):
            return F.conv2d(f.float(), w_lat, b, stride=stride, padding=padding)

    def _score(self, feat: torch.Tensor, stride, padding: int) -> torch.Tensor:
        """``(B, 1, H', W')``: largest luma difference between a code and its 3x3 neighbours."""
        rgb = feat[:, -3:].float() * 0.5 + 0.5  # the skip colours, back to [0, 1]
        y = (rgb * rgb.new_tensor(_LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
        # outside the image the latent is zero: its colour is mid-grey
        win = F.unfold(y - 0.5, 3, padding=padding, stride=stride) + 0.5  # (B, 9, L)
        score = (win - win[:, 4:5]).abs().amax(1, keepdim=True)
        sy, sx = (stride, stride) if isinstance(stride, int) else stride
        h = (y.shape[2] + 2 * padding - 3) // sy + 1
        w = (y.shape[3] + 2 * padding - 3) // sx + 1
        return score.view(y.shape[0], 1, h, w)

    def code_features(self, feat: torch.Tensor, stride=(1, 1), padding: int = 0) -> torch.Tensor:
        """LMF's columns, LIIF's P map, the edge score (module docstring)."""
        return torch.cat([super().code_features(feat, stride, padding),
                          self._p_map(feat, stride, padding),
                          self._score(feat, stride, padding)], 1)

    # ---- LIIF's decoder on chosen points -----------------------------------------------------
    def _liif(self, p_rows: torch.Tensor, ry: torch.Tensor, rx: torch.Tensor,
              cell: Tuple[float, float]) -> torch.Tensor:
        """LIIF's prediction ``(N, 3)`` from P rows ``(N, hidden)``, relative coordinates
        ``(N,)`` and the render-constant cell ``cell`` (source pixels)."""
        rel = torch.stack([ry, rx], -1)
        cell_rel = rel.new_tensor([2.0 * cell[0], 2.0 * cell[1]]).expand(len(rel), 2)
        return self._liif_points(p_rows[None], rel[None], cell_rel[None])[0]

    def _liif_points(self, g: torch.Tensor, rel: torch.Tensor,
                     cell_rel: Optional[torch.Tensor]) -> torch.Tensor:
        """LIIF's ``decode_points`` on gathered P rows (training and reference path)."""
        _, w_rel, w_cell, _ = self._first_layer()
        return decode_p_rows(self.imnet, w_rel, w_cell, g, rel, cell_rel)

    def _hard_members(self, table: torch.Tensor, grid: torch.Tensor, ry, rx,
                      cell: Tuple[float, float]):
        """The hard pixels of a chunk and LIIF there: ``grid (n, n, th, tw)`` holds the table
        row of ensemble member ``(a, b)`` of each pixel; returns the rows and columns ``r, c``
        of the pixels with an edge code among their members and ``{(a, b): (len(r), 3)}``,
        LIIF's prediction of each member at them (None, None when there are none)."""
        hard = (table[:, -1][grid].flatten(0, 1).amax(0) > self.threshold).nonzero()
        if not len(hard):
            return None, None
        r, c = hard[:, 0], hard[:, 1]
        p = table[:, self.lmf_columns:-1]
        n = grid.shape[0]
        return (r, c), {(a, b): self._liif(p.index_select(0, grid[a, b, r, c]), ry[a][r],
                                           rx[b][c], cell)
                        for a in range(n) for b in range(n)}

    # ---- the renderer's paths ----------------------------------------------------------------
    def decode_grid(self, table: torch.Tensor, rbase: torch.Tensor, coff: torch.Tensor,
                    ry: torch.Tensor, rx: torch.Tensor, cell: Tuple[float, float]
                    ) -> Optional[torch.Tensor]:
        """LMF's fused kernel on the chunk, then LIIF's blended prediction on its hard
        pixels."""
        out = super().decode_grid(table[:, :self.lmf_columns].contiguous(), rbase, coff, ry, rx,
                                  cell)
        if out is None:
            return None
        grid = rbase[:, None, :, None] + coff[None, :, None, :]
        at, preds = self._hard_members(table, grid, ry, rx, cell)
        if at is not None:
            r, c = at
            weights = area_weights([ry[0, r], ry[1, r]], [rx[0, c], rx[1, c]])
            out[r, c] = sum(preds[a, b] * weights[2 * a + b][:, None]
                            for a in (0, 1) for b in (0, 1))
        return out

    def decode_indexed(self, table: torch.Tensor, index: torch.Tensor, ry: List[torch.Tensor],
                       rx: List[torch.Tensor], cell: Tuple[float, float],
                       workspace: Callable[[int, int], Tuple[torch.Tensor, torch.Tensor]]
                       ) -> torch.Tensor:
        """LMF's members on the chunk, then LIIF's members on its hard pixels (the renderer
        blends them)."""
        n, th, tw = len(ry), len(ry[0]), len(rx[0])
        out = super().decode_indexed(table[:, :self.lmf_columns].contiguous(), index, ry, rx,
                                     cell, workspace).view(n * n, th, tw, 3)
        at, preds = self._hard_members(table, index.view(n, n, th, tw), ry, rx, cell)
        if at is not None:
            r, c = at
            for (a, b), pred in preds.items():
                out[a * n + b, r, c] = pred.to(out.dtype)
        return out.view(-1, 3)

    # ---- the reference path ------------------------------------------------------------------
    def query_pixels(self, codes: torch.Tensor, qy: torch.Tensor, qx: torch.Tensor,
                     cell_rel: Optional[torch.Tensor]) -> torch.Tensor:
        """Both decoders everywhere, LIIF's output where a pixel is hard (see
        :meth:`LocalImplicit.query_pixels`)."""
        k = self.lmf_columns
        lmf = super().query_pixels(codes[:, :k], qy, qx, cell_rel)
        liif = LocalImplicit.query_pixels(self, codes[:, k:-1], qy, qx, cell_rel,
                                          decode=self._liif_points)
        h, w = codes.shape[-2:]
        score = codes[:, -1].reshape(codes.shape[0], -1)
        best = torch.zeros_like(qy, dtype=score.dtype)
        for oy in (-1.0, 1.0):
            iy = neighbour_index(qy, h, oy, True)
            for ox in (-1.0, 1.0):
                ix = neighbour_index(qx, w, ox, True)
                best = torch.maximum(best, score.gather(1, iy * w + ix))
        return torch.where((best > self.threshold)[..., None], liif, lmf)


def compose(lmf_sd: Dict[str, torch.Tensor], liif_sd: Dict[str, torch.Tensor]
            ) -> Dict[str, torch.Tensor]:
    """The state dict of an :class:`LMFEdges` from an LMF model's decoder and a LIIF model's
    encoder and ``imnet``, when both were trained on one encoder: the LMF model's may differ
    from the LIIF model's by float rounding only (a weight average of frozen weights rounds
    them by up to about 1e-6), else this refuses."""
    enc = {k for k in liif_sd if k.startswith("encoder.")}
    if enc != {k for k in lmf_sd if k.startswith("encoder.")} or any(
            lmf_sd[k].shape != liif_sd[k].shape
            or not torch.allclose(lmf_sd[k], liif_sd[k], rtol=1e-5, atol=1e-5) for k in enc):
        raise ValueError("the LMF and LIIF models do not share one encoder")
    out = {k: v for k, v in lmf_sd.items() if not k.startswith("encoder.")}
    out.update({k: v for k, v in liif_sd.items() if k.startswith(("encoder.", "imnet."))})
    return out
