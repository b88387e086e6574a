"""What the panes draw before any render (the source in the display's colours, and where it
is transparent) and the open image's folder (its images, in the order ←/→ walk them): plain
functions, no window."""
from __future__ import annotations

import os
from typing import List, Optional

import numpy as np
from PySide6 import QtGui

from core.io.colour import ToSRGB
from core.io.formats import READ_EXTS
from core.io.imageio import LoadedImage
from core.io.pixels import to_u8


def display_pixels(image: LoadedImage) -> np.ndarray:
    """The whole image as uint8 RGB in the display's colours (sRGB; see
    :mod:`core.io.colour`), for the panes' instant fallback."""
    arr = to_u8(image.pixels)
    conv = ToSRGB.for_profile(image.meta.icc)
    return arr if conv is None else conv(arr)


def transparency_mask(image: LoadedImage) -> Optional[QtGui.QImage]:
    """``1 - alpha`` of an image with transparency as an 8-bit alpha QImage (its own copy of
    the pixels), for the panes' checkerboard; None for an opaque image."""
    if image.alpha is None or float(image.alpha.min()) >= 1.0:
        return None
    a = np.ascontiguousarray(np.round((1.0 - np.clip(image.alpha, 0, 1)) * 255).astype(np.uint8))
    q = QtGui.QImage(a.data, a.shape[1], a.shape[0], a.shape[1],
                     QtGui.QImage.Format.Format_Alpha8)
    return q.copy()  # (owns its pixels: a is freed on return)


def folder_images(path: str) -> List[str]:
    """The readable images in ``path``'s folder, sorted by name (case-insensitively)."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        names = sorted(os.listdir(folder), key=str.lower)
    except OSError:
        return []
    return [os.path.join(folder, n) for n in names
            if os.path.splitext(n)[1].lower() in READ_EXTS
            and os.path.isfile(os.path.join(folder, n))]


def neighbours(path: str, step: int) -> List[str]:
    """The other images of ``path``'s folder in the order ``step`` (1: next, -1: previous)
    walks them from ``path``, wrapping around."""
    files = folder_images(path)
    here = os.path.abspath(path)
    k = files.index(here) if here in files else -1
    out = [files[(k + step * n) % len(files)] for n in range(1, len(files) + 1)]
    return [f for f in dict.fromkeys(out) if f != here]
