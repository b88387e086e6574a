"""Export: render a region at any size to a file, in bands, atomically, cancellably.

One front door, :func:`export`, used by both the ``core.upscale`` CLI and the viewer's export
dialog, so both give the same file pixel for pixel.

Memory: the output is rendered in bands of rows (``band_pixels`` at a time). PNG output is
streamed band by band (:class:`core.io.png.PNGStreamWriter`), so a 16k x 16k PNG needs memory
for one band; JPEG, TIFF and WebP are encoded by Pillow from the assembled 8-bit image
(3 bytes per output pixel). The file appears only when complete (temporary file + rename);
cancelling (``cancelled()`` true) or any error leaves no file.
"""
from __future__ import annotations

import os
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from core.atomic import staged
from core.device import release_freed_memory
from core.geometry import Region
from core.io.formats import BY_PIL, FORMATS
from core.io.imageio import (
    WRITE_FORMATS,
    ImageError,
    LoadedImage,
    Metadata,
    atomic_write,
    fitting_metadata,
    save_image,
)
from core.io.png import PNGStreamWriter
from core.render.encoding import Cancelled, LatentImage
from core.render.methods import METHODS as _METHODS
from core.render.methods import Method, render_by
from core.render.resample import render_bicubic

__all__ = ["export", "export_many", "render_region", "check_request", "check_output",
           "estimate_bytes",
           "METHODS", "MAX_OUTPUT_PIXELS"]

#: the methods a single-model export offers (the CLI's --method; the viewer adds 'compare')
METHODS = tuple(m for m in _METHODS if m != Method.COMPARE)
#: largest 8-bit image assembled in memory for formats that cannot be streamed
MAX_BUFFERED_BYTES = 3 << 30
#: largest output of any export (PNG is streamed, so this is about time, not memory)
MAX_OUTPUT_PIXELS = 1 << 32
#: outputs above this many pixels run only when confirmed (the CLI's --yes, a question in the
#: viewer): hours on a CPU, gigabytes on disk
CONFIRM_OUTPUT = 1_000_000_000
MAX_OUTPUT_SIDE = 1 << 20
#: the largest side each format can store
FORMAT_MAX_SIDE = {f.pil: f.max_side for f in FORMATS}


def check_request(region: Region, out_w: int, out_h: int, image_w: int, image_h: int) -> None:
    """Refuse, with a one-line :class:`ValueError`, an export that cannot be what the user
    means: an output size that is not a positive integer or beyond :data:`MAX_OUTPUT_PIXELS`
    (the format's own limits: :func:`check_output`), or a region that does not overlap the
    image or reaches further beyond it than the image's own width or height.

    The part of a region outside the image (allowed up to one image width/height beyond each
    edge) is rendered as the renderers extend any image: its border continued outwards
    (LIIF clamps its query coordinates to the image, bicubic replicates the edge pixels)."""
    if not (isinstance(out_w, int) and isinstance(out_h, int)) or out_w < 1 or out_h < 1:
        raise ValueError(f"output size must be positive integers, got {out_w}x{out_h}")
    if out_w > MAX_OUTPUT_SIDE or out_h > MAX_OUTPUT_SIDE or out_w * out_h > MAX_OUTPUT_PIXELS:
        raise ValueError(f"output {out_w}x{out_h} is above the limit of {MAX_OUTPUT_SIDE} px a "
                         f"side and {MAX_OUTPUT_PIXELS / 1e9:.1f} Gpx")
    x1, y1 = region.x + region.w, region.y + region.h
    if region.x >= image_w or region.y >= image_h or x1 <= 0 or y1 <= 0:
        raise ValueError(f"region {region.x:g},{region.y:g},{region.w:g},{region.h:g} does not "
                         f"overlap the {image_w}x{image_h} image")
    if region.x < -image_w or region.y < -image_h or x1 > 2 * image_w or y1 > 2 * image_h:
        raise ValueError(f"region {region.x:g},{region.y:g},{region.w:g},{region.h:g} reaches "
                         f"more than the image's own size beyond the {image_w}x{image_h} image")


