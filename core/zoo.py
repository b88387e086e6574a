"""The bundled models by name, loaded once, and the one rule that picks a model for an input.

One front door from a name to a ready model (timm's ``create_model`` is the example)::

    from core import zoo
    model = zoo.load("cpu")                      # a bundled model, in eval mode, on the CPU
    choice = zoo.choose("cpu", "holiday.jpg")    # the rule: ModelChoice(path, reason)
    model = zoo.load(choice.path, device)        # any file too; each (file, device) once

Five models are bundled (``resources/``, each with its card, ``resources/<stem>.md``):

* ``paper``: the LIIF authors' EDSR-baseline-LIIF, converted from their release
  (``python -m core.checkpoints convert``); the paper's quality, interactive on a GPU.
* ``cpu``: this project's CPU model (an LMF decoder on an encoder cut from the paper model's),
  trained to come close to the paper model's quality at a fraction of its cost.
* ``photo``: the CPU model's network trained on LR made the way photos are (blur, noise,
  JPEG; ``training/degrade.py``), so that it does not sharpen compression artifacts.
* ``photo16``: the same training on the paper model's whole encoder (16 blocks) under the
  photo model's decoder: better on JPEGs and on clean LR, at the 16-block encoder's cost.
* ``edges``: the paper model's whole encoder under two decoders: LMF's (trained on that
  frozen encoder toward the paper model's outputs) everywhere, the paper model's own where
  the input has strong local contrast (:mod:`core.models.edges`): close to the paper model
  at a fraction of its rendering cost, but slower than ``cpu`` (its card has the figures);
  chosen by hand (Model menu, ``--checkpoint edges``), not by the rule.

:func:`choose` is the rule every front door uses (the viewer, ``core.upscale`` per file,
``training.evaluate``): an input whose pixels went through lossy compression (JPEG; lossy
WebP, AVIF, HEIC, JPEG XL; :func:`core.io.formats.inspect_input`) gets the photo model; any other
gets :func:`clean_default`, the clean model for the device: the paper model where the device
makes it interactive (CUDA, MPS), the CPU model on a CPU. Likewise the photo model is
:func:`photo_default`'s: ``photo16`` on a GPU, ``photo`` (6 blocks, interactive) on a CPU. It
says why, e.g. ``JPEG q≈72 → photo model``; :func:`describe` names a model in one line.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import torch

from core.checkpoints import load_model
from core.defaults import RESOURCES
from core.io.formats import InputKind, inspect_input
from core.profile import DeviceProfile

__all__ = ["Bundled", "REGISTRY", "ModelChoice", "bundled", "get", "resolve", "load",
           "clean_default", "photo_default", "choose", "short_name", "describe"]


@dataclass(frozen=True)
class Bundled:
    """A model file shipped in ``resources/``: ``key`` names its role (``--checkpoint KEY``),
    ``family`` its decoder (LIIF, LMF or both), ``label`` its menu entry, ``short`` how the status
    bar and the CLI name it; its card is ``resources/<stem>.md``."""

    key: str
    file: str
    family: str
    label: str
    short: str

    @property
    def path(self) -> Path:
        return RESOURCES / self.file

    @property
    def card(self) -> Path:
        return self.path.with_suffix(".md")


#: in menu order
REGISTRY: Tuple[Bundled, ...] = (
    Bundled("paper", "edsr-baseline-liif.safetensors", "LIIF",
            "Paper model (EDSR-baseline-LIIF, the authors' weights)", "paper model"),
    Bundled("cpu", "lmf-edsr6-cpu.safetensors", "LMF",
            "CPU model (LMF on an encoder cut from the paper model)", "CPU model"),
    Bundled("photo", "lmf-edsr6-photo.safetensors", "LMF",
            "Photo model (the CPU model trained on JPEG, noise and blur)", "photo model"),
    Bundled("photo16", "lmf-edsr16-photo.safetensors", "LMF",
            "Photo model, 16 blocks (the paper model's encoder trained on JPEG, noise and "
            "blur: better, slower than the photo model on a CPU)", "photo model (16 blocks)"),
    Bundled("edges", "lmf-edsr16-edges.safetensors", "LMF+LIIF",
            "Edges model (the paper model's encoder; its decoder at strong edges, LMF's "
            "elsewhere: close to it, slower than the CPU model)", "edges model"),
)


def get(key: str) -> Bundled:
    """The bundled model ``key`` (KeyError naming the known keys)."""
    for m in REGISTRY:
        if m.key == key:
            return m
    raise KeyError(f"no bundled model {key!r} (bundled: {', '.join(m.key for m in REGISTRY)})")


def bundled() -> Dict[str, Path]:
    """``{key: path}`` of the bundled model files present, in menu order."""
    return {m.key: m.path for m in REGISTRY if m.path.is_file()}


def resolve(name: Union[str, os.PathLike]) -> Path:
    """A bundled model's key (``paper``, ``cpu``, ``photo``) or a file path, as a path."""
    models = bundled()
    return models[str(name)] if str(name) in models else Path(name)


