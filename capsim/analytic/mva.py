"""Closed networks: exact Mean Value Analysis and asymptotic bounds (single chain + think time).

A station is given by its demand ``D_k`` (visits x mean service time, seconds per request) and
its number of servers ``c_k``. Single-server stations use Reiser-Lavenberg MVA; multi-server
stations use load-dependent exact MVA, which tracks the marginal probabilities ``p_k(j | n)``
of ``j`` requests at the station with service rate ``min(j, c_k) / D_k``. Exact for
product-form networks (exponential FCFS service, any think-time distribution); for other
service distributions MVA is the usual approximation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Bounds", "MVAResult", "bounds", "mva"]


def _arrays(demands: Mapping[str, float] | Sequence[float],
            servers: Mapping[str, int] | Sequence[int] | None
            ) -> tuple[list, np.ndarray, np.ndarray]:
    """Names (keys or indices), demands and servers as aligned arrays, validated."""
    if isinstance(demands, Mapping):
        names = list(demands)
        d = np.array([float(demands[k]) for k in names])
        if isinstance(servers, Mapping):
            servers = [servers.get(k, 1) for k in names]
    else:
        d = np.asarray(demands, dtype=float).ravel()
        names = list(range(d.size))
    c = np.ones(d.size, dtype=int) if servers is None else np.asarray(servers).ravel()
    if c.size != d.size:
        raise ValueError(f"servers: need one per station ({d.size}), got {c.size}")
    if not np.all(np.isfinite(d)) or np.any(d < 0):
        raise ValueError(f"demands: must be finite and >= 0, got {d.tolist()}")
    if np.any(c < 1) or not np.all(np.equal(np.mod(c, 1), 0)):
        raise ValueError(f"servers: must be integers >= 1, got {c.tolist()}")
    return names, d, c.astype(int)


def _check_population(users: int, think_time: float) -> tuple[int, float]:
    if isinstance(users, bool) or int(users) != users or users < 0:
        raise ValueError(f"users: must be an integer >= 0, got {users!r}")
    z = float(think_time)
    if not math.isfinite(z) or z < 0:
        raise ValueError(f"think_time: must be finite and >= 0, got {think_time!r}")
    return int(users), z


@dataclass(frozen=True)
class MVAResult:
    """MVA at population ``users``; per-station values are per request (summed over visits).

    ``throughput_curve[n-1]`` and ``response_curve[n-1]`` are X(n), R(n) for n = 1..users:
    the recursion computes them anyway, and they draw the hockey stick.
    """

    users: int
    think_time: float
    throughput: float
    response_time: float
    residence_time: tuple[float, ...]
    queue_length: tuple[float, ...]
    utilization: tuple[float, ...]
    throughput_curve: tuple[float, ...]
    response_curve: tuple[float, ...]


def mva(demands: Mapping[str, float] | Sequence[float], users: int, think_time: float = 0.0,
        servers: Mapping[str, int] | Sequence[int] | None = None) -> MVAResult:
    """Exact MVA for ``users`` customers cycling through the stations and a think delay.

    Residence time at a c-server station (c = 1 gives ``D (1 + Q)``)::

        R_k(n) = D_k / c_k * (1 + Q_k(n-1) + sum_{j<c_k-1} (c_k - 1 - j) p_k(j | n-1))

    ``p_k(j | n) = X(n) D_k / j * p_k(j-1 | n-1)`` for 1 <= j < c_k, and ``p_k(0 | n)`` from
    the utilization identity ``1 - U - sum_j (c-j)/c p_k(j|n)`` (the numerically tamer form
    of ``1 - sum_{j>=1} p_k(j|n)``). Cost O(users x sum c_k), vectorised over stations.
    """
    _, d, c = _arrays(demands, servers)
    n_users, z = _check_population(users, think_time)
    k = d.size
    cmax = int(c.max()) if k else 1
    j = np.arange(cmax)
    valid = j[None, :] < c[:, None]                              # p_k(j) kept for j < c_k
    weight = np.where(valid, np.maximum(c[:, None] - 1 - j[None, :], 0), 0).astype(float)
    share = np.where(valid, (c[:, None] - j[None, :]) / c[:, None], 0.0)
    share[:, 0] = 0.0
    inv_j = np.zeros(cmax)
    inv_j[1:] = 1.0 / j[1:]
    p = np.zeros((k, cmax))
    p[:, 0] = 1.0
    q = np.zeros(k)
    r = np.zeros(k)
    x = 0.0
    xs: list[float] = []
    rs: list[float] = []
    for n in range(1, n_users + 1):
        r = d / c * (1.0 + q + np.sum(weight * p, axis=1))
        total = z + float(r.sum())
        x = n / total if total > 0 else math.inf
        q = x * r
        new = np.zeros_like(p)
        new[:, 1:] = x * d[:, None] * inv_j[None, 1:] * p[:, :-1]
        new[~valid] = 0.0
        new[:, 0] = np.maximum(0.0, 1.0 - x * d / c - np.sum(share * new, axis=1))
        p = new
        xs.append(x)
        rs.append(float(r.sum()))
    util = x * d / c
    return MVAResult(
        users=n_users,
        think_time=z,
        throughput=x,
        response_time=float(r.sum()) if n_users else 0.0,
        residence_time=tuple(float(v) for v in (r if n_users else np.zeros(k))),
        queue_length=tuple(float(v) for v in q),
        utilization=tuple(float(v) for v in util),
        throughput_curve=tuple(xs),
        response_curve=tuple(rs),
    )


@dataclass(frozen=True)
class Bounds:
    """Asymptotic bounds of a closed network (Denning-Buzen / Lazowska et al.).

    ``throughput_upper = min(N / (D + Z), c_b / D_b)``, ``response_lower = max(D, N D_b / c_b -
    Z)`` where ``b`` is the bottleneck (largest ``D_k / c_k``); ``n_star = (D + Z) c_b / D_b`` is
    the population where the two throughput asymptotes cross (the knee of the curve).
    """

    users: int
    think_time: float
    total_demand: float
    bottleneck: str | int
    bottleneck_demand: float  # D_b / c_b: seconds of one server per request at the bottleneck
    throughput_upper: float
    response_lower: float
    n_star: float


def bounds(demands: Mapping[str, float] | Sequence[float], think_time: float, users: int,
           servers: Mapping[str, int] | Sequence[int] | None = None) -> Bounds:
    """Throughput upper bound, response lower bound and knee N*; exact inequalities.

    A c-server station saturates at ``c / D`` requests per second, so its bottleneck demand
    is ``D / c``. With Mapping demands the bottleneck is named by its key, else its index.
    """
    names, d, c = _arrays(demands, servers)
    n, z = _check_population(users, think_time)
    per_server = d / c
    b = int(np.argmax(per_server)) if d.size else 0
    d_max = float(per_server[b]) if d.size else 0.0
    total = float(d.sum())
    cycle = total + z
    x_cap = 1.0 / d_max if d_max > 0 else math.inf
    x_pop = n / cycle if cycle > 0 else math.inf
    return Bounds(
        users=n,
        think_time=z,
        total_demand=total,
        bottleneck=names[b] if names else 0,
        bottleneck_demand=d_max,
        throughput_upper=min(x_pop, x_cap),
        response_lower=max(total, n * d_max - z),
        n_star=cycle / d_max if d_max > 0 else math.inf,
    )
