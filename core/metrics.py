"""Image quality metrics with the LIIF paper's conventions.

``psnr(pred, gt, shave, y_channel)``: images in [0, 1], ``(H, W, 3)``.

* benchmark protocol (Set5, Set14, ...): Y channel of ITU-R BT.601,
  ``Y = (65.738 R + 129.057 G + 25.064 B) / 256`` (the +16 offset cancels in the difference),
  ``shave = scale`` pixels removed from each border.
* DIV2K protocol: all three RGB channels, ``shave = scale + 6``.

``PSNR = -10 log10(mean squared error)`` (peak 1).

``ssim(pred, gt, y_channel)``: the structural similarity of Wang et al. (2004) as it is
usually reported for super-resolution: 11x11 Gaussian window (sigma 1.5), ``C1 = (0.01)^2``,
``C2 = (0.03)^2`` for images in [0, 1], valid windows only, on the Y channel (or averaged over
RGB), mean over the image.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["psnr", "ssim", "rgb_to_y", "Y_COEFFS"]

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


def _gaussian_filter_valid(x: np.ndarray, sigma: float = 1.5, size: int = 11) -> np.ndarray:
    """Separable Gaussian filter, 'valid' windows only, of a 2-D float64 array."""
    r = size // 2
    t = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-t ** 2 / (2 * sigma ** 2))
    g /= g.sum()
    rows = sum(g[k] * x[k:x.shape[0] - size + 1 + k] for k in range(size))
    return sum(g[k] * rows[:, k:x.shape[1] - size + 1 + k] for k in range(size))


def _ssim_2d(a: np.ndarray, b: np.ndarray) -> float:
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_a, mu_b = _gaussian_filter_valid(a), _gaussian_filter_valid(b)
    saa = _gaussian_filter_valid(a * a) - mu_a ** 2
    sbb = _gaussian_filter_valid(b * b) - mu_b ** 2
    sab = _gaussian_filter_valid(a * b) - mu_a * mu_b
    m = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return float(m.mean())


def ssim(pred: np.ndarray, gt: np.ndarray, shave: int = 0, y_channel: bool = True) -> float:
    """SSIM between two ``(H, W, 3)`` images in [0, 1] (see the module docstring); both
    sides must be at least 11 pixels after shaving."""
    if pred.shape != gt.shape:
        raise ValueError(f"shape mismatch: {pred.shape} vs {gt.shape}")
    if shave:
        pred, gt = pred[shave:-shave, shave:-shave], gt[shave:-shave, shave:-shave]
    if min(pred.shape[:2]) < 11:
        raise ValueError(f"SSIM needs at least 11x11 pixels, got {pred.shape[1]}x{pred.shape[0]}")
    if y_channel:
        return _ssim_2d(rgb_to_y(pred), rgb_to_y(gt))
    return float(np.mean([_ssim_2d(pred[..., c].astype(np.float64), gt[..., c].astype(np.float64))
                          for c in range(pred.shape[2])]))
