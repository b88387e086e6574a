"""Reading and writing images: formats, orientation, alpha, bit depth, and safety.

``load_image(path) -> LoadedImage`` gives float32 RGB in [0, 1] (``(H, W, 3)``) plus what is
needed to write a faithful result: the alpha channel (if any), whether the source is
greyscale, and its bit depth. EXIF orientation is applied. Decompression bombs (more than
:data:`MAX_PIXELS` pixels) and truncated files are refused with :class:`ImageError`; every
decoder checks the size its header declares before it allocates anything.

Decoders: Pillow for 8-bit images of every format; libpng (through ``imagecodecs``) for
16-bit RGB(A) PNGs, which Pillow reduces to 8 bits; ``tifffile`` for 16-bit RGB(A) TIFFs.

``save_image(path, rgb, ...)`` writes PNG, JPEG, TIFF, WebP or BMP (by extension) through a
temporary file in the target folder and an atomic rename, so a failed or cancelled write
leaves no partial file. Greyscale stays greyscale; 16-bit is kept where the format allows
(PNG and TIFF greyscale through Pillow, 16-bit RGB(A) PNG through :mod:`core.png`, 16-bit
RGB(A) TIFF through ``tifffile``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core import png
from core.atomic import atomic_write
from core.formats import WRITE_FORMATS
from core.pixels import to_float

__all__ = ["ImageError", "ImageTooLarge", "image_size", "LoadedImage", "load_image", "save_image", "atomic_write",
           "MAX_PIXELS", "WRITE_FORMATS"]

#: refuse images larger than this many pixels (about 16k x 16k); the viewer asks first
MAX_PIXELS = 270_000_000

# Pillow's own bomb check uses a global limit; ours (``max_pixels``, checked from the header
# before decoding) replaces it so that a caller (the viewer, after asking) can lift it.
Image.MAX_IMAGE_PIXELS = None

try:  # optional HEIC support
    import pillow_heif  # type: ignore

    pillow_heif.register_heif_opener()
except Exception:  # pragma: no cover - optional
    pass


class ImageError(ValueError):
    """An image that cannot be read or written, with a message naming the file."""


class ImageTooLarge(ImageError):
    """The header announces more pixels than allowed (possible decompression bomb)."""


@dataclass(frozen=True)
class Metadata:
    """What a photo carries besides its pixels, kept through exports: ``icc``, its colour
    profile (ICC bytes; the pixels' values mean nothing without it), and ``exif``, its camera
    data (EXIF bytes: camera, date, GPS, ...), with the orientation already applied to the
    pixels and so reset, and no thumbnail (it would show the unscaled picture)."""

    icc: Optional[bytes] = None
    exif: Optional[bytes] = None

    def without_exif(self) -> "Metadata":
        """For privacy (GPS, camera serial): the colour profile stays, it is not personal."""
        return Metadata(self.icc, None)


@dataclass
class LoadedImage:
    """A decoded image.

    Attributes:
        pixels: ``(H, W, 3)``, the source's own values: uint8 for 8-bit sources, uint16 for
            16-bit ones, or float32 in [0, 1] (greyscale replicated to 3 channels). Read a
            window of it as floats with :func:`core.pixels.to_float`; :attr:`rgb` converts
            it all.
        alpha: ``(H, W)`` float32 in [0, 1], or None.
        grey: the source had one colour channel.
        bits: 8 or 16, the source's bits per channel.
        path: where it came from.
    """

    pixels: np.ndarray
    alpha: Optional[np.ndarray] = None
    grey: bool = False
    bits: int = 8
    path: str = ""
    meta: Metadata = field(default_factory=Metadata)
    frames: int = 1  #: an animation's frame count (the first frame is what was decoded)

    def notes(self, target_format: Optional[str] = None) -> list:
        """What a person should know when this image is shown or written as
        ``target_format`` (a Pillow format name): an animation's other frames are left out,
        JPEG drops transparency."""
        out = []
        if self.frames > 1:
            out.append(f"an animation of {self.frames} frames: only the first is used")
        if target_format == "JPEG" and self.alpha is not None:
            out.append("JPEG has no transparency: it is flattened onto white "
                       "(PNG, WebP or AVIF keep it)")
        return out

    @property
    def rgb(self) -> np.ndarray:
        """The whole image as ``(H, W, 3)`` float32 in [0, 1]: a new array of 12 bytes a
        pixel. For small images and tests; renderers and encoders read :attr:`pixels` a
        window at a time."""
        return to_float(self.pixels)

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def image_size(path: Union[str, os.PathLike]) -> tuple:
    """``(width, height)`` from the header, without decoding the pixels."""
    _check_regular(path)
    try:
        with Image.open(path) as im:
            return im.size
    except Exception as exc:
        raise ImageError(f"cannot read image {os.fspath(path)}: {_why(exc)}") from None


def _check_regular(path: Union[str, os.PathLike]) -> None:
    """Refuse, before anything opens it, a path that is not a regular file: a FIFO or a device
    would block the reader (the GUI thread) forever or read without end."""
    import stat
    path = os.fspath(path)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        raise ImageError(f"cannot read image {path}: no such file") from None
    if stat.S_ISDIR(mode):
        raise ImageError(f"cannot read image {path}: it is a folder")
    if not stat.S_ISREG(mode):
        raise ImageError(f"cannot read image {path}: not a regular file (a pipe or a device)")


def load_image(path: Union[str, os.PathLike], max_pixels: Optional[int] = MAX_PIXELS) -> LoadedImage:
    """Decode ``path``; raise :class:`ImageError` with a clear message on any problem."""
    path = os.fspath(path)
    _check_regular(path)
    hd = png.header(path)
    if hd is not None:  # a PNG: its size is known from the IHDR, before any decoder runs
        _check_size(path, hd[0], hd[1], max_pixels)
        _check_plausible(path, hd[0], hd[1], "PNG")
        if png.is_16bit_colour(hd):
            try:
                arr = png.read(path)
            except Exception as exc:
                raise ImageError(f"cannot read image {path}: {_why(exc)}") from None
            return _from_uint16(arr, path)
    if _is_tiff(path):
        arr = _read_tiff16(path, max_pixels)
        if arr is not None:
            return _from_uint16(arr, path)
    try:
        im = Image.open(path)
        _check_size(path, im.size[0], im.size[1], max_pixels)
        _check_plausible(path, im.size[0], im.size[1], im.format)
        frames = int(getattr(im, "n_frames", 1) or 1)
        im.load()
        im = ImageOps.exif_transpose(im)
        meta = _metadata(im)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"cannot read image {path}: not an image file Pillow can decode") from None
    except Exception as exc:
        raise ImageError(f"cannot read image {path}: {_why(exc)}") from None
    loaded = _from_pil(im, path)
    loaded.meta = meta
    loaded.frames = frames
    return loaded


def _metadata(im: Image.Image) -> Metadata:
    """The colour profile and EXIF of an opened (and already upright) image."""
    icc = im.info.get("icc_profile") or None
    exif = None
    try:
        ex = im.getexif()
        if len(ex):
            if 0x0112 in ex:  # the orientation: applied to the pixels by exif_transpose
                ex[0x0112] = 1
            exif = ex.tobytes()  # IFD0 and its sub-IFDs (Exif, GPS); not IFD1's thumbnail
    except Exception:  # a broken EXIF block is dropped, never an error
        exif = None
    return Metadata(icc if isinstance(icc, bytes) else None, exif)


def _from_uint16(arr: np.ndarray, path: str) -> LoadedImage:
    """A LoadedImage from ``(H, W, C)`` uint16, C = 2 (grey+alpha), 3 (RGB) or 4 (RGBA); the
    colour stays uint16, the alpha becomes float."""
    if arr.shape[2] == 2:  # grey + alpha
        return LoadedImage(np.repeat(arr[..., :1], 3, 2), to_float(arr[..., 1]), True, 16, path)
    alpha = to_float(arr[..., 3]) if arr.shape[2] == 4 else None
    return LoadedImage(np.ascontiguousarray(arr[..., :3]), alpha, False, 16, path)


def _is_tiff(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _read_tiff16(path: str, max_pixels: Optional[int]) -> Optional[np.ndarray]:
    """``(H, W, C)`` uint16 of a 16-bit RGB(A) or grey+alpha TIFF's first page through
    ``tifffile`` (Pillow cannot keep it 16-bit), the page's declared size checked first; None for any other TIFF
    (Pillow reads those)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            shape = tuple(page.shape)
            want = {tifffile.PHOTOMETRIC.RGB: (3, 4), tifffile.PHOTOMETRIC.MINISBLACK: (2,)}
            if not (page.bitspersample == 16 and len(shape) == 3
                    and page.planarconfig == tifffile.PLANARCONFIG.CONTIG
                    and shape[2] in want.get(page.photometric, ())):
                return None
            _check_size(path, shape[1], shape[0], max_pixels)
            _check_plausible(path, shape[1], shape[0], "TIFF")
            arr = page.asarray()
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"cannot read image {path}: {_why(exc)}") from None
    if arr.dtype != np.uint16 or arr.shape != shape:
        raise ImageError(f"cannot read image {path}: unsupported TIFF layout {arr.shape}")
    return arr


