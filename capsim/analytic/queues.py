"""Single-station queueing formulas: plain floats in, plain floats (or small records) out.

Rates are per second, times in seconds. A station with offered load ``rho >= 1`` and an
unbounded queue has no steady state: its means are ``inf`` and ``stable`` is False, never a
finite (or negative) number that a formula would give outside its domain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

__all__ = [
    "MMcKResult",
    "MMcResult",
    "departure_scv",
    "erlang_b",
    "erlang_c",
    "ggc_wait",
    "mg1_wait",
    "mmc",
    "mmc_response_quantile",
    "mmck",
    "mmck_probabilities",
]

INF = math.inf


def _check(name: str, value: float, *, positive: bool = False) -> float:
    x = float(value)
    if not math.isfinite(x) or x < 0 or (positive and x == 0):
        raise ValueError(f"{name}: must be a finite number {'> 0' if positive else '>= 0'}, "
                         f"got {value!r}")
    return x


def _check_servers(servers: int) -> int:
    if isinstance(servers, bool) or int(servers) != servers or servers < 1:
        raise ValueError(f"servers: must be an integer >= 1, got {servers!r}")
    return int(servers)


def erlang_b(servers: int, offered_erlangs: float) -> float:
    """Blocking probability of M/M/c/c (Erlang B), by the stable recursion B_k = aB/(k + aB).

    The recursion never forms a^c or c!, so it holds for thousands of servers.
    Exact (and insensitive to the service distribution).
    """
    c = _check_servers(servers)
    a = _check("offered_erlangs", offered_erlangs)
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(servers: int, offered_erlangs: float) -> float:
    """Probability that an arrival waits in M/M/c (Erlang C), from Erlang B.

    ``C = c B / (c - a (1 - B))``; exact for M/M/c. It is 1 when ``a >= c`` (no steady
    state: every arrival eventually waits). For c = 1 it equals the utilization.
    """
    c = _check_servers(servers)
    a = _check("offered_erlangs", offered_erlangs)
    if a >= c:
        return 1.0
    b = erlang_b(c, a)
    return min(1.0, c * b / (c - a * (1.0 - b)))


@dataclass(frozen=True)
class MMcResult:
    """Steady-state means of one M/M/c station (per visit; queue = waiting, not in service)."""

    utilization: float
    p_wait: float
    mean_wait: float
    mean_response: float
    mean_queue_length: float
    mean_in_system: float
    stable: bool


def mmc(arrival_rate: float, mean_service: float, servers: int) -> MMcResult:
    """M/M/c FCFS means via Erlang C: ``Wq = C / (c mu - lambda)``; exact.

    Unstable (``rho >= 1``): ``stable=False``, utilization 1 (servers never idle) and ``inf``
    means.
    """
    c = _check_servers(servers)
    lam = _check("arrival_rate", arrival_rate)
    s = _check("mean_service", mean_service, positive=True)
    a = lam * s
    rho = a / c
    if rho >= 1.0:
        return MMcResult(1.0, 1.0, INF, INF, INF, INF, False)
    p_wait = erlang_c(c, a)
    wq = p_wait * s / (c - a)  # = C / (c mu - lambda)
    return MMcResult(rho, p_wait, wq, wq + s, lam * wq, lam * (wq + s), True)


def _hypoexp_sf(t: float, r1: float, r2: float) -> float:
    """P(X + Y > t) for independent Exp(r1), Exp(r2)."""
    if math.isclose(r1, r2, rel_tol=1e-9):
        return (1.0 + r1 * t) * math.exp(-r1 * t)
    return (r1 * math.exp(-r2 * t) - r2 * math.exp(-r1 * t)) / (r1 - r2)


def mmc_response_quantile(q: float, arrival_rate: float, mean_service: float,
                          servers: int) -> float:
    """Exact ``q``-quantile of the M/M/c FCFS sojourn time (wait + service).

    The wait is 0 with probability ``1 - C`` and Exp(c mu - lambda) with probability ``C``,
    independent of the Exp(mu) service; for c = 1 the sojourn is Exp(mu - lambda) in closed
    form, otherwise the CDF is inverted numerically (brentq). ``inf`` when unstable.
    """
    if not 0.0 <= q < 1.0:
        raise ValueError(f"q: must be in [0, 1), got {q!r}")
    c = _check_servers(servers)
    lam = _check("arrival_rate", arrival_rate)
    s = _check("mean_service", mean_service, positive=True)
    mu = 1.0 / s
    if lam * s >= c:
        return INF
    if q == 0.0:
        return 0.0
    if c == 1:
        return -math.log1p(-q) / (mu - lam)
    p_wait = erlang_c(c, lam * s)
    theta = c * mu - lam

    def excess(t: float) -> float:  # P(T > t) - (1 - q), decreasing in t
        sf = (1.0 - p_wait) * math.exp(-mu * t) + p_wait * _hypoexp_sf(t, theta, mu)
        return sf - (1.0 - q)

    hi = -math.log1p(-q) * (1.0 / mu + 1.0 / theta) + s
    while excess(hi) > 0:
        hi *= 2.0
    return optimize.brentq(excess, 0.0, hi, xtol=1e-14 * hi, rtol=1e-12)


def mg1_wait(arrival_rate: float, mean_service: float, scv_service: float) -> float:
    """M/G/1 mean wait in queue (Pollaczek-Khinchine): ``rho S (1 + cs2) / (2 (1 - rho))``.

    Exact for Poisson arrivals and any service distribution with that mean and scv
    (M/D/1: ``rho S / (2 (1 - rho))``). ``inf`` when ``rho >= 1``.
    """
    lam = _check("arrival_rate", arrival_rate)
    s = _check("mean_service", mean_service, positive=True)
    cs2 = _check("scv_service", scv_service)
    rho = lam * s
    if rho >= 1.0:
        return INF
    return rho * s * (1.0 + cs2) / (2.0 * (1.0 - rho))


def ggc_wait(arrival_rate: float, mean_service: float, servers: int,
             scv_arrival: float, scv_service: float) -> float:
    """G/G/c mean wait, Allen-Cunneen: ``C(c, a) / (c mu - lambda) * (ca2 + cs2) / 2``.

    An approximation, exact for M/M/c (ca2 = cs2 = 1) and for M/G/1 (where it is P-K); for
    c = 1 it is Kingman's formula. ``inf`` when ``rho >= 1``.
    """
    c = _check_servers(servers)
    lam = _check("arrival_rate", arrival_rate)
    s = _check("mean_service", mean_service, positive=True)
    ca2 = _check("scv_arrival", scv_arrival)
    cs2 = _check("scv_service", scv_service)
    a = lam * s
    if a >= c:
        return INF
    return erlang_c(c, a) * s / (c - a) * (ca2 + cs2) / 2.0


def departure_scv(utilization: float, servers: int, scv_arrival: float,
                  scv_service: float) -> float:
    """SCV of the departures of a G/G/c station (Whitt's QNA linking equation).

    ``cd2 = 1 + (1 - rho^2)(ca2 - 1) + rho^2 (cs2 - 1) / sqrt(c)``: an approximation that is
    exact for M/M/c (Burke: departures are Poisson, cd2 = 1). It gives the next station of a
    tandem its arrival scv.
    """
    c = _check_servers(servers)
    rho = min(_check("utilization", utilization), 1.0)
    ca2 = _check("scv_arrival", scv_arrival)
    cs2 = _check("scv_service", scv_service)
    cd2 = 1.0 + (1.0 - rho**2) * (ca2 - 1.0) + rho**2 * (cs2 - 1.0) / math.sqrt(c)
    return max(cd2, 0.0)


def mmck_probabilities(arrival_rate: float, mean_service: float, servers: int,
                       queue_capacity: int) -> np.ndarray:
    """Stationary P(n in system), n = 0..c+queue_capacity, of M/M/c/K (exact, log-space)."""
    c = _check_servers(servers)
    lam = _check("arrival_rate", arrival_rate)
    s = _check("mean_service", mean_service, positive=True)
    if isinstance(queue_capacity, bool) or int(queue_capacity) != queue_capacity \
            or queue_capacity < 0:
        raise ValueError(f"queue_capacity: must be an integer >= 0, got {queue_capacity!r}")
    k = c + int(queue_capacity)
    if lam == 0.0:
        p = np.zeros(k + 1)
        p[0] = 1.0
        return p
    n = np.arange(1, k + 1)
    log_steps = math.log(lam * s) - np.log(np.minimum(n, c))
    log_p = np.concatenate([[0.0], np.cumsum(log_steps)])
    return np.exp(log_p - special.logsumexp(log_p))


@dataclass(frozen=True)
class MMcKResult:
    """Steady-state M/M/c/K (K = c + queue capacity): blocking, carried rate, per-visit means.

    Means are over accepted requests; ``p_wait`` is P(an accepted request waits).
    """

    blocking: float
    throughput: float
    utilization: float
    p_wait: float
    mean_wait: float
    mean_response: float
    mean_queue_length: float
    mean_in_system: float


def mmck(arrival_rate: float, mean_service: float, servers: int,
         queue_capacity: int) -> MMcKResult:
    """M/M/c/K by its birth-death solution; exact for exponential service (always stable).

    Arrivals that find all ``c + queue_capacity`` places taken are dropped (PASTA: with
    probability ``p_K``); Little's law on the carried rate gives the times.
    """
    p = mmck_probabilities(arrival_rate, mean_service, servers, queue_capacity)
    c = int(servers)
    n = np.arange(p.size)
    blocking = float(p[-1])
    carried = float(arrival_rate) * (1.0 - blocking)
    lq = float(np.sum(np.maximum(n - c, 0) * p))
    ls = float(np.sum(n * p))
    accepted = p[:-1] / (1.0 - blocking) if blocking < 1.0 else p[:-1]
    p_wait = float(np.sum(accepted[c:]))
    if carried > 0:
        wq, w = lq / carried, ls / carried
    else:
        wq, w = 0.0, float(mean_service)
    return MMcKResult(blocking, carried, carried * mean_service / c, p_wait, wq, w, lq, ls)


# ------------------------------------------------------- priority classes and processor sharing


def _class_array(owner: str, field: str, value, *, positive: bool = False,
                 size: int | None = None) -> np.ndarray:
    """One finite number per priority class (highest priority first), as a float array."""
    from capsim.errors import fail  # queues.py otherwise imports nothing from capsim

    vals = [value] if np.ndim(value) == 0 else list(np.asarray(value, dtype=object).ravel())
    ok = all(not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating))
             and math.isfinite(v) and (v > 0 if positive else v >= 0) for v in vals)
    if not ok or not vals:
        raise fail(owner, field, f"must be finite numbers {'> 0' if positive else '>= 0'}, "
                   "one per class", vals)
    if size is not None and len(vals) != size:
        raise fail(owner, field, f"needs one value per class ({size})", vals)
    return np.array(vals, dtype=float)


def _priority_inputs(owner: str, rates, means, second_moments
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from capsim.errors import fail

    lam = _class_array(owner, "rates", rates)
    s = _class_array(owner, "means", means, positive=True, size=lam.size)
    s2 = _class_array(owner, "second_moments", second_moments, size=lam.size)
    if np.any(s2 < s * s * (1.0 - 1e-12)):
        raise fail(owner, "second_moments", "must be >= means**2 (E[S^2] >= E[S]^2)",
                   s2.tolist())
    return lam, s, s2


def mg1_priority_nonpreemptive(rates, means, second_moments) -> tuple[float, ...]:
    """Mean wait in queue per class of M/G/1 with non-preemptive (head-of-line) priority.

    Cobham (1954): ``W_k = W0 / ((1 - s_{k-1}) (1 - s_k))`` with ``s_k`` the load of
    classes 1..k (class 1 is served first) and ``W0 = sum_i lambda_i E[S_i^2] / 2`` the mean
    residual work an arrival finds in service. Exact for Poisson arrivals, any service
    distributions. Classes with ``s_k >= 1`` are ``inf``; the classes above them still have
    a steady state, in which the first unstable class keeps the server busy the remaining
    ``1 - s_{k-1}`` of the time (and lower ones never get it), which is what W0 counts then.
    """
    lam, s, s2 = _priority_inputs("mg1_priority_nonpreemptive", rates, means, second_moments)
    rho = lam * s
    cum = np.cumsum(rho)
    prev = cum - rho
    busy = rho.copy()
    saturated = np.nonzero(cum >= 1.0)[0]
    if saturated.size:
        first = int(saturated[0])
        busy[first] = 1.0 - prev[first]
        busy[first + 1:] = 0.0
    w0 = float(np.sum(busy * s2 / (2.0 * s)))  # = sum lambda_i E[S_i^2] / 2 when stable
    return tuple(w0 / ((1.0 - p) * (1.0 - c)) if c < 1.0 else INF
                 for p, c in zip(prev, cum, strict=True))


def mmc_priority_nonpreemptive(rates, mean, servers: int) -> tuple[float, ...]:
    """Mean wait in queue per class of M/M/c with non-preemptive priority, same service.

    Exact when every class has the same exponential service (mean ``mean``; Cobham 1954;
    Davis, Oper. Res. 14(1), 1966, which also gives the distribution)::

        W_k = C(c, a) / (c mu (1 - s_{k-1}) (1 - s_k))

    with ``a = lambda S`` the total offered load, C Erlang's C and ``s_k`` the per-server load
    of classes 1..k (class 1 first). An arrival waits iff all servers are busy, whatever its
    class, and then departures come at rate ``c mu``. For c = 1 it is Cobham's M/G/1 formula
    with exponential service. Classes with ``s_k >= 1`` are ``inf``; those above still wait a
    finite time (then every arrival waits: C = 1).
    """
    c = _check_servers(servers)
    s = _check("mean", mean, positive=True)
    lam = _class_array("mmc_priority_nonpreemptive", "rates", rates)
    p_wait = erlang_c(c, float(lam.sum()) * s)
    cum = np.cumsum(lam * s / c)
    prev = cum - lam * s / c
    return tuple(p_wait * s / (c * (1.0 - p) * (1.0 - k)) if k < 1.0 else INF
                 for p, k in zip(prev, cum, strict=True))


def mg1_priority_preemptive(rates, means, second_moments) -> tuple[float, ...]:
    """Mean response time (sojourn) per class of M/G/1 with preemptive-resume priority.

    A class never sees the classes below it, so class k is an M/G/1 of classes 1..k whose
    service is stretched by the higher-priority arrivals (Kleinrock, Queueing Systems II,
    1976)::

        T_k = E[S_k] / (1 - s_{k-1}) + sum_{i<=k} lambda_i E[S_i^2] / (2 (1 - s_{k-1}) (1 - s_k))

    Exact for Poisson arrivals and any service distributions; ``inf`` where ``s_k >= 1``.
    """
    lam, s, s2 = _priority_inputs("mg1_priority_preemptive", rates, means, second_moments)
    rho = lam * s
    cum = np.cumsum(rho)
    prev = cum - rho
    resid = np.cumsum(lam * s2 / 2.0)
    return tuple(sk / (1.0 - p) + rk / ((1.0 - p) * (1.0 - c)) if c < 1.0 else INF
                 for sk, rk, p, c in zip(s, resid, prev, cum, strict=True))


def mmc_ps_response(rate: float, mean: float, servers: int) -> float:
    """Mean response time of M/G/c processor sharing: ``E[S] (1 + C(c, a) / (c (1 - rho)))``.

    With n requests present each is served at rate ``min(1, c / n)``: the number in system is
    the M/M/c birth-death chain whatever the service distribution (PS is insensitive), so
    the mean response equals M/M/c's (Little's law). Exact; ``inf`` when ``rho >= 1``.
    """
    c = _check_servers(servers)
    lam = _check("rate", rate)
    s = _check("mean", mean, positive=True)
    a = lam * s
    if a >= c:
        return INF
    return s * (1.0 + erlang_c(c, a) / (c - a))
