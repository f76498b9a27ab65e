"""Stations that do not serve first come first served, in the twin: processor sharing,
priorities, and components sharing a host's cores (as ``capsim.engine.disciplines`` runs them).

* **Processor sharing** (``Service(discipline="ps")``, ``c = servers`` cores): with n requests
  present each gets ``min(1, c / n)`` of a core. M/G/c-PS is a symmetric queue: the number
  present is M/M/c's birth-death chain whatever the service distribution (insensitivity),
  and a visit of own service ``x`` takes ``x x stretch`` on average, ``stretch = 1 +
  C(c, a) / (c (1 - rho))`` (Erlang C; ``1 / (1 - rho)`` for one core): exact means for
  Poisson arrivals. A ``max_concurrency`` cap ``K >= c`` leaves that chain unchanged under
  exponential service (it never idles a core): the ``E[(N - K)+]`` requests beyond the cap
  wait FIFO in front (``C rho^(K-c)`` of the arrivals, an Exp(c mu - lambda) wait), the
  rest of the response is the stretched service. Non-Poisson arrivals scale the queueing
  part by ``(ca2 + 1) / 2`` (approximation); a held slot (a synchronous call made from a PS
  station with a cap) makes the cap an FCFS pool of K slots (G/G/K, approximation).
* **Priority** (``discipline="priority"``, non-preemptive, lowest ``Flow.priority`` first,
  flows without one last): per priority class, M/M/c's waits (Cobham, Davis; exact for
  Poisson arrivals and exponential service the same for every class); otherwise the
  station's FCFS wait (G/G/c) times the class's priority/FCFS ratio in an M/G/1 with a
  c-times faster server (Bondi & Buzen 1984; with the classes' own service moments): exact
  for one server and Poisson arrivals (Cobham's M/G/1 waits), an approximation for c > 1 or
  other arrivals. A class's wait keeps the FCFS wait's shape, scaled to its mean
  (percentiles: approximation).
* **Hosts** (``Host(cores, speed)``): the cores are one PS resource shared by every station
  on the box, ``rho_host = host work per s / (cores x speed)``: a hosted visit's work ``w``
  takes ``w / speed x stretch_host`` (M/M/c-PS). The station's ``servers`` are threads, an
  FCFS pool whose service time is that stretched time plus any calls held: the G/G/c
  machinery on that effective service. Exact means while the threads do not bind (the
  host then sees every job; Poisson in, a symmetric queue); an approximation when they do
  (fewer jobs reach the cores than the formula assumes: the stretch is overstated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from capsim.analytic.queues import erlang_c, mmc_priority_nonpreemptive, mmck_probabilities
from capsim.analytic.queues import mg1_priority_nonpreemptive as cobham
from capsim.analytic.stations import StationState, _exp_wait_cdf, station_state
from capsim.model import Visit

__all__ = ["CPU", "ClassVisit", "HostState", "host_states", "prio_key", "priority_ratios",
           "priority_state", "ps_cpu", "ps_state", "ps_stretch", "stretch_scv", "tag_routes"]

INF = math.inf
NAN = math.nan


@dataclass(frozen=True)
class ClassVisit(Visit):
    """A visit to a priority station, with its flow's priority class (None: served last)."""

    prio: int | None = None


def prio_key(prio) -> tuple:
    """Service order of priority classes: lowest priority number first, None last."""
    return (prio is None, 0 if prio is None else prio)


def tag_routes(system, routes, stations):
    """``routes`` with each visit to a priority station tagged by its flow's priority."""
    prio = {n for n, st in stations.items() if st.priority}
    if not prio:
        return tuple(routes)
    by_flow = {f.name: f.priority for f in system.flows}
    out = []
    for r in routes:
        calls = tuple(ClassVisit(v.component, v.scale, v.holds, v.service, by_flow[r.flow])
                      if v.component in prio else v for v in r.calls)
        out.append(replace(r, calls=calls))
    return tuple(out)


