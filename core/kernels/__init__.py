"""Native kernels, built on the user's machine the first time they are needed.

The one kernel so far is LMF's fused per-pixel decoder (``lmf_grid.c``): all render layers,
the gathers and the ensemble blend in one pass per output pixel, with a member's activations
in registers. Eager PyTorch runs the same 16-wide layers as separate operations, each bound
by memory traffic and dispatch; ``torch.compile`` was measured and did not help
(docs/BENCHMARKS.md, "Interactive on two CPU cores").

Building: the C source is compiled with the system's C compiler (``$CC``, else ``cc``,
``gcc`` or ``clang``; ``-O3 -march=native``, fused multiply-adds) into a shared library in
the cache folder (``$LIIF_ZOOM_CACHE``, else ``$XDG_CACHE_HOME/liif-zoom`` or
``~/.cache/liif-zoom``), named by a hash of the source, the flags, the compiler and the machine, so it is built once per
machine and version; a half-written library never has the final name (temporary file, then
rename). It is loaded with :mod:`ctypes`, which releases the GIL during the call. Where
there is no compiler, the build fails or ``LIIF_ZOOM_KERNELS=0`` is set, :func:`lmf_grid`
returns None and the callers use their eager PyTorch path (same results to float32
rounding; the test suite checks both).
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Callable, Dict, Optional

import torch

__all__ = ["lmf_grid", "enabled", "cache_dir"]

log = logging.getLogger(__name__)

_SRC = Path(__file__).with_name("lmf_grid.c")
_lock = threading.Lock()
_loaded: Dict[int, Optional[Callable]] = {}


def enabled() -> bool:
    """False when ``LIIF_ZOOM_KERNELS=0`` asks for the eager paths."""
    return os.environ.get("LIIF_ZOOM_KERNELS", "1") != "0"


def cache_dir() -> Path:
    env = os.environ.get("LIIF_ZOOM_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "liif-zoom"


def _compiler() -> Optional[str]:
    cc = os.environ.get("CC")
    if cc and shutil.which(cc):
        return shutil.which(cc)
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _build(d: int) -> Optional[Path]:
    """The library for render width ``d``, built if it is not in the cache; None on failure."""
    cc = _compiler()
    if cc is None or sys.platform == "win32":
        log.info("no C compiler found: LMF decodes with eager PyTorch")
        return None
    src = _SRC.read_bytes()
    suffix = ".dylib" if sys.platform == "darwin" else ".so"
    for flags in (["-O3", "-march=native"], ["-O3"]):
        args = flags + ["-fPIC", "-shared", "-std=gnu99", "-ffp-contract=fast",
                        "-fno-math-errno", f"-DD={d}"]
        key = hashlib.sha256(b"\0".join([src, " ".join(args).encode(), cc.encode(),
                                         platform.machine().encode(),
                                         platform.processor().encode()])).hexdigest()[:16]
        out = cache_dir() / f"lmf_grid_d{d}_{key}{suffix}"
        if out.is_file():
            return out
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(suffix=suffix, dir=out.parent)
            os.close(fd)
        except OSError as exc:
            log.info("kernel cache %s not writable (%s): LMF decodes with eager PyTorch",
                     out.parent, exc)
            return None
        try:
            r = subprocess.run([cc, *args, "-o", tmp, str(_SRC), "-lm"], capture_output=True,
                               text=True, timeout=120)
            if r.returncode == 0:
                os.replace(tmp, out)
                return out
            log.info("building %s with %s failed: %s", _SRC.name, " ".join(flags),
                     r.stderr.strip()[:500])
        except (OSError, subprocess.SubprocessError) as exc:
            log.info("building %s failed: %s", _SRC.name, exc)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return None


def _load(d: int) -> Optional[Callable]:
    path = _build(d)
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        log.info("loading %s failed: %s", path, exc)
        return None
    fn = lib.lmf_grid
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    fn.argtypes = [p, i64, i32, i32, p, p, p, p, i32, i64, i64, p, p, p, p, p, p, p]
    fn.restype = None
    return _Kernel(fn, d)


class _Kernel:
    """A loaded kernel and the render width it was built for."""

    def __init__(self, fn: Callable, width: int) -> None:
        self.fn, self.width = fn, width

    def __call__(self, *args) -> None:
        self.fn(*args)


def lmf_grid(d: int) -> Optional[Callable]:
    """The fused LMF grid decoder for render width ``d`` (see :func:`run_lmf_grid`), or None
    where native kernels are off or cannot be built."""
    if not enabled():
        return None
    with _lock:
        if d not in _loaded:
            _loaded[d] = _load(d)
        return _loaded[d]


def _ptr(t: Optional[torch.Tensor], dtype: torch.dtype) -> Optional[int]:
    if t is None:
        return None
    if t.dtype != dtype or t.device.type != "cpu" or not t.is_contiguous():
        raise ValueError("kernel operands must be contiguous CPU tensors of "
                         f"{dtype}, got {t.dtype} {t.device} contiguous={t.is_contiguous()}")
    return t.data_ptr()


def run_lmf_grid(fn: Callable, table: torch.Tensor, layers: int, skip: bool,
                 rbase: torch.Tensor, coff: torch.Tensor, ry: torch.Tensor, rx: torch.Tensor,
                 win: torch.Tensor, cst: torch.Tensor, wht: torch.Tensor, bh: torch.Tensor,
                 wo: torch.Tensor, bo: torch.Tensor) -> torch.Tensor:
    """Call the kernel (shapes as in ``lmf_grid.c``; ``ry``/``rbase`` are ``(n, th)``,
    ``rx``/``coff`` ``(n, tw)``): the blended ``(th, tw, 3)`` float32 grid."""
    n, th = ry.shape
    tw = rx.shape[1]
    if rbase.shape != (n, th) or coff.shape != (n, tw) or rx.shape[0] != n:
        raise ValueError("inconsistent grid shapes")
    # the kernel checks nothing: every row and column it reads must exist
    d = fn.width
    if (win.shape != (2, d) or cst.shape != (d,) or wht.shape != (layers - 1, d, d)
            or bh.shape != (layers - 1, d) or wo.shape != (3, d) or bo.shape != (3,)
            or table.dim() != 2 or table.shape[1] < 2 * layers * d + (3 if skip else 0)):
        raise ValueError("weights or code table do not match the render width and layers")
    if int(rbase.min()) < 0 or int(coff.min()) < 0 or \
            int(rbase.max()) + int(coff.max()) >= table.shape[0]:
        raise ValueError("grid indices outside the code table")
    out = torch.empty(th, tw, 3)
    f32, i64 = torch.float32, torch.int64
    fn(_ptr(table, f32), table.shape[1], layers, int(skip), _ptr(rbase, i64), _ptr(coff, i64),
       _ptr(ry, f32), _ptr(rx, f32), n, th, tw, _ptr(win, f32), _ptr(cst, f32),
       _ptr(wht, f32) if wht.numel() else None, _ptr(bh, f32) if bh.numel() else None,
       _ptr(wo, f32), _ptr(bo, f32), out.data_ptr())
    return out
