"""Reading and writing images: formats, orientation, alpha, bit depth, and safety.

``load_image(path) -> LoadedImage`` gives the pixels (``(H, W, 3)``, uint8 or uint16 as
decoded; floats in [0, 1] through :func:`core.io.pixels.to_float`) plus what is needed to write
a faithful result: the alpha channel (if any), whether the source is
greyscale, and its bit depth. EXIF orientation is applied. Decompression bombs (more than
:data:`MAX_PIXELS` pixels) and truncated files are refused with :class:`ImageError`; every
decoder checks the size its header declares before it allocates anything.

Decoders: Pillow for 8-bit images of every format (HEIC through ``pillow-heif``); libpng
(through ``imagecodecs``) for 16-bit RGB(A) PNGs, which Pillow reduces to 8 bits;
``tifffile`` for 16-bit RGB(A) TIFFs; libjxl (through ``imagecodecs``, :mod:`core.io.jxl`) for
JPEG XL. The pixels stay the source's integers (:mod:`core.io.pixels`).

``save_image(path, rgb, ...)`` writes every format :data:`core.io.formats.FORMATS` marks
writable (by extension) through a temporary file in the target folder and an atomic rename,
so a failed or cancelled write leaves no partial file. Greyscale stays greyscale; 16-bit is
kept where the format allows (PNG and TIFF greyscale through Pillow, 16-bit RGB(A) PNG
through :mod:`core.io.png`, 16-bit RGB(A) TIFF through ``tifffile``, JPEG XL through
:mod:`core.io.jxl`), and so are alpha, the colour profile and EXIF (the table says where).
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
import warnings
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.atomic import atomic_write
from core.io import jxl, png
from core.io.colour import ToSRGB
from core.io.formats import BY_PIL, FORMATS, WRITE_FORMATS
from core.io.pixels import to_float

__all__ = [
    "ImageError",
    "ImageTooLarge",
    "image_size",
    "LoadedImage",
    "load_image",
    "save_image",
    "atomic_write",
    "MAX_PIXELS",
    "WRITE_FORMATS",
]

#: refuse images larger than this many pixels (about 16k x 16k); the viewer asks first
MAX_PIXELS = 270_000_000

_bomb_lock = threading.Lock()


@contextlib.contextmanager
def _pillow_limit_lifted():
    """Pillow's own decompression-bomb limit (a process-wide setting, about 179 Mpx) lifted
    for one of this module's decodes, which a file's header brought past it: the app's own
    check (``max_pixels``, from the header, before anything is allocated; the viewer lifts
    it after asking) stands in. Only after Pillow refused, and restored at once: importing
    this module leaves Pillow's guard on for everyone else."""
    with _bomb_lock:
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = old


def _past_pillows_limit(fn, *args, **kw):
    """``fn(*args, **kw)``, again with :func:`_pillow_limit_lifted` if Pillow refused the
    image as a decompression bomb (the app's own limit decides, not Pillow's)."""
    try:
        return fn(*args, **kw)
    except Image.DecompressionBombError:
        with _pillow_limit_lifted():
            return fn(*args, **kw)

try:  # optional HEIC support
    import pillow_heif  # type: ignore

    pillow_heif.register_heif_opener()
except Exception:  # pragma: no cover - optional
    pass


#: :attr:`LoadedImage.frames` of an animation whose frames were not counted
ANIMATION = 0


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

    def for_size(self, w: int, h: int) -> "Metadata":
        """The same, with the EXIF's pixel dimensions (PixelXDimension, PixelYDimension)
        set to ``w x h`` where it has them: an export's EXIF describes the export."""
        if not self.exif:
            return self
        try:
            ex = Image.Exif()
            ex.load(self.exif)
            sub = ex.get_ifd(0x8769)
            if 0xA002 not in sub and 0xA003 not in sub:
                return self
            sub[0xA002], sub[0xA003] = int(w), int(h)
            return Metadata(self.icc, ex.tobytes())
        except Exception:  # an EXIF Pillow cannot rewrite is kept as it is
            return self


