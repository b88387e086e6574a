"""training.fetch against a local HTTP server serving small archives made here."""
import hashlib
import http.server
import io
import os
import subprocess
import sys
import tarfile
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _png_bytes(seed):
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(seed).random((8, 8, 3)) * 255).astype(np.uint8)).save(
        buf, "PNG"
    )
    return buf.getvalue()


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_fetch(*args):
    return subprocess.run(
        [sys.executable, "-m", "training.fetch", "--no-progress", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_fetch_downloads_verifies_and_unpacks(server, tmp_path):
    www, base = server
    digest = _zip(www / "DIV2K_valid_HR.zip", {f"DIV2K_valid_HR/08{i:02d}.png": _png_bytes(i)
                                               for i in range(3)})
    dest = tmp_path / "data"
    r = run_fetch("div2k-valid", dest, "--url", f"{base}/DIV2K_valid_HR.zip", "--sha256", digest)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(dest / "DIV2K_valid_HR")) == ["0800.png", "0801.png", "0802.png"]
    assert sorted(os.listdir(dest)) == ["DIV2K_valid_HR"]  # no archive, no work folder
    # the folder is what the evaluation CLI reads
    e = subprocess.run([sys.executable, "-m", "training.evaluate", "--data",
                        str(dest / "DIV2K_valid_HR"), "--scales", "2", "--bicubic-only"],
                       capture_output=True, text=True, cwd=ROOT)
    assert e.returncode == 0, e.stderr
    # a second run finds it there
    r = run_fetch("div2k-valid", dest, "--url", f"{base}/DIV2K_valid_HR.zip", "--sha256", digest)
    assert r.returncode == 0 and "nothing to do" in r.stderr


def test_benchmark_tar_layout(server, tmp_path):
    from training.fetch import Dataset, fetch
    www, base = server
    tar = www / "benchmark.tar"
    with tarfile.open(tar, "w") as t:
        for name, data in {"benchmark/Set5/HR/baby.png": _png_bytes(1),
                           "benchmark/Set5/LR_bicubic/X2/babyx2.png": _png_bytes(2)}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    md5 = hashlib.md5(tar.read_bytes()).hexdigest()
    cat = {
        "benchmark": Dataset(f"{base}/benchmark.tar", None, "md5", md5, "benchmark", 1 << 20, "")
    }
    out = fetch("benchmark", tmp_path / "d", cat, progress=False)
    from training.data import PairedFolder
    f = PairedFolder(str(out / "Set5"))
    assert [p.name for p in f.hr_files] == ["baby.png"] and f.lr_path(f.hr_files[0], 2)


@pytest.mark.parametrize("case", ["checksum", "missing", "traversal", "bomb", "wrong-folder"])
def test_fetch_refuses_bad_downloads_and_leaves_nothing(server, tmp_path, case):
    www, base = server
    good = {"DIV2K_valid_HR/0801.png": _png_bytes(0)}
    members = {"checksum": good, "missing": good, "wrong-folder": {"other/0801.png": _png_bytes(0)},
               "traversal": {"../../evil.png": b"x"},
               "bomb": {"DIV2K_valid_HR/big.bin": b"\0" * (3 << 20)}}[case]
    digest = _zip(www / "a.zip", members)
    if case == "checksum":
        digest = "0" * 64
    url = f"{base}/{'nothere' if case == 'missing' else 'a'}.zip"
    dest = tmp_path / "data"
    dest.mkdir()
    if case == "bomb":
        from training.fetch import CATALOGUE, FetchError, fetch, replace
        cat = {"div2k-valid": replace(CATALOGUE["div2k-valid"], url=url, size=None,
                                      digest=digest, max_unpacked=1 << 20)}
        with pytest.raises(FetchError, match="unpacks to more than"):
            fetch("div2k-valid", dest, cat, progress=False)
    else:
        r = run_fetch("div2k-valid", dest, "--url", url, "--sha256", digest)
        assert r.returncode == 2, r.stderr
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert os.listdir(dest) == []
    assert not (tmp_path / "evil.png").exists()