#: The fewest file bytes per declared pixel each format's coding allows (with margin): a file
#: below it is truncated or a decompression bomb, and is refused before a decoder allocates
#: the image. PNG: deflate compresses at best about 1032:1 (of the raw bytes); JPEG (Huffman):
#: at least one bit per 8x8 luma block in the DC scan; TIFF and GIF: LZW/deflate, at best a
#: few thousand to one; BMP: RLE at best 128:1. WebP is absent: its lossless mode can code a
#: flat image in almost no bytes, so only the pixel limit bounds it.
_MIN_BYTES_PER_PIXEL = {"PNG": 1 / 1100, "JPEG": 1 / 1024, "MPO": 1 / 1024, "TIFF": 1 / 4096,
                        "GIF": 1 / 4096, "BMP": 1 / 256}
#: below this many pixels a decode costs little, whatever the file claims
_PLAUSIBILITY_PIXELS = 16_000_000


def _check_plausible(path: str, w: int, h: int, fmt: Optional[str]) -> None:
    """Refuse a file far too small to hold the ``w x h`` pixels its header declares (see
    :data:`_MIN_BYTES_PER_PIXEL`)."""
    ratio = _MIN_BYTES_PER_PIXEL.get(fmt or "")
    if ratio is None or w * h <= _PLAUSIBILITY_PIXELS:
        return
    size = os.path.getsize(path)
    if size < w * h * ratio:
        raise ImageError(f"cannot read image {path}: the file is truncated ({size} bytes "
                         f"cannot hold the {w}x{h} pixels its header declares)")


