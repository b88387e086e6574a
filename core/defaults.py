"""The bundled resources' folder and the sample image, and how durations are written. The
bundled models themselves, by name, and the rule that picks one are :mod:`core.zoo`; the
time estimates are :mod:`core.rates`."""
from __future__ import annotations

from pathlib import Path


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


def duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``2.5 h``."""
    if seconds < 120:
        return f"{seconds:,.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.0f} min"
    return f"{seconds / 3600:,.1f} h"