def check_output(path: str, out_w: int, out_h: int) -> str:
    """The Pillow name of ``path``'s format, after refusing (:class:`ImageError`) an unknown
    extension or an output the format cannot hold: a side beyond its limit, or more than
    :data:`MAX_BUFFERED_BYTES` to encode in memory (every format but PNG)."""
    ext = os.path.splitext(path)[1].lower()
    fmt = WRITE_FORMATS.get(ext)
    if fmt is None:
        raise ImageError(f"cannot write {path}: unknown image extension {ext!r} "
                         f"(use one of {', '.join(sorted(WRITE_FORMATS))})")
    if max(out_w, out_h) > FORMAT_MAX_SIDE.get(fmt, MAX_OUTPUT_SIDE):
        raise ImageError(f"cannot write {path}: {fmt} stores at most {FORMAT_MAX_SIDE[fmt]} px "
                         f"a side; {out_w}x{out_h} needs PNG or TIFF")
    if fmt != "PNG" and out_w * out_h * 3 > MAX_BUFFERED_BYTES:
        raise ImageError(f"cannot write {path}: {out_w}x{out_h} is too large to encode as {fmt} "
                         f"in memory; use PNG, which is written in bands")
    return fmt


def render_region(image: LoadedImage, region: Region, out_w: int, out_h: int, method: str,
                  latent: Optional[LatentImage] = None,
                  window=None, cancelled: Optional[Callable[[], bool]] = None) -> np.ndarray:
    """RGB ``(h, w, 3)`` float32 in [0, 1] of ``region`` by ``method`` (any of
    :data:`core.render.methods.METHODS`; a model method renders ``latent``)."""
    return render_by(method, image, region, out_w, out_h, {method: latent}, window, cancelled)


