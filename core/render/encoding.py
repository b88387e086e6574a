"""Encoding an image once into its latent map, tile by tile and only where needed.

The encoder is a stack of 3x3 convolutions, so latent code ``(i, j)`` depends only on input
pixels within ``R = model.receptive_radius`` of it. :class:`LatentImage` splits the latent
map into ``tile x tile`` tiles. Missing tiles are encoded together in blocks of up to
``max_block`` pixels a side, each from the input cropped to the block plus a halo of ``R``
pixels (clipped at the image border, where the encoder's own zero padding applies, as in an
untiled pass), so the halo is paid once per block. The result equals the untiled encoding up
to floating-point rounding. Tiles are encoded lazily, the first time a render reads them
(or when the viewer asks for a whole view's worth ahead of rendering it), and kept on the
compute device in a cache bounded by ``budget_bytes`` (the device profile's budget,
:mod:`core.profile`: a share of the machine's memory, or of the GPU's free memory): beyond it
the least recently used tiles are dropped and encoded again if a render needs them, so memory is
bounded by the budget, not by the image; the encoder's working memory is bounded by
``max_block``.
"""
from __future__ import annotations

import collections
import contextlib
import math
import threading
from typing import Callable, ContextManager, Dict, List, Optional, Tuple

import numpy as np
import torch

from core.device import autocast_to, device_lock
from core.geometry import Box, Region
from core.io.pixels import to_float
from core.lru import LRUCache

__all__ = [
    "LatentImage",
    "Cancelled",
    "encode",
    "to_input_tensor",
]

