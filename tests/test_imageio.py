"""Image reading and writing: modes, orientation, bit depth, safety, atomic writes."""
import io
import os

import numpy as np
import pytest
from PIL import Image

from core.io.imageio import ImageError, ImageTooLarge, load_image, save_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_exif_orientation_is_applied(tmp_path):
    a = np.zeros((10, 20, 3), np.uint8)
    a[:, :5] = 255  # white on the left
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW to display
    p = tmp_path / "o.jpg"
    im.save(p, exif=exif, quality=100)
    img = load_image(p)
    assert (img.height, img.width) == (20, 10)
    assert img.rgb[:5].mean() > 0.9 and img.rgb[-5:].mean() < 0.1  # white now on top


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "1", "CMYK"])
def test_modes(tmp_path, mode):
    base = Image.fromarray((np.random.default_rng(0).random((8, 9, 3)) * 255).astype(np.uint8))
    im = base.convert(mode)
    p = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    im.save(p)
    img = load_image(p)
    assert img.rgb.shape == (8, 9, 3) and img.rgb.dtype == np.float32
    assert img.pixels.dtype == np.uint8
    assert img.grey == (mode in ("L", "LA", "1"))
    assert (img.alpha is not None) == (mode in ("RGBA", "LA"))


def test_16bit_grey_and_rgb_round_trip(tmp_path):
    g = (np.arange(40 * 30).reshape(30, 40) * 50).astype(np.uint16)
    Image.fromarray(g).save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    assert img.bits == 16 and img.grey
    save_image(tmp_path / "g2.png", img.rgb, grey=True, bits=16)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "g2.png")), g)
    rgb = (np.random.default_rng(0).random((7, 5, 3)) * 65535).round() / 65535
    save_image(tmp_path / "c.png", rgb, bits=16)
    back = load_image(tmp_path / "c.png")
    assert back.bits == 16 and not back.grey
    assert np.abs(back.rgb - rgb).max() < 1e-6


def test_truncated_bomb_and_non_image_are_refused(tmp_path):
    p = tmp_path / "t.png"
    buf = io.BytesIO()
    Image.fromarray(np.zeros((100, 100, 3), np.uint8) + 7).save(buf, "PNG")
    p.write_bytes(buf.getvalue()[:60])
    with pytest.raises(ImageError, match="t.png"):
        load_image(p)
    q = tmp_path / "big.png"
    Image.new("RGB", (300, 300)).save(q)
    with pytest.raises(ImageError, match="limit"):
        load_image(q, max_pixels=10_000)
    r = tmp_path / "notes.png"
    r.write_text("not an image")
    with pytest.raises(ImageError, match="notes.png"):
        load_image(r)
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.png")


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(ImageError):
        save_image(tmp_path / "x.xyz", np.zeros((2, 2, 3)))
    with pytest.raises(ImageError):
        save_image(tmp_path / "nodir" / "x.png", np.zeros((2, 2, 3)))
    assert os.listdir(tmp_path) == []


def test_png16_decoder_handles_every_filter(tmp_path):
    """A 16-bit RGB PNG whose rows use filters 0-4, made here with a small encoder."""
    import struct
    import zlib

    from core.io import png
    h, w, bpp = 10, 7, 6
    arr = (np.random.default_rng(1).random((h, w, 3)) * 65535).astype(np.uint16)
    raw = arr.astype(">u2").reshape(h, w * 3).view(np.uint8).astype(np.int64)
    rows = []
    for y in range(h):
        cur, prev = raw[y], (raw[y - 1] if y else np.zeros_like(raw[0]))
        a = np.concatenate([np.zeros(bpp, np.int64), cur[:-bpp]])
        c = np.concatenate([np.zeros(bpp, np.int64), prev[:-bpp]])
        ft = y % 5
        if ft == 4:
            p = a + prev - c
            pa, pb, pc = abs(p - a), abs(p - prev), abs(p - c)
            pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, prev, c))
        else:
            pred = [0, a, prev, (a + prev) >> 1][ft]
        rows.append(np.concatenate([[ft], (cur - pred) & 255]).astype(np.uint8))

    def chunk(k, b):
        return struct.pack(">I", len(b)) + k + b + struct.pack(">I", zlib.crc32(k + b))

    p = tmp_path / "f.png"
    p.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(np.concatenate(rows).tobytes()))
        + chunk(b"IEND", b"")
    )
    assert np.array_equal(png.read(str(p)), arr)
    img = load_image(p)
    assert img.bits == 16 and np.abs(img.rgb - arr / 65535.0).max() < 1e-6


@pytest.mark.parametrize("grey,alpha", [(False, False), (False, True), (True, True)])
def test_16bit_tiff_stays_16bit(tmp_path, grey, alpha):
    rng = np.random.default_rng(3)
    rgb = (rng.random((9, 11, 3)) * 65535).round() / 65535
    if grey:
        rgb = np.repeat(rgb[..., :1], 3, 2)
    a = (rng.random((9, 11)) * 65535).round() / 65535 if alpha else None
    save_image(tmp_path / "c.tif", rgb, a, grey=grey, bits=16)
    back = load_image(tmp_path / "c.tif")
    assert back.bits == 16 and back.grey == grey
    assert np.abs(back.rgb - rgb).max() < 1e-6
    if alpha:
        assert np.abs(back.alpha - a).max() < 1e-6


