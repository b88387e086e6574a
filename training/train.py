"""Train a LIIF-family model.

    python -m training.train --config training/configs/edsr-baseline-liif.yaml \\
        [--data DIR] [--out RUN_DIR] [--resume] [--device cuda] [--max-steps N]
    torchrun --nproc_per_node=N -m training.train --config ...     # data-parallel

The run folder holds ``last.safetensors`` / ``best.safetensors`` (the core model format, so
the app and the evaluation CLI load them directly), ``last.state.pth`` (optimizer state and
position, loadable with ``weights_only=True``), ``config.yaml``, ``log.jsonl`` (one line per
step: epoch, step, loss, lr) and TensorBoard events in ``tb/``; with ``ema`` in the config,
also ``ema.safetensors``, the average of the weights (:class:`WeightAverage`), which is then
what is validated and kept as ``best.safetensors``.

Exact resume: the data a step sees is a pure function of ``(seed, epoch, position)`` (see
:mod:`training.data`), the learning rate a function of the epoch, and the saved state holds
weights, Adam moments and the position; so after ``--resume`` the next step computes the same
loss as an uninterrupted run.
"""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from torch.utils.data import DataLoader
from tqdm import tqdm

from core.cli import ArgumentParser
from core.atomic import atomic_write
from core.checkpoints import load_checkpoint, save_model
from core.device import autocast_to, fast_compute_dtype, native_bf16, pick_device
from core.models.registry import make
from training.data import EpochSampler, ImageFolder, ImplicitDownsampled
from training.degrade import Degradation

log = logging.getLogger("training")


def load_config(path: str) -> Dict[str, Any]:
    with open(path) as f:
        cfg = yaml.safe_load(f)
    if not isinstance(cfg, dict) or "model" not in cfg or "train" not in cfg:
        raise ValueError(f"config {path} needs 'model' and 'train' sections")
    return cfg


def lr_at(cfg: Dict[str, Any], epoch: int) -> float:
    """Learning rate of (0-based) ``epoch``: base lr times gamma per milestone passed."""
    base = float(cfg["optimizer"]["args"]["lr"])
    ms = cfg.get("multi_step_lr") or {}
    n = sum(1 for m in ms.get("milestones", []) if epoch + 1 > m)
    return base * float(ms.get("gamma", 1.0)) ** n


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
                               degrade=_degradation(cfg))


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


def _config_path(name: str, root: Path) -> Path:
    """A file named in a config: relative to the working directory if it is there, else to
    the repository root (so ``resources/...`` works from anywhere)."""
    path = Path(name)
    return root / path if not path.is_absolute() and not path.exists() else path


def init_from(model: torch.nn.Module, init: Dict[str, Any], root: Path) -> int:
    """Copy weights from another model file into ``model`` before training (the config's
    ``init`` section): ``{"checkpoint": FILE, "copy": {student_prefix: source_prefix}}``.

    Every tensor ``source_prefix.REST`` of FILE is copied to ``student_prefix.REST``, which
    must exist with the same shape; e.g. ``encoder.body.3: encoder.body.13`` makes the student's
    fourth residual block the teacher's fourteenth. A relative FILE is taken from the working
    directory, then from the repository root. Returns the number of tensors copied."""
    path = _config_path(init["checkpoint"], root)
    _, src, _ = load_checkpoint(path)
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


PRECISIONS = ("float32", "bfloat16", "auto")


