"""Image formats: one table, from which every list of extensions in the app is made.

:data:`FORMATS` says, for each format, its extensions, its name in Pillow, whether the app
reads and writes it, whether it is lossy (which picks the model, :mod:`core.defaults`),
whether it keeps 16 bits per channel, and whether :func:`core.export.export` can stream it in
bands (bounded memory at any size), and what it carries: transparency, a colour profile,
EXIF. The CLI's checks, the viewer's open dialogs, the export dialog, the writers and the
table in docs/FORMATS.md (:func:`format_table`, checked by a test) all derive from it.

:func:`inspect_input` looks inside a file for what its extension cannot say: a WebP may be
lossless, and a JPEG's quality is estimated from its quantisation tables
(:func:`jpeg_quality`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from core.io import jxl

__all__ = ["ImageFormat", "FORMATS", "READ_EXTS", "KNOWN_EXTS", "WRITE_FORMATS", "format_of",
           "open_filter", "InputKind", "BY_PIL", "format_table", "inspect_input", "jpeg_quality"]


@dataclass(frozen=True)
class ImageFormat:
    name: str              #: what a person calls it
    pil: str               #: Pillow's name for it (JXL: the app's own writer, core.io.jxl)
    exts: Tuple[str, ...]  #: lower-case, with the dot; the first is the one the app writes
    readable: bool
    writable: bool
    lossy: bool            #: as usually written (a WebP may be lossless: see inspect_input)
    bits16: bool           #: keeps 16 bits per channel (when written by the app)
    streamable: bool       #: written in bands by core.export (any size in bounded memory)
    alpha: bool            #: keeps transparency when written (else flattened onto white)
    icc: bool              #: carries the colour profile when written (else converted to sRGB)
    exif: bool             #: carries EXIF when written
    max_side: int = 1 << 31  #: the largest side it stores


def _pillow_has(feature: str) -> bool:
    try:
        from PIL import features
        return bool(features.check(feature))
    except Exception:
        return False


def _heif_available() -> bool:
    try:
        import pillow_heif  # noqa: F401  (registered by core.io.imageio)
        return True
    except Exception:
        return False


def _jxl_available() -> bool:
    from core.io.jxl import available
    return available()


_AVIF, _HEIF, _JXL = _pillow_has("avif"), _heif_available(), _jxl_available()

#: in the order dialogs list them. BMP's alpha is absent because most readers (Pillow
#: among them) drop a 32-bit BMP's fourth channel: an export flattens it, and says so.
FORMATS: Tuple[ImageFormat, ...] = (
    #          name  pil   exts      read  write  lossy  16bit  stream  alpha  icc  exif
    ImageFormat("PNG", "PNG", (".png",), True, True, False, True, True, True, True, True),
    ImageFormat("JPEG", "JPEG", (".jpg", ".jpeg"), True, True, True, False, False, False, True,
                True, max_side=65535),
    ImageFormat("TIFF", "TIFF", (".tif", ".tiff"), True, True, False, True, False, True, True,
                True),
    ImageFormat("WebP", "WEBP", (".webp",), True, True, True, False, False, True, True, True,
                max_side=16383),
    ImageFormat("JPEG XL", "JXL", (".jxl",), _JXL, _JXL, True, True, False, True, False, True,
                max_side=1 << 30),
    ImageFormat("AVIF", "AVIF", (".avif",), _AVIF, _AVIF, True, False, False, True, True, True,
                max_side=65536),
    ImageFormat("HEIC", "HEIF", (".heic", ".heif"), _HEIF, _HEIF, True, False, False, True, True,
                True, max_side=16384),
    ImageFormat("BMP", "BMP", (".bmp",), True, True, False, False, False, False, False, False),
    ImageFormat("GIF", "GIF", (".gif",), True, False, False, False, False, False, False, False),
)

_BY_EXT: Dict[str, ImageFormat] = {e: f for f in FORMATS for e in f.exts}
#: extensions the app can open (a codec missing from a stripped-down install drops its own)
READ_EXTS: Tuple[str, ...] = tuple(e for f in FORMATS if f.readable for e in f.exts)
#: every extension the table names (a folder's images in the CLI; one whose codec is missing
#: is then refused with a message)
KNOWN_EXTS: Tuple[str, ...] = tuple(_BY_EXT)
#: extension -> Pillow format name, for every format the app writes
WRITE_FORMATS: Dict[str, str] = {e: f.pil for f in FORMATS if f.writable for e in f.exts}
#: Pillow name -> format, for the formats the app writes
BY_PIL: Dict[str, ImageFormat] = {f.pil: f for f in FORMATS}


def format_of(path: str | os.PathLike) -> Optional[ImageFormat]:
    """The format a file's extension names, or None."""
    return _BY_EXT.get(os.path.splitext(os.fspath(path))[1].lower())


