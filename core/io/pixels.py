"""Pixel arrays as decoded, and their conversion a window at a time.

A decoded image keeps the source's own integers (``uint8`` for 8-bit sources, ``uint16`` for
16-bit ones: 3 or 6 bytes a pixel) rather than float32 (12 bytes a pixel): a 60-Mpx photo is
then 180 MB instead of 720 MB. Whoever needs floats converts only the window it reads
(:func:`to_float`), so no float copy of the whole image is ever made by the renderers, the
encoder or the CLI.

Values map to [0, 1] by ``v / 255`` (uint8) and ``v / 65535`` (uint16); float arrays are taken
as already in [0, 1].
"""
from __future__ import annotations

import numpy as np

__all__ = ["to_float", "to_u8", "SCALE"]

#: the integer that stands for 1.0 in each stored dtype
SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def to_float(a: np.ndarray) -> np.ndarray:
    """``a`` (uint8, uint16 or float) as contiguous float32 in [0, 1] (float input is
    returned as float32, unscaled; a contiguous float32 array is returned as it is)."""
    scale = SCALE.get(a.dtype)
    if scale is None:
        return np.ascontiguousarray(a, dtype=np.float32)
    out = np.empty(a.shape, np.float32)
    np.divide(a, np.float32(scale), out=out, dtype=np.float32)  # as a / 255.0 in float32
    return out


def to_u8(a: np.ndarray) -> np.ndarray:
    """``a`` as contiguous uint8 (uint8 as it is; uint16 and float rounded to the nearest of
    the 256 levels, float clipped to [0, 1])."""
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype == np.uint16:
        return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)
