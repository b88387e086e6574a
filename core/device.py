"""Which torch device to compute on: CUDA when there is one, else MPS, else CPU."""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings
from typing import ContextManager, Optional

import torch

_WORKS: dict = {}


def device_works(dev: torch.device) -> Optional[str]:
    """None if a small computation on ``dev`` runs and agrees with the CPU's, else why not
    (once per device and process). ``cuda.is_available()`` alone is not enough: a wheel can
    report a GPU whose architecture it has no kernels for, or a driver too old to run it."""
    key = str(dev)
    if key not in _WORKS:
        try:
            x = torch.arange(12, dtype=torch.float32).view(3, 4)
            y = (x.to(dev) @ x.t().to(dev)).relu().cpu()
            _WORKS[key] = None if torch.equal(y, (x @ x.t()).relu()) else "wrong results"
        except Exception as exc:  # noqa: BLE001 - any failure means: do not use it
            _WORKS[key] = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
    return _WORKS[key]


def pick_device(name: Optional[str] = None) -> torch.device:
    """``name`` ('cpu', 'cuda', 'cuda:1', 'mps') or None for the best available.

    The automatic choice takes a GPU only if it passes :func:`device_works` (else the CPU,
    with a warning saying why). Raises ValueError with a clear message if the requested
    device is not available or fails that test.
    """
    if name is None or name == "auto":
        for dev, there in ((torch.device("cuda"), torch.cuda.is_available()),
                           (torch.device("mps"), getattr(torch.backends, "mps", None) is not None
                            and torch.backends.mps.is_available())):
            if there:
                why = device_works(dev)
                if why is None:
                    return dev
                warnings.warn(f"{dev.type} is reported but does not work ({why}); using the CPU")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {name!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) is not None
                                  and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' requested but MPS is not available")
    if dev.type != "cpu":
        why = device_works(dev)
        if why is not None:
            raise ValueError(f"device {name!r} is reported but does not work: {why}")
    return dev


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 natively (CPU: AVX512-BF16 or AMX-BF16, where
    oneDNN's bfloat16 convolutions run at twice the float32 rate; no GPU is claimed here)."""
    if torch.device(device).type != "cpu":
        return False
    try:  # private, but the only place torch reports these flags
        caps = torch._C._cpu._get_cpu_capability()
    except Exception:  # noqa: BLE001 - an older or different build: assume no
        return False
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def autocast_to(device: torch.device, dtype: torch.dtype) -> ContextManager:
    """Autocast on ``device`` to ``dtype``; nothing when ``dtype`` is float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def is_out_of_memory(exc: BaseException) -> bool:
    """A device (or host) allocation failure: torch's OutOfMemoryError, a MemoryError, or a
    RuntimeError saying so (MPS and older builds; the CPU allocator's "can't allocate
    memory")."""
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", ())
    text = str(exc).lower()
    return (isinstance(exc, MemoryError) or (oom and isinstance(exc, oom))
            or (isinstance(exc, RuntimeError)
                and ("out of memory" in text or "can't allocate memory" in text)))


def empty_device_cache() -> None:
    """Give the GPU's cached blocks back after an out-of-memory error (no-op on a CPU)."""
    if torch.cuda.is_available():
        try:
            torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001 - best effort
            pass


_LIBC = None


def release_freed_memory() -> None:
    """Hand memory that has been freed back to the operating system (glibc's ``malloc_trim``;
    a no-op elsewhere): tensors of a few MB (latent tiles, encoder activations, render
    bands) come from malloc's heap once glibc has raised its mmap threshold, and their freed
    pages can stay resident. Called between export bands (the band-sized budget,
    core.upscale.band_budget, is what bounds the CLI's memory; docs/BENCHMARKS.md, Memory)."""
    global _LIBC
    if _LIBC is None:
        _LIBC = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes
                libc = ctypes.CDLL("libc.so.6")
                libc.malloc_trim.argtypes = [ctypes.c_size_t]
                _LIBC = libc
            except (OSError, AttributeError):
                pass
    if _LIBC:
        _LIBC.malloc_trim(0)


_DEVICE_LOCKS: dict = {}
_LOCKS_GUARD = threading.Lock()


def device_lock(device: torch.device | str) -> ContextManager:
    """The lock every thread holds while it drives ``device`` (encoding, rendering), where
    the device needs one: Apple's MPS aborts the process when two threads use it at once;
    CUDA and the CPU take concurrent work (a no-op there). ``LIIF_ZOOM_SERIAL_DEVICE=1``
    serialises any device (for tests, or a driver that misbehaves). Re-entrant."""
    dev = torch.device(device)
    if dev.type != "mps" and os.environ.get("LIIF_ZOOM_SERIAL_DEVICE") != "1":
        return contextlib.nullcontext()
    with _LOCKS_GUARD:
        return _DEVICE_LOCKS.setdefault(str(dev), threading.RLock())
