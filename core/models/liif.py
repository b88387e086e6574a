r"""LIIF: Local Implicit Image Function (Chen, Liu, Wang, CVPR 2021).

The function, its coordinates and the queries are in :mod:`core.models.implicit`; this module
holds LIIF's decoder ``f``, a ReLU MLP on ``[zhat, rel, cell]``.

The fast evaluation
-------------------
The first layer of ``f`` is affine in ``[zhat, rel, cell]``: ``W1 [zhat; r; c] + b1 =
(Wz zhat + b1) + Wr r + Wc c``. ``Wz zhat`` over every latent pixel is a 3x3 convolution of the
latent map with ``Wz`` reshaped to ``(hidden, C, 3, 3)``; its code features are it, once
per latent pixel (the *P map*), and a query only gathers 4 rows of it. The remaining layers
run on the ``4 Q`` hidden vectors in one batch. This is exactly the same function, at a
quarter of the first-layer cost and without unfolding the latent map per query.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from core.models.implicit import EPS_SHIFT, LocalImplicit, area_weights, neighbour_index
from core.models.mlp import mlp_tail
from core.models.registry import make, register

__all__ = ["LIIF", "EPS_SHIFT", "area_weights", "neighbour_index"]


@register("liif")
class LIIF(LocalImplicit):
    """Encoder + MLP decoder (the paper's model).

    Args:
        encoder_spec: spec of the encoder (``edsr-baseline``, ``rdn`` ...), without upsampler.
        imnet_spec: spec of the decoder MLP (``in_dim`` is filled in).
        local_ensemble, feat_unfold, cell_decode: the switches (see
            :class:`~core.models.implicit.LocalImplicit`).
    """

    def __init__(self, encoder_spec: Dict[str, Any], imnet_spec: Optional[Dict[str, Any]] = None,
                 local_ensemble: bool = True, feat_unfold: bool = True,
                 cell_decode: bool = True) -> None:
        if imnet_spec is None:
            raise ValueError("LIIF Zoom needs a decoder: imnet_spec must be given")
        super().__init__(encoder_spec, local_ensemble, feat_unfold, cell_decode)
        c = self.encoder.out_dim
        in_dim = c * (9 if feat_unfold else 1) + 2 + (2 if cell_decode else 0)
        self.imnet = make(imnet_spec, args={"in_dim": in_dim})

    def first_layer(
        self,
    ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], torch.Tensor]:
        """Split ``W1`` into (latent part as a conv kernel, coordinate part, cell part, bias)."""
        return split_first_layer(self.imnet, self.latent_dim, self.feat_unfold, self.cell_decode)

    def code_features(self, feat: torch.Tensor, stride=(1, 1), padding: int = 0) -> torch.Tensor:
        """LIIF's code features: the P map ``Wz zhat + b1`` (see
        :meth:`LocalImplicit.code_features` for ``stride`` and ``padding``)."""
        w_lat, _, _, b = self.first_layer()
        feat = feat.contiguous(memory_format=torch.channels_last)
        # float32 even under bfloat16 autocast (the fast encoding): P is added to every
        # pixel's first layer, and rounding it to 8 bits would show (as LMF's scales did)
        with torch.autocast(feat.device.type, enabled=False):
            return F.conv2d(feat, w_lat.to(feat.dtype), b.to(feat.dtype), stride=stride,
                            padding=padding)

    def fold_cell(self, table: torch.Tensor, cell: Tuple[float, float]) -> torch.Tensor:
        """Add the (render-constant) cell term ``Wc (2 s)`` to P rows ``(N, hidden)``."""
        _, _, w_cell, _ = self.first_layer()
        if w_cell is None:
            return table
        cy, cx = cell
        return table + ((2.0 * cy) * w_cell[:, 0] + (2.0 * cx) * w_cell[:, 1])

    def decode_indexed(self, table: torch.Tensor, index: torch.Tensor, ry: List[torch.Tensor],
                       rx: List[torch.Tensor], cell: Tuple[float, float],
                       workspace: Callable[[int, int], Tuple[torch.Tensor, torch.Tensor]]
                       ) -> torch.Tensor:
        """See :meth:`LocalImplicit.decode_indexed`: gathers P rows, adds the coordinate
        terms and runs the MLP's remaining layers."""
        n, th, tw = len(ry), len(ry[0]), len(rx[0])
        table = self.fold_cell(table, cell)
        buf, spare = workspace(index.numel(), table.shape[1])
        hid = torch.index_select(table, 0, index, out=buf)
        return self.grid_decode(hid.view(n * n, th, tw, -1), ry, rx, cell, spare)

    def grid_decode(self, hid: torch.Tensor, ry: List[torch.Tensor], rx: List[torch.Tensor],
                    cell: Tuple[float, float], spare: torch.Tensor) -> torch.Tensor:
        """Decode gathered per-code features on a grid of output pixels.

        ``hid (n*n, th, tw, K)`` holds the features (after :meth:`fold_cell`) of neighbour
        ``a*n + b`` for output pixel ``(r, c)``; ``ry[a] (th,)``, ``rx[b] (tw,)`` are relative
        coordinates, ``cell`` the output pixel size in source pixels. May overwrite ``hid``;
        ``spare`` is a buffer of the same flat shape. Returns ``(n*n*th*tw, 3)``."""
        _, w_rel, _, _ = self.first_layer()
        n = len(ry)
        for a in range(n):
            rterm = ry[a][:, None, None] * w_rel[:, 0]
            for b in range(n):
                hid[a * n + b] += rterm
                hid[a * n + b] += rx[b][None, :, None] * w_rel[:, 1]
        return mlp_tail(self.imnet.linears[1:], hid.view(-1, hid.shape[-1]), spare)

    def decode_points(self, g: torch.Tensor, rel: torch.Tensor,
                      cell_rel: Optional[torch.Tensor]) -> torch.Tensor:
        """RGB ``(B, Q, 3)`` from gathered P rows ``g (B, Q, hidden)`` (see
        :meth:`LocalImplicit.decode_points`)."""
        _, w_rel, w_cell, _ = self.first_layer()
        return decode_p_rows(self.imnet, w_rel, w_cell, g, rel, cell_rel)