def _check_size(path: str, w: int, h: int, max_pixels: Optional[int]) -> None:
    if max_pixels is not None and w * h > max_pixels:
        raise ImageTooLarge(f"cannot read image {path}: {w}x{h} is {w * h / 1e6:.0f} Mpx, above "
                            f"the limit of {max_pixels / 1e6:.0f} Mpx (a decompression bomb?)")


def _why(exc: BaseException) -> str:
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "truncated" in msg.lower():
        return "the file is truncated"
    return msg


def _from_pil(im: Image.Image, path: str) -> LoadedImage:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im)
        a = np.clip(a, 0, 65535).astype(np.uint16) if a.dtype.kind == "i" else a.astype(np.uint16)
        return LoadedImage(np.repeat(a[..., None], 3, 2), None, True, 16, path)
    if mode == "F":
        a = np.clip(np.asarray(im, dtype=np.float32), 0, 1)
        return LoadedImage(np.repeat(a[..., None], 3, 2), None, True, 16, path)
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    mode = im.mode
    a = np.asarray(im)  # uint8: kept as decoded (see core.pixels)
    if a.dtype != np.uint8:
        raise ImageError(f"cannot read image {path}: unsupported pixel mode {mode}")
    if mode == "L":
        return LoadedImage(np.repeat(a[..., None], 3, 2), None, True, 8, path)
    if mode == "LA":
        return LoadedImage(np.repeat(a[..., :1], 3, 2), to_float(a[..., 1]), True, 8, path)
    if mode == "RGBA":
        return LoadedImage(np.ascontiguousarray(a[..., :3]), to_float(a[..., 3]), False, 8, path)
    if mode == "RGB":
        return LoadedImage(np.ascontiguousarray(a), None, False, 8, path)
    raise ImageError(f"cannot read image {path}: unsupported pixel mode {mode}")


