"""JPEG XL through ``imagecodecs`` (libjxl), with what it leaves to its caller.

* :func:`size` reads the width and height from the codestream's SizeHeader (JPEG XL spec,
  ISO/IEC 18181-1, A.3) before anything is decoded, so the app's pixel limit and
  plausibility check apply as for every other format.
* :func:`read` decodes to ``(H, W[, C])`` uint8 or uint16 and returns the EXIF of an
  ``Exif`` box, if the file has one.
* :func:`write` encodes 8- or 16-bit grey, grey+alpha, RGB or RGBA (lossless at quality
  100) and puts EXIF in an ``Exif`` box of the container. ``imagecodecs`` cannot embed a
  colour profile: callers convert to sRGB first (:mod:`core.io.colour`).

A file is either a bare codestream (starts ``FF 0A``) or an ISO-BMFF container of boxes
(``JXL `` signature box, ``ftyp``, then ``jxlc``: the codestream, or ``jxlp``: its parts,
each after a 4-byte index; metadata boxes such as ``Exif`` around them).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

import numpy as np

__all__ = ["is_jxl", "size", "header", "Header", "read", "write", "available"]

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


def _size_header(b: _Bits) -> Tuple[int, int]:
    """A SizeHeader (A.3): ``(width, height)``."""
    small = b.u(1)
    h = (b.u(5) + 1) * 8 if small else b.u32_size()
    ratio = b.u(3)
    if ratio:
        num, den = _RATIOS[ratio]
        w = h * num // den
    else:
        w = (b.u(5) + 1) * 8 if small else b.u32_size()
    return w, h


def _u32(b: _Bits, *dists) -> int:
    """The spec's ``U32(d0, d1, d2, d3)``: a 2-bit selector, then its distribution: an
    int is a constant, ``(bits, offset)`` reads ``offset + u(bits)``."""
    d = dists[b.u(2)]
    return d if isinstance(d, int) else d[1] + b.u(d[0])


def _bit_depth(b: _Bits) -> None:
    if b.u(1):  # float samples
        _u32(b, 32, 16, 24, (6, 1))
        b.u(4)
    else:
        _u32(b, 8, 10, 12, (6, 1))


@dataclass(frozen=True)
class Header:
    """What the codestream's headers say before any pixel: the size, whether it is an
    animation (more frames may follow the first), and whether its colour is XYB-encoded
    (libjxl's lossy mode; a lossless file keeps the original colour space)."""

    width: int
    height: int
    animated: bool
    xyb: bool


def header(data: bytes) -> Header:
    """The SizeHeader and the ImageMetadata up to ``xyb_encoded`` (A.3-A.6 of the spec),
    from the first bytes of ``data``."""
    cs = _codestream_start(data)
    if not cs.startswith(CODESTREAM_SIG):
        raise ValueError("not a JPEG XL codestream")
    b = _Bits(cs[2:4096])
    w, h = _size_header(b)
    if b.u(1):  # all_default: no animation, XYB
        return Header(w, h, False, True)
    animated = False
    if b.u(1):  # extra_fields
        b.u(3)  # orientation
        if b.u(1):  # have_intrinsic_size
            _size_header(b)
        if b.u(1):  # have_preview: PreviewHeader
            div8 = b.u(1)
            side = (lambda: _u32(b, 16, 32, (5, 1), (9, 33))) if div8 else \
                (lambda: _u32(b, (6, 1), (8, 65), (10, 321), (12, 1)))
            side()
            if b.u(3) == 0:
                side()
        if b.u(1):  # have_animation: AnimationHeader
            animated = True
            _u32(b, 100, 1000, (10, 1), (30, 1))
            _u32(b, 1, 1001, (8, 1), (10, 1))
            _u32(b, 0, (3, 0), (16, 0), (32, 0))
            b.u(1)
    _bit_depth(b)
    b.u(1)  # modular_16bit_buffers
    for _ in range(_u32(b, 0, 1, (4, 2), (12, 1))):  # extra channels
        if b.u(1):  # d_alpha: all default
            continue
        kind = _u32(b, 0, 1, (4, 2), (6, 18))
        _bit_depth(b)
        _u32(b, 0, 3, 4, (3, 1))  # dim_shift
        b.u(8 * _u32(b, 0, (4, 0), (5, 16), (10, 48)))  # name
        if kind == 0:
            b.u(1)  # alpha_associated
        elif kind == 2:
            b.u(64)  # spot colour: 4 x F16
        elif kind == 5:
            _u32(b, 1, (2, 0), (4, 3), (8, 19))
    return Header(w, h, animated, bool(b.u(1)))


def size(data: bytes) -> Tuple[int, int]:
    """``(width, height)`` from the SizeHeader, reading a few dozen bytes of ``data`` (the
    start of the file is enough)."""
    cs = _codestream_start(data)
    if not cs.startswith(CODESTREAM_SIG):
        raise ValueError("not a JPEG XL codestream")
    return _size_header(_Bits(cs[2:64]))


def read(data: bytes) -> Tuple[np.ndarray, Optional[bytes]]:
    """``(pixels, exif)``: the decoded first frame (of an animation too: the others are
    never decoded), upright (the codestream's orientation applied), and the raw EXIF (TIFF
    bytes) of an ``Exif`` box, or None."""
    import imagecodecs

    exif = None
    if data.startswith(CONTAINER_SIG):
        for kind, payload in _boxes(data):
            if kind == b"Exif" and len(payload) > 4:
                offset = struct.unpack(">I", payload[:4])[0]
                exif = payload[4 + offset:] or None
    return imagecodecs.jpegxl_decode(data, index=0), exif


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
