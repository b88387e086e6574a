"""The bundled resources, and the one rule that picks the default model for a device.

Two models are bundled (see the README's model table and ``resources/*.md``):

* ``paper``: the LIIF authors' EDSR-baseline-LIIF, converted from their release
  (``python -m core.checkpoints convert``); the paper's quality, interactive on a GPU.
* ``cpu``: this project's CPU model (an LMF decoder on an encoder cut from the paper model's),
  trained to come close to the paper model's quality at a fraction of its cost.

:func:`default_checkpoint` is the rule every front door uses (the viewer, ``core.upscale``,
``training.evaluate`` and the benchmarks): the paper model where the device makes it
interactive (CUDA, MPS), the CPU model on a CPU; each front door reports its choice with
:func:`describe_model`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Tuple

import torch

def _resources() -> Path:
    """The bundled resources: the ``resources`` package's folder (through
    ``importlib.resources``, which finds it in an installed wheel as in a checkout), checked to
    be ours; else the folder beside this source tree."""
    try:
        from importlib.resources import files

        p = Path(str(files("resources")))
        if (p / "LICENSES.md").is_file():
            return p
    except (ImportError, TypeError, ValueError):
        pass
    return Path(__file__).resolve().parent.parent / "resources"


RESOURCES = _resources()
#: the image ``python main.py`` opens
SAMPLE_IMAGE = RESOURCES / "sample.png"


@dataclass(frozen=True)
class BundledModel:
    """A model file shipped in ``resources/``: ``key`` names its role, ``label`` its menu entry."""

    key: str
    path: Path
    label: str


#: in menu order
BUNDLED: Tuple[BundledModel, ...] = (
    BundledModel("paper", RESOURCES / "edsr-baseline-liif.safetensors",
                 "Paper model (EDSR-baseline-LIIF, the authors' weights)"),
    BundledModel("cpu", RESOURCES / "lmf-edsr6-cpu.safetensors",
                 "CPU model (LMF on an encoder cut from the paper model)"),
)
PAPER_CHECKPOINT = BUNDLED[0].path
CPU_CHECKPOINT = BUNDLED[1].path


def bundled_models() -> Dict[str, Path]:
    """``{key: path}`` of the bundled model files that exist, in menu order."""
    return {m.key: m.path for m in BUNDLED if m.path.is_file()}


def default_checkpoint(device: torch.device | str) -> Path:
    """The bundled model to use on ``device``: the paper model on a GPU (CUDA, MPS), the CPU
    model on a CPU (or whichever of the two is bundled if only one is)."""
    models = bundled_models()
    want = "cpu" if torch.device(device).type == "cpu" else "paper"
    if want in models:
        return models[want]
    return next(iter(models.values()), BUNDLED[0].path)


def describe_model(path: Path | str, model: torch.nn.Module, device: torch.device | str) -> str:
    """One line naming the model in use: ``model NAME (FAMILY, N k parameters) on DEVICE``."""
    n = sum(p.numel() for p in model.parameters())
    return (f"model {Path(path).stem} ({type(model).__name__}, {n / 1e3:.0f} k parameters) "
            f"on {torch.device(device).type}")