def test_png16_bomb_is_refused_from_its_header(tmp_path, monkeypatch):
    """A 16-bit RGB PNG declaring 100000 x 100000 is refused before any byte is inflated."""
    import struct
    import zlib

    import imagecodecs

    def chunk(k, b):
        return struct.pack(">I", len(b)) + k + b + struct.pack(">I", zlib.crc32(k + b))

    p = tmp_path / "bomb.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n"
                  + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 16, 2, 0, 0, 0))
                  + chunk(b"IDAT", zlib.compress(b"\0" * 1_000_000)) + chunk(b"IEND", b""))

    def never(*a, **k):
        raise AssertionError("decoded a bomb")

    monkeypatch.setattr(imagecodecs, "png_decode", never)
    with pytest.raises(ImageTooLarge, match="bomb.png.*limit"):
        load_image(p)


def test_a_fifo_or_a_folder_is_refused_before_anything_opens_it(tmp_path):
    import os

    from core.io.imageio import ImageError, image_size, load_image
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes
    for fn in (image_size, load_image):
        with pytest.raises(ImageError, match="not a regular file"):
            fn(fifo)
        with pytest.raises(ImageError, match="folder"):
            fn(tmp_path)
        with pytest.raises(ImageError, match="no such file"):
            fn(tmp_path / "missing.png")


def test_an_animation_and_a_transparent_jpeg_export_are_told(tmp_path):
    import subprocess
    import sys

    from PIL import Image

    from core.io.imageio import load_image
    frames = [Image.new("RGB", (20, 16), c) for c in ("red", "green", "blue")]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    img = load_image(tmp_path / "a.gif")
    assert img.frames == 3 and "3 frames" in img.notes()[0]
    Image.new("RGBA", (20, 16), (10, 20, 30, 100)).save(tmp_path / "t.png")
    assert "transparency" in load_image(tmp_path / "t.png").notes("JPEG")[0]
    assert load_image(tmp_path / "t.png").notes("PNG") == []
    root = __import__("os").path.dirname(__import__("os").path.dirname(__file__))
    r = subprocess.run([sys.executable, "-m", "core.upscale", str(tmp_path / "t.png"),
                        "--scale", "2", "--method", "bicubic", "-o", str(tmp_path / "t.jpg")],
                       capture_output=True, text=True, cwd=root)
    assert r.returncode == 0 and "note:" in r.stderr and "transparency" in r.stderr


@pytest.mark.parametrize("bits", [8, 16])
def test_decoded_pixels_stay_integers_and_every_reader_converts_the_same(tmp_path, tiny_model,
                                                                         bits):
    """The decoded image keeps the source's integers (3 or 6 bytes a pixel, not 12), and the
    renderers and the encoder, reading windows of them, give exactly what they give for the
    whole-image float copy."""
    import torch

    from core.geometry import Region
    from core.render.encoding import encode
    from core.render.resample import render_bicubic, render_nearest

    rng = np.random.default_rng(1)
    if bits == 8:
        a = (rng.random((37, 45, 3)) * 255).astype(np.uint8)
        Image.fromarray(a).save(tmp_path / "x.png")
    else:
        from core.io import png
        a = (rng.random((37, 45, 3)) * 65535).astype(np.uint16)
        png.write(str(tmp_path / "x.png"), a)
    img = load_image(tmp_path / "x.png")
    assert img.pixels.dtype == (np.uint8 if bits == 8 else np.uint16)
    assert np.array_equal(img.pixels, a)
    f = img.rgb
    assert f.dtype == np.float32 and np.array_equal(f, a.astype(np.float32) / (2 ** bits - 1))
    r = Region(3.5, 2.25, 20.0, 17.0)
    for fn in (render_bicubic, render_nearest):
        assert np.array_equal(fn(img.pixels, r, 31, 29), fn(f, r, 31, 29))
    dev = torch.device("cpu")
    la, lb = encode(tiny_model, img.pixels, dev), encode(tiny_model, f, dev)
    assert torch.equal(la.full(), lb.full())


def test_importing_the_project_leaves_pillows_bomb_guard_on(tmp_path):
    """No import side effect: Pillow's limit stays as Pillow set it for everyone else; the
    app's own limit decides for its decodes, also past Pillow's (a 196-Mpx page's size)."""
    import subprocess
    import sys
    code = ("from PIL import Image; before = Image.MAX_IMAGE_PIXELS\n"
            "import pkgutil, importlib\n"
            "import core, viewer, training\n"
            "for pkg in (core, viewer, training):\n"
            "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
            "        importlib.import_module(m.name)\n"
            "assert Image.MAX_IMAGE_PIXELS == before and before, Image.MAX_IMAGE_PIXELS\n"
            "print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
    from PIL import Image as PILImage

    from core.io.imageio import ImageTooLarge, image_size, load_image
    PILImage.new("1", (14000, 14000), 1).save(tmp_path / "page.png")
    before = PILImage.MAX_IMAGE_PIXELS
    assert image_size(tmp_path / "page.png") == (14000, 14000)  # Pillow alone refuses it
    with pytest.raises(ImageTooLarge):
        load_image(tmp_path / "page.png", max_pixels=100_000_000)
    assert PILImage.MAX_IMAGE_PIXELS == before
