"""Fuzz: hostile files and arguments, generated here, into the image loader, the checkpoint
loader and the upscale CLI. Every case ends in a clear error (ImageError / CheckpointError;
one ``error:`` line and a non-zero status from the CLI), never another exception or a
traceback; no output file is left; memory stays bounded; no code in a file is run."""
from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
import torch
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG_SEED = 1234


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_with_size(data: bytes, w: int, h: int) -> bytes:
    """``data`` (a PNG) with its IHDR's size replaced (CRC fixed, so only the size lies)."""
    ihdr = bytearray(data[16:29])
    ihdr[0:8] = struct.pack(">II", w, h)
    return data[:8] + _chunk(b"IHDR", bytes(ihdr)) + data[33:]


def _tiff_with_size(data: bytes, w: int, h: int) -> bytes:
    """A little-endian TIFF with ImageWidth/ImageLength (tags 256/257) set to LONG w/h."""
    b = bytearray(data)
    assert b[:2] == b"II"
    ifd = struct.unpack("<I", b[4:8])[0]
    n = struct.unpack("<H", b[ifd:ifd + 2])[0]
    for e in range(n):
        o = ifd + 2 + 12 * e
        tag = struct.unpack("<H", b[o:o + 2])[0]
        if tag in (256, 257):
            b[o + 2:o + 12] = struct.pack("<HII", 4, 1, w if tag == 256 else h)
    return bytes(b)


def _jpeg_with_size(data: bytes, w: int, h: int) -> bytes:
    i = data.index(b"\xff\xc0")
    return data[:i + 5] + struct.pack(">HH", min(h, 65535), min(w, 65535)) + data[i + 9:]


def _bmp_with_size(data: bytes, w: int, h: int) -> bytes:
    return data[:18] + struct.pack("<ii", w, h) + data[26:]


def _gif_with_size(data: bytes, w: int, h: int) -> bytes:
    b = bytearray(data)
    b[6:10] = struct.pack("<HH", min(w, 65535), min(h, 65535))
    i = b.index(b"\x2c")  # image descriptor
    b[i + 5:i + 9] = struct.pack("<HH", min(w, 65535), min(h, 65535))
    return bytes(b)


