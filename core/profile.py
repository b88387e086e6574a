"""The device profile: every per-device choice in one object, built once per device.

What used to be decided in seven places (arithmetic type, how the latent is stored and how
much of it is kept, render chunk and tile sizes, threads, the export estimate's rates) is one
frozen :class:`DeviceProfile`, made by :func:`profile_for` and passed to whoever needs it:

=================  ==========================================  ==================================
field              CPU                                         GPU (CUDA, MPS)
=================  ==========================================  ==================================
compute_dtype      bfloat16 where the CPU multiplies it         float32 (the lower precision is
                   natively (AVX512-BF16, AMX), else float32    not measured against the tests'
                                                                tolerance there)
latent_dtype       float32                                      float16 (half the memory)
latent_budget      15 % of the RAM, at most 2 GiB               half the free memory, at most 2 GiB
chunk              8192 queries, sides up to 128                a 512-px tile in one chunk
                                                                (a quarter below 12 GB)
view_tile          256                                          512
workers x threads  one render worker per core (at most 4),      one worker
                   the cores shared among them
=================  ==========================================  ==================================

``precision`` overrides the arithmetic (``"float32"`` or ``"bfloat16"`` forces it; ``"auto"`` is
the table);
``LIIF_ZOOM_LATENT_MB`` overrides the budget. :meth:`DeviceProfile.encode` is the one way an
image becomes a latent for a model in the viewer, the CLI, evaluation and training checks.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch

from core.device import native_bf16
from core.render.encoding import LatentImage, encode

__all__ = ["DeviceProfile", "profile_for", "default_budget", "PRECISIONS"]

#: what ``precision`` may say: the table's choice, or one arithmetic forced (bfloat16 forced
#: runs emulated, slowly, on a CPU without it: for measuring its effect)
PRECISIONS = ("auto", "float32", "bfloat16")
#: the viewer's latent tile side: small, so that a view encodes little beyond what it shows
#: (16 against 32: docs/BENCHMARKS.md, "The edges model, and smaller latent tiles")
VIEWER_LATENT_TILE = 16
#: most render workers on a CPU (beyond that each worker gets more threads)
MAX_CPU_WORKERS = 4
#: the share of a machine's memory a latent may take by default (CPU: of the RAM; GPU: of the
#: memory free when the image is opened, leaving the rest for rendering), and a ceiling
BUDGET_SHARE_CPU, BUDGET_SHARE_GPU, BUDGET_CEILING = 0.15, 0.5, 2 << 30
#: a CPU's render chunk: 8192 queries, sides up to 128 (docs/BENCHMARKS.md, Rendering)
CPU_CHUNK = (8192, 128)
#: a GPU's: a 512-px view tile in one chunk; the decoder's two activation buffers are then
#: 4 x 2^18 x hidden floats each (1 GiB for the paper model)
GPU_CHUNK = (1 << 18, 1024)
#: on a GPU with less memory than this, chunks a quarter of the size
SMALL_GPU_BYTES = 12 << 30
#: the viewer's screen tiles: a tile lands every few hundred ms on a CPU; on a GPU a tile is
#: one chunk, and a 1080p view 12 tiles instead of 40 (bench/render_launches.py)
CPU_VIEW_TILE, GPU_VIEW_TILE = 256, 512


@dataclass(frozen=True)
class DeviceProfile:
    """How this process computes on one device (see the module's table)."""

    device: torch.device
    #: whether the device multiplies bfloat16 natively (training's ``precision: auto``)
    bf16_native: bool
    #: the encoder's and the code features' arithmetic when speed matters
    compute_dtype: torch.dtype
    #: how a latent is stored
    latent_dtype: torch.dtype
    #: bytes one image's latent may hold
    latent_budget: int
    #: ``(most output pixels per render chunk, longest chunk side)``
    chunk: Tuple[int, int]
    #: side of the viewer's screen tiles
    view_tile: int
    #: side of the viewer's latent tiles
    latent_tile: int
    #: render workers, and torch threads for each
    workers: int
    threads: int

    @property
    def arithmetic(self) -> str:
        """Words for the status bar and the CLI's model line."""
        if self.compute_dtype == torch.bfloat16:
            return "bfloat16 encoder"
        return "float32"

    def describe(self) -> str:
        """``cpu, float32`` or ``cpu, bfloat16 encoder`` (the CLI's model line)."""
        return f"{self.device.type}, {self.arithmetic}"

    @property
    def short(self) -> str:
        """``cpu`` or ``cpu bf16`` (the status bar; float32 goes without saying)."""
        return self.device.type + (" bf16" if self.compute_dtype == torch.bfloat16 else "")

    def encode(self, model: torch.nn.Module, rgb: np.ndarray, *,
               latent_dtype: Optional[torch.dtype] = None, budget_share: float = 1.0,
               budget_bytes: Optional[int] = None, **kw) -> LatentImage:
        """The one way an image becomes a latent: ``rgb`` under ``model``, lazily (tiles are
        encoded as renders read them), in this profile's arithmetic, stored as
        ``latent_dtype`` (default: the profile's), within ``budget_share`` of
        :attr:`latent_budget` (the viewer keeps two latents) or ``budget_bytes``. Other
        keywords (``tile``, ``lazy``, ...) go to :func:`core.render.encoding.encode`."""
        if budget_bytes is None:
            budget_bytes = int(self.latent_budget * budget_share)
        return encode(model, rgb, self.device, dtype=latent_dtype or self.latent_dtype,
                      compute_dtype=self.compute_dtype, budget_bytes=budget_bytes,
                      chunk=self.chunk, **kw)


def default_budget(device: torch.device | str) -> int:
    """Bytes the latent of one image may hold on ``device`` (see :data:`BUDGET_SHARE_CPU`):
    ``$LIIF_ZOOM_LATENT_MB`` if set."""
    env = os.environ.get("LIIF_ZOOM_LATENT_MB")
    if env:
        return max(1, int(float(env) * (1 << 20)))
    dev = torch.device(device)
    try:
        if dev.type == "cuda":
            free, _ = torch.cuda.mem_get_info(dev)
            return int(min(BUDGET_CEILING, BUDGET_SHARE_GPU * free))
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return int(min(BUDGET_CEILING, BUDGET_SHARE_CPU * total))
    except (AttributeError, ValueError, OSError, RuntimeError):
        return BUDGET_CEILING


def _chunk(dev: torch.device) -> Tuple[int, int]:
    if dev.type == "cuda":
        try:
            if torch.cuda.get_device_properties(dev).total_memory < SMALL_GPU_BYTES:
                return GPU_CHUNK[0] // 4, GPU_CHUNK[1] // 2
        except (RuntimeError, AssertionError):
            pass
    return CPU_CHUNK if dev.type == "cpu" else GPU_CHUNK


def _threads(device: torch.device, workers: int) -> int:
    if device.type != "cpu":
        return torch.get_num_threads()
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def profile_for(device: torch.device | str = "cpu", precision: str = "auto",
                workers: Optional[int] = None) -> DeviceProfile:
    """The profile of ``device`` (see the module's table). ``precision="float32"`` forces
    float32 arithmetic; ``workers`` overrides the number of render workers."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    dev = torch.device(device)
    if dev.type == "cpu":
        bf16 = native_bf16(dev)
        n = workers or min(MAX_CPU_WORKERS, os.cpu_count() or 1)
    else:
        bf16 = dev.type == "cuda" and torch.cuda.is_bf16_supported()
        n = workers or 1
    fast = precision == "bfloat16" or (precision == "auto" and bf16 and dev.type == "cpu")
    return DeviceProfile(
        device=dev, bf16_native=bf16,
        compute_dtype=torch.bfloat16 if fast else torch.float32,
        latent_dtype=torch.float32 if dev.type == "cpu" else torch.float16,
        latent_budget=default_budget(dev), chunk=_chunk(dev),
        view_tile=CPU_VIEW_TILE if dev.type == "cpu" else GPU_VIEW_TILE,
        latent_tile=VIEWER_LATENT_TILE,
        workers=n, threads=_threads(dev, n))
