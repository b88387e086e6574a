"""The LIIF decoder f: a plain ReLU MLP (official names ``layers.{0,2,4,...}``)."""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn as nn

from core.models.registry import register


@register("mlp")
class MLP(nn.Module):
    """``in_dim -> hidden_list[0] -> ... -> hidden_list[-1] -> out_dim`` with ReLU between.

    The paper's decoder is ``hidden_list=[256, 256, 256, 256]``, ``out_dim=3``.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_list: Sequence[int]) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        last = in_dim
        for hidden in hidden_list:
            layers += [nn.Linear(last, hidden), nn.ReLU()]
            last = hidden
        layers.append(nn.Linear(last, out_dim))
        self.layers = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    @property
    def linears(self) -> List[nn.Linear]:
        return [m for m in self.layers if isinstance(m, nn.Linear)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape[:-1]
        return self.layers(x.reshape(-1, x.shape[-1])).view(*shape, -1)


def mlp_tail(lins: Sequence[nn.Linear], h1: torch.Tensor,
             spare: Optional[torch.Tensor] = None) -> torch.Tensor:
    """ReLU, then the linear layers ``lins`` (ReLU between) on pre-activations ``h1``.

    ``h1`` is overwritten. With ``spare`` (a buffer at least as large), the hidden layers
    write into ``spare`` and ``h1`` in turn instead of allocating (the renderer's hot path:
    fresh 32 MB activations cost as much as the products); without it, plain autograd-friendly
    ops (training)."""
    x = torch.relu_(h1)
    for i, lin in enumerate(lins):
        w = lin.weight.t()
        if i == len(lins) - 1:
            return torch.addmm(lin.bias, x, w)
        if spare is not None and w.shape[1] <= spare.shape[1]:
            out = spare[:, :w.shape[1]]
            torch.addmm(lin.bias.expand(x.shape[0], -1), x, w, out=out)
            spare, x = x, torch.relu_(out)
        else:
            x = torch.relu_(torch.addmm(lin.bias, x, w))
    return x