_cache: Dict[tuple, torch.nn.Module] = {}
_lock = threading.Lock()


def load(name: Union[str, os.PathLike], device: Union[str, torch.device] = "cpu"
         ) -> torch.nn.Module:
    """The model ``name`` (a bundled key or a file; :func:`core.checkpoints.load_model`'s
    checks and errors) in eval mode on ``device``, loaded once per file and device: the
    viewer, its comparison pane and a batch share it. Never modify the returned model
    (training loads its own copy with ``load_model``)."""
    path = resolve(name)
    try:
        st = os.stat(path)
        key = (os.path.realpath(path), st.st_mtime_ns, st.st_size, str(torch.device(device)))
    except OSError:
        key = None  # load_model says what is wrong with the path
    with _lock:
        if key is not None and key in _cache:
            return _cache[key]
    model = load_model(path, device)[0]
    if key is not None:
        with _lock:
            model = _cache.setdefault(key, model)
    return model


def _for_device(device: Union[str, torch.device], on_cpu: str, on_gpu: str) -> Optional[Path]:
    """Bundled model ``on_cpu`` on a CPU, ``on_gpu`` on a GPU (CUDA, MPS); whichever of the two
    is bundled if only one is; None if neither."""
    models = {k: v for k, v in bundled().items() if k in (on_cpu, on_gpu)}
    want = on_cpu if torch.device(device).type == "cpu" else on_gpu
    if want in models:
        return models[want]
    return next(iter(models.values()), None)


def clean_default(device: Union[str, torch.device]) -> Path:
    """The clean model for ``device``: the paper model on a GPU (CUDA, MPS), the CPU model on
    a CPU (or whichever of the two is bundled if only one is)."""
    return _for_device(device, "cpu", "paper") or REGISTRY[0].path


def photo_default(device: Union[str, torch.device]) -> Optional[Path]:
    """The photo model for ``device``: ``photo16`` on a GPU (CUDA, MPS), ``photo`` on a CPU
    (or whichever of the two is bundled if only one is); None if neither is."""
    return _for_device(device, "photo", "photo16")


def short_name(path: Union[str, os.PathLike]) -> str:
    """``photo model``, ``CPU model``, ... for a bundled file (:func:`bundled`'s); the file's
    stem otherwise."""
    for key, p in bundled().items():
        if Path(path) == p:
            return get(key).short
    return Path(path).stem


@dataclass(frozen=True)
class ModelChoice:
    """The model the rule picked and why (``reason``, e.g. ``JPEG q≈72 → photo model``)."""

    path: Path
    reason: str


#: a JPEG saved at this quality or above is treated as clean: its few artifacts are below what
#: the photo model restores, and the model's smoothing shows on it (painterly)
NEAR_LOSSLESS_JPEG = 98


def near_lossless(kind: InputKind) -> bool:
    """A lossy format saved so finely that it is, for the models, a clean picture."""
    return kind.quality is not None and kind.quality >= NEAR_LOSSLESS_JPEG


def choose(device: Union[str, torch.device], image: Optional[Union[str, os.PathLike]] = None,
           kind: Optional[InputKind] = None) -> ModelChoice:
    """The one rule: :func:`photo_default` for a lossy input (``kind``, or what
    :func:`core.io.formats.inspect_input` finds in ``image``; a JPEG at quality
    :data:`NEAR_LOSSLESS_JPEG` or above counts as clean), else :func:`clean_default`."""
    if kind is None and image is not None:
        kind = inspect_input(image)
    photo = photo_default(device)
    if kind is not None and kind.lossy and photo is not None and not near_lossless(kind):
        return ModelChoice(photo, f"{kind.describe()} → {short_name(photo)}")
    path = clean_default(device)
    why = kind.describe() if kind is not None else f"{torch.device(device).type}"
    if kind is not None and kind.lossy and near_lossless(kind):
        why += " (near lossless)"
    return ModelChoice(path, f"{why} → {short_name(path)}")


def describe(path: Union[str, os.PathLike], model: torch.nn.Module,
             profile: DeviceProfile) -> str:
    """One line naming the model in use and how it computes:
    ``model NAME (FAMILY, N k parameters) on cpu, float32``."""
    n = sum(p.numel() for p in model.parameters())
    return (f"model {Path(path).stem} ({type(model).__name__}, {n / 1e3:.0f} k parameters) "
            f"on {profile.describe()}")
