"""The bundled resources' folder and the sample image, and the figures behind the time
estimates. The bundled models themselves, by name, and the rule that picks one are
:mod:`core.zoo`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

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


#: output pixels a second of an export on the project's 2-core CPU, by decoder (the CLI's
#: throughput, docs/BENCHMARKS.md "CLI"): for the viewer's and the CLI's time estimates
CPU_EXPORT_RATE = {"LMF": 1.7e6, "LIIF": 1.0e5}


def export_rate(model: Optional[torch.nn.Module], device: torch.device | str) -> Optional[float]:
    """About how many output pixels a second an export with ``model`` renders on ``device``;
    None where not measured (GPUs, unknown decoders)."""
    if model is None or torch.device(device).type != "cpu":
        return None
    return CPU_EXPORT_RATE.get(type(model).__name__)


#: multiply-adds a second of a convolutional encoder in float32 on the project's 2-core CPU
#: (EDSR-baseline: 1.22 M a source pixel in 18.8 us with 16 blocks, 0.48 M in 7.7 us with 6;
#: bench/cpu_design.py). A 13-Mpx photo at x2 with the CPU model: 98 s of encoding and 31 s
#: of rendering by these figures, 127 s measured by the CLI.
CPU_ENCODER_MACS = 6.4e10


def encode_rate(model: Optional[torch.nn.Module], device: torch.device | str) -> Optional[float]:
    """About how many source pixels a second ``model``'s encoder encodes on ``device``,
    from its convolutions' multiply-adds; None where not measured (GPUs) or without one."""
    enc = getattr(model, "encoder", None)
    if enc is None or torch.device(device).type != "cpu":
        return None
    macs = sum(m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1]
               // m.groups for m in enc.modules() if isinstance(m, torch.nn.Conv2d))
    return CPU_ENCODER_MACS / max(1, macs)


def export_seconds(model: Optional[torch.nn.Module], device: torch.device | str,
                   out_px: float, src_px: float = 0) -> Optional[float]:
    """About how long an export takes: ``out_px`` output pixels rendered
    (:func:`export_rate`) and ``src_px`` source pixels still to encode (:func:`encode_rate`:
    a large photo's encoding is most of an export at x2). None where not measured."""
    rate = export_rate(model, device)
    if rate is None:
        return None
    enc = encode_rate(model, device) if src_px else None
    return out_px / rate + (src_px / enc if enc else 0.0)


def duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``2.5 h``."""
    if seconds < 120:
        return f"{seconds:,.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.0f} min"
    return f"{seconds / 3600:,.1f} h"
