"""Multi-class product-form networks: exact and approximate MVA, and BCMP mixed networks.

Classes share stations but differ in demands, populations and think times (a batch class
next to interactive users, reads next to writes). ``demands[c][k]`` is the service class c
needs at station k per request (visits x mean service time, seconds). Station kinds:

* queueing, one server: FCFS (exponential, class-independent service time), PS or LCFS-PR;
* queueing, ``c`` servers: service rate ``min(j, c) / D`` with j requests present. This is
  the product-form multi-server PS station, and the FCFS one when service times do not
  depend on the class (BCMP); it is solved exactly as a load-dependent station;
* delay (infinite servers): no queueing, the residence time is the demand.

Think times are a delay station of their own (any distribution). Exact results hold for
product-form networks; for others MVA is the usual approximation. This module never imports
SimPy or the engine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from capsim.analytic.queues import erlang_c
from capsim.errors import fail

__all__ = [
    "LATTICE_LIMIT",
    "MixedResult",
    "MultiClassMVA",
    "mixed_network",
    "mva_multiclass",
]

LATTICE_LIMIT = 2_000_000  # population vectors prod(N_c + 1) the exact recursion visits
WORK_LIMIT = 20_000_000  # lattice points x 2^m complement networks (m multi-server stations)

Matrix = Mapping[Any, Mapping[Any, float]] | Sequence[Sequence[float]] | np.ndarray
PerClass = Mapping[Any, Any] | Sequence[Any] | np.ndarray
PerStation = Mapping[Any, Any] | Sequence[Any] | np.ndarray


# ------------------------------------------------------------------------------------ results


def _rows(a: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in a)


def _vec(a: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in a)


@dataclass(frozen=True)
class MultiClassMVA:
    """A closed multi-class network at populations ``N``; per-class values are per request.

    Tables are indexed ``[class][station]`` in the order of ``classes`` and ``stations``
    (the mapping keys, or indices for arrays). ``response_time`` excludes think time, so
    ``N_c = X_c (R_c + Z_c)``. ``utilization[c][k]`` is ``X_c D_ck / c_k``, the share of the
    station's servers class c keeps busy; at a delay station it is ``X_c D_ck``, the mean
    number of requests in service. A class with ``N_c = 0`` reports zeros. ``exact`` is
    False for the Schweitzer-Bard approximation, whose fixed point took ``iterations``.
    """

    classes: tuple
    stations: tuple
    populations: tuple[int, ...]
    think_times: tuple[float, ...]
    throughput: tuple[float, ...]
    response_time: tuple[float, ...]
    residence_time: tuple[tuple[float, ...], ...]
    queue_length: tuple[tuple[float, ...], ...]
    utilization: tuple[tuple[float, ...], ...]
    total_utilization: tuple[float, ...]
    total_queue_length: tuple[float, ...]
    exact: bool
    iterations: int


@dataclass(frozen=True)
class MixedResult:
    """Open and closed classes sharing stations (BCMP mixed network), per request.

    Open classes run at their offered rate ``open_throughput``; tables are
    ``[class][station]``. ``stable`` is False when the open load alone saturates a queueing
    station (named in ``unstable_stations``): the network then has no steady state, and every
    time and queue length is ``inf`` and every closed throughput 0. ``exact`` is False when
    a multi-server station carries both open and closed load (Seidmann's approximation) or
    the closed part was solved approximately.
    """

    stations: tuple
    open_classes: tuple
    closed_classes: tuple
    stable: bool
    unstable_stations: tuple
    exact: bool
    open_throughput: tuple[float, ...]
    open_response_time: tuple[float, ...]
    open_residence_time: tuple[tuple[float, ...], ...]
    open_queue_length: tuple[tuple[float, ...], ...]
    open_utilization: tuple[tuple[float, ...], ...]
    closed_throughput: tuple[float, ...]
    closed_response_time: tuple[float, ...]
    closed_residence_time: tuple[tuple[float, ...], ...]
    closed_queue_length: tuple[tuple[float, ...], ...]
    closed_utilization: tuple[tuple[float, ...], ...]
    total_utilization: tuple[float, ...]
    total_queue_length: tuple[float, ...]


# ------------------------------------------------------------------------------------- inputs


def _matrix(owner: str, field: str, value: Any) -> tuple[list, list, np.ndarray]:
    """Class names, station names and the (classes x stations) demand array, validated."""
    if isinstance(value, Mapping):
        classes = list(value)
        stations: list = []
        for row in value.values():
            if not isinstance(row, Mapping):
                raise fail(owner, field, "must map each class to a mapping station -> demand",
                           value)
            stations.extend(k for k in row if k not in stations)
        try:
            d = np.array([[float(value[c].get(k, 0.0)) for k in stations] for c in classes],
                         dtype=float).reshape(len(classes), len(stations))
        except (TypeError, ValueError):
            raise fail(owner, field, "must hold numbers", value) from None
    else:
        try:
            d = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise fail(owner, field, "must be a 2-D array of numbers (classes x stations)",
                       value) from None
        if d.ndim != 2:
            raise fail(owner, field, "must be a 2-D array (classes x stations)", value)
        classes, stations = list(range(d.shape[0])), list(range(d.shape[1]))
    if not np.all(np.isfinite(d)) or np.any(d < 0):
        raise fail(owner, field, "must be finite and >= 0", d.tolist())
    return classes, stations, d


def _per(owner: str, field: str, value: Any, names: list, what: str, default: Any = None,
         scalar: bool = False) -> list:
    """One value per class or station: a Mapping by name, a sequence, or (if allowed) a scalar."""
    if value is None:
        return [default] * len(names)
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in names]
        if unknown:
            raise fail(owner, field, f"has unknown keys ({what} names are {names})",
                       list(value))
        if default is None and len(value) < len(names):
            raise fail(owner, field, f"needs a value for every {what} {names}", dict(value))
        return [value.get(k, default) for k in names]
    if scalar and np.ndim(value) == 0:
        return [value] * len(names)
    seq = list(value) if not isinstance(value, np.ndarray) else value.ravel().tolist()
    if len(seq) != len(names):
        raise fail(owner, field, f"needs one value per {what} ({len(names)})", seq)
    return seq


def _populations(owner: str, value: Any, classes: list) -> np.ndarray:
    pops = _per(owner, "populations", value, classes, "class")
    good = all(not isinstance(p, bool) and isinstance(p, (int, float, np.integer, np.floating))
               and math.isfinite(p) and p >= 0 and int(p) == p for p in pops)
    if not good:
        raise fail(owner, "populations", "must be integers >= 0", pops)
    return np.array([int(p) for p in pops], dtype=np.int64)


def _nonneg(owner: str, field: str, value: Any, names: list, what: str,
            scalar: bool = True) -> np.ndarray:
    vals = _per(owner, field, value, names, what, scalar=scalar)
    try:
        a = np.array(vals, dtype=float)
    except (TypeError, ValueError):
        raise fail(owner, field, "must be numbers", vals) from None
    if any(isinstance(v, bool) for v in vals) or not np.all(np.isfinite(a)) or np.any(a < 0):
        raise fail(owner, field, "must be finite numbers >= 0", vals)
    return a


def _stations(owner: str, servers: Any, delay: Any, stations: list
              ) -> tuple[np.ndarray, np.ndarray]:
    srv = _per(owner, "servers", servers, stations, "station", default=1)
    if not all(not isinstance(s, bool) and isinstance(s, (int, float, np.integer, np.floating))
               and math.isfinite(s) and s >= 1 and int(s) == s for s in srv):
        raise fail(owner, "servers", "must be integers >= 1", srv)
    dly = _per(owner, "delay", delay, stations, "station", default=False)
    if not all(isinstance(x, (bool, np.bool_)) for x in dly):
        raise fail(owner, "delay", "must be True (infinite servers) or False per station", dly)
    return np.array([int(s) for s in srv], dtype=np.int64), np.array(dly, dtype=bool)


def _check_bounded(owner: str, d: np.ndarray, n: np.ndarray, z: np.ndarray,
                   classes: list) -> None:
    for i, name in enumerate(classes):
        if n[i] > 0 and z[i] == 0 and not d[i].any():
            raise fail(owner, "demands", f"class {name!r} has no demand and no think time, so "
                       "its throughput is unbounded", d[i].tolist())


# ------------------------------------------------------------------------------ exact solution


def _exact(d: np.ndarray, n: np.ndarray, z: np.ndarray, c: np.ndarray, delay: np.ndarray,
           multi: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Residence times (C x K) and throughputs at population ``n`` (every n_c > 0).

    Population vectors are visited level by level (total population 0, 1, ...); a level's
    vectors only need the level below (``n - e_c``), so each level is one vectorised step and
    only two levels are kept in memory. For a multi-server station k the marginals
    ``p_k(j | n)``, j < c_k, follow ``p_k(j | n) = sum_c X_c(n) D_ck / j * p_k(j-1 | n - e_c)``.
    ``p_k(0 | n) = 1 - sum_{j>=1} p_k(j | n)`` loses all its digits once the station
    saturates, so, as in ``mva.py``, the identity ``p_k(0 | n) = p_k(0 | n - e_c) X_c(n) /
    X^{-k}_c(n)`` (both sides are ``G^{-k}(n) / G(n)``) is used, where ``X^{-k}`` is the
    throughput of the network without station k: all 2^m complement networks are solved
    alongside.
    """
    n_cls, k = d.shape
    m = len(multi)
    subsets = 1 << m
    bits = (np.arange(subsets)[:, None] >> np.arange(m)[None, :]) & 1  # (S, m)
    dd = np.repeat(d[None], subsets, axis=0)  # (S, C, K); absent stations have no demand
    for b, station in enumerate(multi):
        dd[bits[:, b] == 0, :, station] = 0.0
    # a class with no demand left and no think time must sit at a removed station: G^{-k} = 0
    stuck = (z[None, :] == 0) & ~dd.any(axis=2)  # (S, C)
    divisor = np.where(delay, 1.0, c.astype(float))
    cm = c[multi] if m else np.ones(0, dtype=np.int64)
    cmax = int(cm.max()) if m else 1
    j = np.arange(cmax)
    weight = np.maximum(cm[:, None] - 1 - j[None, :], 0).astype(float)  # (m, cmax)
    beyond = j[None, :] >= cm[:, None]  # p_k(j) is kept for j < c_k only
    inv_j = np.zeros(cmax)
    inv_j[1:] = 1.0 / j[1:]

    shape = tuple(int(v) + 1 for v in n)
    coords = np.indices(shape).reshape(n_cls, -1).T  # (L, C), C-order linear index
    strides = np.array([math.prod(shape[i + 1:]) for i in range(n_cls)], dtype=np.int64)
    level = coords.sum(axis=1)
    order = np.argsort(level, kind="stable")
    starts = np.searchsorted(level[order], np.arange(int(n.sum()) + 2))
    pos = np.empty(level.size, dtype=np.int64)  # position of each vector within its level
    pos[order] = np.arange(level.size) - starts[level[order]]

    q = np.zeros((subsets, 1, k))
    p = np.zeros((subsets, 1, m, cmax))
    p[..., 0] = 1.0
    r = np.zeros((subsets, 1, n_cls, k))
    x = np.zeros((subsets, 1, n_cls))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for lvl in range(1, int(n.sum()) + 1):
            pts = order[starts[lvl]:starts[lvl + 1]]
            cn = coords[pts]
            npts = pts.size
            q_new = np.zeros((subsets, npts, k))
            p_new = np.zeros((subsets, npts, m, cmax))
            p0_parent = np.zeros((n_cls, subsets, npts, m))
            r = np.zeros((subsets, npts, n_cls, k))
            x = np.zeros((subsets, npts, n_cls))
            for ci in range(n_cls):
                has = cn[:, ci] > 0
                if not has.any():
                    continue
                parent = pos[np.where(has, pts - strides[ci], 0)]
                qp, pp = q[:, parent], p[:, parent]
                fac = 1.0 + qp
                if m:
                    fac[:, :, multi] += np.sum(weight * pp, axis=3)
                fac[:, :, delay] = 1.0
                rc = dd[:, ci, None, :] * fac / divisor
                rc[:, ~has] = 0.0
                xc = np.where(has, cn[:, ci] / (z[ci] + rc.sum(axis=2)), 0.0)
                q_new += np.where(rc > 0, xc[..., None] * rc, 0.0)
                if m:
                    dm = dd[:, ci][:, multi][:, None, :]
                    xd = np.where(dm > 0, xc[..., None] * dm, 0.0)
                    p_new[..., 1:] += xd[..., None] * pp[..., :-1] * inv_j[1:]
                    p0_parent[ci] = pp[..., 0]
                r[:, :, ci], x[:, :, ci] = rc, xc
            if m:
                p_new[:, :, beyond] = 0.0
                p_new[..., 0] = 1.0  # stations absent from a subset stay empty
                star = np.argmax(cn, axis=1)  # any class with n_c > 0 gives the same ratio
                idx = np.arange(npts)[None, :]
                for b in range(m):
                    s_in = np.nonzero(bits[:, b])[0][:, None]
                    s_out = s_in ^ (1 << b)
                    ratio = (p0_parent[star, s_in, idx, b] * x[s_in, idx, star]
                             / x[s_out, idx, star])
                    gone = ((cn > 0)[None] & stuck[s_out[:, 0]][:, None, :]).any(axis=2)
                    p0 = np.nan_to_num(np.where(gone, 0.0, ratio), nan=0.0, posinf=1.0)
                    p_new[s_in[:, 0], :, b, 0] = np.clip(p0, 0.0, 1.0)  # round-off only
            q, p = q_new, p_new
    return r[-1, 0], x[-1, 0]


def _schweitzer(d: np.ndarray, n: np.ndarray, z: np.ndarray, c: np.ndarray,
                delay: np.ndarray, tol: float = 1e-12, max_iter: int = 100_000
                ) -> tuple[np.ndarray, np.ndarray, int]:
    """Schweitzer-Bard: ``Q_k(N - e_c) ~ Q_k(N) - Q_ck(N) / N_c``, iterated to a fixed point.

    A c-server station becomes Seidmann's pair: a single server of demand ``D / c`` and a
    delay of ``D (c - 1) / c`` (exact at light load and in saturation, a few percent off at
    the knee). The arrival-instant estimate uses the queue of the single-server part.
    """
    divisor = np.where(delay, 1.0, c.astype(float))
    dq = np.where(delay, 0.0, d / divisor)
    dz = d - dq
    nf = n.astype(float)
    total = dq.sum(axis=1, keepdims=True)
    qq = nf[:, None] * np.divide(dq, total, out=np.zeros_like(dq), where=total > 0)
    it = 0
    while it < max_iter:
        it += 1
        seen = qq.sum(axis=0)[None, :] - qq / nf[:, None]
        rq = dq * (1.0 + seen)
        x = nf / (z + rq.sum(axis=1) + dz.sum(axis=1))
        new = x[:, None] * rq
        done = np.max(np.abs(new - qq), initial=0.0) <= tol * max(1.0, float(nf.sum()))
        qq = new
        if done:
            break
    seen = qq.sum(axis=0)[None, :] - qq / nf[:, None]
    r = dq * (1.0 + seen) + dz
    x = nf / (z + r.sum(axis=1))
    return r, x, it


def _solve(owner: str, d: np.ndarray, n: np.ndarray, z: np.ndarray, c: np.ndarray,
           delay: np.ndarray, approximate: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """Residence times (C x K), throughputs and iterations; classes with N_c = 0 get zeros."""
    r = np.zeros(d.shape)
    x = np.zeros(d.shape[0])
    act = n > 0
    if not act.any():
        return r, x, 0
    da, na, za = d[act], n[act], z[act]
    if approximate:
        ra, xa, it = _schweitzer(da, na, za, c, delay)
    else:
        points = math.prod(int(v) + 1 for v in na)
        if points > LATTICE_LIMIT:
            raise fail(owner, "populations", f"need a lattice of prod(N_c + 1) = {points} "
                       f"population vectors for the exact solution, above {LATTICE_LIMIT}; "
                       "pass approximate=True (Schweitzer-Bard)", n.tolist())
        multi = [k for k in range(d.shape[1]) if not delay[k] and c[k] > 1 and da[:, k].any()]
        if points << len(multi) > WORK_LIMIT:
            raise fail(owner, "servers", f"{len(multi)} multi-server stations need "
                       f"2^{len(multi)} complement networks over {points} population vectors, "
                       f"above {WORK_LIMIT}; pass approximate=True (Schweitzer-Bard)",
                       c.tolist())
        ra, xa = _exact(da, na, za, c, delay, multi)
        it = 0
    r[act], x[act] = ra, xa
    return r, x, it


def mva_multiclass(demands: Matrix, populations: PerClass,
                   think_times: PerClass | float = 0.0, servers: PerStation | None = None,
                   delay: PerStation | None = None, *, approximate: bool = False
                   ) -> MultiClassMVA:
    """Exact multi-class MVA (Reiser-Lavenberg) for a closed product-form network.

    ``demands`` is a (classes x stations) array or a mapping class -> {station: demand}
    (missing entries are 0); ``populations``, ``think_times`` (a scalar is shared) and
    ``servers`` / ``delay`` are sequences or mappings by name. With ``n - e_c`` the population
    with one class-c request less, the residence time is ``D_ck (1 + Q_k(n - e_c))`` at a
    single server, ``D_ck`` at a delay station and, at a c-server station::

        R_ck(n) = D_ck / c_k * (1 + Q_k(n - e_c) + sum_{j<c_k-1} (c_k - 1 - j) p_k(j | n - e_c))

    with the marginals ``p_k(j | n)`` kept exactly (load-dependent MVA). The recursion visits
    every population vector below ``N``: a lattice of ``prod(N_c + 1)`` points (times 2^m
    complement networks for m multi-server stations, see ``_exact``). Above
    ``LATTICE_LIMIT`` (2e6) points it refuses; ``approximate=True`` runs Schweitzer-Bard
    approximate MVA instead (Seidmann's transformation for multi-server stations; each
    iteration costs O(classes x stations) whatever N; typically within a few percent;
    ``exact=False``).
    """
    owner = "mva_multiclass"
    classes, stations, d = _matrix(owner, "demands", demands)
    n = _populations(owner, populations, classes)
    z = _nonneg(owner, "think_times", think_times, classes, "class")
    c, dly = _stations(owner, servers, delay, stations)
    _check_bounded(owner, d, n, z, classes)
    r, x, it = _solve(owner, d, n, z, c, dly, approximate)
    return _closed_result(classes, stations, n, z, d, c, dly, r, x, not approximate, it)


def _closed_result(classes, stations, n, z, d, c, dly, r, x, exact, it) -> MultiClassMVA:
    q = x[:, None] * r
    u = x[:, None] * d / np.where(dly, 1.0, c.astype(float))
    return MultiClassMVA(
        classes=tuple(classes),
        stations=tuple(stations),
        populations=tuple(int(v) for v in n),
        think_times=_vec(z),
        throughput=_vec(x),
        response_time=_vec(r.sum(axis=1)),
        residence_time=_rows(r),
        queue_length=_rows(q),
        utilization=_rows(u),
        total_utilization=_vec(u.sum(axis=0)),
        total_queue_length=_vec(q.sum(axis=0)),
        exact=exact,
        iterations=it,
    )


# ------------------------------------------------------------------------------ mixed networks


def _two(owner: str, open_d: Any, closed_d: Any) -> tuple[list, list, list, np.ndarray,
                                                          np.ndarray]:
    """Open and closed demand tables on one list of stations."""
    def parse(field: str, value: Any) -> tuple[list, list | None, np.ndarray | None]:
        if value is None or (not isinstance(value, Mapping) and np.size(value) == 0
                             and np.ndim(value) < 2):
            return [], None, None
        return _matrix(owner, field, value)

    oc, os_, do = parse("demands_open", open_d)
    cc, cs, dc = parse("closed_demands", closed_d)
    if os_ is None and cs is None:
        raise fail(owner, "demands_open", "and closed_demands cannot both be empty", open_d)
    if os_ is None or cs is None:
        stations = cs if os_ is None else os_
    elif isinstance(open_d, Mapping) and isinstance(closed_d, Mapping):
        stations = os_ + [k for k in cs if k not in os_]
        do = np.array([[open_d[o].get(k, 0.0) for k in stations] for o in oc],
                      dtype=float).reshape(len(oc), len(stations))
        dc = np.array([[closed_d[q].get(k, 0.0) for k in stations] for q in cc],
                      dtype=float).reshape(len(cc), len(stations))
    elif isinstance(open_d, Mapping) or isinstance(closed_d, Mapping):
        raise fail(owner, "closed_demands", "must be a mapping when demands_open is one (and "
                   "an array when it is an array)", closed_d)
    elif len(os_) != len(cs):
        raise fail(owner, "closed_demands", f"needs one column per station ({len(os_)}, as "
                   "in demands_open)", dc.tolist())
    else:
        stations = os_
    k = len(stations)
    do = np.zeros((0, k)) if do is None else do
    dc = np.zeros((0, k)) if dc is None else dc
    return oc, cc, stations, do, dc


def mixed_network(open_rates: PerClass, demands_open: Matrix | None,
                  closed_demands: Matrix | None, populations: PerClass,
                  think_times: PerClass | float = 0.0, servers: PerStation | None = None,
                  delay: PerStation | None = None, *, approximate: bool = False
                  ) -> MixedResult:
    """BCMP mixed network by the method of Lazowska et al. (QSP, 1984, ch. 7).

    Open classes alone fix the utilizations ``U_k = sum_o lambda_o D_ok`` (product form:
    closed customers do not change them), so the closed classes see each queueing station
    slowed to ``D_ck / (1 - U_k)`` and are solved by multi-class MVA; an open arrival then
    finds the closed queue ``Q^closed_k`` besides the open one::

        R_ok = D_ok (1 + Q^closed_k) / (1 - U_k)     (delay station: R_ok = D_ok)

    Exact for single-server and delay stations. A c-server station that carries only open
    load is an exact M/M/c (``R_ok = D_ok (1 + C(c, a) / (c - a))``); one with only closed
    load is exact load-dependent MVA. One with both is replaced by Seidmann's pair (a single
    server of demand D/c, then a delay of D (c-1)/c) and the method above applied: an
    approximation, flagged ``exact=False``. ``U_k >= 1`` (per server) at a queueing station
    has no steady state: ``stable=False`` and infinities, not an exception.
    """
    owner = "mixed_network"
    oc, cc, stations, do, dc = _two(owner, demands_open, closed_demands)
    lam = _nonneg(owner, "open_rates", open_rates, oc, "open class", scalar=False)
    n = _populations(owner, populations, cc)
    z = _nonneg(owner, "think_times", think_times, cc, "closed class")
    c, dly = _stations(owner, servers, delay, stations)
    _check_bounded(owner, dc, n, z, cc)
    k = len(stations)
    divisor = np.where(dly, 1.0, c.astype(float))
    u_open_cls = lam[:, None] * do / divisor
    u_open = u_open_cls.sum(axis=0)
    unstable = [stations[i] for i in range(k) if not dly[i] and u_open[i] >= 1.0]
    if unstable:
        inf_o, inf_c = np.full(do.shape, math.inf), np.full(dc.shape, math.inf)
        return MixedResult(
            stations=tuple(stations), open_classes=tuple(oc), closed_classes=tuple(cc),
            stable=False, unstable_stations=tuple(unstable), exact=not approximate,
            open_throughput=_vec(lam), open_response_time=_vec(np.full(len(oc), math.inf)),
            open_residence_time=_rows(inf_o), open_queue_length=_rows(inf_o),
            open_utilization=_rows(u_open_cls),
            closed_throughput=_vec(np.zeros(len(cc))),
            closed_response_time=_vec(np.full(len(cc), math.inf)),
            closed_residence_time=_rows(inf_c), closed_queue_length=_rows(inf_c),
            closed_utilization=_rows(np.zeros(dc.shape)), total_utilization=_vec(u_open),
            total_queue_length=_vec(np.full(k, math.inf)),
        )

    closed_load = ((n[:, None] > 0) & (dc > 0)).any(axis=0) if len(cc) else np.zeros(k, bool)
    multi = ~dly & (c > 1)
    seidmann = multi & closed_load & (u_open > 0)
    # closed sub-network: inflated demands; Seidmann stations split into queue + extra delay
    slow = np.where(dly, 1.0, 1.0 - u_open)
    extra = np.nonzero(seidmann)[0]
    d_aug = np.concatenate([np.where(seidmann, dc / c, dc) / slow,
                            dc[:, extra] * (c[extra] - 1) / c[extra]], axis=1)
    c_aug = np.concatenate([np.where(seidmann, 1, c), np.ones(extra.size, dtype=np.int64)])
    dly_aug = np.concatenate([dly, np.ones(extra.size, dtype=bool)])
    r_aug, x, it = _solve(owner, d_aug, n, z, c_aug, dly_aug, approximate)
    r_c = r_aug[:, :k].copy()
    r_c[:, extra] += r_aug[:, k:]
    q_c = x[:, None] * r_c
    q_closed = q_c.sum(axis=0)
    q_queue = (x[:, None] * r_aug[:, :k]).sum(axis=0)  # Seidmann: closed requests in its queue

    r_o = np.zeros(do.shape)
    approximate_open = False
    for i in range(k):
        col = do[:, i]
        if dly[i]:
            r_o[:, i] = col
        elif c[i] == 1:
            r_o[:, i] = col * (1.0 + q_closed[i]) / (1.0 - u_open[i])
        elif not closed_load[i]:
            a = u_open[i] * c[i]
            r_o[:, i] = col * (1.0 + erlang_c(int(c[i]), a) / (c[i] - a))
        else:
            qi = q_queue[i] if seidmann[i] else q_closed[i]
            r_o[:, i] = (col / c[i] * (1.0 + qi) / (1.0 - u_open[i])
                         + col * (c[i] - 1) / c[i])
            approximate_open = approximate_open or bool(col.any())
    q_o = lam[:, None] * r_o
    u_c = x[:, None] * dc / divisor
    return MixedResult(
        stations=tuple(stations),
        open_classes=tuple(oc),
        closed_classes=tuple(cc),
        stable=True,
        unstable_stations=(),
        exact=not (approximate or seidmann.any() or approximate_open),
        open_throughput=_vec(lam),
        open_response_time=_vec(r_o.sum(axis=1)),
        open_residence_time=_rows(r_o),
        open_queue_length=_rows(q_o),
        open_utilization=_rows(u_open_cls),
        closed_throughput=_vec(x),
        closed_response_time=_vec(r_c.sum(axis=1)),
        closed_residence_time=_rows(r_c),
        closed_queue_length=_rows(q_c),
        closed_utilization=_rows(u_c),
        total_utilization=_vec(u_open + u_c.sum(axis=0)),
        total_queue_length=_vec(q_o.sum(axis=0) + q_closed),
    )

