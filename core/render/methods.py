"""The render methods, in one table: how a region of an image is rendered by each.

Every front door that renders a method goes through :func:`render_by`: the viewer's render
scheduler (tiles), its ground-truth metrics, and :func:`core.export.export` (so the export
dialog and ``core.upscale`` offer the same methods the panes show).

========  =====================================================  ===============
method    what                                                   needs
========  =====================================================  ===============
liif      the model in use, queried at every output pixel        its latent
compare   a second model (any bundled or loaded one)             its latent
bicubic   Keys' cubic (a = -0.5), antialiased when shrinking      the image
nearest   the source pixel under each output pixel's centre      the image
========  =====================================================  ===============

All sample the same output-pixel centres (:meth:`core.geometry.Region.sample_points`), so
their outputs align pixel for pixel; outside the image the border is continued.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable, Dict, Mapping, Optional

import numpy as np

from core.geometry import Box, Region
from core.io.imageio import LoadedImage
from core.render.renderer import render
from core.render.resample import render_bicubic, render_nearest

Window = Optional[Box]  # (c0, r0, c1, r1) of the output grid (None: all of it)


class Method(str, Enum):
    """How a tile is made. ``LIIF`` is the model in use, ``COMPARE`` a second model shown
    beside it (any bundled or loaded model); ``ENCODE``/``ENCODE_COMPARE`` are not drawn:
    their jobs encode the latent tiles of the one or the other."""

    LIIF = "liif"
    COMPARE = "compare"
    BICUBIC = "bicubic"
    NEAREST = "nearest"
    ENCODE = "encode"
    ENCODE_COMPARE = "encode-compare"

    @property
    def label(self) -> str:
        """The method's name for people (a model method's pane says its model's name)."""
        return {"liif": "LIIF", "compare": "second model", "bicubic": "bicubic",
                "nearest": "nearest", "encode": "encoding",
                "encode-compare": "encoding (second model)"}[self.value]

    @property
    def is_model(self) -> bool:
        """Rendered by a model from its latent (two passes, a preview under it)."""
        return self in (Method.LIIF, Method.COMPARE)

    def __str__(self) -> str:
        return self.value

    __hash__ = str.__hash__  # hash like the plain string it equals (Enum hashes the name)


@dataclass(frozen=True)
class RenderMethod:
    name: Method
    model: bool         #: rendered from a latent (the one of the same name)
    fn: Callable[..., np.ndarray]


def _model(image, latent, region, w, h, window, cancelled):
    return render(latent, region, w, h, window=window, cancelled=cancelled)


def _bicubic(image, latent, region, w, h, window, cancelled):
    return render_bicubic(image.pixels, region, w, h, window)


def _nearest(image, latent, region, w, h, window, cancelled):
    return render_nearest(image.pixels, region, w, h, window)


METHODS: Dict[str, RenderMethod] = {m.name: m for m in (
    RenderMethod(Method.LIIF, True, _model),
    RenderMethod(Method.COMPARE, True, _model),
    RenderMethod(Method.BICUBIC, False, _bicubic),
    RenderMethod(Method.NEAREST, False, _nearest),
)}


def render_by(method: str, image: LoadedImage, region: Region, out_w: int, out_h: int,
              latents: Optional[Mapping[str, object]] = None, window: Window = None,
              cancelled: Optional[Callable[[], bool]] = None, clip: bool = True) -> np.ndarray:
    """RGB ``(out_h, out_w, 3)`` float32 of ``region`` of ``image`` by ``method`` (or only the
    output ``window = (c0, r0, c1, r1)``); ``latents`` maps the model methods to their
    latents. Clamped to [0, 1] unless ``clip`` is False (the caller quantises anyway)."""
    spec = METHODS.get(str(method))
    if spec is None:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    latent = (latents or {}).get(spec.name)
    if spec.model and latent is None:
        raise ValueError(f"method {spec.name!r} needs a model's latent")
    rgb = spec.fn(image, latent, region, out_w, out_h, window, cancelled)
    return np.clip(rgb, 0, 1) if clip else rgb
