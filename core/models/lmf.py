r"""LMF: a latent-modulated implicit function, LIIF's cheap-to-render sibling.

After He and Jin, "Latent Modulated Function for Computational Optimal Continuous Image
Representation" (CVPR 2024): move the heavy computation from every output pixel to every
latent code. Same coordinates, neighbours, relative coordinates, cells and area-weighted
ensemble as LIIF (:mod:`core.models.implicit`); only ``f`` changes::

    (s, t) = H(zhat_t)                      latent MLP, once per latent code
    h_0 = [2 (p - v_t), 2 s_cell]           (4 numbers; 2 without cell decoding)
    h_l = ReLU((W_l h_{l-1} + b_l) * s_l + t_l),   l = 1..L   (width d)
    f   = W_out h_L + b_out

``H`` is a ReLU MLP from the unfolded code (``9 C``) to ``2 L d`` modulations (a scale and
a shift per hidden unit of the render MLP; scales start at 1, shifts at 0), so the per-pixel
render MLP is tiny (``L`` layers of width ``d``, about ``4 (4 d + (L-1) d^2 + 3 d)`` multiply-adds
per output
pixel for the 4 ensemble members, 3.5 k for ``d = 16, L = 4``) while ``H`` costs
``9 C h_1 + ...`` once per latent code. As with LIIF's P map, the renderer evaluates ``H``
only on the latent codes a view touches (its first layer is a 3x3 convolution of the latent
map): the modulations are LMF's *code features*.

With ``skip`` (after LTE, Lee and Jin, CVPR 2022) the latent map also carries the input
colour of each code (3 channels appended by :meth:`LMF.encode`) and every ensemble member
adds the colour of its own code to ``f``. With the area weights, which are bilinear weights,
the blend of these four colours is the bilinear interpolation of the input, so the network
only learns the residual over it (nearest-neighbour without the ensemble). It trains
markedly faster on a short schedule; the renderer and the training forward handle it
identically (the colour is the last 3 columns of the per-code table).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from core import kernels
from core.models.implicit import LocalImplicit
from core.models.registry import register


@register("lmf")
class LMF(LocalImplicit):
    """Latent-modulated implicit function.

    Args:
        encoder_spec: encoder spec (no upsampler).
        hyper_hidden: hidden widths of the latent MLP ``H``.
        render_width: width ``d`` of the render MLP.
        render_layers: number ``L`` of modulated hidden layers.
        local_ensemble, feat_unfold, cell_decode: as in LIIF.
        skip: add the input colour of each code to its prediction (bilinear skip, above).
    """

    def __init__(self, encoder_spec: Dict[str, Any], hyper_hidden: Sequence[int] = (256,),
                 render_width: int = 16, render_layers: int = 4, local_ensemble: bool = True,
                 feat_unfold: bool = True, cell_decode: bool = True, skip: bool = False) -> None:
        super().__init__(encoder_spec, local_ensemble, feat_unfold, cell_decode)
        self.skip = bool(skip)
        c = self.encoder.out_dim + (3 if self.skip else 0)
        k = 3 if feat_unfold else 1
        d, L = int(render_width), int(render_layers)
        self.render_width, self.render_layers = d, L
        widths = [c] + list(hyper_hidden) + [2 * L * d]
        convs = [nn.Conv2d(widths[0], widths[1], k)]
        convs += [nn.Conv2d(widths[i], widths[i + 1], 1) for i in range(1, len(widths) - 1)]
        self.hyper = nn.ModuleList(convs)
        # start as an unmodulated MLP: scales 1, shifts 0
        nn.init.zeros_(self.hyper[-1].weight)
        with torch.no_grad():
            self.hyper[-1].bias.view(L, 2, d)[:, 0].fill_(1.0)
            self.hyper[-1].bias.view(L, 2, d)[:, 1].fill_(0.0)
        n_in = 4 if cell_decode else 2
        self.render_in = nn.Linear(n_in, d)
        self.render_hidden = nn.ModuleList([nn.Linear(d, d) for _ in range(L - 1)])
        self.render_out = nn.Linear(d, 3)

    # ---- latent side -------------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.encoder.out_dim + (3 if self.skip else 0)

    def latent_from(self, feat: torch.Tensor, inp: torch.Tensor) -> torch.Tensor:
        """See :meth:`LocalImplicit.latent_from`; with ``skip`` the input colour is appended
        as 3 channels."""
        # (under autocast feat is bfloat16; cat promotes, so the colours are never rounded)
        return torch.cat([feat, inp], 1) if self.skip else feat

    def code_features(self, feat: torch.Tensor, stride=(1, 1), padding: int = 0) -> torch.Tensor:
        """LMF's code features ``(B, 2 L d [+ 3], H', W')`` (see
        :meth:`LocalImplicit.code_features`): the modulations, then (with ``skip``) the code's
        own input colour."""
        feat = feat.contiguous(memory_format=torch.channels_last)
        x = F.conv2d(feat, self.hyper[0].weight, self.hyper[0].bias, stride=stride,
                     padding=padding)
        # The modulations themselves are always float32: under bfloat16 autocast (the fast
        # encoding, core.profile) only the first, largest layer runs in bfloat16; rounding
        # the scales to 8 bits moved single output pixels several times further
        # (docs/BENCHMARKS.md, "Interactive on two CPU cores").
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            for conv in self.hyper[1:]:
                x = conv(torch.relu(x))
        if not self.skip:
            return x
        # the centre of output o's window is input o * stride - padding + halo
        sy, sx = (stride, stride) if isinstance(stride, int) else stride
        start = self.window_halo - padding
        rgb = feat[:, -3:, start::sy, start::sx][:, :, :x.shape[2], :x.shape[3]]
        return torch.cat([x, rgb], 1)  # (promotes, as in encode)

    # ---- pixel side --------------------------------------------------------------------------
    def _modulated(self, x: torch.Tensor, mods: torch.Tensor) -> torch.Tensor:
        """Run the render MLP from first-layer pre-activations ``x (N, d)`` with modulations
        ``mods (N, 2 L d)``."""
        d = self.render_width
        layers = [None] + list(self.render_hidden)
        for l, lin in enumerate(layers):
            if lin is not None:
                x = lin(x)
            s = mods[:, 2 * l * d:(2 * l + 1) * d]
            t = mods[:, (2 * l + 1) * d:(2 * l + 2) * d]
            x = torch.relu_(torch.addcmul(t, x, s))
        return self.render_out(x)

    def decode_points(self, g: torch.Tensor, rel: torch.Tensor,
                      cell_rel: Optional[torch.Tensor]) -> torch.Tensor:
        inp = rel if not self.cell_decode else torch.cat([rel, cell_rel.to(rel.dtype)], -1)
        x = self.render_in(inp.reshape(-1, inp.shape[-1]))
        nm = 2 * self.render_layers * self.render_width
        out = self._modulated(x, g[..., :nm].reshape(-1, nm)).view(g.shape[0], -1, 3)
        return out + g[..., nm:] if self.skip else out

    def decode_grid(self, table: torch.Tensor, rbase: torch.Tensor, coff: torch.Tensor,
                    ry: torch.Tensor, rx: torch.Tensor, cell: Tuple[float, float]
                    ) -> Optional[torch.Tensor]:
        """See :meth:`LocalImplicit.decode_grid`: the native fused kernel
        (:mod:`core.kernels`) on a CPU, where it can be built; None elsewhere."""
        if table.device.type != "cpu" or table.dtype != torch.float32:
            return None
        fn = kernels.lmf_grid(self.render_width)
        if fn is None:
            return None
        w, bias = self.render_in.weight.detach(), self.render_in.bias.detach()
        cst = bias
        if self.cell_decode:
            cst = bias + (2.0 * cell[0]) * w[:, 2] + (2.0 * cell[1]) * w[:, 3]
        hidden = list(self.render_hidden)
        d = self.render_width
        wht = (torch.stack([l.weight.detach().t() for l in hidden]) if hidden
               else torch.empty(0, d, d))
        bh = torch.stack([l.bias.detach() for l in hidden]) if hidden else torch.empty(0, d)
        return kernels.run_lmf_grid(
            fn, table.contiguous(), self.render_layers, self.skip, rbase.contiguous(),
            coff.contiguous(), ry.float().contiguous(), rx.float().contiguous(),
            w[:, :2].t().contiguous(), cst.contiguous(), wht.contiguous(), bh.contiguous(),
            self.render_out.weight.detach().contiguous(),
            self.render_out.bias.detach().contiguous())

    def decode_indexed(self, table: torch.Tensor, index: torch.Tensor, ry: List[torch.Tensor],
                       rx: List[torch.Tensor], cell: Tuple[float, float],
                       workspace: Callable[[int, int], Tuple[torch.Tensor, torch.Tensor]]
                       ) -> torch.Tensor:
        """See :meth:`LocalImplicit.decode_indexed`; ``table`` holds the modulations.

        The modulations are gathered layer by layer (a scale and a shift of ``d`` floats per
        pixel, just before they are used) rather than all ``2 L d`` at once: the working
        set of a layer stays in cache and every operand is contiguous."""
        d, L = self.render_width, self.render_layers
        n, th, tw = len(ry), len(ry[0]), len(rx[0])
        m = index.numel()
        mods = table[:, :2 * L * d].reshape(-1, L, 2, d).permute(1, 2, 0, 3).contiguous()
        # mods: (L, 2, codes, d)
        a, b = workspace(2 * m, d)
        x, s = a[:m], a[m:]
        y, t = b[:m], b[m:]
        w, bias = self.render_in.weight, self.render_in.bias
        const = bias
        if self.cell_decode:
            const = bias + (2.0 * cell[0]) * w[:, 2] + (2.0 * cell[1]) * w[:, 3]
        xg = x.view(n * n, th, tw, d)
        for i in range(n):
            rterm = ry[i][:, None, None] * w[:, 0] + const
            for j in range(n):
                torch.add(rterm, rx[j][None, :, None] * w[:, 1], out=xg[i * n + j])
        for l in range(L):
            if l > 0:
                lin = self.render_hidden[l - 1]
                torch.addmm(lin.bias, x, lin.weight.t(), out=y)
                x, y = y, x
            torch.index_select(mods[l, 0], 0, index, out=s)
            torch.index_select(mods[l, 1], 0, index, out=t)
            torch.relu_(torch.addcmul(t, x, s, out=x))
        out = torch.addmm(self.render_out.bias, x, self.render_out.weight.t())
        if self.skip:
            # (a contiguous copy first: index_select from a column slice is several times slower)
            out += torch.index_select(table[:, 2 * L * d:].contiguous(), 0, index)
        return out
