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
from core.imageio import ImageError, load_image
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
        if "-bomb" in name or "-cut" in name or "-random" in name or name in ("empty.png", "text.jpg"):
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

    from tests.conftest import tiny_spec
    from core.models.registry import make

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
    put("payload.pth", pickle.dumps({"model": {"name": "liif", "args": {}, "sd": _Payload(str(marker))}}))
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
        save_file({"layers.0.weight": torch.zeros(2, 2)}, str(p),
                  metadata={"format": "liif-zoom/1", "spec": json.dumps({"name": "mlp", "args": args})})
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
