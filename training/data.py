"""Datasets for training and evaluating LIIF.

* :class:`ImageFolder` - every image under a folder (recursive), as uint8 arrays, optionally
  cached in memory and repeated. Unreadable or too-small files are skipped with a warning
  that names them.
* :class:`PairedFolder` - a benchmark folder: ``HR/NAME.png`` and, when present,
  ``LR_bicubic/X{s}/NAMEx{s}.png``.
* :class:`ImplicitDownsampled` - LIIF's training sampler (see its docstring).

Randomness is a pure function of ``(seed, epoch, index)``: every sample draws from its own
``torch.Generator``, so a resumed or distributed run sees exactly the same data.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from core.io.formats import READ_EXTS
from core.io.imageio import MAX_PIXELS, ImageError, image_size, load_image
from core.io.pixels import to_u8
from training.degrade import Degradation, seeded_rng

log = logging.getLogger(__name__)



def list_images(root: str | os.PathLike) -> List[Path]:
    """Image files under ``root``, recursively, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in READ_EXTS and p.is_file())


def load_uint8(path: str | os.PathLike) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of an image file."""
    return to_u8(load_image(path).pixels)


class ImageFolder(Dataset):
    """Images of a folder (recursive).

    Args:
        root: folder of images.
        repeat: the dataset appears ``repeat`` times per epoch (LIIF uses 20 on DIV2K).
        cache: 'in_memory' decodes every image once up front; 'none' decodes on access.
        min_size: images whose shorter side is below this are skipped (with a warning).
        first_k: keep only the first ``k`` usable files (sorted), e.g. for quick validation.
        last_k, skip_last_k: keep only / leave out the last ``k`` usable files (a held-out
            split: the same ``k`` images on both sides, however many unreadable or too-small
            files lie among them). Usable means it decodes ('in_memory') or its header reads
            ('none'), and is at least ``min_size`` on its shorter side.
    """

    def __init__(self, root: str | os.PathLike, repeat: int = 1, cache: str = "in_memory",
                 min_size: int = 0, first_k: Optional[int] = None,
                 last_k: Optional[int] = None, skip_last_k: int = 0) -> None:
        files = list_images(root)
        self.repeat = int(repeat)
        self.cache = cache
        self.min_size = min_size
        # the splits count usable images only: walk from the end (last_k / skip_last_k) or
        # the start (first_k) until enough usable ones are found
        probed: Dict[Path, Optional[np.ndarray]] = {}

        def usable(f: Path) -> bool:
            if f not in probed:
                probed[f] = self._probe(f)
            return probed[f] is not None

        def take(seq, k):
            out = []
            for f in seq:
                if len(out) == k:
                    break
                if usable(f):
                    out.append(f)
            return out

        if skip_last_k:
            held = take(reversed(files), int(skip_last_k))
            files = files[:files.index(held[-1])] if held else files
        if last_k is not None:
            files = take(reversed(files), int(last_k))[::-1]
        if first_k is not None:
            files = take(files, int(first_k))
        self.files: List[Path] = []
        self.images: List[np.ndarray] = []
        self.failed: set = set()  #: files that failed when read (cache 'none'), warned once
        for f in files:
            if not usable(f):
                continue
            self.files.append(f)
            if cache == "in_memory":
                self.images.append(probed[f])
            probed[f] = None  # the list holds it now
        if not self.files:
            raise ValueError(f"no usable images in {root}")

    def _probe(self, f: Path) -> Optional[np.ndarray]:
        """The decoded image (in_memory cache) or an empty marker if ``f`` is usable (decodes,
        shorter side at least ``min_size``); None, with a warning naming it, if not."""
        try:
            if self.cache == "in_memory":
                img = load_uint8(f)
                size = img.shape[:2]
            else:  # the header, read and checked as load_image will (JPEG XL included)
                w, h = image_size(f)
                if w * h > MAX_PIXELS:
                    raise ImageError(f"{f}: {w}x{h} is above the limit of "
                                     f"{MAX_PIXELS / 1e6:.0f} Mpx")
                size = (h, w)
                img = np.empty(0, np.uint8)
        except (ImageError, OSError) as exc:
            log.warning("skipping unreadable image %s: %s", f, exc)
            return None
        if min(size) < self.min_size:
            log.warning("skipping %s: %dx%d is smaller than %d px", f, size[1], size[0],
                        self.min_size)
            return None
        return img

    def __len__(self) -> int:
        return len(self.files) * self.repeat

    def __getitem__(self, i: int) -> np.ndarray:
        j = i % len(self.files)
        if self.cache == "in_memory":
            return self.images[j]
        # a file whose header read but whose pixels do not (cut short since, say) gives way
        # to the next one, the same one every time: the run goes on and resumes exactly
        for k in range(len(self.files)):
            f = self.files[(j + k) % len(self.files)]
            try:
                return load_uint8(f)
            except ImageError as exc:
                if f not in self.failed:
                    self.failed.add(f)
                    log.warning("skipping unreadable image %s: %s", f, exc)
        raise ValueError(f"none of the {len(self.files)} images can be read")


def resize_bicubic_u8(img: np.ndarray, size_hw: Sequence[int]) -> np.ndarray:
    """Antialiased bicubic resize of a uint8 ``(H, W, 3)`` image (Pillow, as LIIF's training)."""
    h, w = int(size_hw[0]), int(size_hw[1])
    return np.asarray(Image.fromarray(img).resize((w, h), Image.BICUBIC))


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` -> float ``(3, H, W)`` in [0, 1]."""
    return (
        torch.from_numpy(np.require(img, requirements=["C", "W"])).permute(2, 0, 1).float() / 255.0
    )


def pixel_centres(h: int, w: int) -> torch.Tensor:
    """Normalised (y, x) centres of an ``h x w`` grid, ``(h*w, 2)``: ``-1 + (2i+1)/h``."""
    ys = -1 + (2 * torch.arange(h, dtype=torch.float32) + 1) / h
    xs = -1 + (2 * torch.arange(w, dtype=torch.float32) + 1) / w
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1).view(-1, 2)


class ImplicitDownsampled(Dataset):
    """LIIF's training sampler.

    For sample ``i``: draw a scale ``s ~ U(scale_min, scale_max)``; take a random HR crop of
    ``round(inp_size * s)`` pixels; with ``augment``, flip it horizontally, vertically and
    transpose it, each with probability 1/2; downsample it to ``inp_size x inp_size`` with
    antialiased bicubic (the LR input) or, with ``degrade``, through that
    :class:`training.degrade.Degradation` (blur, resize kernel, noise, JPEG; its draws seeded
    by ``(seed, epoch, i)`` too); pick ``sample_q`` HR pixels without replacement. With
    ``detail_share`` ``a > 0``, a share ``a`` of them is drawn with probability proportional to
    the HR crop's detail there (:func:`detail_weights`: Sobel magnitude of the luma, plus a
    floor) and the rest uniformly among the others: a decoder then sees the strong edges, where
    it loses most to its teacher, several times as often (bench/gap_where.py).

    Returns a dict: ``inp (3, n, n)`` in [0, 1]; ``coord (q, 2)`` normalised (y, x) centres of
    the picked pixels in the HR crop; ``cell (q, 2)`` = ``2 / crop size``; ``gt (q, 3)``.
    With ``inp_size=None`` (evaluation) the whole image is used at a fixed ``scale_min``.
    """

    def __init__(self, dataset: Dataset, inp_size: Optional[int] = 48, scale_min: float = 1.0,
                 scale_max: Optional[float] = None, augment: bool = False,
                 sample_q: Optional[int] = None, seed: int = 0,
                 degrade: Optional[Degradation] = None, detail_share: float = 0.0) -> None:
        if not 0.0 <= detail_share <= 1.0:
            raise ValueError(f"detail_share must be in [0, 1], got {detail_share}")
        self.dataset = dataset
        self.detail_share = float(detail_share)
        self.degrade = degrade
        self.inp_size = inp_size
        self.scale_min = scale_min
        self.scale_max = scale_max if scale_max is not None else scale_min
        self.augment = augment
        self.sample_q = sample_q
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def _generator(self, i: int) -> torch.Generator:
        g = torch.Generator()
        g.manual_seed((self.seed * 1_000_003 + self.epoch) * 10_000_019 + i)
        return g

    def __getitem__(self, i: int) -> Dict[str, torch.Tensor]:
        g = self._generator(i)
        img = self.dataset[i]
        u = torch.rand(6, generator=g).tolist()
        s = self.scale_min + u[0] * (self.scale_max - self.scale_min)
        if self.inp_size is None:
            h_lr = math.floor(img.shape[0] / s + 1e-9)
            w_lr = math.floor(img.shape[1] / s + 1e-9)
            crop = img[:round(h_lr * s), :round(w_lr * s)]
            lr = resize_bicubic_u8(crop, (h_lr, w_lr))
        else:
            n = self.inp_size
            side = round(n * s)
            y0 = int(u[1] * (img.shape[0] - side + 1))
            x0 = int(u[2] * (img.shape[1] - side + 1))
            crop = img[y0:y0 + side, x0:x0 + side]
            if self.augment:
                if u[3] < 0.5:
                    crop = crop[:, ::-1]
                if u[4] < 0.5:
                    crop = crop[::-1, :]
                if u[5] < 0.5:
                    crop = crop.transpose(1, 0, 2)
            crop = np.ascontiguousarray(crop)
            if self.degrade is not None:
                lr = self.degrade(crop, (n, n), seeded_rng(self.seed, self.epoch, i))
            else:
                lr = resize_bicubic_u8(crop, (n, n))
        hr = to_tensor(crop)
        coord = pixel_centres(hr.shape[1], hr.shape[2])
        rgb = hr.permute(1, 2, 0).reshape(-1, 3)
        if self.sample_q is not None:
            pick = self._pick(hr, g)
            coord, rgb = coord[pick], rgb[pick]
        cell = torch.tensor([2.0 / hr.shape[1], 2.0 / hr.shape[2]]).expand(len(coord), 2).clone()
        return {"inp": to_tensor(lr), "coord": coord, "cell": cell, "gt": rgb}


    def _pick(self, hr: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """``sample_q`` distinct pixel indices of the HR crop ``(3, H, W)``."""
        n = hr.shape[1] * hr.shape[2]
        q = min(self.sample_q, n)
        k = round(q * self.detail_share)
        if k == 0:
            return torch.randperm(n, generator=g)[:q]
        w = detail_weights(hr).flatten()
        chosen = torch.multinomial(w, k, replacement=False, generator=g)
        rest = torch.ones(n, dtype=torch.float64)
        rest[chosen] = 0.0
        if q == k:
            return chosen
        return torch.cat([chosen, torch.multinomial(rest, q - k, replacement=False, generator=g)])


def detail_weights(hr: torch.Tensor, floor: float = 0.02) -> torch.Tensor:
    """Sampling weights ``(H, W)`` of an image ``(3, H, W)`` in [0, 1]: the Sobel gradient
    magnitude of its BT.601 luma (edges replicated) plus ``floor``, so flat areas keep a
    small chance."""
    y = (hr.double() * hr.new_tensor([0.299, 0.587, 0.114], dtype=torch.float64)[:, None, None]
         ).sum(0)
    p = F.pad(y[None, None], (1, 1, 1, 1), mode="replicate")[0, 0]
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    return torch.sqrt(gx * gx + gy * gy) + floor


class EpochSampler(torch.utils.data.Sampler):
    """A permutation of ``range(n)`` per epoch, seeded by ``(seed, epoch)``, sharded over
    ``world`` ranks (rank ``r`` takes positions ``r, r + world, ...`` of the permutation, the
    total padded to a multiple of ``world``), starting at position ``start`` of the shard
    (for resuming mid-epoch)."""

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world: int = 1) -> None:
        self.n, self.seed, self.rank, self.world = n, seed, rank, world
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def _shard(self) -> List[int]:
        g = torch.Generator()
        g.manual_seed(self.seed * 7919 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        per = -(-self.n // self.world)
        perm += perm[:per * self.world - self.n]
        return perm[self.rank::self.world]

    def __iter__(self):
        return iter(self._shard()[self.start:])

    def __len__(self) -> int:
        return -(-self.n // self.world) - self.start


class PairedFolder:
    """A benchmark folder with ``HR/`` and optional ``LR_bicubic/X{s}/`` (names ``NAMEx{s}``)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        hr = self.root / "HR"
        self.hr_dir = hr if hr.is_dir() else self.root
        self.hr_files = list_images(self.hr_dir)
        if not self.hr_files:
            raise ValueError(f"no images in {self.hr_dir}")

    @property
    def name(self) -> str:
        return self.root.name

    def lr_path(self, hr: Path, scale: int) -> Optional[Path]:
        d = self.root / "LR_bicubic" / f"X{scale}"
        for ext in (hr.suffix, ".png"):
            p = d / f"{hr.stem}x{scale}{ext}"
            if p.is_file():
                return p
        return None