@dataclass
class LoadedImage:
    """A decoded image.

    Attributes:
        pixels: ``(H, W, 3)``, the source's own values: uint8 for 8-bit sources, uint16 for
            16-bit ones, or float32 in [0, 1] (greyscale replicated to 3 channels). Read a
            window of it as floats with :func:`core.io.pixels.to_float`; :attr:`rgb` converts
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
    #: an animation's frame count (the first frame is what was decoded), or
    #: :data:`ANIMATION` for one whose count is not known without decoding it (JPEG XL)
    frames: int = 1
    #: what decoding found and dealt with (a broken EXIF dropped, a contradicting profile
    #: left out, CMYK converted): said with :meth:`notes`
    remarks: list = field(default_factory=list)

    def notes(self, target_format: Optional[str] = None) -> list:
        """What a person should know when this image is shown or written as
        ``target_format`` (a Pillow format name, :data:`core.io.formats.BY_PIL`): an
        animation's other frames are left out; a format without transparency flattens it
        onto white; one without colour profiles gets the colours converted to sRGB."""
        out = list(self.remarks)
        if self.frames > 1:
            out.append(f"an animation of {self.frames} frames: only the first is used")
        elif self.frames == ANIMATION:
            out.append("an animation: only its first frame is used")
        f = BY_PIL.get(target_format or "")
        if f is None:
            return out
        if self.alpha is not None and not f.alpha:
            keep = ", ".join(g.name for g in FORMATS if g.writable and g.alpha)
            out.append(f"{f.name} has no transparency: it is flattened onto white "
                       f"({keep} keep it)")
        if self.meta.icc and not f.icc and ToSRGB.for_profile(self.meta.icc) is not None:
            depth = " (in 8 bits)" if self.bits == 16 and f.bits16 else ""
            out.append(f"{f.name} is written without a colour profile here: the colours are "
                       f"converted to sRGB{depth}")
        out.extend(metadata_limits(self.meta, f.pil))
        if self.meta.exif and not f.exif:
            out.append(f"{f.name} carries no EXIF: the camera data is left out")
        elif self.meta.exif and f.pil == "TIFF" and self.bits == 16:
            out.append("a 16-bit TIFF keeps the camera's make, model, date, artist and "
                       "copyright; the rest of its EXIF (exposure, GPS) is left out")
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
    """``(width, height)`` from the header, without decoding the pixels; a file far too
    small for the size it declares is refused here already (:func:`_check_plausible`), so
    nobody is asked to confirm a decompression bomb's size."""
    _check_regular(path)
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            if jxl.is_jxl(head):  # the SizeHeader: at the start, or after a container's boxes
                return jxl.size(head + f.read())
        size, fmt, mode = _past_pillows_limit(_header, path)
    except Exception as exc:
        raise ImageError(f"cannot read image {path}: {_why(exc)}") from None
    hd = png.header(path)
    _check_plausible(path, size[0], size[1], fmt, _png_bits(hd) if hd else
                     (1 if mode == "1" else 8))
    return size


def _header(path: str) -> tuple:
    """``(size, format, mode)`` of what Pillow opens, nothing decoded."""
    with quiet_decoders(), Image.open(path) as im:
        return im.size, im.format, im.mode


