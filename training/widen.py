r"""Widen a trained LMF decoder without changing what it computes (a Net2Net-style warm start).

LMF's render MLP (:mod:`core.models.lmf`) has ``L`` modulated hidden layers of width ``d``::

    h_l = ReLU((W_l h_{l-1} + b_l) * s_l + t_l),   f = W_out h_L + b_out

where ``(s, t)`` come from the last layer of the latent MLP ``H`` (channels laid out as
``(L, 2, d)``: scales then shifts per layer). To go to width ``D > d`` every new unit ``j``
copies old unit ``g(j) = j mod d``: its incoming weights and bias (``render_in``, the rows of
``W_l``) and its scale and shift rows of ``H``'s last layer. A copied unit then has exactly the
activation of its original, so the layer above keeps its output if the outgoing weights of the
copies of unit ``i`` sum to the old weight: copy ``k`` of unit ``i`` gets ``a_k W[:, i]`` with
random positive ``a_k`` summing to 1. The random split breaks the copies' symmetry (they get
different gradients), while the function stays the same up to float rounding.

:func:`deepen_lmf` does the same for the latent MLP's depth (identity layers). Both are used
through a training config's ``init`` section (``widen: true``, ``deepen: true``; see
:func:`training.train.init_from`).
"""
from __future__ import annotations

from typing import Dict, Sequence

import torch

__all__ = ["deepen_lmf", "lmf_width", "widen_lmf"]


def lmf_width(sd: Dict[str, torch.Tensor]) -> int:
    """The render width ``d`` of an LMF state dict."""
    if "render_in.weight" not in sd:
        raise ValueError("not an LMF model: it has no render_in.weight")
    return int(sd["render_in.weight"].shape[0])


def _hyper_last(sd: Dict[str, torch.Tensor]) -> str:
    layers = sorted({int(k.split(".")[1]) for k in sd if k.startswith("hyper.")})
    if not layers:
        raise ValueError("not an LMF model: it has no latent MLP (hyper.*)")
    return f"hyper.{layers[-1]}"


def widen_lmf(sd: Dict[str, torch.Tensor], width: int, seed: int = 0) -> Dict[str, torch.Tensor]:
    """A copy of LMF state dict ``sd`` with render width ``width`` computing the same function.

    Tensors outside the render MLP and ``H``'s last layer are passed through unchanged."""
    d = lmf_width(sd)
    if width < d:
        raise ValueError(f"cannot narrow an LMF decoder from width {d} to {width}")
    out = dict(sd)
    if width == d:
        return out
    g = torch.arange(width) % d                          # the old unit each new unit copies
    gen = torch.Generator().manual_seed(seed)
    # split weights a_k > 0 with sum 1 over the copies of each old unit
    raw = 0.5 + torch.rand(width, generator=gen, dtype=torch.float64)
    total = torch.zeros(d, dtype=torch.float64).index_add_(0, g, raw)
    share = (raw / total[g])

    def rows(t: torch.Tensor) -> torch.Tensor:           # incoming side: copy rows
        return t[g].clone()

    def cols(t: torch.Tensor) -> torch.Tensor:           # outgoing side: split columns
        return (t[:, g].to(torch.float64) * share).to(t.dtype)

    out["render_in.weight"] = rows(sd["render_in.weight"])
    out["render_in.bias"] = rows(sd["render_in.bias"])
    hidden = sorted({int(k.split(".")[1]) for k in sd if k.startswith("render_hidden.")})
    for i in hidden:
        w = sd[f"render_hidden.{i}.weight"]
        out[f"render_hidden.{i}.weight"] = cols(w)[g].clone()
        out[f"render_hidden.{i}.bias"] = rows(sd[f"render_hidden.{i}.bias"])
    out["render_out.weight"] = cols(sd["render_out.weight"])
    layers = len(hidden) + 1
    last = _hyper_last(sd)
    w, b = sd[f"{last}.weight"], sd[f"{last}.bias"]
    if w.shape[0] != 2 * layers * d:
        raise ValueError(f"{last} has {w.shape[0]} outputs; {2 * layers} x {d} expected")
    out[f"{last}.weight"] = w.view(layers, 2, d, *w.shape[1:])[:, :, g].reshape(
        2 * layers * width, *w.shape[1:]).clone()
    out[f"{last}.bias"] = b.view(layers, 2, d)[:, :, g].reshape(-1).clone()
    return out


def deepen_lmf(sd: Dict[str, torch.Tensor], hidden: Sequence[int]) -> Dict[str, torch.Tensor]:
    r"""A copy of LMF state dict ``sd`` whose latent MLP ``H`` has the hidden widths ``hidden``
    and computes the same function.

    ``H`` is a chain of convolutions with a ReLU before every one but the first
    (``x_{i+1} = C_{i+1}(ReLU(x_i))``). A new 1x1 layer ``C`` with identity weights and zero
    bias, inserted before the last layer, gives ``C(ReLU(x)) = ReLU(x)`` and, since
    ``ReLU(ReLU(x)) = ReLU(x)``, the layer after it sees what it saw before. So ``hidden`` must
    be the source's hidden widths followed by copies of its last one (``[256] -> [256, 256]``).
    The new layers start on a ridge of the loss, not a dead end: every gradient flows through
    the identity."""
    last = _hyper_last(sd)
    n_old = int(last.split(".")[1])                       # source hidden layers
    widths = [int(sd[f"hyper.{i}.weight"].shape[0]) for i in range(n_old)]
    hidden = [int(h) for h in hidden]
    if hidden[:n_old] != widths or any(h != widths[-1] for h in hidden[n_old:]) or not widths:
        raise ValueError(f"cannot deepen a latent MLP with hidden widths {widths} to {hidden}: "
                         f"append copies of its last width")
    out = {k: v for k, v in sd.items() if not k.startswith(last + ".")}
    w = widths[-1]
    dtype = sd[f"{last}.weight"].dtype
    for i in range(n_old, len(hidden)):
        out[f"hyper.{i}.weight"] = torch.eye(w, dtype=dtype).view(w, w, 1, 1)
        out[f"hyper.{i}.bias"] = torch.zeros(w, dtype=dtype)
    out[f"hyper.{len(hidden)}.weight"] = sd[f"{last}.weight"].clone()
    out[f"hyper.{len(hidden)}.bias"] = sd[f"{last}.bias"].clone()
    return out
