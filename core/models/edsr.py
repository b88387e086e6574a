"""EDSR encoders (Lim et al., 2017) as LIIF uses them: no upsampler, so the output is a
latent map with the input's spatial size.

Layout and parameter names follow the official LIIF release so its state dicts load
unchanged: ``head.0``, ``body.{i}.body.{0,2}``, ``body.{n}``, plus the frozen mean-shift
convolutions ``sub_mean``/``add_mean``. As in LIIF, the mean shift is *not* applied in
``forward`` (inputs are already normalised to ``(x - 0.5) / 0.5``); the buffers exist only
for checkpoint compatibility.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from core.models.registry import register


class MeanShift(nn.Conv2d):
    """Frozen 1x1 conv subtracting (``sign=-1``) or adding the DIV2K RGB mean."""

    def __init__(self, rgb_range: float = 1.0, sign: int = -1,
                 rgb_mean=(0.4488, 0.4371, 0.4040)) -> None:
        super().__init__(3, 3, kernel_size=1)
        # Plain factories, no arithmetic: on the meta device (where checkpoints are checked
        # before anything is allocated) torch.eye or a product goes through torch's Python
        # references, which import torch._dynamo: a large part of every start-up.
        eye = [[1.0 if i == j else 0.0 for j in range(3)] for i in range(3)]
        self.weight.data = torch.tensor(eye).view(3, 3, 1, 1)
        self.bias.data = torch.tensor([sign * rgb_range * m for m in rgb_mean])
        for p in self.parameters():
            p.requires_grad = False


class ResBlock(nn.Module):
    """conv3x3 - ReLU - conv3x3, scaled by ``res_scale`` and added to the input."""

    def __init__(self, n_feats: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


class EDSR(nn.Module):
    """EDSR trunk without upsampler.

    Args:
        n_resblocks: number of residual blocks.
        n_feats: channels of the trunk, which is also the latent dimension ``out_dim``.
        res_scale: residual scaling (1 for the baseline, 0.1 for full EDSR).
        no_upsampling: must be True; kept as an argument so official specs load.
        scale, rgb_range: accepted for spec compatibility; unused without upsampler.

    ``receptive_radius`` is the number of 3x3 convolutions, i.e. how many pixels around a
    latent pixel can influence it; tiled encoding uses it as the halo.
    """

    def __init__(self, n_resblocks: int = 16, n_feats: int = 64, res_scale: float = 1.0,
                 scale: int = 2, no_upsampling: bool = True, rgb_range: float = 1.0) -> None:
        super().__init__()
        if not no_upsampling:
            raise ValueError("LIIF Zoom uses EDSR as an encoder: no_upsampling must be true")
        self.sub_mean = MeanShift(rgb_range, sign=-1)
        self.add_mean = MeanShift(rgb_range, sign=1)
        self.head = nn.Sequential(nn.Conv2d(3, n_feats, 3, padding=1))
        body = [ResBlock(n_feats, res_scale) for _ in range(n_resblocks)]
        body.append(nn.Conv2d(n_feats, n_feats, 3, padding=1))
        self.body = nn.Sequential(*body)
        self.out_dim = n_feats
        self.receptive_radius = 2 * n_resblocks + 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        return x + self.body(x)


@register("edsr-baseline")
def make_edsr_baseline(n_resblocks: int = 16, n_feats: int = 64, res_scale: float = 1.0,
                       scale: int = 2, no_upsampling: bool = True, rgb_range: float = 1.0) -> EDSR:
    """EDSR-baseline: 16 blocks of 64 channels (about 1.2 M multiply-adds per pixel)."""
    return EDSR(n_resblocks, n_feats, res_scale, scale, no_upsampling, rgb_range)


@register("edsr")
def make_edsr(n_resblocks: int = 32, n_feats: int = 256, res_scale: float = 0.1,
              scale: int = 2, no_upsampling: bool = True, rgb_range: float = 1.0) -> EDSR:
    """Full EDSR: 32 blocks of 256 channels."""
    return EDSR(n_resblocks, n_feats, res_scale, scale, no_upsampling, rgb_range)
