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
        from scipy import optimize  # lazily: only cache models solve for t

        t = optimize.brentq(lambda t: np.sum(-np.expm1(-p * t)) - capacity, 1e-12, 1e15)
    if ttl_per_request is not None:
        t = min(t, ttl_per_request)
    return float(np.sum(p * -np.expm1(-p * t)))


def lru_hit_ratio(keys: int, s: float, capacity: int, ttl_requests: float | None = None,
                  writes_per_read: float = 0.0) -> float:
    """Hit ratio of an LRU of ``capacity`` over Zipf(``s``) keys, with a TTL counted from
    insertion (``ttl_requests`` = TTL x read rate) and invalidating writes (per read).

    Che's approximation when neither is given; otherwise each key's stay is the shortest of
    its LRU lifetime, its TTL and the next write to it (see ``capsim.analytic.components``;
    an approximation, checked against the engine's LRU in the tests).
    """
    if ttl_requests is None and writes_per_read <= 0:
        return che_hit_ratio(keys, s, capacity)
    p = zipf_probabilities(keys, s)

    def per_key(t: float) -> np.ndarray:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            lru = p / np.expm1(p * t) if math.isfinite(t) else np.zeros_like(p)
            kill = lru + p * writes_per_read  # rate at which a stay ends, per request
            safe = np.where(kill > 0, kill, 1.0)
            if ttl_requests is None:
                stay = np.where(kill > 0, 1.0 / safe, np.inf)
            else:
                stay = np.where(kill > 0, -np.expm1(-ttl_requests * kill) / safe, ttl_requests)
            n = p * stay  # hits per stay
            return np.where(np.isinf(n), 1.0, n / (1.0 + n))

    if capacity >= keys or np.sum(per_key(math.inf)) <= capacity:
        t = math.inf
    else:
        from scipy import optimize  # lazily: only cache models solve for t

        t = optimize.brentq(lambda t: np.sum(per_key(t)) - capacity, 1e-12, 1e15, xtol=1e-12,
                            rtol=1e-12)
    return float(np.sum(p * per_key(t)))
