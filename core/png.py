"""A small PNG codec for what Pillow cannot do.

* :func:`read` decodes non-interlaced 16-bit truecolour (+alpha) PNGs, which Pillow reduces
  to 8 bits.
* :class:`PNGStreamWriter` writes a PNG of 1-4 channels at 8 or 16 bits band by band, so an
  export of any size needs memory for one band only (filter 0, zlib level 6).
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

_SIG = b"\x89PNG\r\n\x1a\n"


def _chunks(data: bytes):
    pos = 8
    while pos + 8 <= len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if len(body) != n:
            raise ValueError("the file is truncated")
        yield kind, body
        pos += 12 + n


def is_png16_rgb(path: str) -> bool:
    """True for a PNG whose header says 16-bit RGB, RGBA or grey+alpha (what Pillow reduces)."""
    try:
        with open(path, "rb") as f:
            head = f.read(33)
    except OSError:
        return False
    if len(head) < 33 or head[:8] != _SIG or head[12:16] != b"IHDR":
        return False
    depth, ctype = head[24], head[25]
    return depth == 16 and ctype in (2, 4, 6)


def read(path: str) -> np.ndarray:
    """``(H, W, C)`` uint16 array of a 16-bit PNG: C = 3 (RGB), 4 (RGBA) or 2 (grey+alpha).

    Uses libpng through the optional ``imagecodecs`` package when it is installed (fast);
    otherwise this module's decoder, whose Average and Paeth rows are unfiltered pixel by
    pixel in Python (a few seconds per megapixel)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        import imagecodecs  # type: ignore

        arr = imagecodecs.png_decode(data)
        if arr.dtype == np.uint16 and arr.ndim == 3:
            return arr
    except ImportError:
        pass
    except Exception as exc:
        raise ValueError(f"corrupt PNG ({exc})") from None
    idat = []
    w = h = ctype = interlace = None
    ended = False
    for kind, body in _chunks(data):
        if kind == b"IHDR":
            w, h, _, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            ended = True
    if w is None or not ended:
        raise ValueError("the file is truncated")
    if interlace:
        raise ValueError("interlaced 16-bit PNG is not supported")
    ch = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    bpp = 2 * ch
    raw = zlib.decompress(b"".join(idat))
    stride = w * bpp
    if len(raw) < h * (stride + 1):
        raise ValueError("the file is truncated")
    rows = np.frombuffer(raw, np.uint8)[:h * (stride + 1)].reshape(h, stride + 1)
    out = np.zeros((h, stride), np.int32)
    prev = np.zeros(stride, np.int32)
    for y in range(h):
        ft, line = rows[y, 0], rows[y, 1:].astype(np.int32)
        if ft == 0:
            cur = line
        elif ft == 1:  # Sub: running sum along each byte lane, mod 256
            cur = np.cumsum(line.reshape(w, bpp), axis=0).reshape(-1) & 255
        elif ft == 2:  # Up
            cur = (line + prev) & 255
        else:  # Average / Paeth depend on the decoded left pixel: pixel by pixel
            cur = _unfilter_sequential(ft, line.reshape(w, bpp), prev.reshape(w, bpp))
        out[y] = cur
        prev = cur
    b = out.astype(np.uint8).reshape(h, w, ch, 2)
    return (b[..., 0].astype(np.uint16) << 8) | b[..., 1]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


class PNGStreamWriter:
    """Write a ``width x height`` PNG with ``channels`` (1-4) at ``bits`` (8 or 16), rows
    arriving in bands through :meth:`write_rows`; :meth:`close` checks all rows came."""

    def __init__(self, fileobj, width: int, height: int, channels: int, bits: int = 8) -> None:
        self.f, self.width, self.height = fileobj, width, height
        self.channels, self.bits = channels, bits
        ctype = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
        self.f.write(_SIG)
        self.f.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bits, ctype, 0, 0, 0)))
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


def _unfilter_sequential(ft: int, line: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """Average (3) or Paeth (4) unfiltering of one row of ``(w, bpp)`` bytes."""
    w, bpp = line.shape
    cur = np.empty_like(line)
    a = np.zeros(bpp, np.int32)
    c = np.zeros(bpp, np.int32)
    for x in range(w):
        b = prev[x]
        if ft == 3:
            p = (a + b) >> 1
        else:
            pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
            p = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        a = (line[x] + p) & 255
        cur[x] = a
        c = b
    return cur.reshape(-1)


def write(path: str, arr: np.ndarray) -> None:
    """Write ``(H, W, C)`` uint8 or uint16 as a PNG in one go."""
    h, w, ch = arr.shape
    with open(path, "wb") as f:
        wr = PNGStreamWriter(f, w, h, ch, 16 if arr.dtype == np.uint16 else 8)
        wr.write_rows(arr)
        wr.close()
