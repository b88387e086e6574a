"""PNG support for what Pillow cannot do.

* :func:`header` reads the IHDR (size, depth, colour type) before anything is decoded.
* :func:`read` decodes 16-bit truecolour (+alpha) PNGs, which Pillow reduces to 8 bits, with
  libpng (through ``imagecodecs``).
* :class:`PNGStreamWriter` writes a PNG of 1-4 channels at 8 or 16 bits band by band, so an
  export of any size needs memory for one band only (filter 0, zlib level 6).
"""
from __future__ import annotations

import struct
import zlib
from typing import Optional, Tuple

import numpy as np

_SIG = b"\x89PNG\r\n\x1a\n"


def header(path: str) -> Optional[Tuple[int, int, int, int]]:
    """``(width, height, bit_depth, colour_type)`` from a PNG's IHDR, or None if ``path`` is
    not a PNG. Reads 33 bytes: the size is known before anything is decoded."""
    try:
        with open(path, "rb") as f:
            head = f.read(33)
    except OSError:
        return None
    if len(head) < 33 or head[:8] != _SIG or head[12:16] != b"IHDR":
        return None
    w, h, depth, ctype = struct.unpack(">IIBB", head[16:26])
    return w, h, depth, ctype


def is_16bit_colour(hd: Tuple[int, int, int, int]) -> bool:
    """Whether an IHDR (:func:`header`) says 16-bit RGB, RGBA or grey+alpha (what Pillow
    reduces to 8 bits)."""
    return hd[2] == 16 and hd[3] in (2, 4, 6)


def read(path: str) -> np.ndarray:
    """``(H, W, C)`` uint16 array of a 16-bit PNG: C = 3 (RGB), 4 (RGBA) or 2 (grey+alpha),
    decoded by libpng (through ``imagecodecs``). The caller checks the declared size first
    (:func:`core.io.imageio.load_image` does)."""
    import imagecodecs

    hd = header(path)
    if hd is None:
        raise ValueError("not a PNG file")
    w, h = hd[0], hd[1]
    if w == 0 or h == 0:
        raise ValueError(f"the PNG header declares an empty image ({w}x{h})")
    with open(path, "rb") as f:
        data = f.read()
    try:
        arr = imagecodecs.png_decode(data)
    except Exception as exc:  # imagecodecs.PngError and friends
        msg = str(exc).lower()
        raise ValueError("the file is truncated" if ("truncat" in msg or "end of" in msg
                                                     or "not enough" in msg)
                         else f"corrupt PNG ({exc})") from None
    if arr.dtype != np.uint16 or arr.ndim != 3 or arr.shape[:2] != (h, w):
        raise ValueError("corrupt PNG (decoded data does not match its header)")
    return arr


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


class PNGStreamWriter:
    """Write a ``width x height`` PNG with ``channels`` (1-4) at ``bits`` (8 or 16), rows
    arriving in bands through :meth:`write_rows`; :meth:`close` checks all rows came."""

    def __init__(self, fileobj, width: int, height: int, channels: int, bits: int = 8,
                 icc: Optional[bytes] = None, exif: Optional[bytes] = None) -> None:
        self.f, self.width, self.height = fileobj, width, height
        self.channels, self.bits = channels, bits
        ctype = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
        self.f.write(_SIG)
        self.f.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bits, ctype, 0, 0, 0)))
        if icc:  # iCCP: a profile name, a NUL, compression method 0 (zlib), the profile
            self.f.write(_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(icc)))
        if exif:  # eXIf (PNG 1.5): the TIFF-structured EXIF, without JPEG's "Exif\0\0"
            self.f.write(_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif))
        self.z = zlib.compressobj(6)
        self.rows = 0

    def write_rows(self, arr: np.ndarray) -> None:
        """``arr``: ``(n, width, channels)`` uint8 (8 bits) or uint16 (16 bits)."""
        n = arr.shape[0]
        arr = arr.reshape(n, self.width * self.channels)
        data = arr.astype(">u2").view(np.uint8) if self.bits == 16 else arr.astype(np.uint8)
        raw = np.concatenate([np.zeros((n, 1), np.uint8), data], axis=1).tobytes()
        out = self.z.compress(raw)
        if out:
            self.f.write(_chunk(b"IDAT", out))
        self.rows += n

    def close(self) -> None:
        if self.rows != self.height:
            raise ValueError(f"PNG got {self.rows} rows, expected {self.height}")
        self.f.write(_chunk(b"IDAT", self.z.flush()))
        self.f.write(_chunk(b"IEND", b""))


def write(path: str, arr: np.ndarray, icc: Optional[bytes] = None,
          exif: Optional[bytes] = None) -> None:
    """Write ``(H, W, C)`` uint8 or uint16 as a PNG in one go (with a colour profile and EXIF
    if given)."""
    h, w, ch = arr.shape
    with open(path, "wb") as f:
        wr = PNGStreamWriter(f, w, h, ch, 16 if arr.dtype == np.uint16 else 8, icc, exif)
        wr.write_rows(arr)
        wr.close()