def _png_bits(hd: tuple) -> int:
    """Bits a pixel of a PNG header (:func:`core.io.png.header`): the depth times the samples
    of its colour type (a palette: one index)."""
    return hd[2] * {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(hd[3], 1)


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


def load_image(
    path: Union[str, os.PathLike], max_pixels: Optional[int] = MAX_PIXELS
) -> LoadedImage:
    """Decode ``path``; raise :class:`ImageError` with a clear message on any problem."""
    path = os.fspath(path)
    _check_regular(path)
    hd = png.header(path)
    if hd is not None:  # a PNG: its size is known from the IHDR, before any decoder runs
        _check_size(path, hd[0], hd[1], max_pixels)
        _check_plausible(path, hd[0], hd[1], "PNG", _png_bits(hd))
        if png.is_16bit_colour(hd):
            try:
                arr = png.read(path)
            except Exception as exc:
                raise ImageError(f"cannot read image {path}: {_why(exc)}") from None
            return _with_header_metadata(_from_array(arr, path))
    with open(path, "rb") as f:
        head = f.read(16)
    if jxl.is_jxl(head):
        return _read_jxl(path, max_pixels)
    if _is_tiff(path):
        arr = _read_tiff16(path, max_pixels)
        if arr is not None:
            return _with_header_metadata(_from_array(arr, path))
    try:
        return _past_pillows_limit(_load_pil, path, max_pixels, first=True)
    except ValueError as exc:
        if isinstance(exc, ImageError) or "MAX_TEXT_CHUNK" not in str(exc):
            raise
    with _large_png_chunks():  # a PNG profile or text over Pillow's 1 MB: read, bounded
        return _past_pillows_limit(_load_pil, path, max_pixels)


#: the largest PNG text or profile chunk read (Pillow stops at 1 MB by default; profiles of
#: a few MB exist, e.g. with large lookup tables)
PNG_CHUNK_LIMIT = 64 << 20
_chunk_lock = threading.Lock()


@contextlib.contextmanager
def _large_png_chunks():
    """Pillow's PNG chunk limit raised to :data:`PNG_CHUNK_LIMIT` for one decode (a module
    setting of Pillow's: held under a lock, restored after)."""
    from PIL import PngImagePlugin
    with _chunk_lock:
        old = PngImagePlugin.MAX_TEXT_CHUNK
        PngImagePlugin.MAX_TEXT_CHUNK = PNG_CHUNK_LIMIT
        try:
            yield
        finally:
            PngImagePlugin.MAX_TEXT_CHUNK = old


def _load_pil(path: str, max_pixels: Optional[int], first: bool = False) -> "LoadedImage":
    """:func:`load_image` for what Pillow decodes. ``first``: a chunk over Pillow's PNG
    limit raises its ValueError, for a second try with :func:`_large_png_chunks`."""
    try:
        with quiet_decoders():  # (Pillow warns of images past half its own limit, etc.)
            im = Image.open(path)
        _check_size(path, im.size[0], im.size[1], max_pixels)
        _check_plausible(path, im.size[0], im.size[1], im.format, 1 if im.mode == "1" else 8)
        frames = int(getattr(im, "n_frames", 1) or 1)
        with quiet_decoders():
            im.load()
            im, remarks = _upright(im)
            cmyk = im.mode == "CMYK"
            meta = _metadata(im)
            if cmyk:
                im, meta, said = _cmyk_to_rgb(im, meta)
                remarks.append(said)
    except (ImageError, Image.DecompressionBombError):
        raise  # (the latter: read again with Pillow's limit lifted, _past_pillows_limit)
    except UnidentifiedImageError:
        raise ImageError(f"cannot read image {path}: not an image file Pillow can decode") from None
    except ValueError as exc:
        if "MAX_TEXT_CHUNK" in str(exc) and first:
            raise  # (load_image reads it again with the larger limit)
        raise ImageError(f"cannot read image {path}: {_why(exc)}") from None
    except Exception as exc:
        raise ImageError(f"cannot read image {path}: {_why(exc)}") from None
    loaded = _from_pil(im, path)
    loaded.meta = meta
    loaded.frames = frames
    loaded.remarks.extend(remarks)
    return _reconcile_profile(loaded)


@contextlib.contextmanager
def quiet_decoders():
    """Decoders' chatter kept off stderr: Python warnings (Pillow's "Corrupt EXIF data",
    NumPy's) and tifffile's log lines. What matters reaches the user as an
    :class:`ImageError` or a note (:attr:`LoadedImage.remarks`)."""
    tlog = logging.getLogger("tifffile")
    drop = logging.Filter("-")  # (a filter whose name matches no record: drops them all)
    tlog.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        tlog.removeFilter(drop)


def _upright(im: Image.Image) -> tuple:
    """``(image, remarks)``: ``im`` turned upright by its EXIF orientation; an EXIF block
    that cannot be parsed is dropped, never an error (the picture is used as stored)."""
    try:
        return ImageOps.exif_transpose(im), []
    except Exception:
        im.info.pop("exif", None)
        try:
            im.getexif().clear()
        except Exception:
            pass
        return im, ["its EXIF block is broken: it is left out (the picture is used as stored, "
                    "not rotated)"]


def _cmyk_to_rgb(im: Image.Image, meta: "Metadata") -> tuple:
    """``(RGB image, metadata, remark)`` of a CMYK image (a print JPEG or TIFF): converted
    to sRGB through its own CMYK profile by LittleCMS where it has one (the profile is then
    sRGB's, i.e. none), else by Pillow's naive formula."""
    if meta.icc:
        try:
            from PIL import ImageCms
            src = ImageCms.ImageCmsProfile(io.BytesIO(meta.icc))
            if src.profile.xcolor_space.strip() == "CMYK":
                rgb = ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"),
                                                outputMode="RGB")
                return rgb, Metadata(None, meta.exif), ("a CMYK image: converted to sRGB "
                                                        "through its colour profile")
        except Exception:
            pass
    return (im.convert("RGB"), Metadata(None, meta.exif),
            "a CMYK image without a usable CMYK profile: converted to RGB by a simple "
            "formula (colours approximate)")


