r"""The local implicit image function shared by LIIF and LMF: coordinates, neighbours,
ensemble, and the queries built on them.

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

Code features
-------------
Both families evaluate ``f`` through a per-code table, the *code features* (one name for
it everywhere: :meth:`LocalImplicit.code_features`, the latent image's ``code_features``,
the renderer's table): whatever part of ``f`` depends only on ``zhat_t``, computed once per
latent code. LIIF's is the first layer's latent term ``Wz zhat + b1`` (the paper's MLP is
affine in ``[zhat, rel, cell]`` at its first layer); LMF's is its latent MLP's scales and
shifts (and, with its skip, the code's colour). A query gathers 4 rows of the table and runs
the per-pixel rest of ``f`` (:meth:`LocalImplicit.decode_points` for arbitrary points,
:meth:`LocalImplicit.decode_indexed` for the renderer's grids).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from core.models.registry import make

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


class LocalImplicit(nn.Module):
    """What LIIF and LMF share: the encoder, the three switches, the latent geometry and the
    queries of the function in the module docstring. A subclass supplies the decoder:
    :meth:`code_features`, :meth:`fold_cell`, :meth:`decode_points` and
    :meth:`decode_indexed`; nothing else needs overriding.

    Args:
        encoder_spec: spec of the encoder (``edsr-baseline``, ``rdn`` ...), without upsampler.
        local_ensemble: blend 4 neighbouring codes with area weights (paper's -e ablation off).
        feat_unfold: feed the 3x3 neighbourhood of a code (-u ablation off).
        cell_decode: feed the query's cell size (-c ablation off).
    """

    def __init__(self, encoder_spec: Dict[str, Any], local_ensemble: bool = True,
                 feat_unfold: bool = True, cell_decode: bool = True) -> None:
        super().__init__()
        self.local_ensemble = local_ensemble
        self.feat_unfold = feat_unfold
        self.cell_decode = cell_decode
        self.encoder = make(encoder_spec)

    # ---- geometry of the model -----------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        """Channels of the latent map :meth:`encode` returns."""
        return self.encoder.out_dim

    @property
    def receptive_radius(self) -> int:
        """Pixels of input that influence one latent code (the tiled encoder's halo)."""
        return int(self.encoder.receptive_radius)

    @property
    def window_halo(self) -> int:
        """Latent pixels around a code that its code features read (1 with unfolding)."""
        return 1 if self.feat_unfold else 0

    # ---- the stages ----------------------------------------------------------------------
    def encode(self, inp: torch.Tensor) -> torch.Tensor:
        """Latent map ``(B, C, h, w)`` of a normalised image ``(B, 3, h, w)``.

        The convolutions run in channels-last layout (oneDNN's fast layout on a CPU, and the
        one tensor cores want); the result is returned in the default layout."""
        return self.latent_from(self.encode_features(inp), inp)

    def encode_features(self, inp: torch.Tensor) -> torch.Tensor:
        """The encoder's output ``(B, C, h, w)`` alone (what a teacher with the same encoder
        sees: training shares it, :mod:`training.losses`)."""
        return self.encoder(inp.contiguous(memory_format=torch.channels_last)).contiguous()

    def latent_from(self, feat: torch.Tensor, inp: torch.Tensor) -> torch.Tensor:
        """The latent map from the encoder's output ``feat`` and the normalised input
        ``inp``: ``feat`` itself here; LMF with its skip appends the input colour."""
        return feat

    def code_features(self, feat: torch.Tensor, stride=(1, 1), padding: int = 0) -> torch.Tensor:
        """The code features ``(B, K, H', W')`` of the codes of ``feat (B, C, H, W)``.

        With ``padding = window_halo`` every code of ``feat`` gets its row (zeros outside);
        with ``padding = 0`` ``feat`` must carry a halo of :attr:`window_halo` codes and the
        output is ``window_halo`` smaller on each side; with ``stride = (3, 3)`` (unfolding)
        it evaluates codes whose 3x3 neighbourhoods were stacked side by side."""
        raise NotImplementedError

    def fold_cell(self, table: torch.Tensor, cell: Tuple[float, float]) -> torch.Tensor:
        """Fold a render-constant cell term into table rows ``(N, K)`` (or return them)."""
        return table

    def decode_points(self, g: torch.Tensor, rel: torch.Tensor,
                      cell_rel: Optional[torch.Tensor]) -> torch.Tensor:
        """RGB ``(B, Q, 3)`` from gathered code features ``g (B, Q, K)``, relative
        coordinates ``rel (B, Q, 2)`` and cells ``cell_rel (B, Q, 2)`` (relative units)."""
        raise NotImplementedError

    def decode_indexed(self, table: torch.Tensor, index: torch.Tensor, ry: List[torch.Tensor],
                       rx: List[torch.Tensor], cell: Tuple[float, float],
                       workspace: Callable[[int, int], Tuple[torch.Tensor, torch.Tensor]]
                       ) -> torch.Tensor:
        """The renderer's decoder: RGB ``(n*n*th*tw, 3)`` of a grid of output pixels.

        ``table (codes, K)`` holds the code features (one row per latent code the grid
        uses); ``index (n*n*th*tw,)`` the row of neighbour ``a*n + b`` of output pixel
        ``(r, c)``; ``ry[a] (th,)``, ``rx[b] (tw,)`` its relative coordinates; ``cell`` the
        output pixel size in source pixels. ``workspace(rows, width)`` returns two reusable
        ``(rows, width)`` buffers."""
        raise NotImplementedError

    def decode_grid(self, table: torch.Tensor, rbase: torch.Tensor, coff: torch.Tensor,
                    ry: torch.Tensor, rx: torch.Tensor, cell: Tuple[float, float]
                    ) -> Optional[torch.Tensor]:
        """A fused alternative to :meth:`decode_indexed` plus the ensemble blend: the blended
        RGB ``(th, tw, 3)`` of the grid, where neighbour ``(a, b)`` of output pixel ``(r, c)``
        reads table row ``rbase[a, r] + coff[b, c]`` (``rbase``, ``ry``: ``(n, th)``;
        ``coff``, ``rx``: ``(n, tw)``). None where the model has no such path (the renderer
        then uses :meth:`decode_indexed`)."""
        return None

    # ---- generic queries (training, evaluation) -------------------------------------------
    def query_pixels(self, codes: torch.Tensor, qy: torch.Tensor, qx: torch.Tensor,
                     cell_rel: Optional[torch.Tensor],
                     decode: Optional[Callable[..., torch.Tensor]] = None) -> torch.Tensor:
        """Predict normalised RGB at arbitrary points.

        Args:
            codes: code features ``(B, K, h, w)`` of the whole latent map
                (``code_features(feat, padding=window_halo)``).
            qy, qx: query coordinates ``(B, Q)`` in source pixels.
            cell_rel: ``(B, Q, 2)`` cell in relative units (``2 s``), (y, x) order.
            decode: the decoder of one ensemble member (default :meth:`decode_points`).
        Returns:
            ``(B, Q, 3)``.
        """
        bsz, k, h, w = codes.shape
        # one row per code, (B h w, K): a neighbour's features are then one contiguous row
        # each (index_select), not K strided reads (gather along the pixel axis), and the
        # gathered (B, Q, K) block is contiguous for the decoder's matrix products
        table = codes.permute(0, 2, 3, 1).reshape(bsz * h * w, k)
        base = torch.arange(bsz, device=qy.device).unsqueeze(1) * (h * w)
        offsets = (-1.0, 1.0) if self.local_ensemble else (0.0,)
        iy = [neighbour_index(qy, h, o, self.local_ensemble) for o in offsets]
        ix = [neighbour_index(qx, w, o, self.local_ensemble) for o in offsets]
        ry = [2.0 * (qy - (i.to(qy.dtype) + 0.5)) for i in iy]
        rx = [2.0 * (qx - (j.to(qx.dtype) + 0.5)) for j in ix]
        preds = []
        for a in range(len(offsets)):
            for b in range(len(offsets)):
                rows = (base + iy[a] * w + ix[b]).flatten()
                g = table.index_select(0, rows).view(bsz, -1, k)  # (B, Q, K)
                rel = torch.stack([ry[a], rx[b]], -1).to(g.dtype)
                preds.append((decode or self.decode_points)(g, rel, cell_rel))
        if not self.local_ensemble:
            return preds[0]
        weights = area_weights(ry, [r for r in rx])
        return sum(p * wgt.unsqueeze(-1).to(p.dtype) for p, wgt in zip(preds, weights))

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
        codes = self.code_features(feat, padding=self.window_halo)
        return self.query_pixels(codes, qy, qx, cell_rel)

    def forward(self, inp: torch.Tensor, coord: torch.Tensor,
                cell: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.query_rgb(self.encode(inp), coord, cell)