def split_first_layer(imnet: torch.nn.Module, c: int, unfold: bool = True, cell: bool = True
                      ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], torch.Tensor]:
    """Split the first layer of LIIF's MLP ``imnet`` on ``c`` latent channels into (latent part
    as a ``3 x 3`` (``1 x 1`` without unfolding) conv kernel, coordinate part, cell part or None,
    bias). Shared with the edges model (:mod:`core.models.edges`), whose latent also carries
    colours that its LIIF decoder does not read."""
    lin = imnet.linears[0]
    w, b = lin.weight, lin.bias
    k = 3 if unfold else 1
    n = c * k * k
    w_lat = w[:, :n].reshape(w.shape[0], c, k, k)
    w_rel = w[:, n:n + 2]
    w_cell = w[:, n + 2:n + 4] if cell else None
    return w_lat, w_rel, w_cell, b


def decode_p_rows(imnet: torch.nn.Module, w_rel: torch.Tensor, w_cell: Optional[torch.Tensor],
                  g: torch.Tensor, rel: torch.Tensor, cell_rel: Optional[torch.Tensor]
                  ) -> torch.Tensor:
    """RGB ``(B, Q, 3)`` of LIIF's MLP from gathered P rows ``g (B, Q, hidden)``, relative
    coordinates ``rel (B, Q, 2)`` and cells ``cell_rel (B, Q, 2)`` (see
    :meth:`LocalImplicit.decode_points`)."""
    # h1 = g + [rel, cell] [Wr, Wc]^T, the add fused into one product
    coords, wc = rel, w_rel
    if w_cell is not None and cell_rel is not None:
        coords = torch.cat([rel, cell_rel.to(rel.dtype)], -1)
        wc = torch.cat([w_rel, w_cell], 1)
    bsz, hidden = g.shape[0], g.shape[-1]
    h1 = torch.addmm(g.reshape(-1, hidden), coords.reshape(-1, coords.shape[-1]),
                     wc.t().to(g.dtype))
    return mlp_tail(imnet.linears[1:], h1).view(bsz, -1, 3)