def _reconcile_profile(loaded: "LoadedImage") -> "LoadedImage":
    """Drop a colour profile that contradicts the pixels (a grey or CMYK profile on RGB
    data, an RGB one on a grey image): it would be copied into every output, where readers
    reject it. Said in :attr:`LoadedImage.remarks`."""
    icc = loaded.meta.icc
    if not icc:
        return loaded
    space = icc[16:20].decode("latin-1").strip() if len(icc) >= 20 else "?"
    want = "GRAY" if loaded.grey else "RGB"
    if space != want:
        loaded.meta = Metadata(None, loaded.meta.exif)
        kind = "grey" if loaded.grey else "colour (RGB)"
        loaded.remarks.append(f"its colour profile is for {space or 'unknown'} data, not "
                              f"{kind}: it is left out")
    return loaded


def _with_header_metadata(loaded: LoadedImage) -> LoadedImage:
    """``loaded`` (decoded by libpng or tifffile) with the profile and EXIF its file's
    header holds, read by Pillow without decoding the pixels."""
    def read() -> None:
        with quiet_decoders(), _large_png_chunks(), Image.open(loaded.path) as im:
            loaded.meta = _metadata(im)
    try:
        _past_pillows_limit(read)
    except Exception:  # the pixels are what matters; a header Pillow cannot read has none
        pass
    return _reconcile_profile(loaded)


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


def _from_array(arr: np.ndarray, path: str) -> LoadedImage:
    """A LoadedImage from a decoder's ``(H, W)`` or ``(H, W, C)`` array, C = 1, 2 (grey+alpha),
    3 (RGB) or 4 (RGBA): uint8 or uint16 kept as they are (:mod:`core.io.pixels`), floats
    clipped to [0, 1]; the alpha becomes float."""
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.dtype.kind == "f":  # (NaN and infinities, which a float TIFF may hold: 0 and 1)
        arr = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        arr, bits = np.clip(arr, 0, 1), 16
    elif arr.dtype in (np.uint8, np.uint16):
        bits = 8 if arr.dtype == np.uint8 else 16
    else:
        raise ImageError(f"cannot read image {path}: unsupported sample type {arr.dtype}")
    c = arr.shape[2]
    if c not in (1, 2, 3, 4):
        raise ImageError(f"cannot read image {path}: {c} channels")
    alpha = to_float(arr[..., c - 1]) if c in (2, 4) else None
    if c <= 2:
        return LoadedImage(np.repeat(arr[..., :1], 3, 2), alpha, True, bits, path)
    return LoadedImage(np.ascontiguousarray(arr[..., :3]), alpha, False, bits, path)


