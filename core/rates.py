r"""How long an export takes on this machine: three per-pixel costs, measured once per model.

An export of a region covering ``S`` source pixels at ``P`` output pixels, with ``E`` source
pixels still to encode, takes about

.. math::  t = E \, h \, c_{enc} + S \, c_{code} + P \, c_{px}

where ``c_enc`` is the encoder's cost per source pixel, ``c_code`` the per-code features' (LMF's
latent MLP, LIIF's first layer), paid once per latent code the region covers, ``c_px`` the
decoder's per output pixel (with the output's conversion and writing, which are small beside
it), and ``h >= 1`` the halo overhead of encoding in blocks: a block of ``b x 512`` latent
pixels is encoded from ``(b + 2R) x (512 + 2R)`` input pixels, ``R`` the encoder's receptive
radius (:mod:`core.render.encoding`).

The costs are measured, not assumed: machines differ by several times (AVX-512 with bfloat16
against AVX2 only, say). :func:`rates_for` times small images through the model once per model
and device profile, the first time an estimate is asked for (a second or two for the CPU
models, several for the paper model): encoding a ``192 x 256`` 8-bit image (twice, the faster
kept), and rendering a ``128 x 128`` crop of the bundled sample photo whole at 1x and at 3x
from fresh latents, whose difference separates ``c_px`` from ``c_code``. GPUs are not
measured (asynchronous launches make such short timings meaningless): no estimate there.
"""
from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from core.geometry import Region
from core.profile import DeviceProfile
from core.render.encoding import MAX_BLOCK
from core.render.renderer import render

__all__ = ["Rates", "rates_for", "export_seconds"]

#: the widest block :class:`core.render.encoding.LatentImage` encodes at once
BLOCK = MAX_BLOCK
#: the measurement: a ``SIDE x SIDE`` image, encoded, then rendered whole at these scales
SIDE, SCALES = 128, (1, 3)
#: the encoder's measurement: an 8-bit image of this size (as photos are), in one block
ENCODE_H, ENCODE_W = 192, 256


@dataclass(frozen=True)
class Rates:
    """Seconds per pixel: encoded (``encode``), covered by the region (``code``), output
    (``pixel``); ``radius``: the encoder's receptive radius, for the halo overhead."""

    encode: float
    code: float
    pixel: float
    radius: int

    def halo(self, block_rows: int) -> float:
        """The encoder's work per latent pixel when blocks of ``block_rows`` rows (and up to
        :data:`BLOCK` columns) are encoded at once, relative to one pass over the image."""
        r = 2 * self.radius
        return (block_rows + r) * (BLOCK + r) / (block_rows * BLOCK)


#: the measured rates of each model (by device and arithmetic), forgotten with the model
_cache: "weakref.WeakKeyDictionary[torch.nn.Module, Dict[Tuple[str, torch.dtype], Rates]]" = \
    weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _picture() -> np.ndarray:
    """A ``SIDE x SIDE`` float picture to render: a crop of the bundled sample photo (a
    decoder whose cost depends on the content, the edges model's, then costs what it costs on
    a photo, not on noise, where every pixel is an edge); noise if the sample cannot be read."""
    from PIL import Image

    from core.defaults import RESOURCES
    try:
        with Image.open(RESOURCES / "sample.png") as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255
        return np.ascontiguousarray(rgb[100:100 + SIDE, 200:200 + SIDE])
    except (OSError, ValueError):
        return np.random.default_rng(0).random((SIDE, SIDE, 3), dtype=np.float32)


def _measure(model: torch.nn.Module, profile: DeviceProfile) -> Rates:
    rng = np.random.default_rng(0)
    img = _picture()
    region = Region(0, 0, SIDE, SIDE)

    def fresh():
        lat = profile.encode(model, img, budget_bytes=None)
        lat.encode_all()
        return lat

    with torch.no_grad():
        for f in SCALES:  # warm: first calls, the native kernel's loading
            render(fresh(), Region(0, 0, 16, 16), 16 * f, 16 * f)
        photo = (rng.random((ENCODE_H, ENCODE_W, 3)) * 255).astype(np.uint8)
        t_enc = min(_timed(profile.encode(model, photo, budget_bytes=None).encode_all)
                    for _ in range(2)) / (ENCODE_H * ENCODE_W)
        times = {f: _timed(lambda lat=fresh(): render(lat, region, SIDE * f, SIDE * f))
                 for f in SCALES}
    lo, hi = SCALES
    pixel = max(0.0, (times[hi] - times[lo]) / (SIDE * SIDE * (hi * hi - lo * lo)))
    code = max(0.0, (times[lo] - pixel * SIDE * SIDE * lo * lo) / (SIDE * SIDE))
    return Rates(encode=t_enc, code=code, pixel=pixel,
                 radius=int(getattr(model, "receptive_radius", 0)))


def rates_for(model: Optional[torch.nn.Module], profile: DeviceProfile,
              measure: bool = True) -> Optional[Rates]:
    """``model``'s measured :class:`Rates` under ``profile``, kept for the model's life;
    measured now if not yet and ``measure`` (seconds: off the GUI thread), else None. None
    on a GPU or without a model."""
    if model is None or profile.device.type != "cpu":
        return None
    key = (str(profile.device), profile.compute_dtype)
    with _lock:
        kept = _cache.setdefault(model, {})
        if key not in kept and measure:
            kept[key] = _measure(model, profile)
        return kept.get(key)


def export_seconds(model: Optional[torch.nn.Module], profile: DeviceProfile, out_px: float,
                   region_px: float, encode_px: float = 0.0, block_rows: int = BLOCK,
                   measure: bool = True) -> Optional[float]:
    """About how long an export takes (the module's formula): ``out_px`` output pixels of a
    region covering ``region_px`` source pixels, of which ``encode_px`` are still to encode in
    blocks of ``block_rows`` rows. None where not measured (see :func:`rates_for`)."""
    r = rates_for(model, profile, measure)
    if r is None:
        return None
    return (encode_px * r.encode * r.halo(block_rows) + region_px * r.code
            + out_px * r.pixel)
