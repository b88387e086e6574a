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


def duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``2.5 h``."""
    if seconds < 120:
        return f"{seconds:,.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.0f} min"
    return f"{seconds / 3600:,.1f} h"