# ------------------------------------------------------------------------- processor sharing


def stretch_scv(stretch: float) -> float:
    """Scv of a visit's random slowdown for percentiles: ``r / (2 - r)`` with ``r = 1 - 1 /
    stretch``, which gives M/M/1-PS's sojourn its exact second moment (``E[T^2] = E[S^2]
    E[Y^2]``, ``Var T = (2 + rho) / (2 - rho) / (mu (1 - rho))^2``); a heuristic elsewhere."""
    if not math.isfinite(stretch) or stretch <= 1.0:
        return 0.0
    r = 1.0 - 1.0 / stretch
    return r / (2.0 - r)


def ps_stretch(c: int, a: float, ca2: float = 1.0) -> float:
    """Mean slowdown of a visit at ``c`` PS cores offered ``a`` core-seconds per second:
    ``E[N] / a = 1 + C(c, a) / (c (1 - rho))`` (M/G/c-PS, insensitive; the queueing part
    scaled by ``(ca2 + 1) / 2`` for non-Poisson arrivals, an approximation)."""
    rho = a / c
    if rho >= 1.0:
        return INF
    return 1.0 + erlang_c(c, a) * (ca2 + 1.0) / 2.0 / (c * (1.0 - rho))


@dataclass(frozen=True)
class CPU:
    """A PS station's cores at one arrival rate: load, mean slowdown of a visit's own service
    once admitted, and the FIFO wait in front of a ``max_concurrency`` cap."""

    rho: float  # busy share of the cores (carried work / cores)
    stretch: float
    p_wait: float  # share of the (accepted) arrivals that wait for admission
    tail: float  # mean admission wait of one that waits (s)
    blocking: float = 0.0  # share turned away by a full queue in front of the cap


def ps_cpu(st, lk: float, own: float, ca2: float = 1.0, holds: bool = False) -> CPU:
    """PS station ``st`` at arrival rate ``lk`` with mean own service ``own``: M/M/c's chain
    (exact for Poisson arrivals, any service without a cap, exponential service with one).
    Held slots (``holds``) leave the cap to an FCFS pool: the stretch is the uncapped one."""
    c, cap = st.servers, st.max_concurrency
    a = lk * own
    if cap is not None and not holds and st.queue_capacity is not None:
        return _ps_finite(c, cap, st.queue_capacity, lk, own)
    stretch = ps_stretch(c, a, ca2)
    if not math.isfinite(stretch):
        return CPU(a / c, INF, 1.0, INF)
    if cap is None or holds:
        return CPU(a / c, stretch, 0.0, 0.0)
    rho = a / c
    beyond = rho ** (cap - c)
    return CPU(rho, 1.0 + (stretch - 1.0) * (1.0 - beyond),
               min(erlang_c(c, a) * beyond, 1.0), own / (c * (1.0 - rho)))


def _ps_finite(c: int, cap: int, room: int, lk: float, own: float) -> CPU:
    """A cap K and a finite queue in front: M/M/c/(K + queue) (exact for exponential
    service); admission wait ``E[(N - K)+] / carried`` (Little)."""
    p = mmck_probabilities(lk, own, c, cap + room - c)
    blocking = float(p[-1])
    carried = lk * (1.0 - blocking)
    if carried <= 0 or own <= 0:
        return CPU(0.0, 1.0, 0.0, 0.0, blocking)
    n = np.arange(p.size)
    t = float(np.sum(n * p)) / carried
    wq = float(np.sum(np.maximum(n - cap, 0) * p)) / carried
    p_wait = float(np.sum(p[cap:-1])) / max(1.0 - blocking, 1e-300)
    return CPU(carried * own / c, (t - wq) / own, p_wait, wq / p_wait if p_wait > 0 else 0.0,
               blocking)


