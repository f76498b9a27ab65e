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
from scipy import special

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


LATTICE_LIMIT = 10  # multi-server stations beyond which the 2^m lattice gives way to convolution


def mva(demands: Mapping[str, float] | Sequence[float], users: int, think_time: float = 0.0,
        servers: Mapping[str, int] | Sequence[int] | None = None) -> MVAResult:
    """Exact MVA for ``users`` customers cycling through the stations and a think delay.

    Residence time at a c-server station (c = 1 gives Reiser-Lavenberg's ``D (1 + Q)``)::

        R_k(n) = D_k / c_k * (1 + Q_k(n-1) + sum_{j<c_k-1} (c_k - 1 - j) p_k(j | n-1))

    with ``p_k(j | n) = X(n) D_k / j * p_k(j-1 | n-1)`` for 1 <= j < c_k. The textbook
    ``p_k(0 | n) = 1 - sum_j p_k(j | n)`` is numerically unstable once a station saturates
    (round-off grows ~e^c per c steps), so ``p_k(0 | n) = p_k(0 | n-1) X(n) / X_-k(n)`` is
    used instead, where ``X_-k`` is the throughput without station k: every complement
    network is solved alongside (2^m networks for m multi-server stations, vectorised).
    Past ``LATTICE_LIMIT`` multi-server stations the same numbers come from a log-space
    convolution (O(stations x users^2)).
    """
    _, d, c = _arrays(demands, servers)
    n_users, z = _check_population(users, think_time)
    multi = [i for i in range(d.size) if c[i] > 1 and d[i] > 0]
    if len(multi) > LATTICE_LIMIT:
        return _mva_convolution(d, c, n_users, z)
    return _mva_lattice(d, c, n_users, z, multi)


def _mva_lattice(d: np.ndarray, c: np.ndarray, n_users: int, z: float,
                 multi: list[int]) -> MVAResult:
    k, m = d.size, len(multi)
    subsets = 1 << m  # bit b set: station multi[b] present; the full network is the last
    present = np.ones((subsets, k), dtype=bool)
    rows, cols, parents = [], [], []
    for s in range(subsets):
        for b, station in enumerate(multi):
            if s >> b & 1:
                rows.append(s)
                cols.append(station)
                parents.append(s ^ (1 << b))
            else:
                present[s, station] = False
    rows_a, cols_a, parents_a = np.array(rows, int), np.array(cols, int), np.array(parents, int)
    dd = np.where(present, d[None, :], 0.0)  # (subsets, k)
    cmax = int(c.max()) if k else 1
    j = np.arange(cmax)
    valid = j[None, :] < c[:, None]  # p_k(j) is kept for j < c_k
    weight = np.where(valid, np.maximum(c[:, None] - 1 - j[None, :], 0), 0).astype(float)
    inv_j = np.zeros(cmax)
    inv_j[1:] = 1.0 / j[1:]
    p = np.zeros((subsets, k, cmax))
    p[:, :, 0] = 1.0
    q = np.zeros((subsets, k))
    r = np.zeros((subsets, k))
    x = np.zeros(subsets)
    xs: list[float] = []
    rs: list[float] = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for n in range(1, n_users + 1):
            r = dd / c * (1.0 + q + np.sum(weight * p, axis=2))
            total = z + r.sum(axis=1)
            x = np.where(total > 0, n / total, math.inf)
            q = x[:, None] * r
            new = np.zeros_like(p)
            new[:, :, 1:] = x[:, None, None] * dd[:, :, None] * inv_j[1:] * p[:, :, :-1]
            new[:, ~valid] = 0.0
            new[:, :, 0] = 1.0
            if rows:
                ratio = np.nan_to_num(x[rows_a] / x[parents_a], nan=0.0)
                new[rows_a, cols_a, 0] = p[rows_a, cols_a, 0] * ratio
            p = new
            xs.append(float(x[-1]))
            rs.append(float(r[-1].sum()))
    return _result(d, c, n_users, z, float(x[-1]) if n_users else 0.0, r[-1], q[-1], xs, rs)


def _result(d, c, n_users, z, x, r, q, xs, rs) -> MVAResult:
    return MVAResult(
        users=n_users,
        think_time=z,
        throughput=x,
        response_time=float(np.sum(r)) if n_users else 0.0,
        residence_time=tuple(float(v) for v in (r if n_users else np.zeros(d.size))),
        queue_length=tuple(float(v) for v in q),
        utilization=tuple(float(v) for v in x * d / c),
        throughput_curve=tuple(xs),
        response_curve=tuple(rs),
    )


def _log_factors(d: float, c: int, n_users: int) -> np.ndarray:
    """log of D^j / prod_{i<=j} min(i, c): one station's product-form factor."""
    j = np.arange(1, n_users + 1)
    if d == 0:
        return np.concatenate([[0.0], np.full(n_users, -np.inf)])
    return np.concatenate([[0.0], np.cumsum(math.log(d) - np.log(np.minimum(j, c)))])


def _log_convolve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(a.size)
    for n in range(a.size):
        out[n] = special.logsumexp(a[: n + 1] + b[n::-1])
    return out


def _mva_convolution(d: np.ndarray, c: np.ndarray, n_users: int, z: float) -> MVAResult:
    """Same results as the MVA lattice from normalising constants G (Buzen), kept in logs.

    ``X(n) = G(n-1) / G(n)``, ``p_k(j | N) = f_k(j) G_-k(N - j) / G(N)``; the complements
    ``G_-k`` come from prefix and suffix convolutions, so no deconvolution (which is unstable).
    """
    j = np.arange(n_users + 1)
    think = j * math.log(z) - special.gammaln(j + 1) if z > 0 else np.where(j == 0, 0.0, -np.inf)
    factors = [_log_factors(float(dk), int(ck), n_users) for dk, ck in zip(d, c, strict=True)]
    prefix = [think]
    for f in factors:
        prefix.append(_log_convolve(prefix[-1], f))
    suffix = [np.where(j == 0, 0.0, -np.inf)]
    for f in reversed(factors):
        suffix.append(_log_convolve(suffix[-1], f))
    suffix.reverse()  # suffix[i] = stations i.. convolved
    log_g = prefix[-1]
    xs = np.exp(log_g[:-1] - log_g[1:]) if n_users else np.zeros(0)
    q = np.zeros(d.size)
    for i, f in enumerate(factors):
        rest = _log_convolve(prefix[i], suffix[i + 1])
        q[i] = float(np.sum(j[1:] * np.exp(f[1:] + rest[n_users - 1::-1] - log_g[n_users])))
    x = float(xs[-1]) if n_users else 0.0
    r = q / x if x > 0 else np.zeros(d.size)
    rs = [n / xn - z for n, xn in zip(range(1, n_users + 1), xs, strict=True)]
    return _result(d, c, n_users, z, x, r, q, list(map(float, xs)), rs)


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
