"""The tile vocabulary shared by the scheduler (what to render), the pane (what to draw) and
the inspector (what to read): one key type, the methods and passes, and the one rule for
which cached layers show a method's tile.

A :class:`TileKey` names a cached screen tile: ``(method, zoom, level, i, j)``, tile ``(i, j)``
of the screen-tile grid at ``zoom`` (grid pixels ``[j T, (j+1) T) x [i T, (i+1) T)``, grid =
source x zoom). ``Method`` (:mod:`core.render.methods`, the one method vocabulary) and ``Level`` are
``str`` enums, so keys print and compare like the
plain tuples they replace.
"""
from __future__ import annotations

from enum import Enum
from typing import List, NamedTuple

from core.render.methods import Method

__all__ = ["Method", "Level", "TileKey", "layers", "keys_for", "methods_needed"]


class Level(str, Enum):
    """A pass of the renderer: ``COARSE`` tiles have 1/COARSE the resolution per axis."""

    COARSE = "coarse"
    FULL = "full"

    def __str__(self) -> str:
        return self.value

    __hash__ = str.__hash__


#: the encoding jobs' method of each model method, and the reverse
ENCODE_FOR = {Method.LIIF: Method.ENCODE, Method.COMPARE: Method.ENCODE_COMPARE}
ENCODED_BY = {e: m for m, e in ENCODE_FOR.items()}

#: the three render passes the status bar times: the bicubic preview, then LIIF's two
PASSES = ("preview", "coarse", "full")


class TileKey(NamedTuple):
    method: Method
    zoom: float
    level: Level
    i: int
    j: int


def layers(method: str) -> List[TileKey]:
    """The cached layers that can show ``method``'s tile, best first, as keys with zoom and
    position left at 0 (use :func:`keys_for`). A model (LIIF, COMPARE): its full pass, its
    coarse pass, then the bicubic preview under it; bicubic and nearest: their own tile."""
    m = Method(method)
    if m.is_model:
        return [TileKey(m, 0.0, Level.FULL, 0, 0), TileKey(m, 0.0, Level.COARSE, 0, 0),
                TileKey(Method.BICUBIC, 0.0, Level.FULL, 0, 0)]
    return [TileKey(m, 0.0, Level.FULL, 0, 0)]


def keys_for(method: str, zoom: float, i: int, j: int) -> List[TileKey]:
    """:func:`layers` of ``method`` for tile ``(i, j)`` at ``zoom``, best first."""
    return [k._replace(zoom=zoom, i=i, j=j) for k in layers(method)]


def methods_needed(shown: List[str]) -> List[Method]:
    """Every method whose tiles the panes showing ``shown`` draw (each method's layers),
    previews first: what the scheduler is asked for."""
    need = {k.method for m in shown for k in layers(m)}
    order = [Method.BICUBIC, Method.NEAREST, Method.LIIF, Method.COMPARE]
    return [m for m in order if m in need]
