"""Where the bundled resources live, and which bundled model suits a device.

Two model files can be bundled: the full LIIF model and the fast LMF model (core.models.lmf).
On a CPU the fast one is the default when it is present; on a GPU the full one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import torch

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
#: the full LIIF model (the default on a GPU, and everywhere while no fast model is bundled)
DEFAULT_CHECKPOINT = RESOURCES / "liif-cpu.safetensors"
#: the fast model (the default on a CPU once bundled)
FAST_CHECKPOINT = RESOURCES / "lmf-cpu.safetensors"
#: the image ``python main.py`` opens
SAMPLE_IMAGE = RESOURCES / "sample.png"


def bundled_models() -> Dict[str, Path]:
    """``{'full': path, 'fast': path}`` for the bundled files that exist."""
    out = {"full": DEFAULT_CHECKPOINT, "fast": FAST_CHECKPOINT}
    return {k: v for k, v in out.items() if v.is_file()}


def default_checkpoint(device: torch.device | str) -> Path:
    """The bundled model to use on ``device``: the fast one on a CPU if bundled, else the full."""
    models = bundled_models()
    if torch.device(device).type == "cpu" and "fast" in models:
        return models["fast"]
    return DEFAULT_CHECKPOINT
