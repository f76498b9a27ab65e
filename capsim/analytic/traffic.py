"""What reaches each station: rates per route, hop and visit class, and held service.

A visit class is ``(scale, held visits)``: a synchronous call made while holding the caller's
worker keeps that worker busy for its own scaled service plus the responses of the calls it
makes (layered queueing, method of surrogates); ``effective_service`` gives that time's mean
and scv. Shared by the open solver (a fixed point) and the closed one (holding rows).
"""

from __future__ import annotations

import math

from capsim.analytic.stations import Station, prio_of
from capsim.model import Route

__all__ = ["effective_service", "flow_rates", "route_plan"]

INF = math.inf


def route_plan(routes: tuple[Route, ...], lam: float):
    """Per route: its rate and, per visit, (station, class) with class = ((scale, own
    service, priority class), held visits (station, scale, own service, priority class))."""
    plan = []
    for route in routes:
        calls = route.calls
        visits = [(v.component, ((v.scale, v.service, prio_of(v)),
                                 tuple((h.component, h.scale, h.service, prio_of(h))
                                       for h in calls[i + 1:i + 1 + v.holds])))
                  for i, v in enumerate(calls)]
        plan.append((lam * route.probability, visits))
    return plan


def flow_rates(plan, blocking: dict[str, float], gates: dict[str, float] | None = None):
    """Arrival rate per station, rate on each hop (j -> k, whether j holds), first-visit rate
    per station, and the rate of each visit class per station. ``gates`` (station -> share
    let in: a rate limit, a lossy hop) thin the requests before the station they guard."""
    arrivals = dict.fromkeys(blocking, 0.0)
    hops: dict[tuple[str, str, bool], float] = {}
    first = dict.fromkeys(blocking, 0.0)
    classes: dict[str, dict] = {n: {} for n in blocking}
    for rate, visits in plan:
        prev: tuple[str, bool] | None = None
        for k, cls in visits:
            if gates and k in gates:
                rate *= gates[k]
            arrivals[k] += rate
            classes[k][cls] = classes[k].get(cls, 0.0) + rate
            if prev is None:
                first[k] += rate
            else:
                key = (prev[0], k, prev[1])
                hops[key] = hops.get(key, 0.0) + rate
            rate *= 1.0 - blocking[k]
            prev = (k, bool(cls[1]))  # a holder's next visit starts when its own service ends
    return arrivals, hops, first, classes


def effective_service(st: Station, classes: dict, stations, wq, wvar, blocking,
                      stretch=None, class_wq=None):
    """Mean, scv and own mean of the time a visit keeps a server: the mixture over visit
    classes of ``scale x own service + sum of the held visits' (wait + scaled service)``.
    A class's own service is the station's, or the step's own demand (``service_time``).

    ``stretch`` (station -> factor): a visit's own service there lasts that many times its
    length (processor sharing, a shared host); ``class_wq`` (station -> {priority class:
    wait}): a held visit to a priority station waits its class's wait. The own mean (third
    value) is not stretched: it is the work the visit brings.
    """
    base = st.service
    s = base.mean
    total = sum(classes.values())
    if total <= 0:
        return s, base.scv, s, None, base.scv
    stretch = stretch or {}
    class_wq = class_wq or {}
    k_own = stretch.get(st.name, 1.0)
    m1 = m2 = own = 0.0
    raw = [0.0] * 5  # E[(own service)^k] / E[S]^k over the visit classes
    for ((scale, service, _), held), r in classes.items():
        d = base if service is None else service
        m, v, reach = scale * d.mean * k_own, (scale * k_own) ** 2 * d.variance, 1.0
        for j, sc, sv, pj in held:  # a call turned away by a full queue frees the worker at once
            sj = stations[j].service if sv is None else sv
            kj = stretch.get(j, 1.0)
            reach *= 1.0 - blocking[j]
            wj = class_wq[j].get(pj, wq[j]) if j in class_wq else wq[j]
            m += reach * (wj + sc * kj * sj.mean)
            v += reach * (wvar[j] + (sc * kj) ** 2 * sj.variance)
        m1 += r * m
        m2 += r * (v + m * m)
        own += r * scale * d.mean
        # E[X^k] / E[X]^k, k = 2..4, of a gamma with the class's scv: its shape
        shape = [1.0, 1.0] + [math.prod(1.0 + j * d.scv for j in range(k)) for k in (2, 3, 4)]
        ratio = scale * d.mean / s
        for k in range(5):
            raw[k] += r * ratio**k * shape[k]
    m1, m2, own = m1 / total, m2 / total, own / total
    own_cs2 = max(raw[2] * total / raw[1] ** 2 - 1.0, 0.0)  # of the scaled own service
    if not math.isfinite(m1):
        return INF, 1.0, own, None, own_cs2
    scv = max(m2 / (m1 * m1) - 1.0, 0.0)
    if any(h for _, h in classes):
        return m1, scv, own, None, own_cs2
    return m1, scv, own, tuple(raw[k] / total / (raw[1] / total) ** k for k in range(5)), own_cs2
