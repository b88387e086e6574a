"""Image quality metrics with the LIIF paper's conventions.

``psnr(pred, gt, shave, y_channel)``: images in [0, 1], ``(H, W, 3)``.

* benchmark protocol (Set5, Set14, ...): Y channel of ITU-R BT.601,
  ``Y = (65.738 R + 129.057 G + 25.064 B) / 256`` (the +16 offset cancels in the difference),
  ``shave = scale`` pixels removed from each border.
* DIV2K protocol: all three RGB channels, ``shave = scale + 6``.

``PSNR = -10 log10(mean squared error)`` (peak 1).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["psnr", "rgb_to_y", "Y_COEFFS"]

Y_COEFFS = np.array([65.738, 129.057, 25.064]) / 256.0


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma without offset, for images in [0, 1]."""
    return img.astype(np.float64) @ Y_COEFFS


def psnr(pred: np.ndarray, gt: np.ndarray, shave: int = 0, y_channel: bool = False) -> float:
    """PSNR in dB between two ``(H, W, 3)`` images in [0, 1]."""
    if pred.shape != gt.shape:
        raise ValueError(f"shape mismatch: {pred.shape} vs {gt.shape}")
    diff = pred.astype(np.float64) - gt.astype(np.float64)
    if y_channel:
        diff = diff @ Y_COEFFS
    if shave:
        diff = diff[shave:-shave, shave:-shave]
    mse = float(np.mean(diff ** 2))
    return math.inf if mse == 0 else -10.0 * math.log10(mse)
