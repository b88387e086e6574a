"""Degradations of the LR side of training pairs, and the fixed ones of the evaluation.

Real photos reach the app blurred a little by the lens, resized by some kernel, noisy, and
compressed as JPEG. A model trained on clean bicubic LR takes all of that for detail and
sharpens it. :class:`Degradation` makes training LR the way a camera and an encoder would
(the order of Real-ESRGAN's and BSRGAN's first-order model; our own code):

1. **blur** (probability ``p``) of the HR crop before downsampling: an isotropic Gaussian of
   ``sigma`` LR pixels (``sigma * s`` HR pixels at scale ``s``), reflected at the borders;
2. **resize** to the LR size with one of ``kernels`` (Pillow's antialiased ``bicubic``,
   ``bilinear`` or ``area``), drawn with ``weights``;
3. **noise** (probability ``p``): Gaussian of ``sigma`` levels (of 255), or with probability
   ``poisson`` shot noise whose standard deviation is ``sigma`` at mid grey
   (``x' = Poisson(x k) / k`` with ``k = 0.5 (255 / sigma)^2``, ``x`` in [0, 1]); with
   probability ``gray`` the same noise on all three channels (luminance), else independent per
   channel (colour);
4. **jpeg** (probability ``p``): Pillow's libjpeg (the decoder the app opens photos with) at
   a quality drawn uniformly from ``quality`` (integers), 4:2:0 chroma, with the image shifted by
   a random phase ``(py, px)`` in ``[0, 16)^2`` against the encoder's 16-pixel MCU grid (the
   edge pixels repeated into the shift, then cut off again), so that 8x8 luma block boundaries
   fall on rows ``r`` and columns ``c`` with ``(r + py) % 8 == 0`` and ``(c + px) % 8 == 0``;
   with probability ``twice`` a second pass at a new quality and phase.

With probability ``clean`` none of this happens and the pair is the plain bicubic one, so the
model keeps what it knows about clean input. Every draw comes from the ``numpy`` generator
passed in; :class:`training.data.ImplicitDownsampled` seeds it from ``(seed, epoch, index)``,
so a degraded run resumes exactly.

A config's ``degrade:`` section, all keys optional (omitted steps do not happen)::

    degrade:
      clean: 0.2
      blur: {p: 0.3, sigma: [0.2, 1.0]}
      resize: {kernels: [bicubic, bilinear, area], weights: [0.6, 0.2, 0.2]}
      noise: {p: 0.4, sigma: [1, 10], poisson: 0.3, gray: 0.4}
      jpeg: {p: 0.85, quality: [30, 95], twice: 0.15}

:func:`parse_eval` makes the evaluation's fixed degradations (``jpeg75``, ``noise5``,
``noise5+jpeg75``, ...): the same every run, see its docstring.
"""
from __future__ import annotations

import io
import math
import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

#: Pillow's resampling filters by the config's names
KERNELS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "area": Image.BOX}
_SECTIONS = {"clean", "blur", "resize", "noise", "jpeg"}
_KEYS = {"blur": {"p", "sigma"}, "resize": {"kernels", "weights"},
         "noise": {"p", "sigma", "poisson", "gray"}, "jpeg": {"p", "quality", "twice"}}


def _prob(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"degrade: {where} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _range(value: Any, where: str, lo: float, hi: float) -> Tuple[float, float]:
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"degrade: {where} must be a pair [low, high], got {value!r}")
    a, b = float(value[0]), float(value[1])
    if not lo <= a <= b <= hi:
        raise ValueError(f"degrade: {where} must satisfy {lo:g} <= low <= high <= {hi:g}, "
                         f"got [{a:g}, {b:g}]")
    return a, b


