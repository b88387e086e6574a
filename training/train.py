"""Train a LIIF-family model.

    python -m training.train --config training/configs/edsr-baseline-liif.yaml \\
        [--data DIR] [--out RUN_DIR] [--resume] [--device cuda] [--max-steps N]
    torchrun --nproc_per_node=N -m training.train --config ...     # data-parallel

A run is a few phases over a :class:`Run` (set up, one epoch of steps, end of epoch, finish;
:func:`train` strings them together). The config is checked first (:mod:`training.config`:
unknown keys and bad values are one-line errors); the loss comes from the registry in
:mod:`training.losses` (``loss: l1`` by default; ``distill`` wraps it); with a ``degrade``
section the LR side of the pairs is degraded like a photo (:mod:`training.degrade`).

The run folder holds ``last.state.pth`` (the checkpoint: weights, their average, optimizer
state, position and model spec in one atomic file, loadable with ``weights_only=True``),
``last.safetensors`` / ``best.safetensors`` (the core model format, so the app and the
evaluation CLI load them directly), ``config.yaml``, ``log.jsonl`` (one line per step: epoch,
step, loss, lr) and TensorBoard events in ``tb/``; with ``ema`` in the config, also
``ema.safetensors``, the average of the weights (:class:`WeightAverage`), which is then what
is validated and kept as ``best.safetensors``.

Exact resume: the data a step sees is a pure function of ``(seed, epoch, position)`` (see
:mod:`training.data`), the learning rate a function of the epoch, and the checkpoint holds
weights, Adam moments and the position; so after ``--resume`` the next step computes the same
loss as an uninterrupted run. A resume is refused when the checkpoint's model spec differs
from the config's or its weights are not finite; a non-finite loss stops the run (status 1)
and keeps the last checkpoint. SIGINT, SIGTERM and SIGHUP finish the step, save and stop
(:func:`core.atomic.deferred_signals`).
"""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import torch
import torch.distributed as dist
import yaml
from torch.utils.data import DataLoader
from tqdm import tqdm

from core.atomic import Terminated, atomic_write, deferred_signals
from core.checkpoints import load_checkpoint, save_model
from core.cli import ArgumentParser
from core.device import pick_device
from core.models.registry import make
from core.profile import profile_for
from training.config import PRECISIONS, load_config, lr_at
from training.data import EpochSampler, ImageFolder, ImplicitDownsampled
from training.degrade import Degradation
from training.losses import Teacher, config_path, step_loss
from training.widen import deepen_lmf, widen_lmf

log = logging.getLogger("training")
#: the repository root: files named in configs (``resources/...``) are found from here too
ROOT = Path(__file__).resolve().parent.parent


def make_train_set(cfg: Dict[str, Any], data: Optional[str], seed: int) -> ImplicitDownsampled:
    t = cfg["train"]
    root = data or t.get("data")
    if not root:
        raise ValueError("no training data: pass --data FOLDER (a folder of HR images; "
                         "python -m training.fetch div2k-train DEST downloads DIV2K)")
    n_in = int(t.get("inp_size", 48))
    folder = ImageFolder(root, repeat=t.get("repeat", 1), cache=t.get("cache", "in_memory"),
                         min_size=round(n_in * float(t.get("scale_max", 4))),
                         skip_last_k=int(t.get("holdout", 0)))
    return ImplicitDownsampled(folder, n_in, float(t.get("scale_min", 1)),
                               float(t.get("scale_max", 4)), bool(t.get("augment", True)),
                               int(t.get("sample_q", 2304)), seed=seed,
                               degrade=_degradation(cfg),
                               detail_share=float(t.get("detail_share", 0.0)))


def _degradation(cfg: Dict[str, Any]) -> Optional[Degradation]:
    """The config's ``degrade`` section (:mod:`training.degrade`), checked; None without one."""
    return Degradation.from_config(cfg["degrade"]) if cfg.get("degrade") else None


