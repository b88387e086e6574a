"""Colour profiles: from an image's own RGB space to sRGB, through LittleCMS (Pillow's ImageCms).

The model works on an image's own values, as it was trained (photos are mostly sRGB, and
the values of, say, a Display-P3 photo are what its camera made). Two places need the
colours themselves:

* the viewer's display: a P3 photo's values drawn as if they were sRGB look dull, so each
  displayed buffer goes through :class:`ToSRGB` (the screen's own profile is not available
  to Qt on every platform; sRGB is what an unknown screen is assumed to be);
* writers that cannot embed a profile (JPEG XL through ``imagecodecs``): the pixels are
  converted to sRGB, the space a file without a profile is read in.

Rendering intent: relative colorimetric (colours inside sRGB are kept exactly, those
outside clipped to its gamut), as photo tools do for display.
"""
from __future__ import annotations

import functools
import io
import logging
from typing import Optional

import numpy as np

__all__ = ["ToSRGB", "profile_name"]

log = logging.getLogger(__name__)


def profile_name(icc: Optional[bytes]) -> str:
    """The profile's own description (e.g. ``Display P3``), or ``""``."""
    if not icc:
        return ""
    try:
        from PIL import ImageCms
        return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip()
    except Exception:
        return ""


class ToSRGB:
    """Converts 8-bit RGB (or RGBA: alpha passes through) from the colour space ``icc``
    describes to sRGB. Make one with :meth:`for_profile`, which gives None where nothing is
    to be done: no profile, a profile that is sRGB (or maps every colour within one level
    of itself), or one LittleCMS cannot use (a broken or greyscale profile: logged once)."""

    def __init__(self, transform, name: str) -> None:
        self._transform = transform
        self.name = name  #: the source profile's description

    @classmethod
    def for_profile(cls, icc: Optional[bytes]) -> Optional["ToSRGB"]:
        """The conversion for ``icc``, built once per profile (the viewer, the export
        dialog's notes and the writers all ask for the same one)."""
        return _for_profile(icc) if icc else None

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """``(H, W, 3|4)`` uint8 -> a new array of the same shape, in sRGB."""
        from PIL import Image, ImageCms

        rgb = np.ascontiguousarray(rgb)
        im = Image.fromarray(rgb[..., :3], "RGB")
        out = np.asarray(ImageCms.applyTransform(im, self._transform))
        if rgb.shape[2] == 4:
            return np.concatenate([out, rgb[..., 3:]], 2)
        return np.array(out)


@functools.lru_cache(maxsize=16)
def _for_profile(icc: bytes) -> Optional[ToSRGB]:
    try:
        from PIL import ImageCms
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        dst = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
        t = ImageCms.buildTransform(src, dst, "RGB", "RGB",
                                    renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
        name = ImageCms.getProfileDescription(src).strip()
    except Exception as exc:
        log.warning("colour profile not usable (%s): colours shown as sRGB",
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return None
    conv = ToSRGB(t, name)
    probe = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    probe[0, :8] = np.arange(0, 256, 32, dtype=np.uint8)[:, None]  # greys, black, white
    if np.abs(conv(probe).astype(np.int16) - probe).max() <= 1:
        return None  # sRGB, or as good as
    return conv