def open_filter() -> str:
    """The file-dialog filter for opening images (both of the viewer's open dialogs)."""
    pats = " ".join(f"*{e}" for e in READ_EXTS)
    return f"Images ({pats});;All files (*)"


def save_filter() -> str:
    """The file-dialog filter for exports."""
    return "Images (" + " ".join(f"*{e}" for e in WRITE_FORMATS) + ")"


@dataclass(frozen=True)
class InputKind:
    """What a file is, for choosing the model: its format's name, whether its pixels went
    through lossy compression, and for a JPEG its estimated quality (1-100)."""

    format: str
    lossy: bool
    quality: Optional[int] = None

    def describe(self) -> str:
        """E.g. ``JPEG q≈72`` or ``PNG (lossless)``."""
        if self.quality is not None:
            return f"{self.format} q≈{self.quality}"
        return f"{self.format} ({'lossy' if self.lossy else 'lossless'})"


#: libjpeg's standard luminance quantisation table (JPEG standard, Annex K), natural order
_STD_LUMA = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
             14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
             18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
             49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)


def jpeg_quality(luma_table) -> int:
    """The IJG quality (1-100) whose scaled standard luminance table is nearest ``luma_table``
    (64 values, any order): libjpeg scales the standard table by ``5000 / q`` % below 50 and
    ``200 - 2 q`` % from 50, rounds and clamps to [1, 255]. Compared by the tables' sums,
    which do not depend on the order; for tables libjpeg made this gives ``q`` back exactly,
    for others (cameras' own tables) the nearest libjpeg quality."""
    total = sum(int(v) for v in luma_table)

    def table_sum(q: int) -> int:
        scale = 5000 // q if q < 50 else 200 - 2 * q
        return sum(min(255, max(1, (v * scale + 50) // 100)) for v in _STD_LUMA)

    return min(range(1, 101), key=lambda q: (abs(table_sum(q) - total), -q))


def _webp_lossless(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(64)
    # RIFF....WEBP then the first chunk: VP8L (lossless), VP8 (lossy) or VP8X (extended: look
    # for a VP8L chunk further on)
    if head[12:16] == b"VP8L":
        return True
    if head[12:16] == b"VP8X":
        with open(path, "rb") as f:
            data = f.read(1 << 20)
        return b"VP8L" in data and b"VP8 " not in data
    return False


def inspect_input(path: str | os.PathLike) -> InputKind:
    """What the file is, from its content where it matters (JPEG quality, lossless WebP) and
    its extension otherwise. Never raises for a readable file; an unknown one is lossless."""
    from PIL import Image

    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
        if jxl.is_jxl(head):  # lossless JPEG XL keeps the colour space; lossy codes XYB
            with open(path, "rb") as f:
                return InputKind("JPEG XL", jxl.header(f.read(1 << 20)).xyb)
        with Image.open(path) as im:
            pil = im.format or ""
            if pil in ("JPEG", "MPO"):
                tables = getattr(im, "quantization", None) or {}
                q = jpeg_quality(tables[0]) if 0 in tables else None
                return InputKind("JPEG", True, q)
            if pil == "WEBP":
                return InputKind("WebP", not _webp_lossless(path))
            for f in FORMATS:
                if f.pil == pil or (pil == "HEIF" and f.name == "HEIC"):
                    return InputKind(f.name, f.lossy)
            if pil == "AVIF":
                return InputKind("AVIF", True)
            return InputKind(pil or "image", False)
    except Exception:
        f = format_of(path)
        return InputKind(f.name if f else "image", bool(f and f.lossy))


def format_table() -> str:
    """The Markdown table of :data:`FORMATS` that docs/FORMATS.md shows."""
    def yes(b: bool) -> str:
        return "yes" if b else "no"

    rows = [
        "| format | extensions | read | write | bits per channel | alpha | ICC profile | EXIF |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in FORMATS:
        def written(ok: bool, otherwise: str) -> str:
            return "-" if not f.writable else ("yes" if ok else f"no: {otherwise}")
        rows.append(f"| {f.name} | {' '.join(f.exts)} | {yes(f.readable)} | {yes(f.writable)} | "
                    f"{'8, 16' if f.bits16 else '8'} | "
                    f"{written(f.alpha, 'flattened onto white')} | "
                    f"{written(f.icc, 'converted to sRGB')} | {written(f.exif, 'dropped')} |")
    return "\n".join(rows)
