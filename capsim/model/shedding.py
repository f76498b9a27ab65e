"""What rate limits and lossy hops let through, in the model: the long-run share of requests
a token bucket admits, and the thinning of the traffic after a limit or a lossy hop.

A token bucket of rate ``r`` and size ``b`` under Poisson arrivals at rate ``lambda`` is an
M/D/1 queue in disguise. Call ``V = (b - tokens) / r`` its *workload*: it falls at rate 1
while the bucket refills, a request is admitted iff ``V <= tau = (b - 1) / r`` (a whole token
is left) and then adds ``s = 1 / r``. That is M/D/1 with service ``s`` whose arrivals balk
when the work ahead exceeds ``tau``. Below ``tau`` its workload satisfies the same level-
crossing (Volterra) equation as the unrestricted M/D/1, so there it is the M/D/1 workload up
to a constant: ``P(V = 0) = pi0`` and ``P(V <= x) = pi0 H(x)`` with Erlang's

    H(x) = sum_{k=0}^{floor(x/s)} (-lambda (x - k s))^k / k! e^{lambda (x - k s)}

(``(1 - rho) H`` is the M/D/1 waiting-time distribution when ``rho = lambda / r < 1``).
Work in = work out gives ``admitted x s = 1 - pi0`` and admitted = ``lambda pi0 H(tau)``, so

    admitted / lambda = H(tau) / (1 + rho H(tau)),

exact for Poisson arrivals. It tends to min(1, 1/rho) as the burst grows (burst effects
vanish) and is ``1 / (1 + rho)`` for ``b = 1`` (Erlang's loss formula for one server).

The series cancels badly for long buckets or heavy load; beyond ``EXACT_TOKENS`` tokens
or ``EXACT_LOAD`` tokens' worth of arrivals it is replaced by its asymptote

    H(x) = 1 / (1 - rho) - e^{z x} / (rho e^{-z} - 1)

(``z`` the real root of ``z = rho (1 - e^{-z})`` other than 0; ``2 x / s + 2/3`` at
``rho = 1``): the roots it leaves out are complex and weigh less than e^{-40} of it there.
Both are computed in decimal arithmetic.

:func:`gates` puts these together for a system at a request rate: per flow, the share its
own limit admits; per component, the share that passes it (a service's limit, a hop's
``1 - loss``), the arrival rate at a service's bucket thinned by every gate before it on
each route (a fixed point, since a route may visit the same limited service twice). Drops
of finite queues upstream are not counted (they would thin the arrivals a little more).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from functools import lru_cache

from capsim.model.components import Delay, RateLimit, Service

# the exact series up to this many tokens beyond the first and this many tokens' worth of
# arrivals (rho x: its terms reach e^{2 rho x}); the asymptote beyond, where the complex
# roots it leaves out weigh less than e^{-40} of it
EXACT_TOKENS = 40
EXACT_LOAD = 100.0

__all__ = ["EXACT_LOAD", "EXACT_TOKENS", "Gates", "admitted_fraction", "admitted_rate", "gates",
           "thinned_demands", "used"]


def admitted_rate(arrival_rate: float, limit: RateLimit) -> float:
    """Requests per second a token bucket admits, in the long run, from Poisson arrivals
    at ``arrival_rate`` (at most min(arrival_rate, rate_per_s))."""
    lam = float(arrival_rate)
    return lam * admitted_fraction(lam, limit) if lam > 0 else 0.0


def admitted_fraction(arrival_rate: float, limit: RateLimit) -> float:
    """The share of Poisson arrivals at ``arrival_rate`` a token bucket admits."""
    lam = float(arrival_rate)
    if lam <= 0:
        return 1.0
    return _fraction(lam / float(limit.rate_per_s), float(limit.burst) - 1.0)


@lru_cache(maxsize=4096)
def _fraction(rho: float, x: float) -> float:
    """H(x) / (1 + rho H(x)), x = tau / s: the tokens beyond the one a request takes
    (remembered: a twin's fixed point and a sweep ask the same again)."""
    with localcontext() as ctx:
        ctx.prec = 60
        exact = x <= EXACT_TOKENS and rho * x <= EXACT_LOAD
        h = _h_exact(rho, x) if exact else _h_asymptote(rho, x)
        return float(1 / (1 / h + Decimal(rho)))


def _h_exact(rho: float, x: float) -> Decimal:
    """Erlang's series for H(x) (x in units of s), in enough digits for its cancellation
    (terms reach e^{2 rho x})."""
    r, xx = Decimal(rho), Decimal(x)
    with localcontext() as ctx:
        ctx.prec = 30 + int(2.0 * rho * x / math.log(10))
        total, fact = (r * xx).exp(), Decimal(1)  # k = 0
        for k in range(1, int(math.floor(x)) + 1):
            fact *= k
            u = r * (xx - k)
            total += (-u) ** k / fact * u.exp()
        return +total


def _h_asymptote(rho: float, x: float) -> Decimal:
    r, xx = Decimal(rho), Decimal(x)
    if r == 1:
        return 2 * xx + Decimal(2) / 3
    z = _root(r)
    if z * xx > 100_000:  # a long bucket under overload: H is beyond any Decimal
        return Decimal("Infinity")
    return 1 / (1 - r) - (z * xx).exp() / (r * (-z).exp() - 1)


def _root(r: Decimal) -> Decimal:
    """The real root z != 0 of f(z) = z - r (1 - e^{-z}) = 0, by bisection: in ((r - 1) / r,
    r) when r > 1 (f < 0 at the left end, > 0 at the right), below -(1 - r) when r < 1
    (f < 0 there, and f grows without bound to the left)."""

    def f(z: Decimal) -> Decimal:
        return z - r * (1 - (-z).exp())

    if r > 1:
        neg, pos = (r - 1) / r, r
    else:
        neg, pos = -(1 - r), -2 * (1 - r)
        while f(pos) <= 0:
            pos *= 2
    for _ in range(400):
        mid = (neg + pos) / 2
        if f(mid) < 0:
            neg = mid
        else:
            pos = mid
        if abs(pos - neg) <= abs(mid) * Decimal("1e-45"):
            break
    return (neg + pos) / 2


@dataclass(frozen=True)
class Gates:
    """Pass probabilities at a request rate: ``flows`` (a flow's own limit, at entry) and
    ``components`` (a service's limit, a lossy hop), each 1 where nothing sheds."""

    flows: dict[str, float] = field(default_factory=dict)
    components: dict[str, float] = field(default_factory=dict)
    limited: frozenset[str] = frozenset()  # the components whose gate is a rate limit


def used(system) -> bool:
    """True when some flow or component of ``system`` has a rate limit or a lossy hop."""
    return any(f.rate_limit is not None for f in system.flows) or any(
        (isinstance(c, Service) and c.rate_limit is not None)
        or (isinstance(c, Delay) and c.loss > 0) for c in system.components)


def gates(system, arrival_rate_per_s: float, hit_ratio) -> Gates:
    """Pass probabilities of ``system``'s limits and lossy hops at this request rate."""
    lam = float(arrival_rate_per_s)
    flows = {f.name: admitted_fraction(lam * f.weight, f.rate_limit)
             for f in system.flows if f.rate_limit is not None}
    comps = {c.name: 1.0 - c.loss for c in system.components
             if isinstance(c, Delay) and c.loss > 0}
    limited = {c.name: c.rate_limit for c in system.components
               if isinstance(c, Service) and c.rate_limit is not None}
    if not limited:
        return Gates(flows, comps)
    owner = {st.name: st.component for st in system.stations()}
    routes = [(r.probability * flows.get(r.flow, 1.0), [owner[v.component] for v in r.calls])
              for r in system.routes(hit_ratio)]
    comps.update(dict.fromkeys(limited, 1.0))
    for _ in range(200):
        offered = dict.fromkeys(limited, 0.0)
        for p, visited in routes:
            reach = p
            for c in visited:
                if c in offered:
                    offered[c] += reach
                reach *= comps.get(c, 1.0)
        change = 0.0
        for c, limit in limited.items():
            a = admitted_fraction(lam * offered[c], limit)
            change = max(change, abs(a - comps[c]))
            comps[c] = a
        if change < 1e-13:
            break
    return Gates(flows, comps, frozenset(limited))


def thinned_demands(system, arrival_rate_per_s: float, hit_ratio
                    ) -> tuple[dict[str, float], dict[str, float]]:
    """``System.demands()`` and ``System.host_demands()`` with each visit weighted by the
    probability that the request gets through every limit and lossy hop before it (and
    that of the visit itself). Messages of queues are counted as published by every
    request (not thinned: an upper bound)."""
    g = gates(system, arrival_rate_per_s, hit_ratio)
    specs = {st.name: st for st in system.stations()}
    full = system.demands(hit_ratio)
    sync = {n: 0.0 for n in full}
    work = {h.name: 0.0 for h in system.hosts}
    for route in system.routes(hit_ratio):
        calls = route.calls
        own, served = [], []
        reach = route.probability * g.flows.get(route.flow, 1.0)
        for v in calls:
            spec = specs[v.component]
            reach *= g.components.get(spec.component, 1.0)  # admitted into the station
            served.append(reach)
            own.append(v.scale * v.service_of(spec.service_time).mean)
        for i, v in enumerate(calls):
            held = sum(served[j] * own[j] for j in range(i + 1, i + 1 + v.holds))
            sync[v.component] += served[i] * own[i] + held
            host = specs[v.component].host
            if host is not None:
                work[host] += served[i] * own[i]
    # what System.demands adds beyond the routes: the consumers of message queues
    unthinned = _route_demands(system, hit_ratio, specs)
    demands = {n: sync[n] + full[n] - unthinned[n] for n in full}
    return demands, work


def _route_demands(system, hit_ratio, specs) -> dict[str, float]:
    """The routes' part of ``System.demands()``, without thinning."""
    out = {n: 0.0 for n in specs}
    for route in system.routes(hit_ratio):
        calls = route.calls
        own = [v.scale * v.service_of(specs[v.component].service_time).mean for v in calls]
        for i, v in enumerate(calls):
            out[v.component] += route.probability * (own[i] + sum(own[i + 1:i + 1 + v.holds]))
    return out