def make_val_set(cfg: Dict[str, Any], data: Optional[str]) -> Optional[ImplicitDownsampled]:
    v = cfg.get("val")
    if not v:
        return None
    t = cfg["train"]
    n_in = int(v.get("inp_size", t.get("inp_size", 48)))
    smax = float(v.get("scale_max", 4))
    if v.get("data"):
        folder = ImageFolder(v["data"], repeat=v.get("repeat", 1), first_k=v.get("first_k"),
                             min_size=round(n_in * smax))
    else:  # the training folder's held-out tail
        k = int(t.get("holdout", 0))
        if not k:
            return None
        folder = ImageFolder(data or t.get("data"), repeat=v.get("repeat", 1), last_k=k,
                             min_size=round(n_in * smax))
    # a degraded run is validated on held-out pairs degraded the same way (fixed draws)
    return ImplicitDownsampled(folder, n_in, float(v.get("scale_min", 1)), smax, False,
                               int(v.get("sample_q", 2304)), seed=12345,
                               degrade=_degradation(cfg))


def init_from(model: torch.nn.Module, init: Dict[str, Any], root: Path) -> int:
    """Copy weights from another model file into ``model`` before training (the config's
    ``init`` section): ``{"checkpoint": FILE, "copy": {student_prefix: source_prefix}}``.

    Every tensor ``source_prefix.REST`` of FILE is copied to ``student_prefix.REST``, which
    must exist with the same shape; e.g. ``encoder.body.3: encoder.body.13`` makes the student's
    fourth residual block the teacher's fourteenth. A relative FILE is taken from the working
    directory, then from the repository root. With ``widen: true`` an LMF source with a
    narrower render MLP is first widened to the model's width, computing the same function
    (:func:`training.widen.widen_lmf`); with ``deepen: true`` its latent MLP gets identity
    layers up to the model's depth (:func:`training.widen.deepen_lmf`). Returns the number of
    tensors copied."""
    path = config_path(init["checkpoint"], root)
    _, src, _ = load_checkpoint(path)
    if init.get("widen"):
        width = getattr(model, "render_width", None)
        if width is None:
            raise ValueError("init: widen applies to LMF models only")
        src = widen_lmf(src, int(width), seed=int(init.get("seed", 0)))
    if init.get("deepen"):
        hyper = getattr(model, "hyper", None)
        if hyper is None or getattr(model, "render_width", None) is None:
            raise ValueError("init: deepen applies to LMF models only")
        src = deepen_lmf(src, [int(c.out_channels) for c in list(hyper)[:-1]])
    dst = model.state_dict()
    n = 0
    for to, frm in (init.get("copy") or {}).items():
        keys = [k for k in src if k.startswith(frm + ".")]
        if not keys:
            raise ValueError(f"init: {path} has no tensors under {frm!r}")
        for k in keys:
            target = to + k[len(frm):]
            if target not in dst or dst[target].shape != src[k].shape:
                raise ValueError(f"init: {k} {tuple(src[k].shape)} of {path} does not fit "
                                 f"{target} of the model")
            dst[target] = src[k]
            n += 1
    model.load_state_dict(dst)
    return n


def freeze(model: torch.nn.Module, names) -> int:
    """Freeze the config's ``freeze`` list of submodules (``encoder``, ``hyper.0``, ...):
    their parameters take no gradient and stay out of the optimizer, so a step neither
    computes their backward nor changes them. Returns the number of tensors frozen; a name
    that is no submodule is a one-line error."""
    modules = dict(model.named_modules())
    n = 0
    for name in names:
        if name not in modules or name == "":
            raise ValueError(f"freeze: the model has no submodule {name!r}")
        for q in modules[name].parameters():
            if q.requires_grad:
                q.requires_grad_(False)
                n += 1
    return n


