r"""LIIF: Local Implicit Image Function (Chen, Liu, Wang, CVPR 2021).

Coordinates
-----------
Everywhere in LIIF Zoom an image of ``h`` rows and ``w`` columns lives on the continuous
rectangle ``[0, w] x [0, h]`` (*source-pixel coordinates*; x to the right, y down): pixel
``(i, j)`` (row, column) covers ``[j, j+1] x [i, i+1]`` and its centre is
``(j + 0.5, i + 0.5)``. The encoder keeps the resolution, so latent code ``z_{ij}`` sits at
the same centre. The official code's normalised coordinates are ``c = 2 p / n - 1``
(``(y, x)`` order, pixel centres at ``-1 + 1/n``); :meth:`LIIF.query_rgb` accepts those.

The function
------------
For a query point ``p = (y, x)`` with cell size ``s = (s_y, s_x)`` (the size of the output
pixel, in source pixels)::

    I(p) = sum_t  (S_t' / S) * f( zhat_t, 2 (p - v_t), 2 s )          (t over 4 neighbours)

* ``v_t`` is the centre of latent code ``t``. With the local ensemble the four codes are the
  nearest ones to ``p + (dy, dx) / 2 + eps`` for ``dy, dx in {-1, +1}`` (``eps`` = the
  official 1e-6 in normalised units), indices clamped to the map; without it the single
  code whose cell contains ``p`` (``floor(p)``).
* ``zhat_t`` is the 3x3 neighbourhood of ``z_t`` concatenated (feature unfolding; zero
  outside the map), channel-major (``c * 9 + 3 * ky + kx``), as ``torch.nn.functional.unfold``.
* ``2 (p - v_t)`` and ``2 s`` are the relative coordinate and the cell in units of half a
  latent pixel (the official code's ``(coord - q_coord) * (h, w)`` and ``cell * (h, w)``).
* ``S_t = |ry_t * rx_t| + 1e-9`` is the area between ``p`` and ``v_t`` (relative units),
  ``S = sum_t S_t``, and ``S_t'`` is the area of the *diagonally opposite* neighbour, so the
  nearest code weighs most.
* ``f`` is the MLP; input and output are normalised with ``(x - 0.5) / 0.5``.

The fast evaluation
-------------------
The first layer of ``f`` is affine in ``[zhat, rel, cell]``: ``W1 [zhat; r; c] + b1 =
(Wz zhat + b1) + Wr r + Wc c``. ``Wz zhat`` over every latent pixel is a 3x3 convolution of the
latent map with ``Wz`` reshaped to ``(hidden, C, 3, 3)``; :meth:`precompute` computes it once
per latent pixel (the *P map*), and a query only gathers 4 rows of it. The remaining layers
run on the ``4 Q`` hidden vectors in one batch. This is exactly the same function, at a
quarter of the first-layer cost and without unfolding the latent map per query.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.models.mlp import mlp_tail
from core.registry import make, register

#: the official eps_shift, in normalised coordinates
EPS_SHIFT = 1e-6


def neighbour_index(p: torch.Tensor, n: int, offset: float, ensemble: bool) -> torch.Tensor:
    """Index of the latent code chosen for coordinate ``p`` (source pixels) along an axis
    of length ``n``, for neighbour ``offset`` in ``{-1, +1}`` (ignored without ensemble)."""
    if ensemble:
        shifted = p + offset * 0.5 + EPS_SHIFT * n / 2.0
    else:
        shifted = p
    return torch.floor(shifted).clamp_(0, n - 1).long()


def area_weights(rel_y: List[torch.Tensor], rel_x: List[torch.Tensor]) -> List[torch.Tensor]:
    """Ensemble weights for neighbours ordered (dy, dx) = (-,-), (-,+), (+,-), (+,+).

    ``rel_y[a]``/``rel_x[b]`` are relative coordinates (half-pixel units) of neighbour row
    ``a`` / column ``b``, broadcastable against each other. Returns ``S_{3-t} / S``.
    """
    areas = [(rel_y[a] * rel_x[b]).abs() + 1e-9 for a in (0, 1) for b in (0, 1)]
    total = areas[0] + areas[1] + areas[2] + areas[3]
    return [areas[3 - t] / total for t in range(4)]


@register("liif")
class LIIF(nn.Module):
    """Encoder + implicit decoder.

    Args:
        encoder_spec: spec of the encoder (``edsr-baseline``, ``rdn`` ...), without upsampler.
        imnet_spec: spec of the decoder MLP (``in_dim`` is filled in).
        local_ensemble: blend 4 neighbouring codes with area weights (paper's -e ablation off).
        feat_unfold: feed the 3x3 neighbourhood of a code (-u ablation off).
        cell_decode: feed the query's cell size (-c ablation off).
    """

    def __init__(self, encoder_spec: Dict[str, Any], imnet_spec: Optional[Dict[str, Any]] = None,
                 local_ensemble: bool = True, feat_unfold: bool = True,
                 cell_decode: bool = True) -> None:
        super().__init__()
        if imnet_spec is None:
            raise ValueError("LIIF Zoom needs a decoder: imnet_spec must be given")
        self.local_ensemble = local_ensemble
        self.feat_unfold = feat_unfold
        self.cell_decode = cell_decode
        self.encoder = make(encoder_spec)
        c = self.encoder.out_dim
        in_dim = c * (9 if feat_unfold else 1) + 2 + (2 if cell_decode else 0)
        self.imnet = make(imnet_spec, args={"in_dim": in_dim})

    # ---- geometry of the model -----------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.encoder.out_dim

    @property
    def receptive_radius(self) -> int:
        """Pixels of input that influence one latent code (the tiled encoder's halo)."""
        return int(self.encoder.receptive_radius)

    @property
    def window_halo(self) -> int:
        """Latent pixels around a code that :meth:`precompute` reads (1 with unfolding)."""
        return 1 if self.feat_unfold else 0

    # ---- the three stages ----------------------------------------------------------------
    def encode(self, inp: torch.Tensor) -> torch.Tensor:
        """Latent map ``(B, C, h, w)`` of a normalised image ``(B, 3, h, w)``.

        The convolutions run in channels-last layout (about 3x faster on CPU with oneDNN, and
        the layout tensor cores want); the result is returned in the default layout."""
        return self.encoder(inp.contiguous(memory_format=torch.channels_last)).contiguous()

    def first_layer(self) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], torch.Tensor]:
        """Split ``W1`` into (latent part as a conv kernel, coordinate part, cell part, bias)."""
        lin = self.imnet.linears[0]
        w, b = lin.weight, lin.bias
        c = self.latent_dim
        k = 3 if self.feat_unfold else 1
        n = c * k * k
        w_lat = w[:, :n].reshape(w.shape[0], c, k, k)
        w_rel = w[:, n:n + 2]
        w_cell = w[:, n + 2:n + 4] if self.cell_decode else None
        return w_lat, w_rel, w_cell, b

    def window_features(self, feat: torch.Tensor, stride=(1, 1), padding: int = 0) -> torch.Tensor:
        """Per-code features the decoder reads: here the P map ``Wz zhat + b1``.

        ``feat (B, C, H, W)``; with ``stride = (3, 3)`` (unfolding) it evaluates codes whose
        3x3 neighbourhoods were stacked side by side."""
        w_lat, _, _, b = self.first_layer()
        feat = feat.contiguous(memory_format=torch.channels_last)
        return F.conv2d(feat, w_lat.to(feat.dtype), b.to(feat.dtype), stride=stride,
                        padding=padding)

    def precompute(self, feat: torch.Tensor, padded: bool = False) -> torch.Tensor:
        """P map ``Wz zhat + b1`` for every code of ``feat`` ``(B, C, H, W)``.

        If ``padded`` the map is zero-padded first (output ``H x W``, the whole latent map);
        otherwise ``feat`` must carry a halo of :attr:`window_halo` codes (zeros where it
        lies outside the image) and the output is ``(H - 2 halo) x (W - 2 halo)``.
        """
        return self.window_features(feat, padding=self.window_halo if padded else 0)

    def fold_cell(self, pflat: torch.Tensor, cell: Tuple[float, float]) -> torch.Tensor:
        """Add the (render-constant) cell term ``Wc (2 s)`` to P rows ``(N, hidden)``."""
        _, _, w_cell, _ = self.first_layer()
        if w_cell is None:
            return pflat
        cy, cx = cell
        return pflat + ((2.0 * cy) * w_cell[:, 0] + (2.0 * cx) * w_cell[:, 1])

    def decode_indexed(self, table: torch.Tensor, index: torch.Tensor, ry: List[torch.Tensor],
                       rx: List[torch.Tensor], cell: Tuple[float, float],
                       workspace: Callable[[int, int], Tuple[torch.Tensor, torch.Tensor]]
                       ) -> torch.Tensor:
        """The renderer's decoder: RGB ``(n*n*th*tw, 3)`` of a grid of output pixels.

        ``table (codes, K)`` holds the per-code features (:meth:`window_features`, one row per
        latent code the grid uses); ``index (n*n*th*tw,)`` the row of neighbour ``a*n + b``
        of output pixel ``(r, c)``; ``ry[a] (th,)``, ``rx[b] (tw,)`` its relative
        coordinates; ``cell`` the output pixel size in source pixels. ``workspace(rows,
        width)`` returns two reusable ``(rows, width)`` buffers."""
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

    def decode_hidden(self, h1: torch.Tensor) -> torch.Tensor:
        """Run the layers after the first on pre-activations ``h1 (N, hidden)``; in place."""
        return mlp_tail(self.imnet.linears[1:], h1)

    # ---- generic queries (training, evaluation) -------------------------------------------
    def query_pixels(self, pmap: torch.Tensor, qy: torch.Tensor, qx: torch.Tensor,
                     cell_rel: Optional[torch.Tensor]) -> torch.Tensor:
        """Predict normalised RGB at arbitrary points.

        Args:
            pmap: per-code features ``(B, K, h, w)`` of the whole latent map
                (``precompute(padded=True)``; the P map for LIIF).
            qy, qx: query coordinates ``(B, Q)`` in source pixels.
            cell_rel: ``(B, Q, 2)`` cell in relative units (``2 s``), (y, x) order.
        Returns:
            ``(B, Q, 3)``.
        """
        bsz, hidden, h, w = pmap.shape
        flat = pmap.flatten(2)
        offsets = (-1.0, 1.0) if self.local_ensemble else (0.0,)
        iy = [neighbour_index(qy, h, o, self.local_ensemble) for o in offsets]
        ix = [neighbour_index(qx, w, o, self.local_ensemble) for o in offsets]
        ry = [2.0 * (qy - (i.to(qy.dtype) + 0.5)) for i in iy]
        rx = [2.0 * (qx - (j.to(qx.dtype) + 0.5)) for j in ix]
        preds = []
        for a in range(len(offsets)):
            for b in range(len(offsets)):
                idx = (iy[a] * w + ix[b]).unsqueeze(1).expand(bsz, hidden, -1)
                g = torch.gather(flat, 2, idx).transpose(1, 2)  # (B, Q, K)
                rel = torch.stack([ry[a], rx[b]], -1).to(g.dtype)
                preds.append(self.decode_points(g, rel, cell_rel))
        if not self.local_ensemble:
            return preds[0]
        weights = area_weights(ry, [r for r in rx])
        return sum(p * wgt.unsqueeze(-1).to(p.dtype) for p, wgt in zip(preds, weights))

    def decode_points(self, g: torch.Tensor, rel: torch.Tensor,
                      cell_rel: Optional[torch.Tensor]) -> torch.Tensor:
        """RGB ``(B, Q, 3)`` from gathered P rows ``g (B, Q, hidden)``, relative coordinates
        ``rel (B, Q, 2)`` and cells ``cell_rel (B, Q, 2)`` (relative units)."""
        _, w_rel, w_cell, _ = self.first_layer()
        h1 = g + rel @ w_rel.t()
        if w_cell is not None and cell_rel is not None:
            h1 = h1 + cell_rel @ w_cell.t()
        bsz = g.shape[0]
        return self.decode_hidden(h1.reshape(-1, h1.shape[-1])).view(bsz, -1, 3)

    def query_rgb(self, feat: torch.Tensor, coord: torch.Tensor,
                  cell: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Official interface: ``coord (B, Q, 2)`` normalised (y, x) in ``[-1, 1]``,
        ``cell (B, Q, 2)`` normalised (``2 / out_h, 2 / out_w`` for a full render)."""
        h, w = feat.shape[-2:]
        qy = (coord[..., 0] + 1) * (h / 2.0)
        qx = (coord[..., 1] + 1) * (w / 2.0)
        cell_rel = None
        if self.cell_decode:
            if cell is None:
                raise ValueError("this model decodes the cell: pass cell")
            cell_rel = cell * cell.new_tensor([h, w])
        return self.query_pixels(self.precompute(feat, padded=True), qy, qx, cell_rel)

    def forward(self, inp: torch.Tensor, coord: torch.Tensor,
                cell: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.query_rgb(self.encode(inp), coord, cell)
