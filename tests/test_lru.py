"""The shared LRU cache (tiles, latent features, resampling matrices)."""
import numpy as np

from core.lru import LRUCache


def test_evicts_least_recently_used_beyond_the_bound():
    c = LRUCache(300)
    for k in "abc":
        c.put(k, np.zeros(100, np.uint8))
    assert c.total == 300 and len(c) == 3
    assert c.get("a") is not None  # a is now the most recent
    c.put("d", np.zeros(100, np.uint8))
    assert "b" not in c and all(k in c for k in "acd") and c.total == 300
    c.put("a", np.zeros(50, np.uint8))  # replacing a value updates the total
    assert c.total == 250
    c.put("e", np.zeros(1000, np.uint8))  # larger than the bound: kept alone
    assert len(c) == 1 and "e" in c and c.total == 1000
    c.clear()
    assert len(c) == 0 and c.total == 0 and c.get("e") is None


def test_custom_size_counts_entries():
    c = LRUCache(2, size=lambda v: 1)
    for k in range(3):
        c.put(k, (k,))
    assert 0 not in c and c.get(2) == (2,)
