"""Training losses: a registry of per-pixel losses, and distillation as a wrapper.

A config names its loss with ``loss: NAME`` (default ``l1``, the paper's); a new loss is one
function here under :func:`register` and one word in a config. The ``distill`` section wraps
whichever loss is named: ``(1 - w) loss(pred, gt) + w loss(pred, teacher)`` (:class:`Teacher`).

Values are in the model's range, ``[-1, 1]`` (``(x - 0.5) / 0.5``), as in LIIF's training.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Optional

import torch
import torch.nn.functional as F

from core.device import autocast_to
from core.profile import profile_for

#: name -> ``loss(pred, target) -> scalar``
LOSSES: Dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {}


def register(name: str):
    def add(fn):
        LOSSES[name] = fn
        return fn
    return add


@register("l1")
def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error (LIIF's loss)."""
    return F.l1_loss(pred, target)


@register("l2")
def l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error: what PSNR measures. Against L1 it weights large errors (the
    strongest edges, where a distilled decoder loses most to its teacher: bench/gap_where.py)
    in proportion to their size."""
    return F.mse_loss(pred, target)


@register("charbonnier")
def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """``mean(sqrt((pred - target)^2 + eps^2))``: L1 with a smooth minimum."""
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def config_path(name: str, root: Path) -> Path:
    """A file named in a config: relative to the working directory if it is there, else to
    the repository root (so ``resources/...`` works from anywhere)."""
    path = Path(name)
    return root / path if not path.is_absolute() and not path.exists() else path


class Teacher:
    """Output distillation (the config's ``distill`` section): ``{"teacher": FILE, "weight":
    w}``. The step's loss becomes ``(1 - w) loss(pred, gt) + w loss(pred, teacher)``, where the
    teacher (any model file, e.g. the bundled paper model) is queried at the same LR input,
    coordinates and cells, without gradients. Its encoder runs in bfloat16 where the CPU
    multiplies it natively (the device profile's ``compute_dtype``, :mod:`core.profile`); its
    queries in ``query_dtype`` (the step's training precision: float32 by default). A relative
    FILE is taken from the working directory, then from the repository root.

    With ``features: f > 0`` the student's encoder is also pulled toward the teacher's latent:
    ``+ f mean|E_student(x) - E_teacher(x)|`` over the encoder's output (both must have its
    width), so that a cheaper encoder learns the latent the teacher's decoders read."""

    def __init__(self, spec: Dict[str, Any], device: torch.device, root: Path,
                 query_dtype: torch.dtype = torch.float32) -> None:
        from core.checkpoints import load_model
        path = config_path(spec["teacher"], root)
        self.weight = float(spec.get("weight", 0.5))
        self.features = float(spec.get("features", 0.0))
        if not 0.0 < self.weight <= 1.0:
            raise ValueError(f"distill: weight must be in (0, 1], got {self.weight}")
        self.model = load_model(path, device)[0]
        for q in self.model.parameters():
            q.requires_grad_(False)
        self.path = path
        self.dtype = profile_for(device).compute_dtype
        self.query_dtype = query_dtype

    @torch.no_grad()
    def __call__(self, inp: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        return self.query(self.model.latent_from(self.features_of(inp), inp), coord, cell)

    @torch.no_grad()
    def features_of(self, inp: torch.Tensor) -> torch.Tensor:
        """The teacher's encoder output for ``inp`` (its latent before any colour channels)."""
        with autocast_to(inp.device, self.dtype):
            return self.model.encode_features(inp)

    @torch.no_grad()
    def query(self, latent: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """The teacher's outputs from its latent map (its decoder alone)."""
        with autocast_to(latent.device, self.query_dtype):
            return self.model.query_rgb(latent.float(), coord, cell).float()

    def shares_encoder(self, student: torch.nn.Module) -> bool:
        """True when ``student``'s encoder is frozen and holds exactly the teacher's weights:
        then one encoder pass serves both (:func:`step_loss`), and a step costs the two decoders
        and one encoder forward
        without a backward."""
        enc = getattr(student, "encoder", None)
        if enc is None or any(q.requires_grad for q in enc.parameters()):
            return False
        mine, theirs = enc.state_dict(), self.model.encoder.state_dict()
        if mine.keys() != theirs.keys():
            return False
        return all(mine[k].shape == theirs[k].shape
                   and torch.equal(mine[k].to(theirs[k].device), theirs[k]) for k in mine)


def step_loss(model, batch, device, teacher: Optional[Teacher] = None,
              dtype: torch.dtype = torch.float32, loss: str = "l1",
              shared: bool = False) -> torch.Tensor:
    """One step's loss: the model run under autocast to ``dtype`` on the batch, the registry's
    ``loss`` against the HR pixels, wrapped by the ``teacher``'s distillation if given.
    ``shared`` (only where :meth:`Teacher.shares_encoder` said so) runs the encoder once for
    both models."""
    fn = LOSSES[loss]
    extra = None  # the feature distillation's term, where there is one
    inp = (batch["inp"].to(device) - 0.5) / 0.5
    gt = (batch["gt"].to(device) - 0.5) / 0.5
    coord, cell = batch["coord"].to(device), batch["cell"].to(device)
    if teacher is not None and shared:
        # one pass of the frozen encoder both models hold: no backward through it, and the
        # teacher runs its decoder alone on the same features
        with torch.no_grad(), autocast_to(device, dtype):
            feat = model.encode_features(inp)
        with autocast_to(device, dtype):
            pred = model.query_rgb(model.latent_from(feat, inp), coord, cell)
        target = teacher.query(teacher.model.latent_from(feat, inp), coord, cell)
    elif teacher is not None and teacher.features > 0:
        # the student's encoder is pulled toward the teacher's latent as well
        with autocast_to(device, dtype):
            feat = model.encode_features(inp)
            pred = model.query_rgb(model.latent_from(feat, inp), coord, cell)
        tfeat = teacher.features_of(inp)
        target = teacher.query(teacher.model.latent_from(tfeat, inp), coord, cell)
        if feat.shape != tfeat.shape:
            raise ValueError(f"distill features: the student's encoder gives "
                             f"{tuple(feat.shape[1:])}, the teacher's {tuple(tfeat.shape[1:])}")
        extra = teacher.features * F.l1_loss(feat.float(), tfeat.float())
    else:
        with autocast_to(device, dtype):
            pred = model(inp, coord, cell)
        target = teacher(inp, coord, cell) if teacher is not None else None
    pred = pred.float()
    value = fn(pred, gt)
    if target is not None:
        w = teacher.weight
        value = (1 - w) * value + w * fn(pred, target)
    return value if extra is None else value + extra