def _encode(fmt: str, arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    if fmt == "TIFF16":
        import tifffile
        tifffile.imwrite(buf, arr, photometric="rgb")
    elif fmt == "PNG16":
        import imagecodecs
        return imagecodecs.png_encode(arr)
    else:
        Image.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


def hostile_images(tmp_path):
    """``{name: path}``: valid seeds of every format and depth, each truncated at several
    points, with random bytes flipped, and with a header that declares a huge size."""
    rng = np.random.default_rng(RNG_SEED)
    rgb8 = (rng.random((33, 47, 3)) * 255).astype(np.uint8)
    rgb16 = (rng.random((33, 47, 3)) * 65535).astype(np.uint16)
    seeds = {
        "png8.png": _encode("PNG", rgb8), "pngL.png": _encode("PNG", rgb8[..., 0]),
        "pngA.png": _encode("PNG", np.dstack([rgb8, rgb8[..., :1]])),
        "png16.png": _encode("PNG16", rgb16),
        "jpg.jpg": _encode("JPEG", rgb8), "webp.webp": _encode("WEBP", rgb8),
        "bmp.bmp": _encode("BMP", rgb8), "gif.gif": _encode("GIF", rgb8),
        "tif8.tif": _encode("TIFF", rgb8), "tif16.tif": _encode("TIFF16", rgb16),
    }
    bombs = {
        "png8.png": _png_with_size, "pngL.png": _png_with_size, "pngA.png": _png_with_size,
        "png16.png": _png_with_size, "jpg.jpg": _jpeg_with_size, "bmp.bmp": _bmp_with_size,
        "gif.gif": _gif_with_size, "tif8.tif": _tiff_with_size, "tif16.tif": _tiff_with_size,
    }
    files = {}

    def put(name, data):
        p = tmp_path / name
        p.write_bytes(data)
        files[name] = str(p)

    for name, data in seeds.items():
        stem, ext = os.path.splitext(name)
        for k, cut in enumerate((8, 20, 40, len(data) // 2, len(data) - 5)):
            put(f"{stem}-cut{k}{ext}", data[:cut])
        for k in range(4):
            b = bytearray(data)
            for pos in rng.integers(0, len(b), 8):
                b[pos] = int(rng.integers(256))
            put(f"{stem}-flip{k}{ext}", bytes(b))
        put(f"{stem}-random{ext}", data[:12] + rng.bytes(2000))
        if name in bombs:
            for w, h in ((100000, 100000), (65000, 65000), (30000, 9000), (16000, 15000)):
                if name.startswith("gif") and w > 65535:
                    continue
                put(f"{stem}-bomb{w}{ext}", bombs[name](data, w, h))
    put("empty.png", b"")
    put("text.jpg", b"hello world")
    return files


_LOADER = r"""
import json, resource, sys
sys.path.insert(0, {root!r})
from core.io.imageio import ImageError, load_image
paths = json.load(open(sys.argv[1]))
out = {{}}
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for name, path in paths.items():
    try:
        img = load_image(path)
        out[name] = "ok %dx%d" % (img.width, img.height)
    except ImageError as exc:
        out[name] = "ImageError: " + str(exc)
    except BaseException as exc:
        out[name] = "CRASH %s: %s" % (type(exc).__name__, exc)
out["_peak_growth_mib"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
print(json.dumps(out))
"""


def test_hostile_images_give_clear_errors_in_bounded_memory(tmp_path):
    files = hostile_images(tmp_path)
    lst = tmp_path / "list.json"
    lst.write_text(json.dumps(files))
    r = subprocess.run([sys.executable, "-c", _LOADER.format(root=ROOT), str(lst)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    growth = out.pop("_peak_growth_mib")
    crashes = {k: v for k, v in out.items() if v.startswith("CRASH")}
    assert not crashes
    for name, v in out.items():
        if (
            "-bomb" in name
            or "-cut" in name
            or "-random" in name
            or name in ("empty.png", "text.jpg")
        ):
            # (a cut at len - 5 may lose only a trailer some decoders do not need)
            if not ("-cut4" in name and v.startswith("ok")):
                assert v.startswith("ImageError"), (name, v)
        if v.startswith("ImageError"):
            assert "\n" not in v and os.path.basename(files[name]) in v, (name, v)
    assert growth < 400, f"hostile images raised peak memory by {growth:.0f} MiB"


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def hostile_checkpoints(tmp_path):
    from safetensors.torch import save_file

    from core.models.registry import make
    from tests.conftest import tiny_spec

    rng = np.random.default_rng(RNG_SEED)
    torch.manual_seed(0)
    spec = tiny_spec()
    sd = {k: v.clone().contiguous() for k, v in make(spec).state_dict().items()}
    good = tmp_path / "good.safetensors"
    save_file(sd, str(good), metadata={"format": "liif-zoom/1", "spec": json.dumps(spec)})
    data = good.read_bytes()
    files = {}

    def put(name, blob):
        p = tmp_path / name
        p.write_bytes(blob)
        files[name] = p

    for k, cut in enumerate((0, 4, 9, 100, len(data) // 2, len(data) - 3)):
        put(f"cut{k}.safetensors", data[:cut])
    for k in range(6):
        b = bytearray(data)
        hdr = struct.unpack("<Q", data[:8])[0]
        for pos in rng.integers(8, 8 + hdr, 4):  # flips inside the JSON header
            b[pos] = int(rng.integers(32, 127))
        put(f"flip{k}.safetensors", bytes(b))
    put("hugeheader.safetensors", struct.pack("<Q", 2 ** 62) + b"{}")
    put("random.pth", b"PK\x03\x04" + rng.bytes(3000))
    put("random2.pth", b"\x80\x02" + rng.bytes(3000))
    marker = tmp_path / "code-ran"
    put(
        "payload.pth",
        pickle.dumps({"model": {"name": "liif", "args": {}, "sd": _Payload(str(marker))}}),
    )
    buf = io.BytesIO()
    torch.save({"model": {"name": "liif", "args": {"x": _Payload(str(marker))}, "sd": {}}}, buf)
    put("payload-zip.pth", buf.getvalue())
    nested = {}
    for _ in range(5000):
        nested = {"a": nested}
    buf = io.BytesIO()
    try:
        torch.save({"model": {"name": "liif", "args": nested, "sd": {}}}, buf)
        put("nested.pth", buf.getvalue())
    except RecursionError:
        pass
    for name, args in (("wide", {"in_dim": 60000, "out_dim": 60000, "hidden_list": [60000] * 8}),
                       ("negative", {"in_dim": -5, "out_dim": 3, "hidden_list": [4]}),
                       ("float", {"in_dim": 1.5, "out_dim": 3, "hidden_list": [4]})):
        p = tmp_path / f"{name}.safetensors"
        save_file(
            {"layers.0.weight": torch.zeros(2, 2)},
            str(p),
            metadata={"format": "liif-zoom/1", "spec": json.dumps({"name": "mlp", "args": args})},
        )
        files[p.name] = p
    nan = dict(sd)
    k0 = next(iter(nan))
    nan[k0] = nan[k0].clone().fill_(float("nan"))
    p = tmp_path / "nan.safetensors"
    save_file(nan, str(p), metadata={"format": "liif-zoom/1", "spec": json.dumps(spec)})
    files[p.name] = p
    return files, marker


def test_hostile_checkpoints_give_clear_errors_and_run_no_code(tmp_path):
    import resource

    from core.checkpoints import CheckpointError, load_model

    files, marker = hostile_checkpoints(tmp_path)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for name, path in files.items():
        try:
            load_model(path)
        except CheckpointError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc), (name, exc)
            continue
        # a flip inside the JSON header may leave it valid: then it must load the same model
        assert name.startswith("flip"), f"{name} loaded"
    assert not marker.exists(), "a checkpoint ran code"
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024 < 400


_HOSTILE_NUMBERS = ["nan", "inf", "-inf", "1e309", "-0", "0", "1e-320", "1e18", "-1", "9" * 400,
                    "0x10", "1_0", " ", "", "1e9", "NaN", "infinity"]


def test_hostile_cli_arguments_fail_cleanly(tmp_path, capsys):
    """Random hostile values for every numeric option, in-process (fast): status 2 (or 0 for
    a value that is valid after all), one ``error:`` line, no traceback, no file left."""
    from core.upscale import main

    a = (np.random.default_rng(0).random((12, 16, 3)) * 255).astype(np.uint8)
    src = tmp_path / "in.png"
    Image.fromarray(a).save(src)
    rng = np.random.default_rng(RNG_SEED)
    out = tmp_path / "out.png"
    for k in range(60):
        v = [str(rng.choice(_HOSTILE_NUMBERS)) for _ in range(4)]
        case = int(rng.integers(4))
        if case == 0:
            args = ["--scale", v[0]]
        elif case == 1:
            args = ["--size", f"{v[0]}x{v[1]}"]
        elif case == 2:
            args = ["--scale", "2", f"--region={','.join(v)}"]
        else:
            args = ["--scale", "2", "--quality", v[0]]
        try:
            code = main([str(src), *args, "--method", "bicubic", "-o", str(out)])
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
        err = capsys.readouterr().err
        assert "Traceback" not in err, (args, err)
        if code == 0:
            assert out.exists()
            out.unlink()
            continue
        assert code == 2, (args, code, err)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, err)
        assert sorted(os.listdir(tmp_path)) == ["in.png"], args


# ---- odd and hostile inputs that used to cost memory or break an image (issue 28) -------

_PEAK = r"""
import resource, runpy, sys
sys.path.insert(0, {root!r})
sys.argv = ["core.upscale"] + sys.argv[1:]
try:
    runpy.run_module("core.upscale", run_name="__main__")
finally:
    print("peak_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def _cli(*args):
    """``(returncode, stderr lines without the peak, peak MiB)`` of ``python -m core.upscale``."""
    r = subprocess.run([sys.executable, "-c", _PEAK.format(root=ROOT), *map(str, args)],
                       capture_output=True, text=True, timeout=600)
    lines = r.stderr.strip().splitlines()
    peak = [int(ln.split()[1]) / 1024 for ln in lines if ln.startswith("peak_kib")][0]
    return r.returncode, [ln for ln in lines if not ln.startswith("peak_kib")], peak


def test_bicubic_costs_memory_by_the_output_not_by_its_product_with_the_source(tmp_path):
    """A 6000x40 image at x2: bicubic's peak within 1.5x of nearest's (dense resampling
    matrices made it 4x: 1.09 GB)."""
    a = (np.random.default_rng(0).random((40, 6000, 3)) * 255).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "wide.png")
    peaks = {}
    for method in ("nearest", "bicubic"):
        code, err, peaks[method] = _cli(tmp_path / "wide.png", "--method", method, "--scale", 2,
                                        "-o", tmp_path / f"{method}.png", "--no-progress")
        assert code == 0, err
    assert peaks["bicubic"] <= 1.5 * peaks["nearest"], peaks


_STRIP = r"""
import resource, sys
sys.path.insert(0, {root!r})
import numpy as np
from core.geometry import Region
from core.render.resample import imresize, render_bicubic
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
img = (np.random.default_rng(0).random((2, 50000, 3)) * 255).astype(np.uint8)
up = render_bicubic(img, Region.full(50000, 2), 100000, 4)        # x2 (viewer, CLI, export)
down = render_bicubic(img, Region.full(50000, 2), 500, 1)         # fit to a window
lr = imresize(img, 0.5)                                           # the evaluation's LR
alpha = render_bicubic(img[..., 0], Region.full(50000, 2), 100000, 4)  # an export's alpha
assert up.shape == (4, 100000, 3) and down.shape == (1, 500, 3) and lr.shape == (1, 25000, 3)
assert abs(float(down.mean()) - float(img.mean()) / 255) < 0.01
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
"""


def test_a_50000x2_strip_is_resized_by_bicubic_in_every_path(tmp_path):
    """Dense matrices asked 40-160 GB for this; banded taps need a few MB."""
    r = subprocess.run([sys.executable, "-c", _STRIP.format(root=ROOT)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert float(r.stdout.strip()) < 200, f"peak grew by {r.stdout.strip()} MiB"
    a = (np.random.default_rng(1).random((2, 50000, 4)) * 255).astype(np.uint8)
    Image.fromarray(a, "RGBA").save(tmp_path / "strip.png")  # alpha: the bicubic alpha path
    code, err, peak = _cli(tmp_path / "strip.png", "--method", "bicubic", "--scale", 2,
                           "-o", tmp_path / "o.png", "--no-progress")
    assert code == 0, err
    with Image.open(tmp_path / "o.png") as o:
        assert o.size == (100000, 4) and o.mode == "RGBA"


_ANIM = r"""
import resource, sys
sys.path.insert(0, {root!r})
from core.io.imageio import ANIMATION, load_image
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
img = load_image(sys.argv[1])
print(img.width, img.height, img.frames == ANIMATION, "|".join(img.notes()),
      (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024, sep=";")
"""


def test_an_animated_jpeg_xl_gives_its_first_frame_with_a_note_at_a_bounded_cost(tmp_path):
    import imagecodecs

    from core.io import jxl
    if not jxl.available():
        import pytest
        pytest.skip("no JPEG XL in this imagecodecs")
    frames = np.zeros((300, 512, 512, 3), np.uint8)
    frames[..., 0] = (np.arange(300) % 255)[:, None, None]
    path = tmp_path / "anim.jxl"
    path.write_bytes(imagecodecs.jpegxl_encode(frames, lossless=True, photometric="rgb",
                                               effort=1))
    assert path.stat().st_size < 64_000 and jxl.header(path.read_bytes()).animated
    r = subprocess.run([sys.executable, "-c", _ANIM.format(root=ROOT), str(path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    w, h, animated, notes, growth = r.stdout.strip().split(";")
    assert (w, h, animated) == ("512", "512", "True") and "first frame" in notes
    assert float(growth) < 60, f"{growth} MiB for one 512x512 frame"  # all frames: 230 MiB
    code, err, _ = _cli(path, "--method", "bicubic", "--scale", 1, "-o", tmp_path / "o.png")
    assert code == 0 and any("first frame" in ln for ln in err), err


def test_a_lossless_jpeg_xl_is_not_sent_to_the_photo_model(tmp_path):
    import imagecodecs

    from core.io import jxl
    from core.io.formats import inspect_input
    if not jxl.available():
        import pytest
        pytest.skip("no JPEG XL in this imagecodecs")
    a = (np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)
    (tmp_path / "ll.jxl").write_bytes(imagecodecs.jpegxl_encode(a, lossless=True))
    (tmp_path / "lossy.jxl").write_bytes(imagecodecs.jpegxl_encode(a, level=85))
    assert not inspect_input(tmp_path / "ll.jxl").lossy
    assert inspect_input(tmp_path / "lossy.jxl").lossy


def _webp_claiming(w: int, h: int) -> bytes:
    """A 34-byte lossless WebP whose VP8L header declares ``w x h``."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, "WEBP", lossless=True)
    b = bytearray(buf.getvalue())
    assert b[12:16] == b"VP8L" and b[20] == 0x2F
    bits = int.from_bytes(b[21:25], "little")
    bits = (bits & ~((1 << 28) - 1)) | (w - 1) | ((h - 1) << 14)
    b[21:25] = bits.to_bytes(4, "little")
    return bytes(b)


def _avif_claiming(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 40)).save(buf, "AVIF", quality=50)
    b = bytearray(buf.getvalue())
    i = b.index(b"ispe")
    b[i + 8:i + 16] = struct.pack(">II", w, h)
    return bytes(b)


def test_tiny_webp_and_avif_files_that_claim_hundreds_of_megapixels_are_refused(tmp_path,
                                                                               monkeypatch):
    from core.io.formats import WRITE_FORMATS
    from core.io.imageio import ImageError, load_image
    cases = {"claim.webp": _webp_claiming(16383, 16383)}
    if ".avif" in WRITE_FORMATS:
        cases["claim.avif"] = _avif_claiming(16384, 16384)
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with monkeypatch.context() as m:  # (Pillow's own guard would refuse to open it)
            m.setattr(Image, "MAX_IMAGE_PIXELS", None)
            with Image.open(p) as im:
                assert im.size[0] * im.size[1] > 250_000_000  # the header says so
        try:
            load_image(p)
            raise AssertionError(f"{name} decoded")
        except ImageError as exc:
            assert "decompression bomb" in str(exc) and name in str(exc)
        code, err, peak = _cli(p, "--method", "bicubic", "--scale", 1, "-o", tmp_path / "o.png")
        assert code == 2 and len(err) == 1 and err[0].startswith("error:"), err
        assert peak < 1024, peak


def test_bilevel_scans_of_a_page_are_read(tmp_path):
    """A 4960x7016 page (A4 at 600 dpi) as a 1-bit PNG and as a CCITT G4 TIFF: a few KB
    each, and Pillow decodes them; the size check used to call them truncated."""
    from PIL import ImageDraw

    from core.io.imageio import load_image
    page = Image.new("1", (4960, 7016), 1)
    d = ImageDraw.Draw(page)
    for y in range(500, 6500, 300):
        d.rectangle([400, y, 4500, y + 40], fill=0)
    page.save(tmp_path / "page.png")
    page.save(tmp_path / "page.tif", compression="group4")
    for name in ("page.png", "page.tif"):
        assert (tmp_path / name).stat().st_size < 64_000
        img = load_image(tmp_path / name)
        assert (img.width, img.height) == (4960, 7016) and img.grey
        assert img.pixels[0, 0, 0] == 255 and img.pixels[510, 1000, 0] == 0
        del img


def _profile_for(space: bytes) -> bytes:
    """An ICC profile whose header says colour space ``space`` (an sRGB body otherwise)."""
    from PIL import ImageCms
    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    icc[16:20] = space
    return bytes(icc)


def test_profiles_that_contradict_the_pixels_are_left_out_and_said(tmp_path, capfd):
    from core.export import export
    from core.geometry import Region
    from core.io.imageio import load_image
    a = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "grey-profile.png", icc_profile=_profile_for(b"GRAY"))
    Image.fromarray(a[..., 0]).save(tmp_path / "rgb-on-grey.png",
                                    icc_profile=_profile_for(b"RGB "))
    Image.fromarray(a).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    for name in ("grey-profile.png", "rgb-on-grey.png", "cmyk.jpg"):
        img = load_image(tmp_path / name)
        assert img.meta.icc is None and img.notes(), name
        out = tmp_path / f"out-{name}.png"
        export(img, Region.full(30, 20), 60, 40, str(out), "bicubic")
        with Image.open(out) as o:
            assert "icc_profile" not in o.info
    img = load_image(tmp_path / "cmyk.jpg")
    assert "CMYK" in img.notes()[0] and not img.grey
    assert np.abs(img.pixels.astype(int) - a).mean() < 8  # the same picture
    assert "color space" not in capfd.readouterr().err  # libpng's "Gray color space not permitted"


def test_broken_or_oversized_metadata_never_breaks_an_image(tmp_path):
    from core.export import export
    from core.geometry import Region
    from core.io.imageio import load_image
    rng = np.random.default_rng(0)
    a = (rng.random((20, 30, 3)) * 255).astype(np.uint8)
    for ext, fmt in ((".png", "PNG"), (".webp", "WEBP")):
        p = tmp_path / f"broken-exif{ext}"
        Image.fromarray(a).save(p, fmt, exif=rng.bytes(200), lossless=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # and nothing on stderr
            img = load_image(p)
        assert img.meta.exif is None and "EXIF" in img.notes()[0]
        code, err, _ = _cli(p, "--method", "bicubic", "--scale", 2, "-o", tmp_path / f"o{ext}.png")
        assert code == 0 and any(ln.startswith("note:") and "EXIF" in ln for ln in err), err
    # EXIF over 64 KB: a JPEG export says so before, and is written without it
    ex = Image.Exif()
    ex[0x010F] = "Camera"
    ex[0x9286] = "x" * 70000  # a long user comment
    Image.fromarray(a).save(tmp_path / "big-exif.png", exif=ex.tobytes())
    img = load_image(tmp_path / "big-exif.png")
    assert len(img.meta.exif) > 65533
    assert any("more than a JPEG holds" in n for n in img.notes("JPEG"))
    export(img, Region.full(30, 20), 60, 40, str(tmp_path / "o.jpg"), "bicubic")
    with Image.open(tmp_path / "o.jpg") as o:
        assert o.size == (60, 40) and len(o.getexif()) == 0
    # a colour profile over 1 MB: read (8 and 16 bits); a PNG written without it, readable
    from core.io import png
    big = _profile_for(b"RGB ") + bytes(2 << 20)
    Image.fromarray(a).save(tmp_path / "big-icc8.png", icc_profile=big)
    png.write(str(tmp_path / "big-icc16.png"), a.astype(np.uint16) * 257, big, None)
    for name in ("big-icc8.png", "big-icc16.png"):
        img = load_image(tmp_path / name)
        assert img.meta.icc == big, name
        assert any("sRGB" in n for n in img.notes("PNG"))
        out = tmp_path / f"o-{name}"
        export(img, Region.full(30, 20), 60, 40, str(out), "bicubic")
        with Image.open(out) as o:  # Pillow's default limits
            assert "icc_profile" not in o.info and o.size == (60, 40)


def test_a_small_checkpoint_cannot_unpack_to_gigabytes_and_weights_must_be_floats(tmp_path):
    """A torch zip archive with a deflated tensor (1 MB unpacking to 1 GB) is refused from
    its directory, before anything is unpacked; integer weights are refused; half-precision
    weights load as the float32 they round to."""
    import resource
    import zipfile

    from safetensors.torch import save_file

    from core.checkpoints import CheckpointError, load_model
    from core.models.registry import make
    from tests.conftest import tiny_spec

    buf = io.BytesIO()
    torch.save({"model": {"name": "mlp", "args": {"in_dim": 2, "out_dim": 2,
                                                  "hidden_list": []},
                          "sd": {"layers.0.weight": torch.zeros(256, 1024, 1024)}}}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    bomb = tmp_path / "deflated.pth"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for info in src.infolist():
            z.writestr(info.filename, src.read(info.filename))
    assert bomb.stat().st_size < 4 << 20
    del src, buf
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        load_model(bomb)
        raise AssertionError("loaded")
    except CheckpointError as exc:
        assert "compressed" in str(exc) and str(bomb) in str(exc)
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024 < 100

    torch.manual_seed(0)
    spec = tiny_spec()
    sd = {k: v.clone().contiguous() for k, v in make(spec).state_dict().items()}
    meta = {"format": "liif-zoom/1", "spec": json.dumps(spec)}
    ints = {k: (v * 100).to(torch.int64) for k, v in sd.items()}
    save_file(ints, str(tmp_path / "ints.safetensors"), metadata=meta)
    try:
        load_model(tmp_path / "ints.safetensors")
        raise AssertionError("integer weights loaded")
    except CheckpointError as exc:
        assert "not floating point" in str(exc)
    half = {k: v.half() for k, v in sd.items()}
    save_file(half, str(tmp_path / "half.safetensors"), metadata=meta)
    model = load_model(tmp_path / "half.safetensors")[0]
    for k, v in model.state_dict().items():
        assert v.dtype == torch.float32 and torch.equal(v, half[k].float()), k


def test_cli_edges_leftovers_read_only_folders_in_the_way_and_long_names(tmp_path, capsys):
    from core.upscale import main
    a = (np.random.default_rng(0).random((12, 16, 3)) * 255).astype(np.uint8)
    src = tmp_path / "in" / "a.png"
    src.parent.mkdir()
    Image.fromarray(a).save(src)
    Image.fromarray(a).save(tmp_path / "in" / "b.png")
    out = tmp_path / "out"
    out.mkdir()
    # what a SIGKILLed run left (a process that is gone) is cleaned; a live one's is kept
    dead = out / ".x.png.liifzoom-999999999.abcd1234.part.png"
    live = out / f".y.png.liifzoom-{os.getpid()}.abcd1234.part.png"
    dead.write_bytes(b"x")
    live.write_bytes(b"x")
    assert main([str(src), "--method", "bicubic", "--scale", "2", "-o", str(out / "a2.png")]) == 0
    assert not dead.exists() and live.exists()
    live.unlink()
    # --overwrite does not replace a read-only file
    ro = out / "ro.png"
    Image.fromarray(a).save(ro)
    ro.chmod(0o444)
    before = ro.read_bytes()
    capsys.readouterr()
    code = main([str(src), "--method", "bicubic", "--scale", "2", "-o", str(ro), "--overwrite"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "read-only" in err[0] and ro.read_bytes() == before
    # a folder where a batch output goes: an error for that input, before any rendering
    batch = tmp_path / "batch"
    (batch / "a-bicubic-x2.png").mkdir(parents=True)
    for extra in ([], ["--overwrite"]):
        code = main([str(tmp_path / "in"), "--method", "bicubic", "--scale", "2", "-o",
                     str(batch), "--no-progress", *extra])
        err = capsys.readouterr().err
        assert code == 1 and "something other than a file" in err, err
        assert "1 written" in err and "1 failed" in err and "skipped" in err
        (batch / "b-bicubic-x2.png").unlink()
    # a long (but valid) output name: the temporary name must not push it past 255 bytes
    long = out / ("n" * 240 + ".png")
    assert main([str(src), "--method", "bicubic", "--scale", "2", "-o", str(long)]) == 0
    assert long.is_file() and not [p for p in os.listdir(out) if "liifzoom" in p]
    code = main([str(src), "--method", "bicubic", "--scale", "2", "-o",
                 str(out / ("n" * 300 + ".png"))])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "longer than 255" in err[-1], err


def test_ctrl_c_while_the_cli_starts_is_one_line(tmp_path):
    import signal
    import time
    a = (np.random.default_rng(0).random((12, 16, 3)) * 255).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "a.png")
    for delay in (0.3, 1.0):
        p = subprocess.Popen([sys.executable, "-m", "core.upscale", str(tmp_path / "a.png"),
                              "--scale", "2", "-o", str(tmp_path / "o.png")], cwd=ROOT,
                             stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        err = p.communicate(timeout=120)[1]
        if p.returncode == 0:  # (it finished first)
            continue
        assert p.returncode == 130 and "Traceback" not in err, err
        assert err.strip().splitlines()[-1].startswith("error: interrupted"), err


def test_the_cli_on_each_odd_file_is_clean_and_quiet(tmp_path, capsys):
    """``python -m core.upscale`` on each odd file of this module: status 0 or one
    ``error:`` line with status 2; nothing else on stderr but its own notes (no warnings,
    no decoder log lines, no traceback)."""
    import imagecodecs
    import tifffile

    from core.upscale import main
    rng = np.random.default_rng(5)
    a = (rng.random((20, 30, 3)) * 255).astype(np.uint8)
    files = {}

    def put(name, data):
        files[name] = tmp_path / name
        files[name].write_bytes(data)

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG", exif=rng.bytes(200))
    put("broken-exif.png", buf.getvalue())
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG", icc_profile=_profile_for(b"GRAY"))
    put("grey-profile.png", buf.getvalue())
    buf = io.BytesIO()
    Image.fromarray(a).convert("CMYK").save(buf, "JPEG")
    put("cmyk.jpg", buf.getvalue())
    put("claim.webp", _webp_claiming(16383, 16383))
    put("anim.jxl", imagecodecs.jpegxl_encode(np.stack([a, a[::-1]]), lossless=True,
                                              photometric="rgb"))
    float_rgb = rng.random((20, 30, 3)).astype(np.float32)
    float_rgb[0, 0] = np.nan
    buf = io.BytesIO()
    tifffile.imwrite(buf, float_rgb, photometric="rgb")
    put("float-nan.tif", buf.getvalue())
    buf = io.BytesIO()
    tifffile.imwrite(buf, (rng.random((20, 30, 3)) * 65535).astype(np.uint16),
                     photometric="rgb", extratags=[(65000, "s", 0, "x" * 10, True)])
    put("odd-tag16.tif", buf.getvalue())
    capsys.readouterr()
    for name, path in files.items():
        code = main([str(path), "--method", "bicubic", "--scale", "2", "-o",
                     str(tmp_path / f"out-{name}.png"), "--no-progress"])
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        own = [ln for ln in err if ln.startswith(("note:", "error:"))]
        assert own == err, (name, err)  # nothing but the CLI's own lines
        if code != 0:
            assert code == 2 and len(err) == 1 and err[0].startswith("error:"), (name, err)
