"""Kernel launches and host<->device copies of one 1080p view: a CPU-measurable proxy for
how the viewer's render path would drive a GPU.

    LIIF_ZOOM_KERNELS=0 python bench/render_launches.py [--checkpoint cpu|paper] [--zoom 4]

Renders a 1920x1080 view at ``--zoom`` as the viewer does (its tiles, each one call of
``core.render.renderer.render``, the latent already encoded), with the device policy of a GPU: the
viewer's tile side there and the renderer's chunks (``core.profile.GPU_VIEW_TILE`` and
``GPU_CHUNK``; before either existed every device used 256-px tiles and the CPU's 8192-query
chunks)
and without the CPU-only native kernel (``LIIF_ZOOM_KERNELS=0``: the eager path a GPU runs).
It counts:

* **launches**: top-level aten operators dispatched (``torch.profiler``) that compute
  something: on a GPU each is at least one kernel launch. Views and metadata (slice, select,
  view, permute, ...; ``to``/``contiguous``/``reshape`` when they copy nothing) launch none
  and are not counted;
* **copies**: ``Tensor.to(device)`` / ``.cpu()`` / ``.cuda()`` calls made by the renderer
  (counted by wrapping them): on a GPU each is a host<->device copy, and every device->host
  one waits for the GPU (a sync).

Prints one Markdown row.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


#: operators that only make a view or read metadata: no kernel on any device
VIEWS = {"aten::slice", "aten::select", "aten::unsqueeze", "aten::squeeze", "aten::view",
         "aten::alias", "aten::t", "aten::transpose", "aten::permute", "aten::unbind",
         "aten::detach", "aten::expand", "aten::as_strided", "aten::narrow", "aten::split",
         "aten::chunk", "aten::resolve_conj", "aten::resolve_neg", "aten::empty",
         "aten::empty_like", "aten::item", "aten::_local_scalar_dense", "aten::lift_fresh",
         "aten::numpy_T", "aten::result_type"}
#: operators that launch a kernel only when they copy (then they have a child operator)
MAYBE_COPY = {"aten::to", "aten::contiguous", "aten::reshape", "aten::flatten"}


def launches(events) -> int:
    n = 0
    for e in events:
        if e.cpu_parent is not None or not e.name.startswith("aten::") or e.name in VIEWS:
            continue
        if e.name in MAYBE_COPY and not any(c.name not in VIEWS for c in e.cpu_children):
            continue
        n += 1
    return n


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", default="cpu")
    p.add_argument("--zoom", type=float, default=4.0)
    p.add_argument("--tile", type=int, default=None, help="override the viewer's tile side")
    args = p.parse_args()
    import numpy as np
    import torch

    from core.checkpoints import load_model
    from core.geometry import Region
    from core.profile import GPU_CHUNK, GPU_VIEW_TILE
    from core.render.encoding import encode
    from core.render.renderer import render
    from core.zoo import resolve

    tile = GPU_VIEW_TILE  # the GPU's tiles and chunks, on this CPU
    torch.manual_seed(0)
    model = load_model(resolve(args.checkpoint), "cpu")[0]
    W, H, T, z = 1920, 1080, args.tile or tile, args.zoom
    src_w, src_h = int(W / z) + 8, int(H / z) + 8
    rgb = np.random.default_rng(0).random((src_h, src_w, 3), dtype=np.float32)
    latent = encode(model, rgb, torch.device("cpu"), chunk=GPU_CHUNK)
    view = Region(4, 4, W / z, H / z)

    def render_view():
        # the viewer's tiles: each a T x T output tile of the view, rendered in one call
        for r0 in range(0, H, T):
            for c0 in range(0, W, T):
                reg = Region(view.x + c0 / z, view.y + r0 / z, T / z, T / z)
                render(latent, reg, T, T)

    render_view()  # warm: latent tiles and code features cached, as for a view seen before
    copies = Counter()
    orig_to, orig_cpu = torch.Tensor.to, torch.Tensor.cpu

    def to(self, *a, **k):
        if any(isinstance(x, (torch.device, str)) for x in a) or "device" in k:
            copies["to(device)"] += 1
        return orig_to(self, *a, **k)

    def cpu(self, *a, **k):
        copies["cpu()"] += 1
        return orig_cpu(self, *a, **k)

    torch.Tensor.to, torch.Tensor.cpu = to, cpu
    try:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            render_view()
    finally:
        torch.Tensor.to, torch.Tensor.cpu = orig_to, orig_cpu
    tiles = ((W + T - 1) // T) * ((H + T - 1) // T)
    print(
        f"| {args.checkpoint} | {z:g}x | {T} | {tiles} | {launches(prof.events())} | "
        f"{copies['to(device)']} | "
        f"{copies['cpu()']} |"
    )


if __name__ == "__main__":
    main()
