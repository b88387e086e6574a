"""Every format the app writes, from the one table (core.io.formats.FORMATS): each writer round
trips what the table says it keeps (bit depth, alpha, colour profile, EXIF), and does what it
says where it cannot (flattened alpha, colours converted to sRGB, EXIF dropped); JPEG XL's
declared size is checked before decoding; docs/FORMATS.md's table is the table."""
import os

import numpy as np
import pytest
from PIL import Image

from core.io import jxl
from core.io.colour import ToSRGB
from core.io.formats import FORMATS, format_table
from core.io.imageio import (
    ImageError,
    ImageTooLarge,
    LoadedImage,
    Metadata,
    image_size,
    load_image,
    save_image,
)
from core.metrics import psnr

WRITERS = [f for f in FORMATS if f.writable]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _p3() -> bytes:
    from PySide6 import QtGui
    return bytes(QtGui.QColorSpace(QtGui.QColorSpace.NamedColorSpace.DisplayP3).iccProfile())


def _camera_exif() -> bytes:
    ex = Image.Exif()
    ex[0x0110] = "Camera X"  # model
    ex[0x0112] = 1
    return ex.tobytes()


def _smooth(h=48, w=64):
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    rgb = np.stack([0.2 + 0.6 * xx, 0.3 + 0.5 * yy, 0.5 + 0.3 * np.sin(3 * xx)], -1)
    alpha = np.clip(0.2 + yy, 0, 1)
    return rgb.astype(np.float32), alpha.astype(np.float32)


def test_every_writable_format_is_available_in_the_default_install():
    names = {f.name for f in WRITERS}
    assert {"PNG", "JPEG", "TIFF", "WebP", "JPEG XL", "AVIF", "HEIC", "BMP"} <= names
    assert all(f.readable for f in FORMATS)


@pytest.mark.parametrize("fmt", WRITERS, ids=lambda f: f.name)
def test_each_writer_keeps_what_the_table_says(tmp_path, fmt):
    rgb, alpha = _smooth()
    path = tmp_path / ("out" + fmt.exts[0])
    meta = Metadata(_p3(), _camera_exif())
    save_image(path, rgb, alpha, bits=16, quality=100 if fmt.name == "JPEG XL" else 95, meta=meta)
    back = load_image(path)
    assert (back.width, back.height) == (64, 48)
    # 16 bits where the format has them, unless the colours had to be converted (in 8 bits)
    assert back.bits == (16 if fmt.bits16 and fmt.icc else 8), fmt.name
    assert (back.alpha is not None) == fmt.alpha, fmt.name
    want = rgb
    if not fmt.icc:  # converted to sRGB (in 8 bits), the space a file without a profile means
        want = ToSRGB.for_profile(meta.icc)(np.round(rgb * 255).astype(np.uint8)) / 255.0
    got = back.rgb
    if fmt.lossy and fmt.name != "JPEG XL":
        assert psnr(np.clip(got, 0, 1), want) > 35, fmt.name
    else:  # lossless: the quantised values exactly
        step = 65535 if back.bits == 16 else 255
        assert np.abs(got - np.round(want * step) / step).max() < 1e-6, fmt.name
    if fmt.icc:
        assert back.meta.icc == meta.icc, fmt.name
    if fmt.exif:
        assert back.meta.exif
        ex = Image.Exif()
        ex.load(back.meta.exif)
        assert ex.get(0x0110) == "Camera X", fmt.name
    else:
        assert back.meta.exif is None


def test_formats_without_alpha_or_profiles_say_what_happens():
    rgb, alpha = _smooth()
    img = LoadedImage((rgb * 255).astype(np.uint8), alpha, meta=Metadata(_p3(), _camera_exif()))
    bmp = " ".join(img.notes("BMP"))
    assert "flattened onto white" in bmp and "converted to sRGB" in bmp and "no EXIF" in bmp
    assert "flattened onto white" in " ".join(img.notes("JPEG"))
    assert img.notes("PNG") == [] and img.notes("TIFF") == []
    assert "converted to sRGB" in " ".join(img.notes("JXL"))


def test_an_export_to_bmp_flattens_transparency_onto_white(tmp_path):
    from core.export import export
    from core.geometry import Region
    rgb = np.zeros((8, 8, 3), np.uint8)
    alpha = np.zeros((8, 8), np.float32)  # fully transparent black
    img = LoadedImage(rgb, alpha)
    export(img, Region(0, 0, 8, 8), 8, 8, str(tmp_path / "o.bmp"), method="bicubic")
    assert np.asarray(Image.open(tmp_path / "o.bmp")).min() == 255


