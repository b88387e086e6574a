"""The bundled resources, and the one rule that picks the default model for an input.

Three models are bundled (see the README's model table and ``resources/*.md``):

* ``paper``: the LIIF authors' EDSR-baseline-LIIF, converted from their release
  (``python -m core.checkpoints convert``); the paper's quality, interactive on a GPU.
* ``cpu``: this project's CPU model (an LMF decoder on an encoder cut from the paper model's),
  trained to come close to the paper model's quality at a fraction of its cost.
* ``photo``: the CPU model's network trained on LR made the way photos are (blur, noise,
  JPEG; ``training/degrade.py``), so that it does not sharpen compression artifacts.

:func:`choose_model` is the rule every front door uses (the viewer, ``core.upscale`` per file,
``training.evaluate``): an input whose pixels went through lossy compression (JPEG; lossy
WebP, AVIF, HEIC; :func:`core.formats.inspect_input`) gets the photo model; any other gets
:func:`default_checkpoint`, the clean model for the device: the paper model where the device
makes it interactive (CUDA, MPS), the CPU model on a CPU. It says why, e.g.
``JPEG q≈72 → photo model``; each front door also names the model with
:func:`describe_model`. :func:`resolve_checkpoint` lets ``--checkpoint`` name a bundled model
by its key.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

from core.formats import InputKind, inspect_input

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
    short: str  #: how the status bar and the CLI name it


#: in menu order
BUNDLED: Tuple[BundledModel, ...] = (
    BundledModel("paper", RESOURCES / "edsr-baseline-liif.safetensors",
                 "Paper model (EDSR-baseline-LIIF, the authors' weights)", "paper model"),
    BundledModel("cpu", RESOURCES / "lmf-edsr6-cpu.safetensors",
                 "CPU model (LMF on an encoder cut from the paper model)", "CPU model"),
    BundledModel("photo", RESOURCES / "lmf-edsr6-photo.safetensors",
                 "Photo model (the CPU model trained on JPEG, noise and blur)", "photo model"),
)
PAPER_CHECKPOINT = BUNDLED[0].path
CPU_CHECKPOINT = BUNDLED[1].path
PHOTO_CHECKPOINT = BUNDLED[2].path


#: output pixels a second of an export on the project's 2-core CPU, by decoder (the CLI's
#: throughput, docs/BENCHMARKS.md "CLI"): for the viewer's and the CLI's time estimates
CPU_EXPORT_RATE = {"LMF": 1.7e6, "LIIF": 1.0e5}


def export_rate(model: Optional[torch.nn.Module], device: torch.device | str) -> Optional[float]:
    """About how many output pixels a second an export with ``model`` renders on ``device``;
    None where not measured (GPUs, unknown decoders)."""
    if model is None or torch.device(device).type != "cpu":
        return None
    return CPU_EXPORT_RATE.get(type(model).__name__)


def duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``2.5 h``."""
    if seconds < 120:
        return f"{seconds:,.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.0f} min"
    return f"{seconds / 3600:,.1f} h"


def bundled_models() -> Dict[str, Path]:
    """``{key: path}`` of the bundled model files that exist, in menu order."""
    return {m.key: m.path for m in BUNDLED if m.path.is_file()}


def default_checkpoint(device: torch.device | str) -> Path:
    """The clean model for ``device``: the paper model on a GPU (CUDA, MPS), the CPU model on
    a CPU (or whichever of the two is bundled if only one is)."""
    models = {k: v for k, v in bundled_models().items() if k in ("paper", "cpu")}
    want = "cpu" if torch.device(device).type == "cpu" else "paper"
    if want in models:
        return models[want]
    return next(iter(models.values()), BUNDLED[0].path)


def short_name(path: Path | str) -> str:
    """``photo model``, ``CPU model``, ... for a bundled file; the file's stem otherwise."""
    for m in BUNDLED:
        if Path(path) == m.path:
            return m.short
    return Path(path).stem


@dataclass(frozen=True)
class ModelChoice:
    """The model the rule picked and why (``reason``, e.g. ``JPEG q≈72 → photo model``)."""

    path: Path
    reason: str


def choose_model(device: torch.device | str, image: Optional[str | Path] = None,
                 kind: Optional[InputKind] = None) -> ModelChoice:
    """The one rule: the photo model for a lossy input (``kind``, or what
    :func:`core.formats.inspect_input` finds in ``image``), else the clean model for the
    device (:func:`default_checkpoint`)."""
    if kind is None and image is not None:
        kind = inspect_input(image)
    photo = bundled_models().get("photo")
    if kind is not None and kind.lossy and photo is not None:
        return ModelChoice(photo, f"{kind.describe()} → photo model")
    path = default_checkpoint(device)
    why = kind.describe() if kind is not None else f"{torch.device(device).type}"
    return ModelChoice(path, f"{why} → {short_name(path)}")


def resolve_checkpoint(name: str | Path) -> Path:
    """A ``--checkpoint`` argument: a bundled model's key (``paper``, ``cpu``, ``photo``) or a
    file path."""
    models = bundled_models()
    return models[str(name)] if str(name) in models else Path(name)


def describe_model(path: Path | str, model: torch.nn.Module, device: torch.device | str) -> str:
    """One line naming the model in use: ``model NAME (FAMILY, N k parameters) on DEVICE``."""
    n = sum(p.numel() for p in model.parameters())
    return (f"model {Path(path).stem} ({type(model).__name__}, {n / 1e3:.0f} k parameters) "
            f"on {torch.device(device).type}")
