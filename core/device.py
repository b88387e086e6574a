"""Which torch device to compute on: CUDA when there is one, else MPS, else CPU."""
from __future__ import annotations

from typing import Optional

import torch


def pick_device(name: Optional[str] = None) -> torch.device:
    """``name`` ('cpu', 'cuda', 'cuda:1', 'mps') or None for the best available.

    Raises ValueError with a clear message if the requested device is not available.
    """
    if name is None or name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {name!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) is not None
                                  and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' requested but MPS is not available")
    return dev
