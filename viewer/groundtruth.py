"""Ground truth: how close each pane's method comes to a higher-resolution reference of the
open image, over the part of the image on screen. No Qt.

The reference (File → Open Reference in the viewer) is the same picture at ``s`` times the
open image's size (for example the original the user downscaled). For the visible region the
comparison is made at the reference's resolution: the region is snapped outwards to whole
reference pixels, each method renders it at exactly that size (so its output pixels sample
the centres of the reference's pixels, :mod:`core.geometry`), and PSNR (RGB, no shave) and SSIM
(Y channel) come from :mod:`core.metrics`, the evaluation's code. A view larger than
``max_pixels`` at the reference's resolution is compared over its central ``max_pixels``.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from core.geometry import Box, Region
from core.io.imageio import LoadedImage
from core.io.pixels import to_float
from core.metrics import psnr, ssim
from core.render.methods import METHODS, render_by

#: methods a pane can show and how to render them: ``fn(region, w, h) -> (h, w, 3)``
Renderer = Callable[[Region, int, int], np.ndarray]


def reference_scale(image: LoadedImage, reference: LoadedImage) -> float:
    """``s`` with ``reference = s x image`` (per axis within 1 %), or ValueError."""
    return size_scale(image, reference.width, reference.height)


def size_scale(image: LoadedImage, ref_w: int, ref_h: int) -> float:
    """:func:`reference_scale` from a reference's size alone (its header: checked before
    anything is decoded)."""
    sx, sy = ref_w / image.width, ref_h / image.height
    if abs(sx - sy) > 0.01 * max(sx, sy) or min(sx, sy) < 1.0:
        raise ValueError(f"the reference is {ref_w}x{ref_h}; it must be "
                         f"the open {image.width}x{image.height} image at a larger size, with "
                         f"the same aspect ratio")
    return (sx + sy) / 2


def comparison_window(region: Region, image: LoadedImage, reference: LoadedImage,
                      max_pixels: int = 1 << 20) -> Optional[Box]:
    """The box of reference pixels to compare for a view of ``region``: the region
    inside the image, snapped outwards to whole reference pixels, cut to its central
    ``max_pixels``; None if too small for SSIM (under 11 pixels a side)."""
    s = reference_scale(image, reference)
    x0 = max(0, math.floor(region.x * s))
    y0 = max(0, math.floor(region.y * s))
    x1 = min(reference.width, math.ceil((region.x + region.w) * s))
    y1 = min(reference.height, math.ceil((region.y + region.h) * s))
    w, h = x1 - x0, y1 - y0
    if w * h > max_pixels:
        f = math.sqrt(max_pixels / (w * h))
        nw, nh = max(11, int(w * f)), max(11, int(h * f))
        x0, y0 = x0 + (w - nw) // 2, y0 + (h - nh) // 2
        x1, y1, w, h = x0 + nw, y0 + nh, nw, nh
    if w < 11 or h < 11:
        return None
    return Box(x0, y0, x1, y1)


def visible_metrics(image: LoadedImage, reference: LoadedImage, region: Region,
                    renderers: Dict[str, Renderer], max_pixels: int = 1 << 20,
                    cancelled: Callable[[], bool] = lambda: False
                    ) -> Dict[str, Tuple[float, float]]:
    """``{method: (PSNR dB, SSIM)}`` of each renderer against the reference over the
    comparison window of ``region`` (see the module docstring); empty if none."""
    win = comparison_window(region, image, reference, max_pixels)
    if win is None:
        return {}
    x0, y0, x1, y1 = win
    s = reference_scale(image, reference)
    src = Region(x0 / s, y0 / s, (x1 - x0) / s, (y1 - y0) / s)
    gt = to_float(reference.pixels[y0:y1, x0:x1])
    out = {}
    for method, fn in renderers.items():
        if cancelled():
            return {}
        pred = np.clip(fn(src, x1 - x0, y1 - y0), 0, 1)  # as the evaluation: no quantisation
        out[method] = (psnr(pred, gt), ssim(pred, gt))
    return out


def renderers_for(image: LoadedImage, latents: Dict[str, object],
                  cancelled: Optional[Callable[[], bool]] = None) -> Dict[str, Renderer]:
    """Renderers of the pane methods (:data:`core.render.methods.METHODS`): ``latents`` maps the
    model methods ('liif', 'compare') to their latents; a model without one is left out. A
    model's render raises :class:`core.render.encoding.Cancelled` soon after ``cancelled()`` turns
    true."""
    def by(method):
        return lambda r, w, h: render_by(method, image, r, w, h, latents, cancelled=cancelled)

    return {m: by(m) for m, spec in METHODS.items()
            if not spec.model or latents.get(m) is not None}