def export(image: LoadedImage, region: Region, out_w: int, out_h: int, path: str,
           method: str = "liif", latent: Optional[LatentImage] = None, quality: int = 95,
           progress: Optional[Callable[[int, int], None]] = None,
           cancelled: Optional[Callable[[], bool]] = None,
           band_pixels: int = 1 << 21, keep_exif: bool = True) -> None:
    """Render ``region`` of ``image`` at ``out_w x out_h`` with ``method`` into ``path``.

    Greyscale sources are written greyscale, alpha is resampled bicubically and re-attached,
    16-bit sources stay 16-bit in PNG/TIFF. The source's colour profile and (unless not
    ``keep_exif``: privacy) its EXIF go with the pixels where the format carries them.
    ``progress(pixels_done, pixels_total)`` after each band. Raises
    :class:`core.render.encoding.Cancelled` when cancelled, :class:`ImageError` on I/O errors,
    :class:`ValueError` for a request :func:`check_request` refuses.
    """
    check_request(region, out_w, out_h, image.width, image.height)
    fmt = check_output(path, out_w, out_h)
    band = max(1, min(out_h, band_pixels // out_w))
    has_alpha = BY_PIL[fmt].alpha
    alpha = image.alpha if has_alpha else None
    # a format without alpha (JPEG, BMP): a transparent source is flattened onto white (as
    # photo tools do; LoadedImage.notes says so), never written with whatever colour its
    # transparent pixels happen to hold
    flatten = image.alpha if not has_alpha and image.alpha is not None else None
    meta = (image.meta if keep_exif else image.meta.without_exif()).for_size(out_w, out_h)

    def stop_if_cancelled() -> None:
        # (every method: bicubic and nearest render without looking at ``cancelled``)
        if cancelled is not None and cancelled():
            raise Cancelled()

    def bands():
        for r0 in range(0, out_h, band):
            stop_if_cancelled()
            r1 = min(out_h, r0 + band)
            win = (0, r0, out_w, r1)
            rgb = render_region(image, region, out_w, out_h, method, latent, win, cancelled)
            if flatten is not None:
                fa = np.clip(render_bicubic(flatten, region, out_w, out_h, win), 0, 1)[..., None]
                rgb = rgb * fa + (1.0 - fa)
            a = None
            if alpha is not None:
                a = np.clip(render_bicubic(alpha, region, out_w, out_h, win), 0, 1)
            yield r0, r1, rgb, a
            release_freed_memory()  # the band's and the evicted tiles' pages (core.device)
            if progress is not None:
                progress(r1 * out_w, out_h * out_w)
        stop_if_cancelled()  # a cancel during the last band: nothing is written

    if BY_PIL[fmt].streamable and fitting_metadata(meta, fmt)[1]:
        # (streamed: PNG; a profile too large for it goes through save_image, which converts)
        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                _png_rows(f, out_w, out_h, image, alpha is not None, meta,
                          ((rgb, a) for _, _, rgb, a in bands()))

        try:
            atomic_write(path, write)
        except OSError as exc:
            raise ImageError(f"cannot write {path}: {exc.strerror or exc}") from None
        return
    rgb_full = np.empty((out_h, out_w, 3), np.float32) if image.bits == 16 \
        else np.empty((out_h, out_w, 3), np.uint8)
    a_full = None if alpha is None else np.empty((out_h, out_w), rgb_full.dtype)
    for r0, r1, rgb, a in bands():
        if rgb_full.dtype == np.uint8:
            rgb_full[r0:r1] = np.round(rgb * 255)
            if a is not None:
                a_full[r0:r1] = np.round(a * 255)
        else:
            rgb_full[r0:r1] = rgb
            if a is not None:
                a_full[r0:r1] = a
    save_image(path, rgb_full, a_full, grey=image.grey, bits=image.bits, quality=quality,
               meta=meta)


def _png_rows(f, out_w: int, out_h: int, image: LoadedImage, has_alpha: bool, meta: Metadata,
              bands) -> None:
    """Stream ``bands`` (``(rgb, alpha)`` float pairs, top to bottom) into ``f`` as a PNG
    of ``image``'s kind: grey or RGB, its bit depth, alpha when ``has_alpha``."""
    bits = 16 if image.bits == 16 else 8
    maxv, dtype = (65535, np.uint16) if bits == 16 else (255, np.uint8)
    chans = (1 if image.grey else 3) + (1 if has_alpha else 0)
    wr = PNGStreamWriter(f, out_w, out_h, chans, bits, meta.icc, meta.exif)
    for rgb, a in bands:
        c = rgb.mean(2, keepdims=True) if image.grey else rgb
        if a is not None:
            c = np.concatenate([c, a[..., None]], 2)
        wr.write_rows(np.round(c * maxv).astype(dtype))
    wr.close()


#: the side of the patch :func:`estimate_bytes` encodes
ESTIMATE_SIDE = 128
#: patches a side of the estimate's grid: 4 x 4 patches of 128 x 128, a 512 x 512 mosaic
ESTIMATE_GRID = 4
#: codecs whose large transforms pack wide flat areas far better than a mosaic of patches
#: shows (its seams cost them more than the whole picture does): on a flat picture up to
#: :data:`WHOLE_ESTIMATE_PIXELS` output pixels, the whole output is encoded instead
WIDE_TRANSFORM = ("HEIF", "JXL")
#: below this many bytes per pixel in the mosaic a picture counts as flat (photos at any
#: usual quality take several times more; flat graphics a fifth of it or less)
FLAT_BYTES_PER_PIXEL = 0.05
WHOLE_ESTIMATE_PIXELS = 16_000_000


def estimate_bytes(image: LoadedImage, region: Region, out_w: int, out_h: int, ext: str,
                   quality: int = 95, keep_exif: bool = True) -> int:
    """About how many bytes the export of ``region`` at ``out_w x out_h`` to a file ending
    ``ext`` will take.

    A grid of :data:`ESTIMATE_GRID` x :data:`ESTIMATE_GRID` patches of up to
    :data:`ESTIMATE_SIDE` output pixels a side, spread over the whole output, is rendered
    bicubically, set side by side and encoded as the export would encode it (same format,
    quality, bit depth, alpha); its bytes per pixel, less those of a 1 x 1 file (the headers),
    are scaled to the whole output, plus the metadata kept. Codecs with large transforms
    (:data:`WIDE_TRANSFORM`: HEIC, JPEG XL) pack wide flat areas far better than any sample
    shows: for them a flat picture (:data:`FLAT_BYTES_PER_PIXEL`) of up to
    :data:`WHOLE_ESTIMATE_PIXELS` output pixels is encoded whole (fast, being flat); larger
    flat pictures stay overestimated. A LIIF rendering is sharper than bicubic and
    compresses a little worse: take it as "about"."""
    fmt = WRITE_FORMATS.get(ext.lower())
    if fmt is None:
        raise ValueError(f"unknown image extension {ext!r}")
    pw, ph = min(out_w, ESTIMATE_SIDE), min(out_h, ESTIMATE_SIDE)
    # as many patches a side as fit without overlapping (a small output: itself, whole)
    nx, ny = (max(1, min(ESTIMATE_GRID, out_w // pw)), max(1, min(ESTIMATE_GRID, out_h // ph)))
    cols = [round((out_w - pw) * (k + 0.5) / nx) if nx > 1 else (out_w - pw) // 2
            for k in range(nx)]
    rows = [round((out_h - ph) * (k + 0.5) / ny) if ny > 1 else (out_h - ph) // 2
            for k in range(ny)]

    def mosaic(img):
        return np.concatenate([np.concatenate(
            [render_bicubic(img, region, out_w, out_h, (c, r, c + pw, r + ph)) for c in cols],
            axis=1) for r in rows], axis=0)
    has_alpha = image.alpha is not None and BY_PIL[fmt].alpha
    rgb = mosaic(image.pixels)
    alpha = np.clip(mosaic(image.alpha), 0, 1) if has_alpha else None
    meta = (image.meta if keep_exif else image.meta.without_exif()).for_size(out_w, out_h)
    kept = len(meta.icc or b"") + len(meta.exif or b"")
    head = _encoded_bytes(image, rgb[:1, :1], None if alpha is None else alpha[:1, :1], fmt,
                          ext, quality)
    body = _encoded_bytes(image, rgb, alpha, fmt, ext, quality) - head
    per_px = max(0, body) / rgb[..., 0].size
    if fmt in WIDE_TRANSFORM and per_px < FLAT_BYTES_PER_PIXEL \
            and out_w * out_h <= WHOLE_ESTIMATE_PIXELS:
        whole = render_bicubic(image.pixels, region, out_w, out_h)
        a = np.clip(render_bicubic(image.alpha, region, out_w, out_h), 0, 1) if has_alpha \
            else None
        return _encoded_bytes(image, whole, a, fmt, ext, quality) + kept
    return int(per_px * out_w * out_h + head + kept)


def _encoded_bytes(image: LoadedImage, rgb: np.ndarray, alpha: Optional[np.ndarray], fmt: str,
                   ext: str, quality: int) -> int:
    """The size of ``rgb`` (and ``alpha``) encoded as an export of ``image`` to ``fmt``
    would encode it, without metadata."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="liif-zoom-estimate-") as d:
        path = os.path.join(d, "estimate" + ext)
        if fmt == "PNG":  # as export writes it: streamed, by core.io.png
            with open(path, "wb") as f:
                _png_rows(f, rgb.shape[1], rgb.shape[0], image, alpha is not None, Metadata(),
                          [(np.clip(rgb, 0, 1), alpha)])
        else:
            save_image(path, np.clip(rgb, 0, 1), alpha, grey=image.grey, bits=image.bits,
                       quality=quality)
        return os.path.getsize(path)


def export_many(image: LoadedImage, region: Region, out_w: int, out_h: int,
                jobs: Sequence[Tuple[str, str]], latents: Mapping[str, Optional[LatentImage]],
                quality: int = 95, progress: Optional[Callable[[int, int], None]] = None,
                cancelled: Optional[Callable[[], bool]] = None,
                keep_exif: bool = True) -> List[str]:
    """Export the same region by several methods, ``jobs = [(method, path), ...]``, all or
    nothing (:func:`core.atomic.staged`): every target is checked before any work, each
    method renders into a staged file beside its target, and the targets are replaced
    together only when all are complete; a cancel, an error or a failed rename leaves every
    target as it was. ``latents`` maps the model methods to their latents;
    ``progress(done, total)`` counts over all the jobs. Returns the paths written."""
    n = len(jobs)
    with staged([p for _, p in jobs]) as tmps:
        for k, ((method, target), tmp) in enumerate(zip(jobs, tmps)):
            step = None if progress is None else (lambda d, t, k=k: progress(k * t + d, n * t))
            try:
                export(image, region, out_w, out_h, tmp, method, latents.get(method),
                       quality=quality, progress=step, cancelled=cancelled,
                       keep_exif=keep_exif)
            except (ImageError, OSError) as exc:  # name the target, not the staged file
                raise type(exc)(str(exc).replace(tmp, str(target))) from None
        if cancelled is not None and cancelled():
            raise Cancelled()  # (staged: no target is touched)
    return [p for _, p in jobs]
