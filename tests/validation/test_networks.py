"""Networks against product-form theory: open tandem, probabilistic routing, closed MVA."""

import math

import numpy as np
import pytest
from scipy import optimize

import capsim as cs
from capsim.analytic.mva import mva
from capsim.analytic.queues import mmc
from capsim.experiment import replicate
from tests.validation.agreement import assert_agrees, column

E = cs.Exponential


def hypoexponential_quantile(q: float, rates: list[float]) -> float:
    """Quantile of a sum of independent exponentials with distinct rates (closed-form CDF)."""

    def sf(t):
        return sum(
            math.exp(-ri * t) * math.prod(rj / (rj - ri) for j, rj in enumerate(rates) if j != i)
            for i, ri in enumerate(rates)
        )

    return optimize.brentq(lambda t: sf(t) - (1 - q), 0.0, 100 * sum(1 / r for r in rates))


def test_open_tandem_of_three_mm1():
    # Jackson tandem: sojourn times at the stations are independent Exp(mu_i - lambda)
    # (Burke, Reich), so the end-to-end latency is hypoexponential.
    lam, means = 1.0, [0.8, 0.7, 0.6]
    names = ["a", "b", "c"]
    system = cs.System(
        [cs.Service(n, 1, E(m)) for n, m in zip(names, means, strict=True)],
        [cs.Flow("f", 1.0, [cs.Call(n) for n in names])],
    )
    res = replicate(system, cs.OpenWorkload(1, lam), 10, seed=7,
                    duration_s=150_000, warmup_s=5_000)
    lat, comp = res.latency_runs(), res.components_runs()
    rates = [1 / m - lam for m in means]
    assert_agrees(column(lat, "flow", "f", "mean_s"), sum(1 / r for r in rates),
                  "tandem mean latency")
    assert_agrees(column(lat, "flow", "f", "p99_s"), hypoexponential_quantile(0.99, rates),
                  "tandem p99 latency", max_rel_half_width=0.08)
    for n, m in zip(names, means, strict=True):
        assert_agrees(column(comp, "component", n, "mean_response_s"), 1 / (1 / m - lam),
                      f"tandem station {n} response")


def test_probabilistic_routing_network():
    # lb -> app(4) -> 70% cache / 30% db(2), plus a second flow straight to db:
    # an open Jackson network; each station is M/M/c at its routed rate.
    lam = 100.0
    comps = {"lb": (1, 0.005), "app": (4, 0.03), "cache": (1, 0.01), "db": (2, 0.035)}
    system = cs.System(
        [cs.Service(n, c, E(s)) for n, (c, s) in comps.items()],
        [
            cs.Flow("browse", 0.8, [cs.Call("lb"), cs.Call("app"),
                                    cs.Branch([(0.7, [cs.Call("cache")]),
                                               (0.3, [cs.Call("db")])])]),
            cs.Flow("admin", 0.2, [cs.Call("lb"), cs.Call("db")]),
        ],
    )
    visits = {"lb": 1.0, "app": 0.8, "cache": 0.8 * 0.7, "db": 0.8 * 0.3 + 0.2}
    assert system.visits() == pytest.approx(visits)
    theory = {n: mmc(lam * visits[n], s, c) for n, (c, s) in comps.items()}
    # 12 x 950 s measured (95k requests each): the noisiest checks, db's and admin's mean
    # response, have a 99% half-width near 2.8% of theory (cap 5%); more replications, each
    # shorter, beat fewer long ones (t quantile) at the same cost, and db (M/M/2 at rho 0.77)
    # relaxes in seconds
    res = replicate(system, cs.OpenWorkload(1000, lam / 1000), 12, seed=11,
                    duration_s=1_000, warmup_s=50)
    lat, comp = res.latency_runs(), res.components_runs()
    for n, t in theory.items():
        assert_agrees(column(comp, "component", n, "utilization"), t.utilization,
                      f"{n} utilization", max_rel_half_width=0.02)
        assert_agrees(column(comp, "component", n, "throughput_per_s"), lam * visits[n],
                      f"{n} throughput", max_rel_half_width=0.02)
        assert_agrees(column(comp, "component", n, "mean_response_s"), t.mean_response,
                      f"{n} mean response")
    r = {n: t.mean_response for n, t in theory.items()}
    browse = r["lb"] + r["app"] + 0.7 * r["cache"] + 0.3 * r["db"]
    assert_agrees(column(lat, "flow", "browse", "mean_s"), browse, "browse mean latency")
    assert_agrees(column(lat, "flow", "admin", "mean_s"), r["lb"] + r["db"], "admin latency")


def test_closed_network_against_exact_mva():
    # Central-server model, 25 users thinking 2 s: exponential FCFS stations are product form,
    # so exact MVA (load-dependent for the 2-server disk) gives throughput and response time.
    stations = {"cpu": (1, 0.04), "disk1": (1, 0.06), "disk2": (2, 0.10)}
    system = cs.System(
        [cs.Service(n, c, E(s)) for n, (c, s) in stations.items()],
        [cs.Flow("io1", 0.6, [cs.Call("cpu"), cs.Call("disk1")]),
         cs.Flow("io2", 0.4, [cs.Call("cpu"), cs.Call("disk2")])],
    )
    visits = system.visits()
    users, think = 25, 2.0
    exact = mva([visits[n] * s for n, (_, s) in stations.items()], users, think,
                servers=[c for c, _ in stations.values()])
    res = replicate(system, cs.ClosedWorkload(users, E(think)), 10, seed=5,
                    duration_s=8_000, warmup_s=400)
    lat, comp = res.latency_runs(), res.components_runs()
    assert_agrees(column(lat, "flow", "all", "throughput_per_s"), exact.throughput,
                  "closed throughput X(N)", max_rel_half_width=0.02)
    assert_agrees(column(lat, "flow", "all", "mean_s"), exact.response_time,
                  "closed response time R(N)")
    for k, n in enumerate(stations):
        assert_agrees(column(comp, "component", n, "utilization"), exact.utilization[k],
                      f"closed {n} utilization", max_rel_half_width=0.02)
        assert_agrees(column(comp, "component", n, "mean_in_system"), exact.queue_length[k],
                      f"closed {n} queue length", max_rel_half_width=0.1)
    # the interactive response time law ties the two together: R = N / X - Z
    x = np.mean(column(lat, "flow", "all", "throughput_per_s"))
    r = np.mean(column(lat, "flow", "all", "mean_s"))
    assert abs(users / x - think - r) / r < 0.02
