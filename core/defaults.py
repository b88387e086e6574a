"""Where the bundled resources live."""
from __future__ import annotations

from pathlib import Path

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
#: the model the app and the CLIs use unless told otherwise
DEFAULT_CHECKPOINT = RESOURCES / "liif-cpu.safetensors"
#: the image ``python main.py`` opens
SAMPLE_IMAGE = RESOURCES / "sample.png"
