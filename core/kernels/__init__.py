"""Native kernels, built on the user's machine the first time they are needed.

The one kernel so far is LMF's fused per-pixel decoder (``lmf_grid.c``): all render layers,
the gathers and the ensemble blend in one pass per output pixel, with a member's activations
in registers. Eager PyTorch runs the same 16-wide layers as separate operations, each bound
by memory traffic and dispatch; ``torch.compile`` was measured and did not help
(docs/BENCHMARKS.md, "Interactive on two CPU cores").

Building: the C source is compiled with the system's C compiler (``$CC``, else ``cc``,
``gcc`` or ``clang``; ``-O3 -march=native``, fused multiply-adds) into a shared library in
the cache folder (``$LIIF_ZOOM_CACHE``, else ``$XDG_CACHE_HOME/liif-zoom`` or
``~/.cache/liif-zoom``), named by a hash of the source, the flags, the compiler and its
version, and the CPU's instruction-set flags (:func:`cpu_capability`), so it is built once per
machine and version and never loaded on a CPU it was not built for; a half-written library
never has the final name (temporary file, then rename).

Trust: a new build is first loaded in a child process that renders with it against the
eager decoder (:mod:`core.kernels.selftest`); only if that passes is its SHA-256 written
beside it (``NAME.sha256``). A cached library is loaded only if that record matches its bytes
(a truncated, zeroed or replaced file is rebuilt), it belongs to this user and its folder is
not writable by others. It is loaded with :mod:`ctypes`, which releases the GIL during the
call; :func:`run_lmf_grid` checks every shape and index the C code trusts. Where there is no
compiler, any of this fails, or ``LIIF_ZOOM_KERNELS=0`` is set, :func:`lmf_grid` returns
None (one log line says why) and the callers use their eager PyTorch path (same results to
float32 rounding; the test suite checks both).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Callable, Dict, Optional

import torch

from core.atomic import atomic_write

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


@functools.lru_cache(maxsize=None)
def _compiler_version(cc: str) -> str:
    try:
        r = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
        return r.stdout.strip().splitlines()[0] if r.stdout.strip() else r.stderr.strip()[:200]
    except (OSError, subprocess.SubprocessError):
        return "?"


@functools.lru_cache(maxsize=None)
def cpu_capability() -> str:
    """What ``-march=native`` compiles for: the CPU's model and instruction-set flags
    (``/proc/cpuinfo`` on Linux, ``sysctl machdep.cpu`` on macOS), so that a library cached
    on one CPU is never loaded on another (``platform.processor()`` is empty on Linux)."""
    parts = [platform.machine()]
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key = line.split(":", 1)[0].strip().lower()
                if key in ("flags", "features", "model name", "cpu part", "isa"):
                    parts.append(line.strip())
                if not line.strip() and len(parts) > 1:
                    break  # the first processor describes them all
    except OSError:
        try:
            r = subprocess.run(["sysctl", "-a"], capture_output=True, text=True, timeout=30)
            parts += [
                l for l in r.stdout.splitlines() if l.startswith(("machdep.cpu", "hw.optional"))
            ]
        except (OSError, subprocess.SubprocessError):
            parts.append(platform.processor())
    return "\n".join(parts)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _private(path: Path) -> Optional[str]:
    """Why ``path`` (a library or its folder) must not be trusted, or None: on POSIX it must
    belong to this user and, for a folder, not be writable by others."""
    if not hasattr(os, "getuid"):
        return None
    st = path.stat()
    if st.st_uid != os.getuid():
        return f"{path} belongs to another user (uid {st.st_uid})"
    if path.is_dir() and st.st_mode & 0o022:
        return f"{path} is writable by other users"
    return None


def _forget(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".sha256")):
        try:
            p.unlink()
        except OSError:
            pass


def _self_test(path: Path, d: int) -> Optional[str]:
    """Load a new build in a child process and render with it against the eager decoder
    (:mod:`core.kernels.selftest`); None if it passed, else why not. A library built for
    another CPU dies there (SIGILL), not in the app."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parents[2])] + sys.path))
    try:
        r = subprocess.run([sys.executable, "-m", "core.kernels.selftest", str(d), str(path)],
                           capture_output=True, text=True, timeout=300, env=env)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"self-test could not run: {exc}"
    if r.returncode == 0:
        return None
    if r.returncode < 0:
        return f"self-test died of {signal.Signals(-r.returncode).name}"
    return "self-test failed: " + (r.stderr.strip().splitlines() or ["?"])[-1][:300]