def ps_state(st, lk: float, eff, cpu: CPU, ca2: float, holds: bool, mixed: bool,
             poisson: bool) -> StationState:
    """A PS station at arrival rate ``lk``; ``eff`` is the effective service with
    ``cpu.stretch`` applied to the own service (so ``eff[0]`` is the admitted time per
    visit: stretched own service plus calls held)."""
    m, _, own, _, _ = eff
    c, cap = st.servers, st.max_concurrency
    rho = lk * own / c
    if not math.isfinite(cpu.stretch) or not math.isfinite(m):
        return StationState(lk, rho, 1.0, c / own if own > 0 else 0.0, INF, INF, INF, INF,
                            0.0, False, None, 0.0, rho, False, holds, mixed, INF)
    exact_in = poisson and abs(ca2 - 1.0) < 1e-9
    if cap is not None and holds:  # a pool of slots, each held for its own service + calls
        pool = replace(st, servers=cap, discipline="fcfs", max_concurrency=None)
        s = station_state(pool, lk, eff, False, ca2, holds, mixed)
        s.utilization, s.own_load, s.stretch = cpu.rho, rho, cpu.stretch
        s.stretch_scv = stretch_scv(cpu.stretch)
        s.offered_load = max(rho, s.offered_load)
        if s.stable:
            s.lq = s.ls - s.throughput * own
        s.exact = False
        return s
    carried = lk * (1.0 - cpu.blocking)
    wq = cpu.p_wait * cpu.tail
    w = wq + m
    exact = (cap is None and exact_in) or (  # a cap: exact for exponential service
        exact_in and abs(eff[4] - 1.0) < 1e-9 and not mixed and not holds)
    return StationState(lk, rho, cpu.rho, carried, carried * (w - own), carried * w, wq, w,
                        cpu.blocking, True, _exp_wait_cdf(cpu.p_wait, cpu.tail),
                        cpu.p_wait * 2 * cpu.tail**2 - wq**2, rho, exact, holds, mixed,
                        cpu.stretch, stretch_scv(cpu.stretch))


# ---------------------------------------------------------------------------------- priority


def priority_state(st, lk: float, eff, class_eff: dict, markov: bool, poisson: bool,
                   ca2: float | None, holds: bool, mixed: bool) -> StationState | None:
    """A non-preemptive priority station: the FCFS state of the whole stream, with per
    priority class waits (``class_eff``: class -> (rate, mean, scv) of its effective
    service) and the station's wait their rate-weighted mean."""
    base = station_state(st, lk, eff, markov, ca2, holds, mixed)
    if base is None:
        return None
    keys = sorted(class_eff, key=prio_key)
    if len(keys) <= 1 or not base.stable:
        fill = (base.wq, base.wait_var, base.wait_cdf)
        base.classes = {k: fill for k in keys}
        return base
    rates = [class_eff[k][0] for k in keys]
    total = sum(rates)
    if total <= 0:
        base.classes = {k: (base.wq, base.wait_var, base.wait_cdf) for k in keys}
        return base
    means = [class_eff[k][1] if class_eff[k][0] > 0 else eff[0] for k in keys]
    m2 = [m * m * (1.0 + class_eff[k][2]) for m, k in zip(means, keys, strict=True)]
    c = st.servers
    poisson_in = poisson and ca2 is not None and abs(ca2 - 1.0) < 1e-9
    same = max(means) - min(means) <= 1e-12 * max(means)
    exp_same = same and all(abs(class_eff[k][2] - 1.0) < 1e-9 for k in keys)
    m = eff[0]
    if c > 1 and st.queue_capacity is None and exp_same and poisson_in:
        waits = list(mmc_priority_nonpreemptive(rates, m, c))  # Cobham, Davis: exact
        exact = True
    else:  # the FCFS wait x Cobham's priority/FCFS ratio of a c-times faster server
        carried = [r * (1.0 - base.blocking) for r in rates]
        waits = [base.wq * q for q in priority_ratios(carried, means, m2, c)]
        exact = c == 1 and st.queue_capacity is None and poisson_in
    wq = sum(r * w for r, w in zip(rates, waits, strict=True)) / total
    base.classes = {k: _scaled_wait(base, w) for k, w in zip(keys, waits, strict=True)}
    base.wq, base.w = wq, wq + m
    base.lq = lk * (1.0 - base.blocking) * wq
    base.ls = base.lq + lk * (1.0 - base.blocking) * m
    base.wait_var = sum(r * (v + w * w) for r, (w, v, _) in zip(
        rates, base.classes.values(), strict=True)) / total - wq * wq
    base.exact = exact and not holds
    base.stable = all(math.isfinite(w) for w in waits)
    if not base.stable:
        base.wq = base.w = base.lq = base.ls = INF
    return base


