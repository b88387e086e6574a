"""Exports keep the source's colour profile and EXIF (orientation reset, since it is applied;
no thumbnail), in every format that carries them, unless the user strips the EXIF; the viewer
shows a profiled photo in sRGB."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageCms

from core.export import export
from core.geometry import Region
from core.io.imageio import load_image
from tests.test_upscale_cli import ROOT


@pytest.fixture
def camera_jpeg(tmp_path):
    """A Display-P3-like tagged JPEG from a 'camera': model, date, GPS, orientation 6."""
    rng = np.random.default_rng(0)
    a = (rng.random((30, 40, 3)) * 255).astype(np.uint8)
    from PySide6 import QtGui  # (Qt makes a real Display P3 profile; LittleCMS has none)
    icc = bytes(QtGui.QColorSpace(QtGui.QColorSpace.NamedColorSpace.DisplayP3).iccProfile())
    ex = Image.Exif()
    ex[0x0110] = "Pixel 9"
    ex[0x0132] = "2026:11:29 10:00:00"
    ex[0x0112] = 6  # rotate 90 degrees clockwise to view
    ex.get_ifd(0x8825)[2] = (48.0, 51.0, 24.0)
    p = tmp_path / "cam.jpg"
    Image.fromarray(a).save(p, quality=90, exif=ex.tobytes(), icc_profile=icc)
    return p, icc


@pytest.mark.parametrize("ext", ["png", "jpg", "webp", "tif"])
def test_profile_and_exif_survive_an_export(tmp_path, camera_jpeg, ext):
    src, icc = camera_jpeg
    img = load_image(src)
    assert (img.width, img.height) == (30, 40)  # upright: the orientation was applied
    assert img.meta.icc == icc and img.meta.exif
    out = tmp_path / f"o.{ext}"
    export(img, Region.full(30, 40), 60, 80, str(out), "bicubic")
    with Image.open(out) as o:
        assert o.info.get("icc_profile") == icc
        ex = o.getexif()
        assert ex.get(0x0110) == "Pixel 9" and ex.get(0x0132) == "2026:11:29 10:00:00"
        assert ex.get(0x0112, 1) == 1  # never rotated twice
        assert dict(ex.get_ifd(0x8825)).get(2) == (48.0, 51.0, 24.0)
        assert o.size == (60, 80)


def test_strip_metadata_drops_exif_and_keeps_the_profile(tmp_path, camera_jpeg):
    src, icc = camera_jpeg
    out = tmp_path / "o.jpg"
    r = subprocess.run([sys.executable, "-m", "core.upscale", str(src), "--scale", "2",
                        "--method", "bicubic", "--strip-metadata", "-o", str(out)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    with Image.open(out) as o:
        assert o.info.get("icc_profile") == icc and len(o.getexif()) == 0


def test_16_bit_png_keeps_the_profile(tmp_path):
    from core.io import png
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    a = (np.arange(2 * 3 * 3).reshape(2, 3, 3) * 1000).astype(np.uint16)
    png.write(str(tmp_path / "a.png"), a, icc, None)
    with Image.open(tmp_path / "a.png") as o:
        assert o.info.get("icc_profile") == icc
    assert np.array_equal(png.read(str(tmp_path / "a.png")), a)


def test_avif_is_read_and_written_with_its_metadata(tmp_path, camera_jpeg):
    from core.io import formats
    if ".avif" not in formats.WRITE_FORMATS:
        pytest.skip("this Pillow has no AVIF codec")
    src, icc = camera_jpeg
    out = tmp_path / "o.avif"
    export(load_image(src), Region.full(30, 40), 60, 80, str(out), "bicubic", quality=80)
    back = load_image(out)
    assert (back.width, back.height) == (60, 80) and back.meta.icc == icc
    assert formats.inspect_input(out).lossy
    with Image.open(out) as o:
        assert o.getexif().get(0x0110) == "Pixel 9"


def test_a_transparent_source_is_flattened_onto_white_in_a_jpeg(tmp_path):
    a = np.zeros((20, 24, 4), np.uint8)
    a[..., 0] = 200  # red everywhere, but the left half fully transparent
    a[:, 12:, 3] = 255
    Image.fromarray(a, "RGBA").save(tmp_path / "t.png")
    export(load_image(tmp_path / "t.png"), Region.full(24, 20), 24, 20, str(tmp_path / "o.jpg"),
           "nearest")
    o = np.asarray(Image.open(tmp_path / "o.jpg")).astype(int)
    assert (np.abs(o[:, :8] - 255) <= 6).all()  # white where it was transparent
    assert (np.abs(o[:, 16:] - [200, 0, 0]) <= 12).all()  # the colour where it was opaque


def test_an_exports_exif_gives_its_own_pixel_dimensions(tmp_path):
    ex = Image.Exif()
    ex[0x0110] = "Camera"
    ex.get_ifd(0x8769)[0xA002] = 30
    ex.get_ifd(0x8769)[0xA003] = 20
    a = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "a.jpg", exif=ex.tobytes())
    img = load_image(tmp_path / "a.jpg")
    for ext in ("jpg", "png", "webp"):
        out = tmp_path / f"o.{ext}"
        export(img, Region.full(30, 20), 90, 60, str(out), "bicubic")
        with Image.open(out) as o:
            sub = o.getexif().get_ifd(0x8769)
            assert (sub.get(0xA002), sub.get(0xA003)) == (90, 60), ext
            assert o.getexif().get(0x0110) == "Camera"


def test_a_profile_converts_to_srgb_and_srgb_is_left_alone():
    import numpy as np
    from PIL import ImageCms

    from core.io.colour import ToSRGB
    conv = ToSRGB.for_profile(_p3_profile())
    assert conv is not None and conv.name == "Display P3"
    # sRGB's pure red is about (234, 51, 35) in Display P3
    red = conv(np.array([[[234, 51, 35]]], np.uint8))[0, 0].astype(int)
    assert red[0] >= 252 and red[1] <= 6 and red[2] <= 6
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert ToSRGB.for_profile(srgb) is None and ToSRGB.for_profile(None) is None
    assert ToSRGB.for_profile(b"not a profile") is None  # logged, values shown as they are


@pytest.mark.parametrize("tagged", [True, False])
def test_the_viewer_shows_a_p3_photo_in_srgb(win, qtbot, tmp_path, tagged):
    """A Display-P3 photo is drawn converted to sRGB (its values as they are otherwise);
    the model and the exports still see its own values."""
    import numpy as np
    from PIL import Image
    a = np.empty((60, 80, 3), np.uint8)
    a[:] = (234, 51, 35)
    path = tmp_path / "p3.png"
    Image.fromarray(a).save(path, icc_profile=_p3_profile() if tagged else None)
    assert win.open_image(str(path))
    assert (win.display_colour is not None) == tagged
    assert win.session.image.pixels[5, 5].tolist() == [234, 51, 35]
    pane = win.panes[-1]  # bicubic: a flat image stays flat

    def centre():
        c = pane.grab().toImage().pixelColor(pane.width() // 2, pane.height() // 2)
        return c.red(), c.green(), c.blue()

    want = (255, 0, 0) if tagged else (234, 51, 35)
    qtbot.waitUntil(lambda: max(abs(x - y) for x, y in zip(centre(), want)) <= 6, timeout=10000)


def _p3_profile() -> bytes:
    from PySide6 import QtGui
    return bytes(QtGui.QColorSpace(QtGui.QColorSpace.NamedColorSpace.DisplayP3).iccProfile())
