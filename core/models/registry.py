"""One registry for every model part, built from a ``{name, args}`` spec.

It lives inside :mod:`core.models`: importing it imports the package, whose ``__init__``
imports every model module, and those register themselves here (no import cycle: this module
imports no model).

A *spec* is a plain dict ``{"name": str, "args": dict}``: the same shape the official LIIF
release stores in its checkpoints, so a file describes the model it holds.

>>> from core.models.registry import make, list_models
>>> enc = make({"name": "edsr-baseline", "args": {"no_upsampling": True}})
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Optional

import torch.nn as nn

__all__ = ["register", "make", "list_models", "ModelSpec"]

ModelSpec = Dict[str, Any]

_REGISTRY: Dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator that records a model class or factory under ``name`` (duplicates refused)."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise KeyError(f"model name {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return wrap


def list_models() -> List[str]:
    """Names that :func:`make` accepts."""
    return sorted(_REGISTRY)


def make(spec: ModelSpec, args: Optional[Dict[str, Any]] = None) -> nn.Module:
    """Build the module described by ``spec``; ``args`` override ``spec['args']``."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"a model spec is a dict with 'name' and 'args', got {spec!r}")
    name = spec["name"]
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    kwargs = copy.deepcopy(spec.get("args") or {})
    if args:
        kwargs.update(args)
    return _REGISTRY[name](**kwargs)