def _build(d: int) -> Optional[Path]:
    """The library for render width ``d``: from the cache if its checksum (written when it
    passed its self-test) still matches, else built, self-tested and recorded; None on
    failure (with one log line)."""
    cc = _compiler()
    if cc is None or sys.platform == "win32":
        log.info("no C compiler found: LMF decodes with eager PyTorch")
        return None
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        why = _private(folder)
    except OSError as exc:
        why = f"{folder} is not usable ({exc})"
    if why:
        log.warning("native kernel cache refused: %s; LMF decodes with eager PyTorch", why)
        return None
    src = _SRC.read_bytes()
    suffix = ".dylib" if sys.platform == "darwin" else ".so"
    for flags in (["-O3", "-march=native"], ["-O3"]):
        args = flags + ["-fPIC", "-shared", "-std=gnu99", "-ffp-contract=fast",
                        "-fno-math-errno", f"-DD={d}"]
        key = hashlib.sha256(b"\0".join([src, " ".join(args).encode(), cc.encode(),
                                         _compiler_version(cc).encode(),
                                         cpu_capability().encode()])).hexdigest()[:16]
        out = folder / f"lmf_grid_d{d}_{key}{suffix}"
        record = out.with_name(out.name + ".sha256")
        if out.is_file():
            try:
                # the library and its record both ours: a record another user wrote could
                # vouch for a library they replaced
                why = _private(out) or (_private(record) if record.exists() else None)
                if why is None and record.read_text().strip() == _digest(out):
                    return out
                why = why or "its checksum does not match (corrupted or replaced)"
            except OSError as exc:
                why = f"no checksum record ({exc.__class__.__name__})"
            if _private(out) is not None or (record.exists() and _private(record) is not None):
                # not ours to delete (nor to overwrite): eager from now on
                log.warning("native kernel %s not trusted: %s; LMF decodes with eager "
                            "PyTorch", out.name, why)
                return None
            log.warning("native kernel %s not trusted: %s; rebuilding it", out.name, why)
            _forget(out)
        built = _compile(cc, args, out, suffix)
        if built is None:
            continue
        why = _self_test(built, d)
        if why is not None:
            log.warning("native kernel %s (%s) rejected: %s; LMF decodes with eager PyTorch",
                        out.name, " ".join(flags), why)
            _forget(built)
            continue
        atomic_write(record, lambda tmp: Path(tmp).write_text(_digest(built) + "\n"))
        return out
    return None


def _compile(cc: str, args: list, out: Path, suffix: str) -> Optional[Path]:
    try:
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
        log.info("building %s with %s failed: %s", _SRC.name, " ".join(args[:2]),
                 r.stderr.strip()[:500])
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("building %s failed: %s", _SRC.name, exc)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return None


def open_library(path: Path, d: int) -> "_Kernel":
    """The kernel in the library ``path`` (no checks: :func:`lmf_grid` checks first).
    Raises OSError or AttributeError (no ``lmf_grid`` symbol)."""
    lib = ctypes.CDLL(str(path))
    fn = lib.lmf_grid
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    fn.argtypes = [p, i64, i32, i32, p, p, p, p, i32, i64, i64, p, p, p, p, p, p, p]
    fn.restype = None
    return _Kernel(fn, d)


def _load(d: int) -> Optional[Callable]:
    path = _build(d)
    if path is None:
        return None
    try:
        return open_library(path, d)
    except (OSError, AttributeError) as exc:
        log.warning("loading %s failed (%s): LMF decodes with eager PyTorch; rebuilt next time",
                    path.name, exc)
        _forget(path)
        return None


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
    if ry.dim() != 2 or rx.dim() != 2:
        raise ValueError("inconsistent grid shapes")
    n, th = ry.shape
    tw = rx.shape[1]
    if n not in (1, 2):  # the kernel keeps n * n members in 4-element arrays
        raise ValueError(f"the ensemble is 1 or 2 codes a side, got {n}")
    if rbase.shape != (n, th) or coff.shape != (n, tw) or rx.shape[0] != n:
        raise ValueError("inconsistent grid shapes")
    if not 1 <= layers <= 64:
        raise ValueError(f"render layers must be 1-64, got {layers}")
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
