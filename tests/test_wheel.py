"""The distribution: a wheel that carries the bundled models and sample, installed into a
fresh environment and run from another directory (no checkout on the path)."""
import glob
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow  # whole module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_wheel_ships_the_models_and_runs_outside_the_checkout(tmp_path):
    # build from a copy of the sources (setuptools keeps a build/ folder beside them, and a
    # stale one could slip old files into the wheel)
    import shutil
    import site

    from core.defaults import SAMPLE_IMAGE
    from core.zoo import REGISTRY
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".venv", "build", "*.egg-info", ".git", "__pycache__", "runs", ".pytest_cache"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps",
                        "--no-build-isolation", "-q", "-w", str(tmp_path / "dist")],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    whl = glob.glob(str(tmp_path / "dist" / "liif_zoom-*.whl"))[0]
    names = zipfile.ZipFile(whl).namelist()
    for f in [m.path for m in REGISTRY if m.path.is_file()] + [SAMPLE_IMAGE]:
        assert f"resources/{f.name}" in names, f.name
    assert "resources/LICENSES.md" in names and "training/configs/history/cpu-lmf.yaml" in names
    assert "core/kernels/lmf_grid.c" in names  # the native decoder's source, built on first use
    # development tools and tests stay out of the installed app
    assert not [n for n in names if n.startswith(("tools/", "tests/", "bench/"))
                or n.endswith(("soak.py", "screenshots.py"))], names
    # a fresh environment that borrows this one's dependencies (torch, Qt, ...) but has no
    # access to the checkout: only the wheel provides core, viewer, training, resources
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    py = env_dir / "bin" / "python"
    sp = subprocess.run([str(py), "-c", "import site; print(site.getsitepackages()[0])"],
                        capture_output=True, text=True, check=True).stdout.strip()
    deps = [p for p in site.getsitepackages() if os.path.isdir(p)]
    with open(os.path.join(sp, "deps.pth"), "w") as f:
        f.write("\n".join(deps) + "\n")
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
                        "--no-index", "-q", whl], capture_output=True, text=True)
    if r.returncode != 0 and "no such option: --python" in r.stderr:  # pip < 22.3
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                            "-q", "--target", sp, whl], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    Image.fromarray((np.random.default_rng(0).random((16, 20, 3)) * 255).astype(np.uint8)).save(
        work / "in.png"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    where = subprocess.run([str(py), "-c", "import core, resources; print(core.__file__); "
                            "from core.defaults import RESOURCES; print(RESOURCES)"],
                           capture_output=True, text=True, cwd=work, env=env)
    assert where.returncode == 0, where.stderr
    assert all(str(env_dir) in line for line in where.stdout.split()), where.stdout
    script = env_dir / "bin" / "liif-upscale"
    cmd = [str(script)] if script.exists() else [str(py), "-m", "core.upscale"]
    r = subprocess.run(cmd + ["in.png", "--scale", "2", "-o", "out.png"], capture_output=True,
                       text=True, cwd=work, env=env)
    assert r.returncode == 0, r.stderr
    assert "model " in r.stderr and Image.open(work / "out.png").size == (40, 32)
    # the installed package builds its native decoder from the shipped source
    from core import kernels
    if kernels._compiler() is not None:
        cache = tmp_path / "kernel-cache"
        r = subprocess.run([str(py), "-c", "from core import kernels; "
                            "print(kernels.lmf_grid(16) is not None)"], capture_output=True,
                           text=True, cwd=work, env={**env, "LIIF_ZOOM_CACHE": str(cache)})
        assert r.stdout.strip() == "True", r.stderr
        assert list(cache.glob("lmf_grid_d16_*"))