def to_input_tensor(rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    """``(H, W, 3)`` image (uint8, uint16 or float in [0, 1]: :mod:`core.io.pixels`) ->
    normalised ``(1, 3, H, W)`` float32 tensor ``(x-0.5)/0.5``."""
    t = torch.from_numpy(to_float(rgb)).permute(2, 0, 1)
    return ((t - 0.5) / 0.5).unsqueeze(0).to(device)


#: the widest block of latent pixels one encoder pass covers by default
MAX_BLOCK = 512

class LatentImage:
    """The latent map of one image under one model, encoded lazily in tiles.

    Args:
        model: a LIIF-family model (``encode``, ``receptive_radius``, ``latent_dim``).
        rgb: the image, ``(H, W, 3)`` uint8, uint16 or float32 in [0, 1] (:mod:`core.io.pixels`;
            converted a tile at a time).
        device: where the latent lives and rendering runs.
        tile: latent tile side in pixels.
        dtype: storage type of the latent (``torch.float16`` halves its memory).
        compute_dtype: arithmetic type of the encoder and of the code features
            (``torch.bfloat16`` runs them under autocast, twice as fast on CPUs that multiply it
            natively: the device profile's ``compute_dtype``, :mod:`core.profile`); the models
            keep the code features' outputs in float32, and the stored latent (with LMF's input
            colours, never rounded) and the per-pixel decoder stay float32.
        max_block: most pixels per side that one encoder pass covers (bounds the encoder's
            working memory; several missing tiles are encoded together up to this size).
        feature_cache_bytes: bound of the cache of per-code features (see :meth:`code_features`).
        budget_bytes: bound of the encoded tiles kept (least recently used dropped first, and
            encoded again when read); None keeps every tile.
        chunk: ``(most output pixels, longest side)`` a render of this latent evaluates at
            once (the device profile's; None: :data:`core.profile.CPU_CHUNK`).
    """

    def __init__(self, model: torch.nn.Module, rgb: np.ndarray, device: torch.device,
                 tile: int = 64, dtype: torch.dtype = torch.float32,
                 max_block: int = MAX_BLOCK, feature_cache_bytes: int = 256 << 20,
                 compute_dtype: torch.dtype = torch.float32,
                 budget_bytes: Optional[int] = None,
                 chunk: Optional[Tuple[int, int]] = None) -> None:
        self.model = model
        self.chunk = chunk
        self.budget = budget_bytes
        self._bytes = 0  # of the tiles kept
        self.evicted = 0  # tiles dropped for the budget (they are encoded again when read)
        self.device = torch.device(device)
        self.height, self.width = int(rgb.shape[0]), int(rgb.shape[1])
        self.tile = int(tile)
        self.dtype = dtype
        self.compute_dtype = compute_dtype
        self.channels = int(model.latent_dim)
        self.halo = int(model.receptive_radius)
        # The image stays on the host as it is (no normalised copy of the whole image: that
        # would double its memory); each block's crop is normalised and moved to the device
        # when it is encoded.
        self._rgb = rgb
        # encoded tiles, least recently used first
        self._tiles: "collections.OrderedDict[Tuple[int, int], torch.Tensor]" = \
            collections.OrderedDict()
        self._pending: Dict[Tuple[int, int], threading.Event] = {}  # tiles being encoded
        self._features = LRUCache(int(feature_cache_bytes))  # (ty, tx) -> features
        self._lock = threading.RLock()
        self.tiles_y = -(-self.height // self.tile)
        self.tiles_x = -(-self.width // self.tile)
        self.group = max(1, int(max_block) // self.tile)

    # ---- encoding ----------------------------------------------------------------------------
    def computing(self) -> ContextManager:
        """The context the model's encoder and code features run in (no gradients; autocast
        to :attr:`compute_dtype` unless that is float32)."""
        stack = contextlib.ExitStack()
        stack.enter_context(torch.no_grad())
        stack.enter_context(autocast_to(self.device, self.compute_dtype))
        return stack

    def features_of(self, window: torch.Tensor, stride=(1, 1)) -> torch.Tensor:
        """``model.code_features`` of a window of this latent ``(C, H, W)`` (with its halo),
        float32 ``(K, H', W')``."""
        with device_lock(self.device), self.computing():
            return self.model.code_features(window.unsqueeze(0), stride=stride)[0].float()

    @property
    def n_tiles(self) -> int:
        return self.tiles_y * self.tiles_x

    @property
    def n_encoded(self) -> int:
        return len(self._tiles)

    @property
    def encoded_fraction(self) -> float:
        """The share of the image's latent pixels encoded (tiles at the edges are smaller):
        progress is counted in pixels everywhere (encoding, rendering, exporting)."""
        return self._bytes / max(1, self.height * self.width * self.code_bytes)

    def _keep(self, key: Tuple[int, int], block: torch.Tensor) -> None:
        """Store an encoded tile (under the lock), dropping the least recently used ones
        beyond the budget (never the one just stored)."""
        if key in self._tiles:
            return
        self._tiles[key] = block
        self._bytes += block.numel() * block.element_size()
        while self.budget is not None and self._bytes > self.budget and len(self._tiles) > 1:
            _, old = self._tiles.popitem(last=False)
            self._bytes -= old.numel() * old.element_size()
            self.evicted += 1

    def _tile(self, ty: int, tx: int,
              cancelled: Optional[Callable[[], bool]] = None) -> torch.Tensor:
        """Encoded tile ``(ty, tx)``, encoding it (again) if it is not kept (another thread may
        drop it between the encoding and the read: then it is encoded once more)."""
        while True:
            with self._lock:
                t = self._tiles.get((ty, tx))
                if t is not None:
                    self._tiles.move_to_end((ty, tx))
                    return t
            self.ensure(Box(tx, ty, tx + 1, ty + 1), cancelled)

    def _encode_block(self, tiles: Box) -> None:
        """Encode ``tiles`` (a box of tile indices) in one pass: their pixels plus a halo of
        ``R`` (clipped at the image border), then cut into tiles; keeps the missing ones."""
        tx0, ty0, tx1, ty1 = tiles
        t, r = self.tile, self.halo
        y0, x0 = ty0 * t, tx0 * t
        y1, x1 = min(ty1 * t, self.height), min(tx1 * t, self.width)
        cy0, cx0 = max(0, y0 - r), max(0, x0 - r)
        cy1, cx1 = min(self.height, y1 + r), min(self.width, x1 + r)
        with device_lock(self.device), self.computing():
            crop = to_input_tensor(self._rgb[cy0:cy1, cx0:cx1], self.device)
            feat = self.model.encode(crop)[0].to(self.dtype)
        for ty in range(ty0, ty1):
            for tx in range(tx0, tx1):
                a, b = ty * t - cy0, tx * t - cx0
                block = feat[:, a:a + t, b:b + t].contiguous()  # clipped at the image edge
                with self._lock:
                    self._keep((ty, tx), block)

    def _missing(self, tiles: Box) -> List[Tuple[int, int]]:
        tx0, ty0, tx1, ty1 = tiles
        return [(ty, tx) for ty in range(max(0, ty0), min(ty1, self.tiles_y))
                for tx in range(max(0, tx0), min(tx1, self.tiles_x)) if (ty, tx) not in self._tiles]

    def ensure(self, tiles: Box, cancelled: Optional[Callable[[], bool]] = None) -> None:
        """Encode the tiles of ``tiles`` (a box of tile indices: columns ``tx``, rows ``ty``)
        that are not encoded yet.

        Missing tiles are encoded in blocks of at most ``group x group`` tiles (counted from
        ``(ty0, tx0)``), one encoder pass per block (the halo is paid once per block, not
        once per tile); ``cancelled`` is polled between blocks. Thread-safe: tiles another
        thread is encoding are waited for, not encoded twice. Under a budget smaller than the
        span, tiles encoded here may be dropped again before it returns: readers use
        :meth:`_tile`, which encodes what is missing."""
        g = self.group
        done_here: set = set()
        tx0, ty0, tx1, ty1 = tiles
        ty0, ty1 = max(0, ty0), min(ty1, self.tiles_y)
        tx0, tx1 = max(0, tx0), min(tx1, self.tiles_x)
        for by in range(ty0, ty1, g):
            for bx in range(tx0, tx1, g):
                span = Box(bx, by, min(tx1, bx + g), min(ty1, by + g))
                while True:
                    if cancelled is not None and cancelled():
                        raise Cancelled()
                    with self._lock:
                        miss = [m for m in self._missing(span) if m not in done_here]
                        if not miss:
                            break
                        free = [m for m in miss if m not in self._pending]
                        if free:
                            ys, xs = [m[0] for m in free], [m[1] for m in free]
                            block = Box(min(xs), min(ys), max(xs) + 1, max(ys) + 1)
                            mine = [m for m in self._missing(block) if m not in self._pending]
                            done = threading.Event()
                            for m in mine:
                                self._pending[m] = done
                        else:
                            other = self._pending[miss[0]]
                            theirs = [m for m in miss if self._pending.get(m) is other]
                    if not free:  # another thread is encoding them
                        if other.wait(0.05):  # done (they may be dropped again already)
                            done_here.update(theirs)
                        continue
                    try:
                        self._encode_block(block)
                        done_here.update(mine)
                    finally:
                        with self._lock:
                            for m in mine:
                                self._pending.pop(m, None)
                        done.set()

    def is_encoded(self, box: Box) -> bool:
        """Whether every tile holding a code of ``box`` (latent pixels) is encoded."""
        with self._lock:
            return not self._missing(self.tile_span(box))

    def ensure_region(self, region: Region,
                      cancelled: Optional[Callable[[], bool]] = None) -> None:
        """Encode every tile holding a latent code of ``region`` (source pixels, clipped to
        the image)."""
        box = Box(math.floor(region.x), math.floor(region.y), math.ceil(region.x + region.w),
                  math.ceil(region.y + region.h))
        self.ensure(self.tile_span(box), cancelled)

    def _blocks(self) -> List[Tuple[int, int]]:
        """First tiles ``(ty, tx)`` of the image's blocks of ``group x group`` tiles,
        row-major."""
        g = self.group
        return [(ty, tx) for ty in range(0, self.tiles_y, g) for tx in range(0, self.tiles_x, g)]

    def encode_all(self, progress: Optional[Callable[[int, int], None]] = None,
                   cancelled: Optional[Callable[[], bool]] = None) -> None:
        """Encode every tile (``progress(pixels_done, pixels_total)`` after each block)."""
        g = self.group
        for ty, tx in self._blocks():
            self.ensure(Box(tx, ty, tx + g, ty + g), cancelled)
            if progress is not None:
                total = self.height * self.width
                progress(round(self.encoded_fraction * total), total)

    @property
    def at_budget(self) -> bool:
        """Background encoding has stopped at the budget: the rest is encoded where a
        render needs it (and the least recently used tiles make room)."""
        if self.budget is None:
            return False
        side = self.group * self.tile
        return self._bytes + side * side * self.code_bytes > self.budget

    def encode_next(self, near: Optional[Tuple[float, float]] = None) -> bool:
        """Encode one block that has missing tiles; False if none is left.

        The block is the one whose centre is nearest to ``near = (y, x)`` (latent pixels;
        the centre of the view, so that the codes a pan or zoom shows next are likely
        ready), or the first in row-major order without ``near``."""
        g, side = self.group, self.group * self.tile
        if self.at_budget:  # background encoding stops at the budget
            return False
        with self._lock:
            blocks = [(ty, tx) for ty, tx in self._blocks()
                      if self._missing(Box(tx, ty, tx + g, ty + g))]
        if not blocks:
            return False

        def dist2(b: Tuple[int, int]) -> float:
            y0, x0 = b[0] * self.tile, b[1] * self.tile
            cy = (y0 + min(y0 + side, self.height)) / 2
            cx = (x0 + min(x0 + side, self.width)) / 2
            return (cy - near[0]) ** 2 + (cx - near[1]) ** 2

        ty, tx = blocks[0] if near is None else min(blocks, key=dist2)
        self.ensure(Box(tx, ty, tx + g, ty + g))
        return True

    def tile_span(self, box: Box) -> Box:
        """The box of tile indices holding the latent pixels of ``box`` (clipped to the image;
        empty if nothing is left)."""
        t = self.tile
        y0, y1 = max(0, box.r0), min(self.height, box.r1)
        x0, x1 = max(0, box.c0), min(self.width, box.c1)
        if y1 <= y0 or x1 <= x0:
            return Box(0, 0, 0, 0)
        return Box(x0 // t, y0 // t, (x1 - 1) // t + 1, (y1 - 1) // t + 1)

    # ---- reading -----------------------------------------------------------------------------
    def window(self, box: Box, cancelled: Optional[Callable[[], bool]] = None
               ) -> torch.Tensor:
        """The latent pixels of ``box`` as float32 ``(C, height, width)``; codes outside the
        image are zero (the unfolding's padding)."""
        x0, y0, x1, y1 = box
        out = torch.zeros(self.channels, y1 - y0, x1 - x0, device=self.device)
        tiles = self.tile_span(box)
        self.ensure(tiles, cancelled)
        tx0, ty0, tx1, ty1 = tiles
        t = self.tile
        for ty in range(ty0, ty1):
            for tx in range(tx0, tx1):
                feat = self._tile(ty, tx, cancelled)
                gy0, gx0 = ty * t, tx * t
                sy0, sy1 = max(y0, gy0), min(y1, gy0 + feat.shape[1])
                sx0, sx1 = max(x0, gx0), min(x1, gx0 + feat.shape[2])
                out[:, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = \
                    feat[:, sy0 - gy0:sy1 - gy0, sx0 - gx0:sx1 - gx0]
        return out

    def take(self, rows: torch.Tensor, cols: torch.Tensor,
             cancelled: Optional[Callable[[], bool]] = None) -> torch.Tensor:
        """Latent codes at the grid ``rows x cols`` (1-D integer tensors, any order, values
        outside the image give zeros) as float32 ``(C, len(rows), len(cols))``."""
        out = torch.zeros(self.channels, len(rows), len(cols), device=self.device)
        t = self.tile
        rows_c, cols_c = rows.cpu(), cols.cpu()
        rin = (rows_c >= 0) & (rows_c < self.height)
        cin = (cols_c >= 0) & (cols_c < self.width)
        for ty in torch.unique(rows_c[rin] // t).tolist():
            rsel = torch.nonzero(rin & (rows_c // t == ty)).flatten()
            for tx in torch.unique(cols_c[cin] // t).tolist():
                csel = torch.nonzero(cin & (cols_c // t == tx)).flatten()
                feat = self._tile(ty, tx, cancelled)
                rl = (rows_c[rsel] - ty * t).to(self.device)
                cl = (cols_c[csel] - tx * t).to(self.device)
                block = feat[:, rl][:, :, cl].float()
                out[:, rsel.to(self.device)[:, None], csel.to(self.device)[None, :]] = block
        return out

    def code_features(self, box: Box, cancelled: Optional[Callable[[], bool]] = None
                      ) -> torch.Tensor:
        """The model's code features (``model.code_features``: LIIF's P map, LMF's
        modulations) of the codes of ``box`` (latent pixels, inside the image),
        ``(K, height, width)``.

        Computed per latent tile from the tile and a halo of ``model.window_halo`` codes
        (zeros outside the image, as everywhere), and kept in a small LRU cache
        (``feature_cache_bytes``): the viewer's coarse and full passes, and neighbouring
        render chunks, read the same codes. A tile whose neighbours are not encoded yet is
        not cached: only the codes asked for are computed (so that reading features never
        encodes more of the image than the codes' 3x3 neighbourhoods)."""
        t, halo = self.tile, int(self.model.window_halo)
        x0, y0, x1, y1 = box
        tx0, ty0, tx1, ty1 = self.tile_span(box)
        out = None
        for ty in range(ty0, ty1):
            for tx in range(tx0, tx1):
                gy0, gx0 = ty * t, tx * t
                gy1, gx1 = min(gy0 + t, self.height), min(gx0 + t, self.width)
                sy0, sy1, sx0, sx1 = max(y0, gy0), min(y1, gy1), max(x0, gx0), min(x1, gx1)
                if self.is_encoded(Box(gx0 - halo, gy0 - halo, gx1 + halo, gy1 + halo)):
                    f = self._feature_tile(ty, tx, t, halo, cancelled)[
                        :, sy0 - gy0:sy1 - gy0, sx0 - gx0:sx1 - gx0]
                else:  # its neighbours are not encoded: only what is asked for, not cached
                    win = self.window(Box(sx0 - halo, sy0 - halo, sx1 + halo, sy1 + halo),
                                      cancelled)
                    f = self.features_of(win)
                if out is None:
                    out = torch.empty(f.shape[0], y1 - y0, x1 - x0, device=self.device)
                out[:, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = f
        return out

    def _feature_tile(self, ty: int, tx: int, t: int, halo: int,
                      cancelled: Optional[Callable[[], bool]]) -> torch.Tensor:
        f = self._features.get((ty, tx))
        if f is not None:
            return f
        y0, x0 = ty * t, tx * t
        y1, x1 = min(y0 + t, self.height), min(x0 + t, self.width)
        win = self.window(Box(x0 - halo, y0 - halo, x1 + halo, y1 + halo), cancelled)
        f = self.features_of(win).contiguous()
        self._features.put((ty, tx), f)
        return f

    def full(self) -> torch.Tensor:
        """The whole latent map ``(C, H, W)`` (encodes everything)."""
        return self.window(Box.whole(self.width, self.height))

    @property
    def code_bytes(self) -> int:
        """Bytes one latent code takes as stored (channels times the storage type's size)."""
        return self.channels * torch.empty((), dtype=self.dtype).element_size()

    def nbytes(self) -> int:
        """Bytes of the encoded tiles kept now (at most :attr:`budget` plus one tile)."""
        return self._bytes


class Cancelled(Exception):
    """Raised inside encoding or rendering when the caller's ``cancelled()`` turns true."""


def encode(model: torch.nn.Module, rgb: np.ndarray, device: torch.device,
           tile: int = 64, dtype: torch.dtype = torch.float32, lazy: bool = True,
           max_block: int = MAX_BLOCK, feature_cache_bytes: int = 256 << 20,
           compute_dtype: torch.dtype = torch.float32,
           budget_bytes: Optional[int] = None,
           chunk: Optional[Tuple[int, int]] = None) -> LatentImage:
    """The latent of ``rgb`` under ``model`` on ``device`` (the app goes through
    :meth:`core.profile.DeviceProfile.encode`, which fills in the device's choices).

    With ``lazy`` (the default) nothing is encoded until a render reads it. float32
    arithmetic and storage and no bound on the tiles kept unless given (``budget_bytes``).
    """
    latent = LatentImage(model, rgb, device, tile=tile, dtype=dtype, max_block=max_block,
                         feature_cache_bytes=feature_cache_bytes, compute_dtype=compute_dtype,
                         budget_bytes=budget_bytes, chunk=chunk)
    if not lazy:
        latent.encode_all()
    return latent