#: the formats that carry a colour profile / EXIF, as Pillow writes them
ICC_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "AVIF")
EXIF_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "AVIF")


def save_image(path: Union[str, os.PathLike], rgb: np.ndarray, alpha: Optional[np.ndarray] = None,
               grey: bool = False, bits: int = 8, quality: int = 95,
               meta: Optional[Metadata] = None) -> None:
    """Write ``rgb`` (``(H, W, 3)`` float in [0, 1], or uint8) atomically; format from the
    extension (``alpha`` likewise float or uint8).

    ``grey`` writes one channel (the mean of the three); ``bits=16`` writes 16 bits per
    channel where the format allows (PNG, TIFF greyscale), else 8. ``meta``'s colour profile
    and EXIF are written where the format carries them (PNG, JPEG, WebP, TIFF). Raises :class:`ImageError`
    for an unknown extension or an OS error (disk full, permission), naming the file.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    fmt = WRITE_FORMATS.get(ext)
    if fmt is None:
        raise ImageError(f"cannot write {path}: unknown image extension {ext!r} "
                         f"(use one of {', '.join(sorted(WRITE_FORMATS))})")
    if fmt == "JPEG":
        alpha = None
    if rgb.dtype == np.uint8:  # already quantised (large exports): stay in 8 bits
        chans8 = np.round(rgb.mean(axis=2, keepdims=True)).astype(np.uint8) if grey else rgb
        if alpha is not None:
            chans8 = np.concatenate([chans8, np.asarray(alpha, np.uint8)[..., None]], axis=2)
        bits = 8
    else:
        rgb = np.clip(rgb, 0, 1)
        chans = rgb.mean(axis=2, keepdims=True) if grey else rgb
        if alpha is not None:
            chans = np.concatenate([chans, np.clip(alpha, 0, 1)[..., None]], axis=2)
    sixteen = bits == 16 and fmt in ("PNG", "TIFF")
    meta = meta or Metadata()
    extra = {}
    if meta.icc and fmt in ICC_FORMATS:
        extra["icc_profile"] = meta.icc
    if meta.exif and fmt in EXIF_FORMATS:
        extra["exif"] = meta.exif
    try:
        if sixteen and chans.shape[2] == 1:
            im = Image.fromarray(np.round(chans[..., 0] * 65535).astype(np.uint16))  # I;16
            atomic_write(path, lambda tmp: im.save(tmp, format=fmt, **extra))
            return
        if sixteen and fmt == "PNG":
            a16 = np.round(chans * 65535).astype(np.uint16)
            atomic_write(path, lambda tmp: png.write(tmp, a16, meta.icc, meta.exif))
            return
        if sixteen and fmt == "TIFF":  # 16-bit RGB(A) / grey+alpha: Pillow would write 8 bits
            import tifffile

            a16 = np.round(chans * 65535).astype(np.uint16)
            photometric = "minisblack" if chans.shape[2] <= 2 else "rgb"
            n_extra = 1 if chans.shape[2] in (2, 4) else 0
            atomic_write(path, lambda tmp: tifffile.imwrite(
                tmp, a16, photometric=photometric, compression="zlib",
                extrasamples=("unassalpha",) * n_extra, iccprofile=meta.icc))
            return
        a8 = chans8 if bits == 8 and rgb.dtype == np.uint8 else np.round(chans * 255).astype(np.uint8)
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[a8.shape[2]]
        im = Image.fromarray(a8[..., 0] if mode == "L" else a8, mode=mode)
        if fmt == "JPEG" and mode == "LA":
            im = im.convert("L")
        kw = {"quality": int(quality)} if fmt in ("JPEG", "WEBP", "AVIF") else {}
        atomic_write(path, lambda tmp: im.save(tmp, format=fmt, **kw, **extra))
    except OSError as exc:
        raise ImageError(f"cannot write {path}: {exc.strerror or exc}") from None
