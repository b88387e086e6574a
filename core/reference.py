"""Slow but obvious evaluations of LIIF, kept as test oracles and benchmark baselines.

* :func:`render_naive` is written straight from the paper's formula: for each query and
  each of its (up to) 4 neighbouring codes, look the code up by nearest index, concatenate its
  3x3 neighbourhood, the relative coordinate and the cell, run the MLP, and blend with the
  swapped area weights. Nothing is folded or factored.
* :func:`query_official_style` follows the official release's ``query_rgb``: unfold the whole
  latent map, then ``grid_sample`` (nearest) features and code coordinates in normalised
  coordinates, per call, in batches of queries. It is what "the official code" computes and
  the baseline the fast renderer is measured against.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from core.geometry import Region
from core.models.implicit import EPS_SHIFT


@torch.no_grad()
def render_naive(model, feat: torch.Tensor, region: Region, out_w: int, out_h: int) -> torch.Tensor:
    """Oracle render of ``region`` at ``out_w x out_h`` from the full latent ``feat (C, h, w)``.

    Returns normalised RGB ``(out_h, out_w, 3)`` (not clamped), on ``feat``'s device: every
    coordinate and index is made there, so the oracle runs on a GPU as on the CPU. LIIF and
    LMF only (the edges model is checked against those two: tests/test_edges.py)."""
    from core.models import LIIF, LMF
    if type(model) not in (LIIF, LMF):
        raise TypeError(f"render_naive: the formula of LIIF and LMF, not {type(model).__name__}")
    c, h, w = feat.shape
    dev = feat.device
    ys, xs = (t.to(dev) for t in region.sample_points(out_w, out_h, inside=(w, h)))
    qy = ys[:, None].expand(out_h, out_w).reshape(-1)
    qx = xs[None, :].expand(out_h, out_w).reshape(-1)
    cy, cx = region.cell(out_w, out_h)
    padded = F.pad(feat, (1, 1, 1, 1))  # zero outside the map
    if model.local_ensemble:
        shifts = [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    else:
        shifts = [(0, 0)]
    preds, areas = [], []
    for sy, sx in shifts:
        if model.local_ensemble:
            py = qy + sy * 0.5 + EPS_SHIFT * h / 2
            px = qx + sx * 0.5 + EPS_SHIFT * w / 2
        else:
            py, px = qy, qx
        iy = torch.floor(py).long().clamp(0, h - 1)  # nearest code
        ix = torch.floor(px).long().clamp(0, w - 1)
        if model.feat_unfold:
            parts = [padded[:, iy + 1 + dy, ix + 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
            z = torch.stack(parts, 1).reshape(c * 9, -1).t()  # channel-major, as F.unfold
        else:
            z = feat[:, iy, ix].t()
        rel_y = 2.0 * (qy - (iy.double() + 0.5))
        rel_x = 2.0 * (qx - (ix.double() + 0.5))
        inp = [z, torch.stack([rel_y, rel_x], 1).float()]
        if model.cell_decode:
            inp.append(torch.tensor([[2.0 * cy, 2.0 * cx]], device=dev).expand(len(qy), 2))
        if hasattr(model, "hyper"):
            pred = _lmf_point(model, inp[0], torch.cat(inp[1:], 1))
            if model.skip:  # the code's own input colour: the latent's last 3 channels
                pred = pred + feat[-3:, iy, ix].t()
            preds.append(pred)
        else:
            preds.append(model.imnet(torch.cat(inp, 1)))
        areas.append((rel_y * rel_x).abs().float() + 1e-9)
    if not model.local_ensemble:
        return preds[0].view(out_h, out_w, 3)
    total = areas[0] + areas[1] + areas[2] + areas[3]
    out = sum(p * (areas[3 - t] / total)[:, None] for t, p in enumerate(preds))
    return out.view(out_h, out_w, 3)


def _lmf_point(model, zhat: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """The LMF formula for one batch of queries: latent MLP on ``zhat``, then the modulated
    render MLP on ``coords`` = [relative coordinate, cell]."""
    x = zhat
    for i, conv in enumerate(model.hyper):
        if i:
            x = torch.relu(x)
        x = x @ conv.weight.reshape(conv.weight.shape[0], -1).t() + conv.bias
    mods, d = x, model.render_width
    h = coords
    for l, lin in enumerate([model.render_in] + list(model.render_hidden)):
        s, t = mods[:, 2 * l * d:(2 * l + 1) * d], mods[:, (2 * l + 1) * d:(2 * l + 2) * d]
        h = torch.relu(lin(h) * s + t)
    return model.render_out(h)


def make_coord(shape, flatten: bool = True) -> torch.Tensor:
    """Normalised pixel-centre coordinates of a ``(h, w)`` grid, ``(y, x)`` order, in (-1, 1)."""
    seqs = [-1 + (2 * torch.arange(n).float() + 1) / n for n in shape]
    ret = torch.stack(torch.meshgrid(*seqs, indexing="ij"), dim=-1)
    return ret.view(-1, 2) if flatten else ret


@torch.no_grad()
def query_official_style(model, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor,
                         bsize: int = 30000) -> torch.Tensor:
    """The official ``query_rgb`` algorithm over query batches of ``bsize``.

    ``feat (1, C, h, w)``; ``coord``/``cell`` ``(1, Q, 2)`` normalised (y, x). Returns
    ``(1, Q, 3)`` normalised RGB."""
    out = []
    for q0 in range(0, coord.shape[1], bsize):
        out.append(_official_query(model, feat, coord[:, q0:q0 + bsize], cell[:, q0:q0 + bsize]))
    return torch.cat(out, 1)


def _official_query(model, feat, coord, cell):
    if model.feat_unfold:
        feat = F.unfold(feat, 3, padding=1).view(feat.shape[0], feat.shape[1] * 9, *feat.shape[2:])
    if model.local_ensemble:
        vs, eps = [-1, 1], 1e-6
    else:
        vs, eps = [0], 0.0
    rx, ry = 1 / feat.shape[-2], 1 / feat.shape[-1]
    fcoord = make_coord(feat.shape[-2:], flatten=False).to(feat.device) \
        .permute(2, 0, 1).unsqueeze(0).expand(feat.shape[0], 2, *feat.shape[-2:])
    preds, areas = [], []
    for vx in vs:
        for vy in vs:
            c_ = coord.clone()
            c_[:, :, 0] += vx * rx + eps
            c_[:, :, 1] += vy * ry + eps
            c_.clamp_(-1 + 1e-6, 1 - 1e-6)
            grid = c_.flip(-1).unsqueeze(1)
            q_feat = F.grid_sample(feat, grid, mode="nearest", align_corners=False)[:, :, 0, :] \
                .permute(0, 2, 1)
            q_coord = F.grid_sample(fcoord, grid, mode="nearest", align_corners=False)[:, :, 0, :] \
                .permute(0, 2, 1)
            rel = coord - q_coord
            rel[:, :, 0] *= feat.shape[-2]
            rel[:, :, 1] *= feat.shape[-1]
            inp = torch.cat([q_feat, rel], -1)
            if model.cell_decode:
                rc = cell.clone()
                rc[:, :, 0] *= feat.shape[-2]
                rc[:, :, 1] *= feat.shape[-1]
                inp = torch.cat([inp, rc], -1)
            bs, q = coord.shape[:2]
            preds.append(model.imnet(inp.view(bs * q, -1)).view(bs, q, -1))
            areas.append(torch.abs(rel[:, :, 0] * rel[:, :, 1]) + 1e-9)
    tot = torch.stack(areas).sum(0)
    if model.local_ensemble:
        areas = [areas[3], areas[2], areas[1], areas[0]]
    return sum(p * (a / tot).unsqueeze(-1) for p, a in zip(preds, areas))
