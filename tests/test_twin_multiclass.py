"""The analytic twin's disciplines and populations against exact theory (fast, no simulation).

* processor sharing: M/G/1-PS's mean response is S / (1 - rho) whatever the service
  distribution (insensitivity), M/M/c's with a concurrency cap K >= c;
* non-preemptive priority: Cobham's class waits (one server), M/M/c's (Cobham, Davis);
* a shared host: two services on one core are an M/G/1-PS of mixed classes, S_k / (1 - rho);
* several populations: the twin through a ``System`` equals ``mva_multiclass`` /
  ``mixed_network`` on the same demands, and reproduces Lazowska et al.'s published two-class
  example end to end.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

import capsim as cs
from capsim.analytic import solve
from capsim.analytic.multiclass import mixed_network, mva_multiclass
from capsim.analytic.mva import mva
from capsim.analytic.queues import (
    erlang_c,
    mg1_priority_nonpreemptive,
    mg1_wait,
    mmc,
    mmc_priority_nonpreemptive,
    mmc_ps_response,
)
from capsim.schema import ALL_FLOWS

E = cs.Exponential
D = cs.Deterministic


def single(discipline: str, service, servers: int = 1, **kw) -> cs.System:
    return cs.System([cs.Service("s", servers, service, discipline=discipline, **kw)],
                     [cs.Flow("f", 1.0, [cs.Call("s")])])


def row(df, key: str, name: str):
    return df.set_index(key).loc[name]


def note_with(result, text: str) -> str:
    found = [n for n in result.notes if text in n]
    assert found, f"no note mentions {text!r}: {result.notes}"
    return found[0]


# ------------------------------------------------------------------------- processor sharing


@pytest.mark.parametrize("service", [E(1.0), cs.HyperExponential(mean=1.0, cv=3.0)],
                         ids=["M/M/1-PS", "M/H2/1-PS"])
def test_ps_mean_response_is_s_over_one_minus_rho_whatever_the_service(service):
    lam = 0.7
    res = solve(single("ps", service), cs.OpenWorkload(1, lam))
    flow = row(res.latency(), "flow", "f")
    comp = row(res.components(), "component", "s")
    assert flow["mean_s"] == pytest.approx(1.0 / (1.0 - lam), rel=1e-12)
    assert comp["mean_response_s"] == pytest.approx(1.0 / (1.0 - lam), rel=1e-12)
    assert comp["mean_in_system"] == pytest.approx(lam / (1.0 - lam), rel=1e-12)
    assert comp["utilization"] == pytest.approx(lam, rel=1e-12)
    assert comp["mean_wait_s"] == 0.0  # nobody waits for admission without a cap
    line = note_with(res, "processor sharing")
    assert "approximate" not in line  # exact means here
    note_with(res, "percentiles under processor sharing")
    assert math.isfinite(flow["p99_s"]) and flow["p99_s"] > flow["mean_s"]
    # the same station serving first come first served pays Pollaczek-Khinchine's factor
    fcfs = solve(single("fcfs", service), cs.OpenWorkload(1, lam)).latency()
    assert row(fcfs, "flow", "f")["mean_s"] == pytest.approx(1.0 + mg1_wait(lam, 1.0,
                                                                             service.scv))


def test_ps_with_a_concurrency_cap_is_mmc_and_splits_off_the_admission_wait():
    c, cap, lam = 2, 8, 1.6
    res = solve(single("ps", E(1.0), servers=c, max_concurrency=cap), cs.OpenWorkload(1, lam))
    comp = row(res.components(), "component", "s")
    rho = lam / c
    assert comp["mean_response_s"] == pytest.approx(mmc_ps_response(lam, 1.0, c), rel=1e-12)
    assert comp["mean_response_s"] == pytest.approx(mmc(lam, 1.0, c).mean_response, rel=1e-12)
    # E[(N - K)+] / lambda: the M/M/c chain beyond the cap
    wait = erlang_c(c, lam) * rho ** (cap - c) / (c * (1 - rho))
    assert comp["mean_wait_s"] == pytest.approx(wait, rel=1e-12)
    assert row(res.latency(), "flow", "f")["mean_s"] == pytest.approx(comp["mean_response_s"])
    assert comp["utilization"] == pytest.approx(rho)


def test_ps_overload_is_unstable_and_the_bottleneck():
    res = solve(single("ps", E(1.0), servers=2), cs.OpenWorkload(1, 2.5))
    assert not res.stable and res.unstable_components == ("s",) and res.bottleneck == "s"
    assert math.isinf(row(res.latency(), "flow", "f")["mean_s"])


# ----------------------------------------------------------------------------------- priority


def test_priority_two_class_mm1_is_cobham_and_rows_agree():
    lam = {"hi": 0.3, "lo": 0.4}
    total = sum(lam.values())
    system = cs.System([cs.Service("s", 1, E(1.0), discipline="priority")],
                       [cs.Flow("hi", lam["hi"] / total, [cs.Call("s")], priority=0),
                        cs.Flow("lo", lam["lo"] / total, [cs.Call("s")], priority=1)])
    res = solve(system, cs.OpenWorkload(1, total))
    waits = dict(zip(lam, mg1_priority_nonpreemptive(list(lam.values()), [1.0, 1.0],
                                                     [2.0, 2.0]), strict=True))
    lat = res.latency().set_index("flow")
    for flow, w in waits.items():
        assert lat.loc[flow, "mean_s"] == pytest.approx(w + 1.0, rel=1e-12)
        assert lat.loc[flow, "throughput_per_s"] == pytest.approx(lam[flow])
    assert waits["hi"] == pytest.approx(0.7 / 0.7) and waits["lo"] == pytest.approx(0.7 / 0.21)
    comp = row(res.components(), "component", "s")
    pooled = sum(lam[f] * waits[f] for f in lam) / total
    assert comp["mean_wait_s"] == pytest.approx(pooled, rel=1e-12)
    assert comp["mean_wait_s"] == pytest.approx(total / (1 - total))  # conservation (M/M/1)
    assert comp["mean_in_system"] == pytest.approx(total * (pooled + 1.0))
    assert lat.loc[ALL_FLOWS, "mean_s"] == pytest.approx(pooled + 1.0, rel=1e-12)
    assert "exact (Poisson arrivals) at: s" in note_with(res, "non-preemptive priority")
    note_with(res, "percentiles at priority stations")
    # the high class's tail is shorter than the low one's
    assert lat.loc["hi", "p99_s"] < lat.loc[ALL_FLOWS, "p99_s"] < lat.loc["lo", "p99_s"]


def test_cobham_with_class_dependent_service_and_a_flow_without_priority_last():
    rates, means = [2.0, 1.5, 1.0], [0.1, 0.2, 0.15]
    services = [E(means[0]), cs.Gamma(means[1], 0.5), D(means[2])]
    total = sum(rates)
    system = cs.System(
        [cs.Service("s", 1, E(0.1), discipline="priority")],
        [cs.Flow("gold", rates[0] / total, [cs.Call("s", service_time=services[0])],
                 priority=0),
         cs.Flow("silver", rates[1] / total, [cs.Call("s", service_time=services[1])],
                 priority=3),
         cs.Flow("none", rates[2] / total, [cs.Call("s", service_time=services[2])])])
    res = solve(system, cs.OpenWorkload(1, total))
    second = [d.variance + d.mean**2 for d in services]
    waits = mg1_priority_nonpreemptive(rates, means, second)
    lat = res.latency().set_index("flow")
    for flow, w, m in zip(("gold", "silver", "none"), waits, means, strict=True):
        assert lat.loc[flow, "mean_s"] == pytest.approx(w + m, rel=1e-10)
    comp = row(res.components(), "component", "s")
    assert comp["mean_wait_s"] == pytest.approx(np.dot(rates, waits) / total, rel=1e-10)


def test_priority_on_two_servers_with_equal_exponential_service_is_mmc_priority():
    rates = [0.6, 0.9]
    total = sum(rates)
    system = cs.System([cs.Service("s", 2, E(1.0), discipline="priority")],
                       [cs.Flow("a", rates[0] / total, [cs.Call("s")], priority=1),
                        cs.Flow("b", rates[1] / total, [cs.Call("s")], priority=2)])
    res = solve(system, cs.OpenWorkload(1, total))
    waits = mmc_priority_nonpreemptive(rates, 1.0, 2)
    lat = res.latency().set_index("flow")
    assert lat.loc["a", "mean_s"] == pytest.approx(waits[0] + 1.0, rel=1e-12)
    assert lat.loc["b", "mean_s"] == pytest.approx(waits[1] + 1.0, rel=1e-12)
    # the number waiting does not depend on the order: M/M/2's mean wait overall
    assert row(res.components(), "component", "s")["mean_wait_s"] == pytest.approx(
        mmc(total, 1.0, 2).mean_wait, rel=1e-12)


def test_priority_with_class_dependent_service_on_two_servers_is_flagged_approximate():
    system = cs.System([cs.Service("s", 2, E(1.0), discipline="priority")],
                       [cs.Flow("a", 0.5, [cs.Call("s", service_time=E(0.5))], priority=0),
                        cs.Flow("b", 0.5, [cs.Call("s", service_time=E(1.5))], priority=1)])
    res = solve(system, cs.OpenWorkload(1, 1.2))
    assert "approximate at: s" in note_with(res, "non-preemptive priority")
    lat = res.latency().set_index("flow")
    assert lat.loc["a", "mean_s"] - 0.5 < lat.loc["b", "mean_s"] - 1.5  # a waits less


# -------------------------------------------------------------------------------------- hosts


def two_on_a_box(cores: int = 1, speed: float = 1.0, threads: int = 1000) -> cs.System:
    return cs.System(
        [cs.Service("a", threads, E(0.5), host="box"),
         cs.Service("b", threads, cs.HyperExponential(mean=2.0, cv=2.0), host="box")],
        [cs.Flow("fa", 0.5, [cs.Call("a")]), cs.Flow("fb", 0.5, [cs.Call("b")])],
        hosts=[cs.Host("box", cores=cores, speed=speed)])


def test_two_services_on_one_core_respond_in_s_over_one_minus_rho_host():
    lam = 0.28  # requests/s of each flow
    res = solve(two_on_a_box(), cs.OpenWorkload(1, 2 * lam))
    rho = lam * (0.5 + 2.0)
    comp = res.components().set_index("component")
    lat = res.latency().set_index("flow")
    for name, flow, s in (("a", "fa", 0.5), ("b", "fb", 2.0)):
        assert comp.loc[name, "mean_response_s"] == pytest.approx(s / (1 - rho), rel=1e-9)
        assert lat.loc[flow, "mean_s"] == pytest.approx(s / (1 - rho), rel=1e-9)
    assert list(comp.index) == ["a", "b", "box"]  # the host's row after the stations
    box = comp.loc["box"]
    assert box["servers"] == 1 and box["stable"]
    assert box["utilization"] == pytest.approx(rho) and box["offered_load"] == pytest.approx(rho)
    assert box["throughput_per_s"] == pytest.approx(2 * lam)
    assert box["mean_in_system"] == pytest.approx(rho / (1 - rho), rel=1e-9)
    assert box["mean_wait_s"] == 0.0
    assert res.bottleneck == "box"
    assert "rho_host = 0.7" in note_with(res, "host box")


def test_host_speed_and_cores():
    lam = 0.5
    res = solve(two_on_a_box(cores=2, speed=2.0), cs.OpenWorkload(1, 2 * lam))
    a = lam * (0.5 + 2.0) / 2.0  # core-seconds at speed 2 per second
    stretch = 1 + erlang_c(2, a) / (2 * (1 - a / 2))
    lat = res.latency().set_index("flow")
    assert lat.loc["fa", "mean_s"] == pytest.approx(0.5 / 2.0 * stretch, rel=1e-9)
    assert lat.loc["fb", "mean_s"] == pytest.approx(2.0 / 2.0 * stretch, rel=1e-9)
    assert row(res.components(), "component", "box")["utilization"] == pytest.approx(a / 2)


def test_an_overloaded_host_makes_its_stations_and_flows_unstable():
    res = solve(two_on_a_box(), cs.OpenWorkload(1, 0.9))  # rho_host = 0.45 x 2.5
    assert not res.stable
    assert res.bottleneck == "box"
    assert set(res.unstable_components) == {"a", "b", "box"}
    assert not res.latency()["stable"].any()


def test_closed_ps_and_host_are_product_form_mva():
    system = cs.System([cs.Service("s", 2, cs.HyperExponential(mean=1.0, cv=3.0),
                                   discipline="ps"), cs.Service("d", 1, E(0.5))],
                       [cs.Flow("f", 1.0, [cs.Call("s"), cs.Call("d")])])
    res = solve(system, cs.ClosedWorkload(5, E(2.0)))
    ref = mva({"s": 1.0, "d": 0.5}, 5, 2.0, {"s": 2, "d": 1})
    assert row(res.latency(), "flow", "f")["mean_s"] == pytest.approx(ref.response_time)
    assert row(res.components(), "component", "s")["mean_response_s"] == pytest.approx(
        ref.residence_time[0])
    assert "exact MVA means" in res.notes[0]
    hosted = cs.System([cs.Service("app", 10, E(0.5), host="box"),
                        cs.Database("db", 10, E(0.3), host="box")],
                       [cs.Flow("f", 1.0, [cs.Call("app", calls=[cs.Read("db")])])],
                       hosts=[cs.Host("box", cores=2, speed=2.0)])
    res = solve(hosted, cs.ClosedWorkload(6, E(1.0)))
    ref = mva({"box": 0.4}, 6, 1.0, {"box": 2})
    comp = res.components().set_index("component")
    assert row(res.latency(), "flow", "f")["mean_s"] == pytest.approx(ref.response_time)
    assert comp.loc["box", "utilization"] == pytest.approx(ref.utilization[0])
    assert comp.loc["db", "mean_response_s"] == pytest.approx(0.3 / 2.0 / 0.4 * ref.response_time)
    assert "exact MVA means" in res.notes[0]  # 10 threads for 6 users never bind


# -------------------------------------------------------------------------------- populations


def two_class_system(discipline: str = "fcfs") -> cs.System:
    return cs.System(
        [cs.Service("cpu", 1, E(0.04), discipline=discipline),
         cs.Service("disk", 2, E(0.1), discipline=discipline), cs.Delay("net", E(0.05))],
        [cs.Flow("a", 0.5, [cs.Call("cpu", visits=2), cs.Call("disk"), cs.Call("net")]),
         cs.Flow("b", 0.5, [cs.Call("cpu"), cs.Call("disk", visits=3)])])


def test_closed_two_class_network_equals_mva_multiclass():
    w = cs.MixedWorkload([cs.ClosedWorkload(6, E(1.0), flows=("a",)),
                          cs.ClosedWorkload(3, E(0.5), flows=("b",))], names=("inter", "batch"))
    res = solve(two_class_system(), w)
    demands = {"inter": {"cpu": 0.08, "disk": 0.1, "net": 0.05},
               "batch": {"cpu": 0.04, "disk": 0.3, "net": 0.0}}
    ref = mva_multiclass(demands, {"inter": 6, "batch": 3}, {"inter": 1.0, "batch": 0.5},
                         {"cpu": 1, "disk": 2, "net": 1}, {"cpu": False, "disk": False,
                                                           "net": True})
    pops = res.latency(by="population").set_index("flow")
    lat = res.latency().set_index("flow")
    for i, (name, flow) in enumerate((("inter", "a"), ("batch", "b"))):
        assert pops.loc[name, "throughput_per_s"] == pytest.approx(ref.throughput[i], rel=1e-12)
        assert pops.loc[name, "mean_s"] == pytest.approx(ref.response_time[i], rel=1e-12)
        assert lat.loc[flow, "mean_s"] == pytest.approx(ref.response_time[i], rel=1e-12)
        assert math.isnan(pops.loc[name, "p99_s"])
    x = np.array(ref.throughput)
    assert lat.loc[ALL_FLOWS, "throughput_per_s"] == pytest.approx(x.sum())
    assert lat.loc[ALL_FLOWS, "mean_s"] == pytest.approx(
        np.dot(x, ref.response_time) / x.sum())
    comp = res.components().set_index("component")
    for k, name in enumerate(ref.stations):
        assert comp.loc[name, "mean_in_system"] == pytest.approx(ref.total_queue_length[k])
        if name != "net":
            assert comp.loc[name, "utilization"] == pytest.approx(ref.total_utilization[k])
    assert res.bottleneck == "disk"
    assert "exact MVA means" in res.notes[0]
    assert any("percentiles are NaN" in n for n in res.notes)
    assert repr(pickle.loads(pickle.dumps(res)).population_rows) == repr(res.population_rows)


def qsp_system(discipline: str) -> cs.System:
    # Lazowska, Zahorjan, Graham & Sevcik, "Quantitative System Performance" (1984), ch. 7,
    # p. 142: a CPU and a disk; class 1: 10 CPU visits of 1/10 s, 9 disk visits of 1/3 s;
    # class 2: 5 CPU visits of 2/5 s, 4 disk visits of 1 s; one user of each, no think time
    return cs.System(
        [cs.Service("cpu", 1, E(0.1), discipline=discipline),
         cs.Service("disk", 1, E(1.0), discipline=discipline)],
        [cs.Flow("one", 0.5, [cs.Call("cpu", service_time=E(1 / 10), visits=10),
                              cs.Call("disk", service_time=E(1 / 3), visits=9)]),
         cs.Flow("two", 0.5, [cs.Call("cpu", service_time=E(2 / 5), visits=5),
                              cs.Call("disk", service_time=E(1.0), visits=4)])])


QSP = cs.MixedWorkload([cs.ClosedWorkload(1, D(0.0), flows=("one",)),
                        cs.ClosedWorkload(1, D(0.0), flows=("two",))], names=("c1", "c2"))


@pytest.mark.parametrize("discipline", ["ps", "fcfs"])
def test_qsp_two_class_example_end_to_end(discipline):
    res = solve(qsp_system(discipline), QSP)
    pops = res.latency(by="population").set_index("flow")
    # the book: X = [3/19, 2/19], residence [4/3 5; 5/2 7], Q = [4/19 15/19; 5/19 14/19]
    assert pops.loc["c1", "throughput_per_s"] == pytest.approx(3 / 19, rel=1e-12)
    assert pops.loc["c2", "throughput_per_s"] == pytest.approx(2 / 19, rel=1e-12)
    assert pops.loc["c1", "mean_s"] == pytest.approx(4 / 3 + 5, rel=1e-12)
    assert pops.loc["c2", "mean_s"] == pytest.approx(5 / 2 + 7, rel=1e-12)
    comp = res.components().set_index("component")
    assert comp.loc["cpu", "mean_in_system"] == pytest.approx(9 / 19, rel=1e-12)
    assert comp.loc["disk", "mean_in_system"] == pytest.approx(29 / 19, rel=1e-12)
    assert comp.loc["cpu", "utilization"] == pytest.approx(3 / 19 + 2 * 2 / 19, rel=1e-12)
    if discipline == "ps":  # product form: exact
        assert "exact MVA means" in res.notes[0]
    else:  # class-dependent FCFS service is not product form: MVA's usual approximation
        assert "class-dependent FCFS service" in res.notes[0]
        assert "exact MVA means" not in res.notes[0]


def test_mixed_open_and_closed_equals_mixed_network():
    w = cs.MixedWorkload([cs.OpenWorkload(1, 2.0, flows=("b",)),
                          cs.ClosedWorkload(4, E(0.5), flows=("a",))], names=("api", "users"))
    res = solve(two_class_system(), w)
    do = {"api": {"cpu": 0.04, "disk": 0.3, "net": 0.0}}
    dc = {"users": {"cpu": 0.08, "disk": 0.1, "net": 0.05}}
    servers = {"cpu": 1, "disk": 2, "net": 1}
    delay = {"cpu": False, "disk": False, "net": True}
    ref = mixed_network({"api": 2.0}, do, dc, {"users": 4}, {"users": 0.5}, servers, delay)
    pops = res.latency(by="population").set_index("flow")
    assert pops.loc["api", "throughput_per_s"] == pytest.approx(2.0)
    assert pops.loc["api", "mean_s"] == pytest.approx(ref.open_response_time[0], rel=1e-12)
    assert pops.loc["users", "throughput_per_s"] == pytest.approx(ref.closed_throughput[0],
                                                                  rel=1e-12)
    assert pops.loc["users", "mean_s"] == pytest.approx(ref.closed_response_time[0], rel=1e-12)
    comp = res.components().set_index("component")
    for k, name in enumerate(ref.stations):
        assert comp.loc[name, "mean_in_system"] == pytest.approx(ref.total_queue_length[k])
    assert comp.loc["disk", "utilization"] == pytest.approx(ref.total_utilization[1])
    assert not res.closed
    # the shared two-server disk carries open and closed load: Seidmann, flagged
    assert "Seidmann" in res.notes[0] and "exact MVA means" not in res.notes[0]


def test_mixed_open_overload_is_unstable():
    w = cs.MixedWorkload([cs.OpenWorkload(1, 30.0, flows=("a",)),
                          cs.ClosedWorkload(2, E(0.5), flows=("b",))])
    res = solve(two_class_system(), w)
    assert not res.stable and "cpu" in res.unstable_components and res.bottleneck == "cpu"
    assert np.isinf(res.latency(by="population")["mean_s"]).all()


def test_a_flow_run_by_two_populations_is_throughput_weighted():
    w = cs.MixedWorkload([cs.ClosedWorkload(3, E(1.0)),  # runs a and b by their weights
                          cs.ClosedWorkload(2, E(0.2), flows=("b",))], names=("mix", "bees"))
    res = solve(two_class_system(), w)
    pops = res.latency(by="population").set_index("flow")
    lat = res.latency().set_index("flow")
    assert lat.loc["b", "throughput_per_s"] == pytest.approx(
        0.5 * pops.loc["mix", "throughput_per_s"] + pops.loc["bees", "throughput_per_s"])
    assert lat.loc[ALL_FLOWS, "throughput_per_s"] == pytest.approx(
        pops["throughput_per_s"].sum())
    assert lat.loc[ALL_FLOWS, "mean_s"] == pytest.approx(
        np.dot(pops["throughput_per_s"], pops["mean_s"]) / pops["throughput_per_s"].sum())


def test_multiclass_notes_name_the_approximations():
    system = cs.System(
        [cs.Service("app", 2, E(0.1), discipline="priority"), cs.Service("db", 1,
                                                                       cs.LogNormal(0.02, 2.0))],
        [cs.Flow("gold", 0.5, [cs.Call("app", service_time=E(0.05)), cs.Call("db")],
                 priority=0),
         cs.Flow("bulk", 0.5, [cs.Call("app", service_time=E(0.15)), cs.Call("db")])])
    w = cs.MixedWorkload([cs.ClosedWorkload(5, E(0.5), flows=("gold",)),
                          cs.OpenWorkload(1, 3.0, cs.Gamma(1.0, 2.0), flows=("bulk",))])
    res = solve(system, w)
    head = res.notes[0]
    for text in ("approximation", "non-exponential FCFS service at db", "priorities at app",
                 "class-dependent FCFS service", "non-Poisson open arrivals"):
        assert text in head, head
    note_with(res, "non-preemptive priority in multi-class MVA")
    lat = res.latency().set_index("flow")
    assert lat.loc["gold", "mean_s"] < lat.loc["bulk", "mean_s"]
