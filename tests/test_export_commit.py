"""A multi-file export commits all or nothing and leaves no litter
(core.export.export_many over core.atomic.staged)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from core import atomic
from core.export import export_many
from core.geometry import Region
from core.io.imageio import LoadedImage


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    return LoadedImage(rng.random((20, 24, 3), dtype=np.float32))


def test_every_target_is_checked_before_anything_is_replaced(tmp_path, image):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"old a")
    b.mkdir()  # cannot be replaced by a file
    with pytest.raises(OSError, match="b.png"):
        export_many(image, Region.full(24, 20), 48, 40,
                    [("bicubic", str(a)), ("nearest", str(b))], {})
    assert a.read_bytes() == b"old a" and b.is_dir()
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png"]  # nothing staged left


def test_a_failed_rename_rolls_every_target_back(tmp_path, image, monkeypatch):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"old a")
    b.write_bytes(b"old b")
    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append(dst)
        if str(dst) == str(b) and ".staged" in str(src):
            raise OSError("disk full")
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", flaky)
    with pytest.raises(OSError, match="disk full"):
        export_many(image, Region.full(24, 20), 48, 40,
                    [("bicubic", str(a)), ("nearest", str(b))], {})
    monkeypatch.setattr(atomic.os, "replace", real)
    assert a.read_bytes() == b"old a" and b.read_bytes() == b"old b"
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png"]


def test_both_files_are_written_with_every_method(tmp_path, image):
    from PIL import Image
    paths = [str(tmp_path / f"{m}.png") for m in ("bicubic", "nearest")]
    assert export_many(image, Region.full(24, 20), 48, 40,
                       list(zip(("bicubic", "nearest"), paths)), {}) == paths
    near = np.asarray(Image.open(paths[1]))
    want = np.round(image.rgb * 255).astype(np.uint8).repeat(2, 0).repeat(2, 1)
    assert np.array_equal(near, want)  # nearest at x2: each source pixel twice each way


def test_stale_temporary_files_of_a_killed_process_are_removed(tmp_path, image):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".out.png.liifzoom-{dead}.abc123.staged.png"
    stale.write_bytes(b"x" * 100)
    mine = tmp_path / f".out.png.liifzoom-{os.getpid()}.def456.part.png"
    mine.write_bytes(b"y")  # a running process's (this one): kept
    other = tmp_path / ".hidden-notes.txt"
    other.write_text("not ours")
    export_many(image, Region.full(24, 20), 24, 20, [("bicubic", str(tmp_path / "out.png"))], {})
    assert not stale.exists() and mine.exists() and other.exists()
    assert (tmp_path / "out.png").is_file()


def test_a_missing_folder_is_refused_before_rendering(tmp_path, image):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_many(image, Region.full(24, 20), 24, 20,
                    [("bicubic", str(tmp_path / "nope" / "a.png"))], {})
