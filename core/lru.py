"""A thread-safe LRU cache bounded by the total size of its values.

Used for the viewer's rendered tiles, the latent's per-code features and the bicubic
resampling matrices: one mechanism, three bounds.
"""
from __future__ import annotations

import collections
import threading
from typing import Any, Callable, Hashable, Optional

__all__ = ["LRUCache", "nbytes"]


def nbytes(value: Any) -> int:
    """Bytes held by a numpy array or torch tensor."""
    return int(value.nbytes)


class LRUCache:
    """Maps keys to values, evicting the least recently used once the values' total
    ``size`` exceeds ``max_size`` (the newest entry is always kept).

    Args:
        max_size: bound of the total size.
        size: size of one value (default: its bytes, see :func:`nbytes`).
    """

    def __init__(self, max_size: float, size: Callable[[Any], int] = nbytes) -> None:
        self.max_size = max_size
        self._size = size
        self._d: "collections.OrderedDict[Hashable, Any]" = collections.OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Optional[Any]:
        with self._lock:
            v = self._d.get(key)
            if v is not None:
                self._d.move_to_end(key)
            return v

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._d

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            old = self._d.pop(key, None)
            if old is not None:
                self._total -= self._size(old)
            self._d[key] = value
            self._total += self._size(value)
            while self._total > self.max_size and len(self._d) > 1:
                _, v = self._d.popitem(last=False)
                self._total -= self._size(v)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()
            self._total = 0

    def drop(self, which: Callable[[Hashable], bool]) -> None:
        """Remove the entries whose key ``which`` selects."""
        with self._lock:
            for k in [k for k in self._d if which(k)]:
                self._total -= self._size(self._d.pop(k))

    @property
    def total(self) -> int:
        """The values' total size (bytes, with the default ``size``)."""
        return self._total

    def __len__(self) -> int:
        return len(self._d)
