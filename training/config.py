"""Training configs: loading, the schema every config is checked against, the schedule.

A config is a YAML mapping (see ``training/configs/``). :func:`load_config` reads it and
:func:`check_config` checks it before anything runs: an unknown key or a wrong type is one
:class:`ValueError` line naming the key (with a "did you mean" for typos such as
``train.batchsize``); every count and range is checked (``scale_min <= scale_max``, counts
at least 1, probabilities in [0, 1], the model's arguments by building it on the ``meta``
device, the ``degrade`` section by :class:`training.degrade.Degradation`).
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import yaml

PRECISIONS = ("float32", "bfloat16", "auto")

Check = Callable[[Any], Optional[str]]  # None if fine, else what is wrong


def _int(lo: int) -> Check:
    def check(v):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            return f"must be an integer >= {lo}"
    return check


def _num(lo: float, hi: float = float("inf"), lo_open: bool = False,
         hi_open: bool = False) -> Check:
    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return "must be a number"
        if v < lo or (lo_open and v == lo) or v > hi or (hi_open and v == hi):
            return (f"must be in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}")
    return check


def _str(choices: Tuple[str, ...] = ()) -> Check:
    def check(v):
        if not isinstance(v, str) or not v:
            return "must be a non-empty string"
        if choices and v not in choices:
            return f"must be one of {', '.join(choices)}"
    return check


def _bool(v) -> Optional[str]:
    return None if isinstance(v, bool) else "must be true or false"


def _mapping(v) -> Optional[str]:
    return None if isinstance(v, dict) else "must be a mapping"


def _int_list(v) -> Optional[str]:
    if not isinstance(v, list) or any(isinstance(m, bool) or not isinstance(m, int) or m < 1
                                      for m in v):
        return "must be a list of positive integers"


def _str_list(v) -> Optional[str]:
    if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
        return "must be a list of module names"


#: one ``init`` section: a model file and which of its tensors go where
INIT = {"!checkpoint": _str(), "copy": _mapping, "widen": _bool, "deepen": _bool, "seed": _int(0)}


def _init_sections(v) -> Optional[str]:
    """``init`` is one section or a list of them (applied in order)."""
    for i, sec in enumerate(v if isinstance(v, list) else [v]):
        if not isinstance(sec, dict):
            return "must be a mapping (checkpoint, copy, widen, deepen) or a list of them"
        try:
            _walk(sec, INIT, "")
        except ValueError as exc:
            return f"[{i}]: {exc}" if isinstance(v, list) else str(exc)


def _betas(v) -> Optional[str]:
    if (not isinstance(v, (list, tuple)) or len(v) != 2
            or any(_num(0, 1, hi_open=True)(b) for b in v)):
        return "must be two numbers in [0, 1)"


# key -> check, or a nested schema; "!" before a key marks it required
TRAIN = {"data": _str(), "holdout": _int(0), "repeat": _int(1),
         "cache": _str(("in_memory", "none")), "inp_size": _int(1), "scale_min": _num(1),
         "scale_max": _num(1), "augment": _bool, "sample_q": _int(1), "batch_size": _int(1),
         "num_workers": _int(0), "detail_share": _num(0, 1)}
VAL = {"data": _str(), "repeat": _int(1), "first_k": _int(1), "inp_size": _int(1),
       "scale_min": _num(1), "scale_max": _num(1), "sample_q": _int(1), "batch_size": _int(1)}
SCHEMA: Dict[str, Any] = {
    "name": _str(),
    "seed": _int(0),
    "precision": _str(PRECISIONS),
    "ema": _num(0, 1, lo_open=True, hi_open=True),
    "loss": _str(),
    "init": _init_sections,
    "freeze": _str_list,
    "degrade": _mapping,
    "distill": {"!teacher": _str(), "weight": _num(0, 1, lo_open=True), "features": _num(0)},
    "!train": TRAIN,
    "val": VAL,
    "!model": {"!name": _str(), "args": _mapping},
    "!optimizer": {
        "name": _str(("adam",)),
        "!args": {"!lr": _num(0, lo_open=True), "betas": _betas},
    },
    "!epoch_max": _int(1),
    "multi_step_lr": {"milestones": _int_list, "gamma": _num(0, lo_open=True)},
    "epoch_val": _int(1),
    "epoch_save": _int(1),
    "save_every_steps": _int(1),
}


def _walk(node: Dict[str, Any], schema: Dict[str, Any], where: str) -> None:
    keys = {k.lstrip("!"): v for k, v in schema.items()}
    for k in node:
        if k not in keys:
            hint = difflib.get_close_matches(str(k), list(keys), n=1, cutoff=0.6)
            raise ValueError(f"unknown key {where}{k}"
                             + (f" (did you mean {where}{hint[0]}?)" if hint else
                                f" (known: {', '.join(sorted(keys))})"))
    for raw, check in schema.items():
        k = raw.lstrip("!")
        if k not in node or node[k] is None:
            if raw.startswith("!"):
                raise ValueError(f"missing {where}{k}")
            continue
        v = node[k]
        if isinstance(check, dict):
            if not isinstance(v, dict):
                raise ValueError(f"{where}{k} must be a mapping, got {v!r}")
            _walk(v, check, f"{where}{k}.")
        else:
            why = check(v)
            if why:
                raise ValueError(f"{where}{k} {why}, got {v!r}")


def check_config(cfg: Any) -> Dict[str, Any]:
    """``cfg`` if it is a valid training config, else a one-line :class:`ValueError`."""
    if not isinstance(cfg, dict):
        raise ValueError("a config must be a mapping with model, train, optimizer and "
                         "epoch_max sections")
    _walk(cfg, SCHEMA, "")
    for sec in ("train", "val"):
        s = cfg.get(sec) or {}
        if float(s.get("scale_min", 1)) > float(s.get("scale_max", 4)):
            raise ValueError(f"{sec}.scale_min {s.get('scale_min')} is above {sec}.scale_max "
                             f"{s.get('scale_max', 4)}")
    if cfg.get("degrade"):
        from training.degrade import Degradation
        Degradation.from_config(cfg["degrade"])
    from training.losses import LOSSES
    if cfg.get("loss", "l1") not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {cfg['loss']!r}")
    _check_model(cfg["model"])
    return cfg


def _check_model(spec: Dict[str, Any]) -> None:
    """Build the model on the meta device (no memory, no weights): unknown names and
    arguments become one line."""
    import torch

    from core.models.registry import make
    try:
        with torch.device("meta"):
            make(spec)
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"model {spec.get('name')!r}: {msg}") from None


def load_config(path: str | Path) -> Dict[str, Any]:
    """Read and check a config file (one-line errors naming the file and the key)."""
    try:
        with open(path) as f:
            cfg = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"config {path} is not valid YAML{at}: "
                         f"{getattr(exc, 'problem', None) or exc}") from None
    try:
        return check_config(cfg)
    except ValueError as exc:
        raise ValueError(f"{exc} (config {path})") from None


def lr_at(cfg: Dict[str, Any], epoch: int) -> float:
    """Learning rate of (0-based) ``epoch``: base lr times gamma per milestone passed."""
    base = float(cfg["optimizer"]["args"]["lr"])
    ms = cfg.get("multi_step_lr") or {}
    n = sum(1 for m in ms.get("milestones", []) if epoch + 1 > m)
    return base * float(ms.get("gamma", 1.0)) ** n
