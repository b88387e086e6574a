"""RDN encoder (Zhang et al., 2018) without upsampler, as in LIIF.

Parameter names follow the official LIIF release (``SFENet1``, ``SFENet2``,
``RDBs.{i}.convs.{j}.conv.0``, ``RDBs.{i}.LFF``, ``GFF.{0,1}``).
Configuration B (the paper's): 16 residual dense blocks, 8 conv layers each, growth 64.
"""
from __future__ import annotations

from typing import List

import torch
import torch.nn as nn

from core.models.registry import register


class RDBConv(nn.Module):
    """conv3x3 + ReLU whose output is concatenated to its input (dense connection)."""

    def __init__(self, in_channels: int, growth: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, growth, 3, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.conv(x)), 1)


class RDB(nn.Module):
    """Residual dense block: C dense convs, 1x1 local feature fusion, residual add."""

    def __init__(self, g0: int, growth: int, n_layers: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(*[RDBConv(g0 + c * growth, growth) for c in range(n_layers)])
        self.LFF = nn.Conv2d(g0 + n_layers * growth, g0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LFF(self.convs(x)) + x


class RDN(nn.Module):
    """Residual dense network trunk.

    Args:
        G0: channels between blocks, also the latent dimension ``out_dim``.
        RDNkSize: kernel size (3).
        RDNconfig: 'A' (20 blocks, 6 layers, growth 32) or 'B' (16, 8, 64).
        scale, no_upsampling: spec compatibility; no_upsampling must be true.
    """

    CONFIGS = {"A": (20, 6, 32), "B": (16, 8, 64)}

    def __init__(self, G0: int = 64, RDNkSize: int = 3, RDNconfig: str = "B",
                 scale: int = 2, no_upsampling: bool = True) -> None:
        super().__init__()
        if not no_upsampling:
            raise ValueError("LIIF Zoom uses RDN as an encoder: no_upsampling must be true")
        if RDNkSize != 3:
            raise ValueError("only RDNkSize=3 is supported")
        self.D, n_layers, growth = self.CONFIGS[RDNconfig]
        self.SFENet1 = nn.Conv2d(3, G0, 3, padding=1)
        self.SFENet2 = nn.Conv2d(G0, G0, 3, padding=1)
        self.RDBs = nn.ModuleList([RDB(G0, growth, n_layers) for _ in range(self.D)])
        self.GFF = nn.Sequential(nn.Conv2d(self.D * G0, G0, 1), nn.Conv2d(G0, G0, 3, padding=1))
        self.out_dim = G0
        self.receptive_radius = 2 + self.D * n_layers + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1 = self.SFENet1(x)
        x = self.SFENet2(f1)
        outs: List[torch.Tensor] = []
        for block in self.RDBs:
            x = block(x)
            outs.append(x)
        return self.GFF(torch.cat(outs, 1)) + f1


@register("rdn")
def make_rdn(G0: int = 64, RDNkSize: int = 3, RDNconfig: str = "B",
             scale: int = 2, no_upsampling: bool = True) -> RDN:
    return RDN(G0, RDNkSize, RDNconfig, scale, no_upsampling)