def _section(cfg: Dict[str, Any], name: str) -> Optional[Dict[str, Any]]:
    sec = cfg.get(name)
    if sec is None:
        return None
    if not isinstance(sec, dict):
        raise ValueError(f"degrade: {name} must be a mapping, got {sec!r}")
    unknown = set(sec) - _KEYS[name]
    if unknown:
        raise ValueError(f"degrade: unknown key {name}.{sorted(unknown)[0]} (known: "
                         f"{', '.join(sorted(_KEYS[name]))})")
    return sec


@dataclass
class Degradation:
    """The training degradations (see the module's docstring for each step and its maths)."""

    clean: float = 0.0
    blur_p: float = 0.0
    blur_sigma: Tuple[float, float] = (0.2, 1.0)
    kernels: Tuple[str, ...] = ("bicubic",)
    kernel_weights: Tuple[float, ...] = (1.0,)
    noise_p: float = 0.0
    noise_sigma: Tuple[float, float] = (1.0, 10.0)
    noise_poisson: float = 0.0
    noise_gray: float = 0.0
    jpeg_p: float = 0.0
    jpeg_quality: Tuple[float, float] = (30.0, 95.0)
    jpeg_twice: float = 0.0

    @classmethod
    def from_config(cls, cfg: Any) -> "Degradation":
        """Check a ``degrade:`` section (one-line :class:`ValueError` naming the bad key)."""
        if not isinstance(cfg, dict):
            raise ValueError(f"degrade: must be a mapping of steps, got {cfg!r}")
        unknown = set(cfg) - _SECTIONS
        if unknown:
            raise ValueError(f"degrade: unknown step {sorted(unknown)[0]!r} (known: "
                             f"{', '.join(sorted(_SECTIONS))})")
        d = cls(clean=_prob(cfg.get("clean", 0.0), "clean"))
        if (b := _section(cfg, "blur")) is not None:
            d.blur_p = _prob(b.get("p", 1.0), "blur.p")
            d.blur_sigma = _range(b.get("sigma", [0.2, 1.0]), "blur.sigma", 0.01, 5.0)
        if (r := _section(cfg, "resize")) is not None:
            ks = r.get("kernels", ["bicubic"])
            if not isinstance(ks, list) or not ks or any(k not in KERNELS for k in ks):
                raise ValueError(f"degrade: resize.kernels must be a list of "
                                 f"{', '.join(KERNELS)}, got {ks!r}")
            ws = r.get("weights", [1.0] * len(ks))
            if (
                not isinstance(ws, list)
                or len(ws) != len(ks)
                or any(isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0 for w in ws)
                or sum(ws) <= 0
            ):
                raise ValueError(f"degrade: resize.weights must be {len(ks)} non-negative numbers "
                                 f"with a positive sum, got {ws!r}")
            d.kernels, d.kernel_weights = tuple(ks), tuple(float(w) / sum(ws) for w in ws)
        if (n := _section(cfg, "noise")) is not None:
            d.noise_p = _prob(n.get("p", 1.0), "noise.p")
            d.noise_sigma = _range(n.get("sigma", [1, 10]), "noise.sigma", 0.0, 50.0)
            d.noise_poisson = _prob(n.get("poisson", 0.0), "noise.poisson")
            d.noise_gray = _prob(n.get("gray", 0.0), "noise.gray")
        if (j := _section(cfg, "jpeg")) is not None:
            d.jpeg_p = _prob(j.get("p", 1.0), "jpeg.p")
            d.jpeg_quality = _range(j.get("quality", [30, 95]), "jpeg.quality", 1, 100)
            d.jpeg_twice = _prob(j.get("twice", 0.0), "jpeg.twice")
        return d

    def __call__(self, hr: np.ndarray, size: Tuple[int, int], rng: np.random.Generator,
                 record: Optional[List[str]] = None) -> np.ndarray:
        """The LR ``(size[0], size[1], 3)`` uint8 of the HR crop ``hr`` (uint8), degraded.

        ``record``, if given, receives one word per step applied (e.g. ``"jpeg q57 @3,11"``),
        for tests and logs."""
        h, w = size
        if rng.random() < self.clean:
            return resize(hr, (h, w), "bicubic")
        x = hr
        if self.blur_p and rng.random() < self.blur_p:
            sigma = rng.uniform(*self.blur_sigma) * hr.shape[0] / h
            x = gaussian_blur(x, sigma)
            _note(record, f"blur {sigma:.2f}")
        kernel = self.kernels[int(rng.choice(len(self.kernels), p=self.kernel_weights))]
        x = resize(x, (h, w), kernel)
        _note(record, kernel)
        if self.noise_p and rng.random() < self.noise_p:
            sigma = rng.uniform(*self.noise_sigma)
            poisson = rng.random() < self.noise_poisson
            gray = rng.random() < self.noise_gray
            x = add_noise(x, sigma, rng, poisson=poisson, gray=gray)
            _note(
                record, f"{'poisson' if poisson else 'gauss'} {sigma:.1f}{' gray' if gray else ''}"
            )
        if self.jpeg_p and rng.random() < self.jpeg_p:
            for k in range(2 if rng.random() < self.jpeg_twice else 1):
                q = int(rng.integers(round(self.jpeg_quality[0]), round(self.jpeg_quality[1]) + 1))
                py, px = (int(v) for v in rng.integers(0, 16, size=2))
                x = jpeg(x, q, (py, px))
                _note(record, f"jpeg q{q} @{py},{px}")
        return x


