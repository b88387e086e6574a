"""JPEG XL through ``imagecodecs`` (libjxl), with what it leaves to its caller.

* :func:`size` reads the width and height from the codestream's SizeHeader (JPEG XL spec,
  ISO/IEC 18181-1, A.3) before anything is decoded, so the app's pixel limit and
  plausibility check apply as for every other format.
* :func:`read` decodes to ``(H, W[, C])`` uint8 or uint16 and returns the EXIF of an
  ``Exif`` box, if the file has one.
* :func:`write` encodes 8- or 16-bit grey, grey+alpha, RGB or RGBA (lossless at quality
  100) and puts EXIF in an ``Exif`` box of the container. ``imagecodecs`` cannot embed a
  colour profile: callers convert to sRGB first (:mod:`core.colour`).

A file is either a bare codestream (starts ``FF 0A``) or an ISO-BMFF container of boxes
(``JXL `` signature box, ``ftyp``, then ``jxlc``: the codestream, or ``jxlp``: its parts,
each after a 4-byte index; metadata boxes such as ``Exif`` around them).
"""
from __future__ import annotations

import struct
from typing import Iterator, List, Optional, Tuple

import numpy as np

__all__ = ["is_jxl", "size", "read", "write", "available"]

CODESTREAM_SIG = b"\xff\x0a"
CONTAINER_SIG = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
#: SizeHeader's fixed aspect ratios (numerator, denominator), by their 3-bit code
_RATIOS = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}


def available() -> bool:
    try:
        import imagecodecs
        return bool(imagecodecs.JPEGXL.available)
    except Exception:
        return False


def is_jxl(head: bytes) -> bool:
    return head.startswith(CODESTREAM_SIG) or head.startswith(CONTAINER_SIG)


def _boxes(data: bytes) -> Iterator[Tuple[bytes, bytes]]:
    """``(type, payload)`` of each top-level box of a container."""
    pos = 0
    while pos + 8 <= len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        head = 8
        if n == 1:  # 64-bit size follows
            if pos + 16 > len(data):
                raise ValueError("the file is truncated")
            n = struct.unpack(">Q", data[pos + 8:pos + 16])[0]
            head = 16
        elif n == 0:  # to the end of the file
            n = len(data) - pos
        if n < head:
            raise ValueError("corrupt JPEG XL container (a box smaller than its header)")
        yield kind, data[pos + head:pos + n]
        pos += n


def _codestream_start(data: bytes) -> bytes:
    """The first bytes of the codestream, bare or inside a container."""
    if data.startswith(CODESTREAM_SIG):
        return data
    for kind, payload in _boxes(data):
        if kind == b"jxlc":
            return payload
        if kind == b"jxlp":
            return payload[4:]
    raise ValueError("no codestream in the JPEG XL container")


class _Bits:
    """Reads the codestream's bits, least significant bit of each byte first."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def u(self, n: int) -> int:
        v = 0
        for i in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise ValueError("the file is truncated")
            v |= ((self.data[byte] >> (self.pos & 7)) & 1) << i
            self.pos += 1
        return v

    def u32_size(self) -> int:
        """``U32(1 + u(9), 1 + u(13), 1 + u(18), 1 + u(30))``, a side of the image."""
        return 1 + self.u((9, 13, 18, 30)[self.u(2)])


def size(data: bytes) -> Tuple[int, int]:
    """``(width, height)`` from the SizeHeader, reading a few dozen bytes of ``data`` (the
    start of the file is enough)."""
    cs = _codestream_start(data)
    if not cs.startswith(CODESTREAM_SIG):
        raise ValueError("not a JPEG XL codestream")
    b = _Bits(cs[2:64])
    small = b.u(1)
    h = (b.u(5) + 1) * 8 if small else b.u32_size()
    ratio = b.u(3)
    if ratio:
        num, den = _RATIOS[ratio]
        w = h * num // den
    else:
        w = (b.u(5) + 1) * 8 if small else b.u32_size()
    return w, h


def read(data: bytes) -> Tuple[np.ndarray, Optional[bytes]]:
    """``(pixels, exif)``: the decoded first frame, upright (the codestream's orientation
    applied), and the raw EXIF (TIFF bytes) of an ``Exif`` box, or None."""
    import imagecodecs

    exif = None
    if data.startswith(CONTAINER_SIG):
        for kind, payload in _boxes(data):
            if kind == b"Exif" and len(payload) > 4:
                offset = struct.unpack(">I", payload[:4])[0]
                exif = payload[4 + offset:] or None
    return imagecodecs.jpegxl_decode(data), exif


def write(path: str, pixels: np.ndarray, quality: int = 95,
          exif: Optional[bytes] = None) -> None:
    """Encode ``pixels`` (``(H, W)`` or ``(H, W, 2|3|4)`` uint8 or uint16) to ``path``:
    lossless at ``quality`` 100, else libjxl's quality scale (90 is visually lossless for
    most photos). ``exif``: TIFF bytes, or Pillow's ``Exif\\0\\0``-prefixed form."""
    import imagecodecs

    kw = {"lossless": True} if quality >= 100 else {"level": int(quality)}
    stream = imagecodecs.jpegxl_encode(np.ascontiguousarray(pixels), **kw)
    if exif:
        stream = _with_exif(stream, exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
    with open(path, "wb") as f:
        f.write(stream)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _with_exif(stream: bytes, tiff: bytes) -> bytes:
    """``stream`` (bare or in a container) in a container with an ``Exif`` box before the
    codestream."""
    if stream.startswith(CODESTREAM_SIG):
        boxes: List[Tuple[bytes, bytes]] = [(b"jxlc", stream)]
    else:
        boxes = [(k, p) for k, p in _boxes(stream) if k not in (b"JXL ", b"ftyp", b"Exif")]
    out = [CONTAINER_SIG, _box(b"ftyp", b"jxl \x00\x00\x00\x00jxl ")]
    placed = False
    for kind, payload in boxes:
        if not placed and kind in (b"jxlc", b"jxlp"):
            out.append(_box(b"Exif", b"\x00\x00\x00\x00" + tiff))
            placed = True
        out.append(_box(kind, payload))
    return b"".join(out)