def _jxl_header(w_code_bits, ratio=0) -> bytes:
    """A bare codestream's start: FF 0A then SizeHeader bits (LSB first)."""
    bits = []

    def put(v, n):
        bits.extend((v >> i) & 1 for i in range(n))
    put(0, 1)            # not small
    put(3, 2)            # height: 30-bit distribution
    put(w_code_bits - 1, 30)
    put(ratio, 3)
    if ratio == 0:
        put(3, 2)
        put(w_code_bits - 1, 30)
    data = bytearray((len(bits) + 7) // 8 + 16)
    for i, b in enumerate(bits):
        data[i >> 3] |= b << (i & 7)
    return b"\xff\x0a" + bytes(data)


def test_jpeg_xl_size_is_read_before_decoding_and_a_bomb_is_refused(tmp_path):
    import imagecodecs
    rng = np.random.default_rng(0)
    for h, w in [(8, 8), (37, 45), (300, 400), (1080, 1920), (1, 7000)]:
        a = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        assert jxl.size(imagecodecs.jpegxl_encode(a, level=50)) == (w, h)
    assert jxl.size(_jxl_header(100_000)) == (100_000, 100_000)
    assert jxl.size(_jxl_header(3000, ratio=7)) == (6000, 3000)
    (tmp_path / "bomb.jxl").write_bytes(_jxl_header(100_000))
    with pytest.raises(ImageTooLarge, match="100000x100000"):
        load_image(tmp_path / "bomb.jxl")
    (tmp_path / "cut.jxl").write_bytes(b"\xff\x0a\x00")
    with pytest.raises(ImageError, match="truncated"):
        load_image(tmp_path / "cut.jxl")
    good = imagecodecs.jpegxl_encode((rng.random((40, 30, 3)) * 255).astype(np.uint8), level=90)
    (tmp_path / "half.jxl").write_bytes(good[: len(good) // 2])
    with pytest.raises(ImageError, match="half.jxl"):
        load_image(tmp_path / "half.jxl")


def test_jpeg_xl_exif_box_survives_and_the_container_decodes(tmp_path):
    a = (np.random.default_rng(0).random((20, 30, 4)) * 255).astype(np.uint8)
    jxl.write(str(tmp_path / "a.jxl"), a, 100, _camera_exif())
    data = (tmp_path / "a.jxl").read_bytes()
    assert data.startswith(jxl.CONTAINER_SIG) and jxl.size(data) == (30, 20)
    back = load_image(tmp_path / "a.jxl")
    assert image_size(tmp_path / "a.jxl") == (30, 20)  # what the viewer asks first
    assert np.array_equal(back.pixels, a[..., :3])
    assert np.array_equal(np.round(back.alpha * 255), a[..., 3])


def test_the_documented_format_table_is_the_table():
    with open(os.path.join(ROOT, "docs", "FORMATS.md"), encoding="utf-8") as f:
        assert format_table() in f.read()


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".tif"])
def test_the_file_size_estimate_is_near_the_real_file(tmp_path, ext):
    from core.export import estimate_bytes, export
    from core.geometry import Region
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:90, 0:120]
    a = 120 + 60 * np.sin(xx / 5.0)[..., None] * np.cos(yy / 7.0)[..., None] \
        + rng.normal(0, 8, (90, 120, 3))
    img = LoadedImage(np.clip(a, 0, 255).astype(np.uint8))
    region = Region(10, 5, 100, 80)
    for out_w, out_h in [(200, 160), (400, 320)]:
        guess = estimate_bytes(img, region, out_w, out_h, ext, 90)
        path = tmp_path / f"o{out_w}{ext}"
        export(img, region, out_w, out_h, str(path), method="bicubic", quality=90)
        real = os.path.getsize(path)
        assert 0.6 < guess / real < 1.6, (ext, out_w, guess, real)


@pytest.mark.parametrize("fmt", [f for f in WRITERS if f.bits16], ids=lambda f: f.name)
def test_16_bit_with_alpha_round_trips_exactly_without_a_profile(tmp_path, fmt):
    rgb, alpha = _smooth()
    path = tmp_path / ("o" + fmt.exts[0])
    save_image(path, rgb, alpha, bits=16, quality=100)
    back = load_image(path)
    assert back.bits == 16 and back.pixels.dtype == np.uint16
    assert np.array_equal(back.pixels, np.round(rgb * 65535).astype(np.uint16))
    assert np.abs(back.alpha - np.round(alpha * 65535) / 65535).max() < 1e-6