def training_dtype(name: str, device: torch.device) -> torch.dtype:
    """The autocast type of a training step (the config's ``precision``, or ``--precision``).

    ``float32``: no autocast (the default, and every run before stage five of the CPU model).
    ``bfloat16``: mixed precision: the weights, the optimizer and the loss stay float32, the
    convolutions and matrix products run in bfloat16 (the same split as the app's fast
    encoding on such a CPU). ``auto``: bfloat16 where the device multiplies it natively (a CPU
    with AVX512-BF16 or AMX, a CUDA GPU that supports it: the device profile's ``bf16_native``),
    else float32."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    if name == "auto":
        dev = torch.device(device)
        return torch.bfloat16 if profile_for(dev).bf16_native else torch.float32
    return torch.bfloat16 if name == "bfloat16" else torch.float32


class WeightAverage:
    """An exponential moving average of the weights (the config's ``ema: d``, e.g. 0.999):
    after step ``n`` (counting from the run's first step, or from where a run without it was
    resumed with it) every float tensor of the model's state is blended as
    ``avg = d_n avg + (1 - d_n) w`` with ``d_n = min(d, (1 + n) / (10 + n))``, so that the
    average follows the weights closely at first; frozen weights are copied unchanged. It
    lives in a copy of the model (:attr:`model`), which the run validates, saves as
    ``ema.safetensors`` beside ``last.safetensors`` and keeps as ``best.safetensors``; the
    steps themselves use the raw weights. Resumes exactly: ``ema.safetensors`` and the update
    count are part of the checkpoint."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        import copy
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema must be in (0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model)
        for q in self.model.parameters():
            q.requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        live = model.state_dict()
        # frozen weights are copied: averaging a constant rounds it (by up to ~1e-6), and a
        # frozen encoder must stay bit-identical to the teacher's it was copied from
        frozen = {k for k, q in model.named_parameters() if not q.requires_grad}
        for k, avg in self.model.state_dict().items():
            if avg.is_floating_point() and k not in frozen:
                avg.mul_(d).add_(live[k].detach(), alpha=1 - d)
            else:
                avg.copy_(live[k])


@torch.no_grad()
def validate(model, loader, device) -> float:
    """Mean PSNR (RGB, dB) of the sampled pixels over the validation set."""
    model.eval()
    total, n = 0.0, 0
    for batch in loader:
        inp = (batch["inp"].to(device) - 0.5) / 0.5
        pred = model(inp, batch["coord"].to(device), batch["cell"].to(device)) * 0.5 + 0.5
        mse = ((pred.clamp(0, 1) - batch["gt"].to(device)) ** 2).mean(dim=(1, 2))
        total += float((-10 * torch.log10(mse.clamp_min(1e-10))).sum())
        n += len(mse)
    model.train()
    return total / max(n, 1)


def sample_renders(model, val_set, device, scales=(2, 4, 8)):
    """A few renders of the first validation image's centre at several scales, as
    ``(tag, (3, H, W) tensor)`` pairs for TensorBoard."""
    from core.geometry import Region
    from core.render.renderer import render

    img = val_set.dataset[0]
    h, w = img.shape[:2]
    side = min(48, h, w)
    crop = img[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
    lat = profile_for(device, "float32").encode(model, crop.astype("float32") / 255.0,
                                                latent_dtype=torch.float32)
    out = []
    for s in scales:
        rgb = render(lat, Region.full(side, side), side * s, side * s)
        out.append((f"render/x{s}", torch.from_numpy(rgb).permute(2, 0, 1)))
    return out



def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def _read_state(path: Path) -> Dict[str, Any]:
    """A run's ``last.state.pth``, or a one-line ValueError for a file that is empty,
    truncated, foreign or not a mapping of the expected entries."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # (torch raises several types for corrupt archives)
        raise ValueError(f"--resume {path}: not a readable training checkpoint "
                         f"({_first_line(exc)}); start fresh without --resume, or in "
                         "another folder") from None
    need = {"optimizer", "epoch", "pos", "step", "best"}
    if not isinstance(state, dict) or not need <= set(state):
        what = (f"lacks {', '.join(sorted(need - set(state)))}" if isinstance(state, dict)
                else f"holds a {type(state).__name__}")
        raise ValueError(f"--resume {path}: not a training checkpoint (it {what}); start "
                         "fresh without --resume, or in another folder")
    if "model" in state and not isinstance(state["model"], dict):
        raise ValueError(f"--resume {path}: its weights are not a mapping of tensors")
    return state


class NonFinite(RuntimeError):
    """A step's loss (or the weights about to be saved) is not finite: the run stops and the
    last checkpoint, which was finite, stays."""


def _finite(sd: Dict[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in sd.values() if v.is_floating_point())


@dataclass
class Position:
    """Where a run is: ``epoch`` (0-based, the one in progress), ``pos`` (steps done in it),
    ``step`` (steps done in all), ``best`` (best validation PSNR so far)."""

    epoch: int = 0
    pos: int = 0
    step: int = 0
    best: float = -math.inf


class Run:
    """One training run, in phases: :meth:`setup` (devices, data, model, optimizer, resume,
    teacher, average, logging), :meth:`run_epoch` (the steps of one epoch),
    :meth:`end_epoch` (save, validate, keep the best) and :meth:`finish` (last save, DDP
    check, exit status). :func:`train` strings them together.

    The checkpoint is ``last.state.pth``: weights, average, optimizer state, position and
    model spec in one atomic file (``torch.load(weights_only=True)``), so a kill at any moment
    resumes from one consistent state. ``last.safetensors`` / ``ema.safetensors`` beside it
    are the same weights in the app's format, written first."""

    def __init__(self, args, cfg: Dict[str, Any], stop=None) -> None:
        self.args, self.cfg, self.stop = args, cfg, stop
        #: the signal that stops the run, agreed by every rank (see :attr:`stopping`)
        self.stopped_by: Optional[int] = None
        self.at = Position()
        #: the step the run folder's checkpoint holds (None until one is saved or resumed)
        self.saved_step: Optional[int] = None
        self.ema: Optional[WeightAverage] = None
        self.teacher: Optional[Teacher] = None
        self.shared = False
        self.writer = None
        self.logf = None

    # ---- set up ---------------------------------------------------------------------------
    def setup(self) -> "Run":
        self._devices()
        cfg, args = self.cfg, self.args
        self.seed = int(cfg.get("seed", 0))
        torch.manual_seed(self.seed)
        self.name = cfg.get("name") or Path(args.config).stem
        self.dir = Path(args.out or Path("runs") / self.name)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._data()
        self.spec = cfg["model"]
        self.model = make(self.spec).to(self.device)
        self.frozen = freeze(self.model, cfg.get("freeze") or [])
        if self.frozen:
            self.log("frozen (no gradients, not trained): %s, %d tensors",
                     ", ".join(cfg["freeze"]), self.frozen)
        self.opt = torch.optim.Adam(
            [q for q in self.model.parameters() if q.requires_grad],
            lr=lr_at(cfg, 0),
            betas=tuple(cfg["optimizer"]["args"].get("betas", (0.9, 0.999))),
        )
        state = self._resume_state()
        if state is None:
            self._initialise()
        if args.precision:
            cfg["precision"] = args.precision
        self.dtype = training_dtype(str(cfg.get("precision", "float32")), self.device)
        self.log("training steps in %s", str(self.dtype).replace("torch.", ""))
        self.loss = str(cfg.get("loss", "l1"))
        if cfg.get("distill"):
            self.teacher = Teacher(cfg["distill"], self.device, ROOT, self.dtype)
            self.log("distilling from %s (weight %.2f)", self.teacher.path, self.teacher.weight)
            # a teacher with the student's frozen encoder: one encoder pass serves both (not
            # under DDP, whose gradient hooks need the wrapped forward)
            self.shared = not self.distributed and self.teacher.shares_encoder(self.model)
            if self.shared:
                self.log("the teacher's encoder is the student's frozen one: encoded once a step")
        if cfg.get("ema"):
            self.ema = WeightAverage(self.model, float(cfg["ema"]))
            if state is not None and state.get("ema") is not None:
                self.ema.model.load_state_dict(state["ema"])
                self.ema.updates = int(state.get("ema_updates", 0))
            self.log("averaging the weights (ema %g, %d updates so far)", self.ema.decay,
                     self.ema.updates)
        self.judged = self.ema.model if self.ema else self.model  # validated, kept as best
        self.net = self.model
        if self.distributed:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self._logging()
        return self

    def _devices(self) -> None:
        """The device, and under torchrun the process group: rank ``r`` on GPU ``LOCAL_RANK``
        with CUDA (NCCL), on the CPU otherwise (gloo)."""
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.distributed = self.world > 1
        self.is_main = self.rank == 0
        if self.args.threads:
            torch.set_num_threads(self.args.threads)
        if not self.distributed:
            self.device = pick_device(self.args.device)
            return
        local = int(os.environ.get("LOCAL_RANK", "0"))
        want = self.args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if torch.device(want).type == "cuda":
            torch.cuda.set_device(local)
            self.device = torch.device("cuda", local)
        else:
            self.device = pick_device(want)
        dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    def _data(self) -> None:
        cfg, t = self.cfg, self.cfg["train"]
        self.train_set = make_train_set(cfg, self.args.data, self.seed)
        self.val_set = make_val_set(cfg, self.args.data)
        self.batch = int(t.get("batch_size", 16))
        if self.batch % self.world:
            raise ValueError(f"batch_size {self.batch} is not divisible by {self.world} processes")
        self.sampler = EpochSampler(len(self.train_set), seed=self.seed, rank=self.rank,
                                    world=self.world)
        per = self.batch // self.world
        self.loader_kw = dict(batch_size=per, sampler=self.sampler, drop_last=True,
                              num_workers=int(t.get("num_workers", 0)), persistent_workers=False,
                              pin_memory=self.device.type == "cuda")
        self.steps_per_epoch = len(self.sampler) // per
        if self.steps_per_epoch == 0:
            raise ValueError("the training set is smaller than one batch")

    def _resume_state(self) -> Optional[Dict[str, Any]]:
        """With ``--resume`` and a checkpoint in the run folder: load it (checked: same model
        spec, finite weights) and return it; else None."""
        path = self.dir / "last.state.pth"
        if not (self.args.resume and path.is_file()):
            if self.args.resume:
                self.log("nothing to resume in %s; starting fresh", self.dir)
            return None
        state = _read_state(path)
        if "model" not in state:  # written before weights joined the state file
            spec, state["model"], _ = load_checkpoint(self.dir / "last.safetensors")
            state["spec"] = spec
            if (self.dir / "ema.safetensors").is_file():
                state["ema"] = load_checkpoint(self.dir / "ema.safetensors")[1]
        if state.get("spec") is not None and state["spec"] != self.spec:
            raise ValueError(f"--resume {self.dir}: its model spec differs from the config's "
                             "(another model's run folder?)")
        if not _finite(state["model"]) or (state.get("ema") and not _finite(state["ema"])):
            raise ValueError(f"--resume {path}: the saved weights are not finite (NaN or "
                             "infinity); start from an earlier model with --init")
        try:
            self.model.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
            self.at = Position(int(state["epoch"]), int(state["pos"]), int(state["step"]),
                               float(state["best"]))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"--resume {path}: not this run's checkpoint ("
                             f"{_first_line(exc)}); start fresh without --resume, or in "
                             "another folder") from None
        self.saved_step = self.at.step
        self.log("resumed %s at epoch %d, step %d", self.dir, self.at.epoch + 1, self.at.step)
        return state

    def _initialise(self) -> None:
        """A fresh run's weights: the config's ``init`` section, or ``--init FILE``."""
        sections = self.cfg.get("init") or []
        for sec in ([sections] if isinstance(sections, dict) else sections):
            if self.args.init:
                break
            n = init_from(self.model, sec, ROOT)
            self.log("initialised %d tensors from %s", n, sec["checkpoint"])
        if self.args.init:
            init_spec, sd, _ = load_checkpoint(self.args.init)
            if init_spec != self.spec:
                raise ValueError(
                    f"--init {self.args.init}: its model spec differs from the config's"
                )
            self.model.load_state_dict(sd)
            self.log("initialised from %s", self.args.init)

    def _logging(self) -> None:
        self.val_loader = None
        if not self.is_main:
            return
        atomic_write(self.dir / "config.yaml", lambda tmp: Path(tmp).write_text(
            yaml.safe_dump(self.cfg, sort_keys=False)))
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(self.dir / "tb"))
        except Exception as exc:  # tensorboard is optional
            log.warning("TensorBoard logging off: %s", exc)
        if self.val_set is not None:
            self.val_loader = DataLoader(self.val_set, batch_size=int(
                (self.cfg.get("val") or {}).get("batch_size", 16)))
        self.logf = open(self.dir / "log.jsonl", "a")

    def log(self, *a) -> None:
        if self.is_main:
            log.info(*a)

    # ---- the steps --------------------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        """A stop signal reached this process or (under DDP) any other, so that every rank
        stops after the same step instead of one hanging in the next all-reduce."""
        signum = self.stop.signum if self.stop is not None and self.stop.signum else 0
        if self.distributed:
            t = torch.tensor([float(signum)], device=self.device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            signum = int(t.item())
        if signum:
            self.stopped_by = signum  # the same on every rank: finish() takes the same path
        return bool(signum)

    def run_epoch(self) -> bool:
        """The remaining steps of the current epoch; True if the run must stop after them
        (``--max-steps`` reached or a stop signal)."""
        at, cfg = self.at, self.cfg
        lr = lr_at(cfg, at.epoch)
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.train_set.set_epoch(at.epoch)
        self.sampler.set_epoch(at.epoch, at.pos * (self.batch // self.world))
        bar = tqdm(
            DataLoader(self.train_set, **self.loader_kw),
            total=self.steps_per_epoch - at.pos,
            desc=f"epoch {at.epoch + 1}/{int(cfg['epoch_max'])}",
            file=sys.stderr,
            disable=not self.is_main or self.args.no_progress,
            dynamic_ncols=True,
        )
        self.epoch_t0 = time.time()
        try:
            for b in bar:
                lv = self._step(b, lr)
                bar.set_postfix(loss=f"{lv:.4f}", lr=f"{lr:.1e}")
                if at.step % int(cfg.get("save_every_steps", 200)) == 0:
                    self.save()
                if self.args.max_steps is not None and at.step >= self.args.max_steps:
                    return True
                if self.stopping:
                    return True
        finally:
            bar.close()
        return False

    def _step(self, b, lr: float) -> float:
        loss = step_loss(self.net, b, self.device, self.teacher, self.dtype, self.loss,
                         shared=self.shared)
        lv = float(loss.detach())
        if not math.isfinite(lv):
            raise NonFinite(f"the loss is {lv} at step {self.at.step + 1}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.at.pos += 1
        self.at.step += 1
        if self.is_main:
            self.logf.write(json.dumps({"epoch": self.at.epoch + 1, "step": self.at.step,
                                        "loss": lv, "lr": lr}) + "\n")
            self.logf.flush()
            if self.writer is not None and self.at.step % 10 == 0:
                self.writer.add_scalar("train/loss", lv, self.at.step)
                self.writer.add_scalar("train/lr", lr, self.at.step)
        return lv

    # ---- end of an epoch ---------------------------------------------------------------------
    def end_epoch(self) -> None:
        """Count the epoch, save (before anything that could fail, such as validation),
        validate every ``epoch_val`` epochs and keep the best."""
        at = self.at
        at.epoch, at.pos = at.epoch + 1, 0
        self.save()
        if not self.is_main:
            return
        log.info("epoch %d done in %.0f s", at.epoch, time.time() - self.epoch_t0)
        if self.val_loader is not None and at.epoch % int(self.cfg.get("epoch_val", 1)) == 0:
            psnr = validate(self.judged, self.val_loader, self.device)
            log.info("epoch %d validation PSNR %.3f dB%s", at.epoch, psnr,
                     " (averaged weights)" if self.ema else "")
            if self.writer is not None:
                self.writer.add_scalar("val/psnr", psnr, at.step)
                try:
                    for tag, img in sample_renders(self.judged, self.val_set, self.device):
                        self.writer.add_image(tag, img, at.step)
                except Exception as exc:  # a picture for TensorBoard never stops training
                    log.warning("sample renders failed: %s", exc)
            if psnr > at.best:
                at.best = psnr
                self.save("best")
                self.save()  # so that a resume knows the best score
        every = self.cfg.get("epoch_save")
        if every and at.epoch % int(every) == 0:
            save_model(self.model, self.spec, self.dir / f"epoch-{at.epoch}.safetensors",
                       self._meta(epoch=at.epoch))

    def _meta(self, **kw) -> Dict[str, Any]:
        return dict(
            {"config": self.name, "data": str(self.args.data or self.cfg["train"].get("data"))},
            **kw,
        )

    def save(self, kind: str = "last") -> None:
        """``last``: the app-format weights, then the one-file checkpoint (atomic each);
        ``best``: the weights that were validated. Non-finite weights are never saved."""
        if not self.is_main:
            return
        at = self.at
        meta = self._meta(epoch=at.epoch + (at.pos >= self.steps_per_epoch), step=at.step,
                          best_val_psnr=None if at.best == -math.inf else round(at.best, 4))
        if self.ema:
            meta["ema"] = self.ema.decay
        if kind == "best":
            save_model(self.judged, self.spec, self.dir / "best.safetensors", meta)
            return
        weights = self.model.state_dict()
        if not _finite(weights):
            raise NonFinite(f"the weights are not finite after step {at.step}")
        if self.ema is not None:
            save_model(self.ema.model, self.spec, self.dir / "ema.safetensors", meta)
        meta.pop("ema", None)
        save_model(self.model, self.spec, self.dir / "last.safetensors", meta)
        state = {"optimizer": self.opt.state_dict(), "epoch": at.epoch, "pos": at.pos,
                 "step": at.step, "best": at.best, "spec": self.spec, "model": weights,
                 "ema": self.ema.model.state_dict() if self.ema else None,
                 "ema_updates": self.ema.updates if self.ema else 0}
        atomic_write(self.dir / "last.state.pth", lambda tmp: torch.save(state, tmp))
        self.saved_step = at.step

    # ---- finish -----------------------------------------------------------------------------
    def finish(self) -> int:
        """The last save, the closing line, and under DDP the check that every rank holds
        the same weights; the exit status (``128 + signal`` when stopped by one)."""
        self.save()
        self.close()
        stopped = self.stopped_by is not None
        if stopped and self.is_main:
            print(
                f"stopped by {signal.Signals(self.stopped_by).name} at epoch "
                f"{self.at.epoch + 1}, step {self.at.step}; saved {self.dir / 'last.safetensors'}; "
                "continue with --resume",
                file=sys.stderr,
            )
        elif not stopped:
            self.log("finished at epoch %d, step %d; weights in %s", self.at.epoch, self.at.step,
                     self.dir)
        if self.distributed:
            if not stopped:
                self._check_ranks_agree()
            else:  # every rank leaves together, after rank 0's save: none is torn down mid-save
                dist.barrier()
            dist.destroy_process_group()
        return 128 + self.stopped_by if stopped else 0

    def close(self) -> None:
        if self.logf is not None:
            self.logf.close()
            self.logf = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def _check_ranks_agree(self) -> None:
        flat = torch.cat([q.detach().flatten() for q in self.model.parameters()]).to(self.device)
        ref = flat.clone()
        dist.broadcast(ref, 0)
        diff = (flat - ref).abs().max()
        dist.all_reduce(diff, op=dist.ReduceOp.MAX)
        if self.is_main:
            log.info(
                "weights agree across %d ranks: max |difference| = %g", self.world, float(diff)
            )
            out = {"world": self.world, "max_abs_diff": float(diff)}
            atomic_write(self.dir / "ddp_check.json",
                         lambda tmp: Path(tmp).write_text(json.dumps(out)))
        dist.barrier()


def train(args, stop=None, runs: Optional[list] = None) -> int:
    """Set up a run, then epochs of steps until ``epoch_max`` (or ``--max-steps``, or a stop
    signal), then finish. Returns the exit status. ``runs``, if given, receives the
    :class:`Run` as soon as it exists."""
    cfg = load_config(args.config)
    if args.val_data == "none":
        cfg["val"] = None
    elif args.val_data:
        cfg.setdefault("val", {})
        cfg["val"] = dict(cfg["val"] or {}, data=args.val_data)
    run = Run(args, cfg, stop)
    if runs is not None:
        runs.append(run)
    run.setup()
    try:
        while run.at.epoch < int(cfg["epoch_max"]):
            done = run.run_epoch()
            if done and run.at.pos < run.steps_per_epoch:
                break
            run.end_epoch()
            if done or run.stopping:
                break
    except NonFinite:
        run.close()
        raise
    return run.finish()


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m training.train", description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--data", help="training image folder (overrides the config)")
    p.add_argument("--val-data", help="validation image folder (overrides the config); "
                   "'none' turns validation off")
    p.add_argument("--out", help="run folder (default runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.state.pth")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    p.add_argument("--init", help="start from the weights of this model file (fresh optimizer; "
                   "for fine-tuning or continuing a finished run with a new schedule)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="autocast type of the training steps (overrides the config's "
                   "'precision'; default float32)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    runs: list = []  # the run, once set up (what an interruption's message reports)
    try:
        with deferred_signals() as stop:
            return train(args, stop, runs)
    except NonFinite as exc:
        print(f"error: {exc}; stopped without saving it, the run folder keeps the last finite "
              "checkpoint", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
              file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Terminated) as exc:
        run = runs[-1] if runs else None
        saved = getattr(run, "saved_step", None)
        if saved is None:
            print("error: interrupted before the first step could be saved", file=sys.stderr)
        else:
            print(f"error: interrupted at once by a second signal; {run.dir} holds the "
                  f"checkpoint of step {saved}; continue with --resume", file=sys.stderr)
        return 130 if isinstance(exc, KeyboardInterrupt) else 128 + exc.signum


if __name__ == "__main__":
    sys.exit(main())