def training_dtype(name: str, device: torch.device) -> torch.dtype:
    """The autocast type of a training step (the config's ``precision``, or ``--precision``).

    ``float32``: no autocast (the default, and every run before stage five of the CPU model).
    ``bfloat16``: mixed precision: the weights, the optimizer and the loss stay float32, the
    convolutions and matrix products run in bfloat16 (the same split as the app's fast
    encoding on such a CPU). ``auto``: bfloat16 where the device multiplies it natively (a CPU
    with AVX512-BF16 or AMX, :func:`core.device.native_bf16`; a CUDA GPU that supports it),
    else float32."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    if name == "auto":
        dev = torch.device(device)
        fast = native_bf16(dev) or (dev.type == "cuda" and torch.cuda.is_bf16_supported())
        return torch.bfloat16 if fast else torch.float32
    return torch.bfloat16 if name == "bfloat16" else torch.float32


class Teacher:
    """Output distillation (the config's ``distill`` section): ``{"teacher": FILE, "weight":
    w}``. The step's loss becomes ``(1 - w) L1(pred, gt) + w L1(pred, teacher)``, where the
    teacher (any model file, e.g. the bundled paper model) is queried at the same LR input,
    coordinates and cells, without gradients. Its encoder runs in bfloat16 where the CPU
    multiplies it natively (:func:`core.device.fast_compute_dtype`); its queries in
    ``query_dtype`` (the step's training precision: float32 by default). A relative FILE is
    taken from the working directory, then from the repository root."""

    def __init__(self, spec: Dict[str, Any], device: torch.device, root: Path,
                 query_dtype: torch.dtype = torch.float32) -> None:
        from core.checkpoints import load_model
        path = _config_path(spec["teacher"], root)
        self.weight = float(spec.get("weight", 0.5))
        if not 0.0 < self.weight <= 1.0:
            raise ValueError(f"distill: weight must be in (0, 1], got {self.weight}")
        self.model = load_model(path, device)[0]
        for q in self.model.parameters():
            q.requires_grad_(False)
        self.path = path
        self.dtype = fast_compute_dtype(device)
        self.query_dtype = query_dtype

    @torch.no_grad()
    def __call__(self, inp: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        with autocast_to(inp.device, self.dtype):
            feat = self.model.encode(inp)
        with autocast_to(inp.device, self.query_dtype):
            return self.model.query_rgb(feat.float(), coord, cell).float()


def l1_step_loss(model, batch, device, teacher: Optional[Teacher] = None,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The step's loss (see :class:`Teacher`), the model run under autocast to ``dtype``."""
    inp = (batch["inp"].to(device) - 0.5) / 0.5
    gt = (batch["gt"].to(device) - 0.5) / 0.5
    coord, cell = batch["coord"].to(device), batch["cell"].to(device)
    with autocast_to(device, dtype):
        pred = model(inp, coord, cell)
    pred = pred.float()
    loss = F.l1_loss(pred, gt)
    if teacher is not None:
        w = teacher.weight
        loss = (1 - w) * loss + w * F.l1_loss(pred, teacher(inp, coord, cell))
    return loss


class WeightAverage:
    """An exponential moving average of the weights (the config's ``ema: d``, e.g. 0.999):
    after step ``n`` (counting from the run's first step, or from where a run without it was
    resumed with it) every float tensor of the model's state is blended as
    ``avg = d_n avg + (1 - d_n) w`` with ``d_n = min(d, (1 + n) / (10 + n))``, so that the
    average follows the weights closely at first. It lives in a copy of the model
    (:attr:`model`), which the run validates, saves as ``ema.safetensors`` beside
    ``last.safetensors`` and keeps as ``best.safetensors``; the steps themselves use the raw
    weights. Resumes exactly: ``ema.safetensors`` and the update count are part of the
    checkpoint."""

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
        for k, avg in self.model.state_dict().items():
            if avg.is_floating_point():
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
    from core.encoding import encode
    from core.geometry import Region
    from core.render import render

    img = val_set.dataset[0]
    h, w = img.shape[:2]
    side = min(48, h, w)
    crop = img[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
    lat = encode(model, crop.astype("float32") / 255.0, device, tile=64)
    out = []
    for s in scales:
        rgb = render(lat, Region.full(side, side), side * s, side * s)
        out.append((f"render/x{s}", torch.from_numpy(rgb).permute(2, 0, 1)))
    return out


def _atomic_torch_save(obj, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


class _StopRequest:
    """SIGINT/SIGTERM/SIGHUP while training: remember the signal, let the current step finish,
    then save a resumable checkpoint at that step and stop (see :func:`train`). A second
    signal of the same kind before that stops at once (KeyboardInterrupt)."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._old: Dict[int, Any] = {}

    def __enter__(self) -> "_StopRequest":
        for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)):
            if sig is not None:
                try:
                    self._old[sig] = signal.signal(sig, self._handle)
                except ValueError:  # not the main thread
                    pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for sig, h in self._old.items():
            signal.signal(sig, h)


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m training.train", description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--data", help="training image folder (overrides the config)")
    p.add_argument("--val-data", help="validation image folder (overrides the config); "
                   "'none' turns validation off")
    p.add_argument("--out", help="run folder (default runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.*")
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
    try:
        with _StopRequest() as stop:
            return train(args, stop)
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted before the first step could be saved; the run folder "
              "holds the last checkpoint", file=sys.stderr)
        return 130


def train(args, stop: Optional["_StopRequest"] = None) -> int:
    cfg = load_config(args.config)
    if args.val_data == "none":
        cfg["val"] = None
    elif args.val_data:
        cfg.setdefault("val", {})["data"] = args.val_data
    if args.threads:
        torch.set_num_threads(args.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    distributed = world > 1
    if distributed:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if args.device is None and torch.cuda.is_available():
            torch.cuda.set_device(local)
            device = torch.device("cuda", local)
        else:
            device = pick_device(args.device or "cpu")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    else:
        device = pick_device(args.device)
    is_main = rank == 0
    seed = int(cfg.get("seed", 0))
    torch.manual_seed(seed)

    name = cfg.get("name") or Path(args.config).stem
    run = Path(args.out or Path("runs") / name)
    run.mkdir(parents=True, exist_ok=True)

    train_set = make_train_set(cfg, args.data, seed)
    val_set = make_val_set(cfg, args.data)
    t = cfg["train"]
    batch = int(t.get("batch_size", 16))
    if batch % world:
        raise ValueError(f"batch_size {batch} is not divisible by {world} processes")
    sampler = EpochSampler(len(train_set), seed=seed, rank=rank, world=world)
    workers = int(t.get("num_workers", 0))
    loader_kw = dict(batch_size=batch // world, sampler=sampler, drop_last=True,
                     num_workers=workers, persistent_workers=False)
    steps_per_epoch = len(sampler) // (batch // world)
    if steps_per_epoch == 0:
        raise ValueError("the training set is smaller than one batch")

    spec = cfg["model"]
    model = make(spec).to(device)
    opt_cfg = cfg["optimizer"]
    if opt_cfg.get("name", "adam") != "adam":
        raise ValueError("only the adam optimizer is supported")
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad],
                           lr=lr_at(cfg, 0), betas=tuple(opt_cfg["args"].get("betas", (0.9, 0.999))))
    epoch, pos, step, best, ema_updates = 0, 0, 0, -math.inf, 0
    if args.resume and (run / "last.state.pth").is_file():
        _, sd, _ = load_checkpoint(run / "last.safetensors")
        model.load_state_dict(sd)
        state = torch.load(run / "last.state.pth", map_location=device, weights_only=True)
        opt.load_state_dict(state["optimizer"])
        epoch, pos, step, best = state["epoch"], state["pos"], state["step"], state["best"]
        ema_updates = state.get("ema_updates", 0)
        if is_main:
            log.info("resumed %s at epoch %d, step %d", run, epoch + 1, step)
    else:
        if args.resume and is_main:
            log.info("nothing to resume in %s; starting fresh", run)
        if cfg.get("init") and not args.init:
            n = init_from(model, cfg["init"], Path(__file__).resolve().parent.parent)
            if is_main:
                log.info("initialised %d tensors from %s", n, cfg["init"]["checkpoint"])
        if args.init:
            init_spec, sd, _ = load_checkpoint(args.init)
            if init_spec != spec:
                raise ValueError(f"--init {args.init}: its model spec differs from the config's")
            model.load_state_dict(sd)
            if is_main:
                log.info("initialised from %s", args.init)
    if args.precision:
        cfg["precision"] = args.precision
    dtype = training_dtype(str(cfg.get("precision", "float32")), device)
    if is_main:
        log.info("training steps in %s", str(dtype).replace("torch.", ""))
    teacher = None
    if cfg.get("distill"):
        teacher = Teacher(cfg["distill"], device, Path(__file__).resolve().parent.parent, dtype)
        if is_main:
            log.info("distilling from %s (weight %.2f)", teacher.path, teacher.weight)
    ema = None
    if cfg.get("ema"):
        ema = WeightAverage(model, float(cfg["ema"]))
        if args.resume and (run / "ema.safetensors").is_file():
            ema.model.load_state_dict(load_checkpoint(run / "ema.safetensors")[1])
            ema.updates = int(ema_updates)
        if is_main:
            log.info("averaging the weights (ema %g, %d updates so far)", ema.decay, ema.updates)
    judged = ema.model if ema else model  # the weights validated and kept as best
    if is_main:
        with open(run / "config.yaml", "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
    net = model
    if distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    writer = None
    if is_main:
        try:
            from torch.utils.tensorboard import SummaryWriter
            writer = SummaryWriter(str(run / "tb"))
        except Exception as exc:  # tensorboard is optional
            log.warning("TensorBoard logging off: %s", exc)
    val_loader = DataLoader(val_set, batch_size=int((cfg.get("val") or {}).get("batch_size", 16))) \
        if (val_set is not None and is_main) else None
    epoch_max = int(cfg["epoch_max"])
    save_every = int(cfg.get("save_every_steps", 200))
    epoch_val = int(cfg.get("epoch_val", 1))
    epoch_save = cfg.get("epoch_save")
    info = {"config": name, "data": str(args.data or t.get("data"))}

    def save(kind: str = "last") -> None:
        if not is_main:
            return
        meta = dict(info, epoch=epoch + (pos >= steps_per_epoch), step=step,
                    best_val_psnr=None if best == -math.inf else round(best, 4))
        if kind == "best":  # the weights that were validated
            save_model(judged, spec, run / "best.safetensors",
                       dict(meta, ema=ema.decay) if ema else meta)
            return
        if ema is not None:  # before the state that counts its updates
            save_model(ema.model, spec, run / "ema.safetensors", dict(meta, ema=ema.decay))
        save_model(model, spec, run / "last.safetensors", meta)
        _atomic_torch_save({"optimizer": opt.state_dict(), "epoch": epoch, "pos": pos,
                            "step": step, "best": best,
                            "ema_updates": ema.updates if ema else 0}, run / "last.state.pth")

    logf = open(run / "log.jsonl", "a") if is_main else None
    net.train()
    done = False
    while epoch < epoch_max and not done and not (stop is not None and stop.signum is not None):
        lr = lr_at(cfg, epoch)
        for g in opt.param_groups:
            g["lr"] = lr
        train_set.set_epoch(epoch)
        sampler.set_epoch(epoch, pos * (batch // world))
        loader = DataLoader(train_set, **loader_kw)
        bar = tqdm(loader, total=steps_per_epoch - pos, desc=f"epoch {epoch + 1}/{epoch_max}",
                   disable=not is_main or args.no_progress, file=sys.stderr, dynamic_ncols=True)
        t0 = time.time()
        for b in bar:
            loss = l1_step_loss(net, b, device, teacher, dtype)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update(model)
            pos += 1
            step += 1
            lv = float(loss.detach())
            if is_main:
                logf.write(json.dumps({"epoch": epoch + 1, "step": step, "loss": lv, "lr": lr}) + "\n")
                logf.flush()
                bar.set_postfix(loss=f"{lv:.4f}", lr=f"{lr:.1e}")
                if writer is not None and step % 10 == 0:
                    writer.add_scalar("train/loss", lv, step)
                    writer.add_scalar("train/lr", lr, step)
            if step % save_every == 0:
                save("last")
            if args.max_steps is not None and step >= args.max_steps:
                done = True
                break
            if stop is not None and stop.signum is not None:
                done = True
                break
        bar.close()
        if done and pos < steps_per_epoch:
            break
        epoch, pos = epoch + 1, 0
        save("last")  # before anything that could fail, such as validation
        if is_main:
            log.info("epoch %d done in %.0f s", epoch, time.time() - t0)
            if val_loader is not None and epoch % epoch_val == 0:
                psnr = validate(judged, val_loader, device)
                log.info("epoch %d validation PSNR %.3f dB%s", epoch, psnr,
                         " (averaged weights)" if ema else "")
                if writer is not None:
                    writer.add_scalar("val/psnr", psnr, step)
                    try:
                        for tag, img in sample_renders(judged, val_set, device):
                            writer.add_image(tag, img, step)
                    except Exception as exc:  # a picture for TensorBoard never stops training
                        log.warning("sample renders failed: %s", exc)
                if psnr > best:
                    best = psnr
                    save("best")
                    save("last")  # so that a resume knows the best score
            if epoch_save and epoch % int(epoch_save) == 0:
                save_model(model, spec, run / f"epoch-{epoch}.safetensors", dict(info, epoch=epoch))
    save("last")
    if stop is not None and stop.signum is not None:
        if is_main:
            logf.close()
            if writer is not None:
                writer.close()
            print(f"stopped by {signal.Signals(stop.signum).name} at epoch {epoch + 1}, step "
                  f"{step}; saved {run / 'last.safetensors'}; continue with --resume",
                  file=sys.stderr)
        if distributed:
            dist.destroy_process_group()
        return 128 + stop.signum
    if is_main:
        logf.close()
        if writer is not None:
            writer.close()
        log.info("finished at epoch %d, step %d; weights in %s", epoch, step, run)
    if distributed:
        # every rank must hold the same weights: compare each with rank 0's
        flat = torch.cat([q.detach().flatten() for q in model.parameters()]).to(device)
        ref = flat.clone()
        dist.broadcast(ref, 0)
        diff = (flat - ref).abs().max()
        dist.all_reduce(diff, op=dist.ReduceOp.MAX)
        if is_main:
            log.info("weights agree across %d ranks: max |difference| = %g", world, float(diff))
            with open(run / "ddp_check.json", "w") as f:
                json.dump({"world": world, "max_abs_diff": float(diff)}, f)
        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