def _read_jxl(path: str, max_pixels: Optional[int]) -> LoadedImage:
    """A JPEG XL file (:mod:`core.io.jxl`), its declared size checked before decoding; EXIF
    from its ``Exif`` box, the orientation (applied by the decoder) reset."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        hd = jxl.header(data)
        w, h = hd.width, hd.height
    except (ValueError, OSError) as exc:
        raise ImageError(f"cannot read image {path}: {_why(exc)}") from None
    _check_size(path, w, h, max_pixels)
    if not jxl.available():
        raise ImageError(f"cannot read image {path}: this install's imagecodecs has no "
                         "JPEG XL decoder")
    try:
        arr, exif = jxl.read(data)
    except Exception as exc:
        raise ImageError(f"cannot read image {path}: {_why(exc)}") from None
    loaded = _from_array(arr, path)
    loaded.meta = Metadata(None, _exif_upright(exif))
    loaded.frames = ANIMATION if hd.animated else 1
    return loaded


def _exif_upright(tiff: Optional[bytes]) -> Optional[bytes]:
    """EXIF (TIFF bytes, or Pillow's ``Exif\\0\\0`` form) with the orientation set to 1, in
    Pillow's form; None if absent or unreadable."""
    if not tiff:
        return None
    try:
        ex = Image.Exif()
        ex.load(tiff if tiff.startswith(b"Exif\x00\x00") else b"Exif\x00\x00" + tiff)
        if 0x0112 in ex:
            ex[0x0112] = 1
        return ex.tobytes() if len(ex) else None
    except Exception:
        return None


def _is_tiff(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _read_tiff16(path: str, max_pixels: Optional[int]) -> Optional[np.ndarray]:
    """``(H, W, C)`` uint16 of a 16-bit RGB(A) or grey+alpha TIFF's first page through
    ``tifffile`` (Pillow cannot keep it 16-bit), the page's declared size checked first; None for
    any other TIFF
    (Pillow reads those)."""
    import tifffile

    try:
        with quiet_decoders(), tifffile.TiffFile(path) as tif:
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
#: the image. PNG: deflate compresses at best about 1032:1 of the raw bytes (at least one a
#: pixel at 8 bits; an eighth of one at 1 bit: the check scales by the bits per pixel); JPEG
#: (Huffman): at least one bit per 8x8 luma block in the DC scan; TIFF and GIF: LZW/deflate,
#: at best a few thousand to one; BMP: RLE at best 128:1. WebP and AVIF have no such bound
#: (lossless WebP codes a flat 16-Mpx image in 680 bytes, AVIF in 1.3 KB): their ratios are a
#: third of those flat images', so only a file that declares far more pixels than any real
#: picture of its size could hold is refused (a 36-byte WebP that claims 256 Mpx).
_MIN_BYTES_PER_PIXEL = {"PNG": 1 / 1100, "JPEG": 1 / 1024, "MPO": 1 / 1024, "TIFF": 1 / 4096,
                        "GIF": 1 / 4096, "BMP": 1 / 256, "WEBP": 1 / 65536, "AVIF": 1 / 32768}
#: below this many pixels a decode costs little, whatever the file claims
_PLAUSIBILITY_PIXELS = 16_000_000


def _check_plausible(path: str, w: int, h: int, fmt: Optional[str], bits: int = 8) -> None:
    """Refuse a file far too small to hold the ``w x h`` pixels its header declares (see
    :data:`_MIN_BYTES_PER_PIXEL`); ``bits``: the bits per pixel of a PNG or TIFF below 8
    (a bilevel scan is 1). A bilevel TIFF (CCITT G3/G4 codes a blank row in one bit) need
    only hold a bit a row."""
    ratio = _MIN_BYTES_PER_PIXEL.get(fmt or "")
    if ratio is None or w * h <= _PLAUSIBILITY_PIXELS:
        return
    need = w * h * ratio * min(1.0, bits / 8)
    if fmt == "TIFF" and bits == 1:
        need = h / 8
    size = os.path.getsize(path)
    if size < need:
        raise ImageError(f"cannot read image {path}: the file is truncated or a decompression "
                         f"bomb ({size} bytes cannot hold the {w}x{h} pixels its header "
                         "declares)")


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
        return _from_array(a, path)
    if mode == "F":
        return _from_array(np.asarray(im, dtype=np.float32), path)
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    if im.mode not in ("L", "LA", "RGB", "RGBA"):
        raise ImageError(f"cannot read image {path}: unsupported pixel mode {im.mode}")
    return _from_array(np.asarray(im), path)  # uint8, kept as decoded (core.io.pixels)


#: the EXIF tags a 16-bit TIFF keeps (written by tifffile, which cannot write EXIF's own
#: sub-directories): make, model, date, artist, copyright
TIFF16_EXIF_TAGS = (0x010F, 0x0110, 0x0132, 0x013B, 0x8298)


def _tiff_camera_tags(exif: Optional[bytes]) -> list:
    """tifffile ``extratags`` for the :data:`TIFF16_EXIF_TAGS` that ``exif`` holds."""
    if not exif:
        return []
    ex = Image.Exif()
    try:
        ex.load(exif)
    except Exception:
        return []
    return [(tag, "s", 0, str(ex[tag]), True) for tag in TIFF16_EXIF_TAGS
            if isinstance(ex.get(tag), str) and ex[tag].isascii()]


#: the largest EXIF a JPEG holds (one APP1 segment of 64 KB, with Pillow's "Exif\0\0")
JPEG_EXIF_MAX = 65533
#: the largest colour profile written into a PNG: what Pillow (and so this app) reads back
#: without raising its limit (other readers are stricter still)
PNG_ICC_MAX = 1 << 20


def metadata_limits(meta: "Metadata", pil: str) -> list:
    """What of ``meta`` the format ``pil`` cannot hold, as notes (empty if it all fits)."""
    out = []
    if meta.exif and pil == "JPEG" and len(meta.exif) > JPEG_EXIF_MAX:
        out.append(f"its EXIF ({len(meta.exif) / 1024:.0f} KB) is more than a JPEG holds "
                   "(64 KB): it is left out")
    if meta.icc and pil == "PNG" and len(meta.icc) > PNG_ICC_MAX:
        out.append(f"its colour profile ({len(meta.icc) / 2**20:.1f} MB) is more than PNG "
                   "readers accept: the colours are converted to sRGB instead")
    return out


def fitting_metadata(meta: "Metadata", pil: str) -> tuple:
    """``(metadata, profile_written)``: ``meta`` less an EXIF the format ``pil`` cannot hold
    (:func:`metadata_limits`), and whether its profile goes into the file (False for a
    format without profiles or one too large for it: :func:`save_image` then converts the
    colours to sRGB)."""
    exif, icc = meta.exif, meta.icc
    if exif and pil == "JPEG" and len(exif) > JPEG_EXIF_MAX:
        exif = None
    written = BY_PIL[pil].icc and not (icc and pil == "PNG" and len(icc) > PNG_ICC_MAX)
    return Metadata(icc, exif), written


def save_image(path: Union[str, os.PathLike], rgb: np.ndarray, alpha: Optional[np.ndarray] = None,
               grey: bool = False, bits: int = 8, quality: int = 95,
               meta: Optional[Metadata] = None) -> None:
    """Write ``rgb`` (``(H, W, 3)`` float in [0, 1], or uint8) atomically; format from the
    extension (``alpha`` likewise float or uint8).

    What each format keeps is :data:`core.io.formats.FORMATS`' to say: ``grey`` writes one
    channel (the mean of the three); ``bits=16`` writes 16 bits per channel where the format
    has them, else 8; ``alpha`` is written where the format has transparency and dropped
    otherwise (:func:`core.export.export` flattens it onto white first); ``meta``'s colour
    profile and EXIF go where the format carries them, and a format that cannot carry the
    profile gets its colours converted to sRGB (in 8 bits) instead. ``quality`` (1-100) for
    the lossy formats (JPEG XL: 100 is lossless). Raises :class:`ImageError` for an unknown
    extension or an OS error (disk full, permission), naming the file.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    pil = WRITE_FORMATS.get(ext)
    if pil is None:
        raise ImageError(f"cannot write {path}: unknown image extension {ext!r} "
                         f"(use one of {', '.join(sorted(WRITE_FORMATS))})")
    f = BY_PIL[pil]
    meta, icc_written = fitting_metadata(meta or Metadata(), pil)
    to_srgb = (ToSRGB.for_profile(meta.icc) if meta.icc and not icc_written and not grey
               else None)
    if not f.alpha:
        alpha = None
    if rgb.dtype == np.uint8 or to_srgb is not None or not (bits == 16 and f.bits16):
        bits = 8
    maxv = 65535 if bits == 16 else 255
    if rgb.dtype == np.uint8:  # already quantised (large exports)
        chans = np.round(rgb.mean(axis=2, keepdims=True)).astype(np.uint8) if grey else rgb
        if alpha is not None:
            chans = np.concatenate([chans, np.asarray(alpha, np.uint8)[..., None]], axis=2)
    else:
        rgb = np.clip(rgb, 0, 1)
        chans = rgb.mean(axis=2, keepdims=True) if grey else rgb
        if alpha is not None:
            chans = np.concatenate([chans, np.clip(alpha, 0, 1)[..., None]], axis=2)
        chans = np.round(chans * maxv).astype(np.uint16 if bits == 16 else np.uint8)
    if to_srgb is not None:
        chans = to_srgb(chans)
    icc = meta.icc if meta.icc and icc_written else None
    exif = meta.exif if meta.exif and f.exif else None
    write = _writer(pil, bits, chans.shape[2])
    try:
        atomic_write(path, lambda tmp: write(tmp, chans, f, quality, icc, exif))
    except OSError as exc:
        raise ImageError(f"cannot write {path}: {exc.strerror or exc}") from None


# ---- writers: (tmp, channels (H, W, C) uint8/uint16, format, quality, icc, exif) -----------
def _write_pillow(tmp, chans, f, quality, icc, exif) -> None:
    """Pillow: 8 bits, or 16-bit grey (``I;16``)."""
    if chans.dtype == np.uint16:
        im = Image.fromarray(chans[..., 0])
    else:
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[chans.shape[2]]
        im = Image.fromarray(chans[..., 0] if mode == "L" else chans, mode=mode)
    kw = {"quality": int(quality)} if f.lossy and chans.dtype == np.uint8 else {}
    extra = {k: v for k, v in (("icc_profile", icc), ("exif", exif)) if v}
    im.save(tmp, format=f.pil, **kw, **extra)


def _write_jxl(tmp, chans, f, quality, icc, exif) -> None:
    jxl.write(tmp, chans[..., 0] if chans.shape[2] == 1 else chans, quality, exif)


def _write_png16(tmp, chans, f, quality, icc, exif) -> None:
    png.write(tmp, chans, icc, exif)


def _write_tiff16(tmp, chans, f, quality, icc, exif) -> None:
    """16-bit RGB(A) or grey+alpha, which Pillow would write in 8 bits."""
    import tifffile
    photometric = "minisblack" if chans.shape[2] <= 2 else "rgb"
    n_extra = 1 if chans.shape[2] in (2, 4) else 0
    tifffile.imwrite(tmp, chans, photometric=photometric, compression="zlib",
                     extrasamples=("unassalpha",) * n_extra, iccprofile=icc,
                     extratags=_tiff_camera_tags(exif))


#: the writer of each format where Pillow's is not the one; 16-bit writers by format
WRITERS = {"JXL": _write_jxl}
WRITERS_16 = {"PNG": _write_png16, "TIFF": _write_tiff16}


def _writer(pil: str, bits: int, channels: int):
    """The writer for ``pil`` at ``bits`` with ``channels`` channels (the tables above)."""
    if pil in WRITERS:
        return WRITERS[pil]
    if bits == 16 and channels > 1:
        return WRITERS_16[pil]
    return _write_pillow
