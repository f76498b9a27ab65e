"""Key popularity and what an LRU cache makes of it (Che's approximation).

Che, Tung & Wang (2002): an LRU cache of C items under independent requests behaves as if every
key stayed for the same "characteristic time" T after its last request; T solves
sum_i (1 - exp(-p_i T)) = C, and the hit ratio is sum_i p_i (1 - exp(-p_i T)). It is accurate
to a percent or two for Zipf popularity (Fricker, Robert & Roberts 2012), which the tests check
against a simulated LRU.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize


def zipf_probabilities(keys: int, s: float) -> np.ndarray:
    """P(key i) for i = 1..keys, proportional to i**-s (s = 0 is uniform)."""
    w = np.arange(1, keys + 1, dtype=float) ** -s
    return w / w.sum()


def che_hit_ratio(keys: int, s: float, capacity: int, ttl_per_request: float | None = None
                  ) -> float:
    """LRU hit ratio for Zipf(s) over ``keys`` with room for ``capacity`` keys.

    ``ttl_per_request`` (the TTL times the cache's request rate) caps the characteristic
    time: an entry lives at most that long, whichever comes first (an approximation).
    """
    if capacity >= keys and ttl_per_request is None:
        return 1.0
    p = zipf_probabilities(keys, s)
    if capacity >= keys:
        t = math.inf
    else:
        t = optimize.brentq(lambda t: np.sum(-np.expm1(-p * t)) - capacity, 1e-12, 1e15)
    if ttl_per_request is not None:
        t = min(t, ttl_per_request)
    return float(np.sum(p * -np.expm1(-p * t)))