def _note(record: Optional[List[str]], word: str) -> None:
    if record is not None:
        record.append(word)


def resize(img: np.ndarray, size: Tuple[int, int], kernel: str = "bicubic") -> np.ndarray:
    """Antialiased resize of uint8 ``(H, W, 3)`` to ``size = (h, w)`` with Pillow's ``kernel``
    (``bicubic`` is what clean LIIF training pairs use)."""
    h, w = size
    return np.asarray(Image.fromarray(img).resize((w, h), KERNELS[kernel]))


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Isotropic Gaussian blur of uint8 ``(H, W, 3)`` with standard deviation ``sigma`` pixels:
    a separable kernel of radius ``ceil(3 sigma)``, normalised, with reflected borders."""
    r = max(1, math.ceil(3 * sigma))
    t = np.arange(-r, r + 1, dtype=np.float32)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    x = img.astype(np.float32)
    for axis in (0, 1):
        pad = [(0, 0)] * 3
        pad[axis] = (r, r)
        p = np.pad(x, pad, mode="reflect" if x.shape[axis] > r else "edge")
        n = x.shape[axis]
        x = sum(k[i] * np.take(p, np.arange(i, i + n), axis=axis) for i in range(2 * r + 1))
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def add_noise(img: np.ndarray, sigma: float, rng: np.random.Generator, poisson: bool = False,
              gray: bool = False) -> np.ndarray:
    """``img`` (uint8) plus noise of standard deviation ``sigma`` levels of 255 (Gaussian; or
    Poisson with that deviation at mid grey), per channel or (``gray``) the same on all three."""
    x = img.astype(np.float32) / 255
    if sigma <= 0:
        return img.copy()
    if poisson:
        k = 0.5 * (255.0 / sigma) ** 2
        if gray:
            y = x @ np.array([0.299, 0.587, 0.114], np.float32)
            delta = (rng.poisson(np.clip(y, 0, None) * k) / k - y)[..., None]
        else:
            delta = rng.poisson(x * k) / k - x
    else:
        shape = x.shape[:2] + (1,) if gray else x.shape
        delta = rng.normal(0.0, sigma / 255, size=shape)
    return np.clip(np.round((x + delta) * 255), 0, 255).astype(np.uint8)


def jpeg(img: np.ndarray, quality: int, phase: Tuple[int, int] = (0, 0)) -> np.ndarray:
    """``img`` (uint8 ``(H, W, 3)``) through a JPEG encode and decode (Pillow, 4:2:0, no
    optimisation) at ``quality``, the encoder's grid shifted by ``phase = (py, px)``: the
    image is padded with its edge rows and columns by ``py`` at the top and ``px`` at the left
    before encoding, and cut out after decoding, so block boundaries fall where
    ``(r + py) % 8 == 0``."""
    py, px = phase
    x = np.pad(img, ((py, 0), (px, 0), (0, 0)), mode="edge") if py or px else img
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, format="JPEG", quality=int(quality), subsampling=2)
    buf.seek(0)
    with Image.open(buf) as im:
        out = np.asarray(im.convert("RGB"))
    return np.ascontiguousarray(out[py:, px:])


# -- the evaluation's fixed degradations ------------------------------------------------------

@dataclass(frozen=True)
class EvalDegradation:
    """A fixed chain of degradations for evaluation, parsed from ``jpeg75``, ``noise5``,
    ``noise5+jpeg75``, ... (see :func:`parse_eval`)."""

    spec: str
    steps: Tuple[Tuple[str, int], ...] = field(default=())

    def __call__(self, lr: np.ndarray, key: str) -> np.ndarray:
        """``lr`` (uint8) degraded; ``key`` (the image's name) seeds the noise, so every run
        and every model sees the same pixels."""
        x = lr
        for kind, v in self.steps:
            if kind == "jpeg":
                x = jpeg(x, v)
            else:
                rng = np.random.default_rng(zlib.crc32(f"{key}|{self.spec}".encode()))
                x = add_noise(x, float(v), rng)
        return x

    def describe(self) -> str:
        words = {"jpeg": "JPEG q{} (Pillow, 4:2:0, grid at the image origin)",
                 "noise": "Gaussian colour noise sigma {}/255 (seeded by the image name)"}
        return ", then ".join(words[k].format(v) for k, v in self.steps)


def parse_eval(spec: str) -> EvalDegradation:
    """``jpegQ`` (Q in 1..100), ``noiseS`` (sigma S levels, 0 < S <= 50), joined by ``+`` and
    applied left to right to the LR after it is made: e.g. ``noise5+jpeg75`` is a noisy sensor
    then a camera's JPEG. ``clean`` (or an empty string) is no degradation."""
    text = spec.strip().lower()
    if text in ("", "clean", "none"):
        return EvalDegradation("clean")
    steps = []
    for part in text.split("+"):
        for kind, lo, hi in (("jpeg", 1, 100), ("noise", 1, 50)):
            if part.startswith(kind) and part[len(kind):].isdigit():
                v = int(part[len(kind):])
                if not lo <= v <= hi:
                    raise ValueError(f"--degrade {spec}: {kind} takes {lo}..{hi}, got {v}")
                steps.append((kind, v))
                break
        else:
            raise ValueError(f"--degrade {spec}: unknown step {part!r} (use jpegQ or noiseS, "
                             "joined by +, e.g. jpeg75 or noise5+jpeg75)")
    return EvalDegradation(text, tuple(steps))


def block_phase(img: np.ndarray, axis: int = 0) -> int:
    """The phase ``p`` in [0, 8) at which ``img``'s 8x8 block boundaries lie (boundaries at
    indices ``i`` with ``(i + p) % 8 == 0`` along ``axis``): the residue whose differences
    between neighbours are largest on average. A measurement for tests."""
    y = img.astype(np.float32).mean(axis=2)
    d = np.abs(np.diff(y, axis=axis)).mean(axis=1 - axis)  # d[i]: between i and i + 1
    energy = [d[(np.arange(len(d)) + 1 + p) % 8 == 0].mean() for p in range(8)]
    return int(np.argmax(energy))


def seeded_rng(*key: int) -> np.random.Generator:
    """A numpy generator for one training sample, from integers such as (seed, epoch, index)."""
    return np.random.default_rng([int(k) & 0xFFFFFFFF for k in key] + [0xD6])