def priority_ratios(rates, means, second_moments, servers: int) -> list[float]:
    """Per priority class (service order), its mean wait / the FCFS mean wait, from an M/G/1
    whose one server is ``servers`` times faster (Bondi & Buzen, 1984): Cobham's class waits
    over Pollaczek-Khinchine's, service means / c and second moments / c^2. For one server it
    is exact (Cobham over P-K); for c servers with the same exponential service in every class
    it is M/M/c's ratio ``(1 - rho) / ((1 - s_{k-1}) (1 - s_k))`` exactly; for class-dependent
    service it keeps the shorter-jobs-first effect of serving a fast class first."""
    c = float(servers)
    fast = [m / c for m in means]
    fast2 = [m2 / (c * c) for m2 in second_moments]
    rho = sum(r * m for r, m in zip(rates, fast, strict=True))
    if rho >= 1.0:
        return [INF] * len(rates)
    pk = sum(r * m2 for r, m2 in zip(rates, fast2, strict=True)) / (2.0 * (1.0 - rho))
    if pk <= 0:
        return [1.0] * len(rates)
    return [w / pk for w in cobham(rates, fast, fast2)]


def _scaled_wait(base: StationState, w: float) -> tuple:
    """The FCFS wait's shape scaled to mean ``w``: (mean, variance, cdf)."""
    if not math.isfinite(w):
        return INF, INF, None
    if base.wq <= 0 or w <= 0:
        return w, base.wait_var, base.wait_cdf
    f = w / base.wq
    cdf = base.wait_cdf
    return w, base.wait_var * f * f, (lambda x: cdf(x / f))


# ------------------------------------------------------------------------------------- hosts


@dataclass
class HostState:
    """One host's cores: jobs (visits) per second, core-seconds per second, load, slowdown."""

    name: str
    cores: int
    speed: float
    jobs: float
    work: float  # core-seconds of work per second at speed 1 (host capacity: cores x speed)
    rho: float
    stretch: float  # mean slowdown of a job on the shared cores (M/M/c-PS)

    @property
    def stable(self) -> bool:
        return self.rho < 1.0

    def row(self) -> tuple:
        """Its components() row (as the engine's: servers = cores, no wait, busy cores)."""
        a = self.work / self.speed
        if not self.stable:
            return (self.name, self.cores, self.rho, 1.0, self.cores * self.speed / max(
                self.work / max(self.jobs, 1e-300), 1e-300), INF, INF, 0.0, INF, 0.0, False)
        ls = a * self.stretch
        w = ls / self.jobs if self.jobs > 0 else 0.0
        return (self.name, self.cores, self.rho, self.rho, self.jobs, ls - a, ls, 0.0, w, 0.0,
                True)


def host_states(system, stations, jobs: dict[str, float], work: dict[str, float]
                ) -> dict[str, HostState]:
    """Each host at these visit rates (``jobs``) and own work per second (``work``) of the
    stations on it."""
    out = {}
    for h in system.hosts:
        on = [n for n, st in stations.items() if st.host == h.name]
        j = sum(jobs.get(n, 0.0) for n in on)
        w = sum(work.get(n, 0.0) for n in on)
        rho = w / (h.cores * h.speed)
        out[h.name] = HostState(h.name, h.cores, h.speed, j, w, rho,
                                ps_stretch(h.cores, w / h.speed))
    return out
