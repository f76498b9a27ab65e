"""The analytic twin against the simulation for disciplines, hosts and several populations.

* **Two closed classes** on FCFS exponential stations (one with two servers) and a delay:
  product form, the twin's exact multi-class MVA must lie inside the simulation's CI.
* **Open and closed classes** on single-server stations: BCMP's mixed network, exact too.
* **A host shared by an app and its database** (the app holds its thread across the
  database calls): the host's cores are M/M/c-PS, the threads a G/G/c pool; an approximation
  whose gap is bounded here (mean latency within 5%, p99 within 15%; the host's utilization
  is exact). The same box under a closed population: MVA with the host as a load-dependent
  station (exact while the threads cannot bind).
* **A priority station**: one server, two classes with their own service (Cobham, exact:
  inside the CI); two servers and three classes with class-dependent service (Bondi-Buzen's
  scaling of the FCFS wait, an approximation: per-flow means within 5%).
* **Processor sharing with high-cv service** (H2, cv = 3, two cores): mean response exact
  (insensitivity), inside the CI; p99 (a gamma-stretch approximation) within 10%.
"""

from __future__ import annotations

import capsim as cs
from capsim.analytic import solve
from capsim.experiment import replicate
from capsim.experiment.twin import twin_gap
from tests.validation.agreement import assert_agrees, column

E = cs.Exponential


def run(system, workload, reps: int, duration: float, seed: int):
    return replicate(system, workload, reps, seed, duration_s=duration,
                     warmup_s=0.05 * duration)


def agree_flows(res, twin, flows, metrics=("mean_s", "throughput_per_s"), width=0.05):
    lat, theory = res.latency_runs(), twin.latency().set_index("flow")
    for f in flows:
        for m in metrics:
            assert_agrees(column(lat, "flow", f, m), theory.loc[f, m], f"twin {f} {m}",
                          max_rel_half_width=width)


def agree_components(res, twin, names, metrics=("utilization", "mean_in_system"), width=0.05):
    comp, theory = res.components_runs(), twin.components().set_index("component")
    for n in names:
        for m in metrics:
            assert_agrees(column(comp, "component", n, m), theory.loc[n, m], f"twin {n} {m}",
                          max_rel_half_width=width)


def gaps(res, twin, metric: str):
    g = twin_gap(res, twin)
    return g[(g["kind"] == "flow") & (g["metric"] == metric)].set_index("name")["gap"]


def test_two_closed_classes_are_exact_multiclass_mva():
    system = cs.System(
        [cs.Service("cpu", 1, E(0.04)), cs.Service("disk", 2, E(0.1)), cs.Delay("net", E(0.05))],
        [cs.Flow("a", 0.5, [cs.Call("cpu", visits=2), cs.Call("disk"), cs.Call("net")]),
         cs.Flow("b", 0.5, [cs.Call("cpu"), cs.Call("disk", visits=3)])])
    w = cs.MixedWorkload([cs.ClosedWorkload(6, E(1.0), flows=("a",)),
                          cs.ClosedWorkload(3, E(0.5), flows=("b",))], names=("inter", "batch"))
    twin = solve(system, w)
    assert "exact MVA means" in twin.notes[0]
    res = run(system, w, 6, 2_000, seed=31)
    agree_flows(res, twin, ("a", "b", "all"))
    agree_components(res, twin, ("cpu", "disk"))
    # the run's per-population rows are the twin's
    pops = twin.latency(by="population").set_index("flow")
    per_run = [r.latency(by="population").set_index("flow") for r in res.runs]
    for name in ("inter", "batch"):
        assert_agrees([t.loc[name, "throughput_per_s"] for t in per_run],
                      pops.loc[name, "throughput_per_s"], f"population {name} throughput")


def test_open_and_closed_classes_are_the_exact_mixed_network():
    system = cs.System([cs.Service("web", 1, E(0.02)), cs.Service("db", 1, E(0.03))],
                       [cs.Flow("api", 0.5, [cs.Call("web"), cs.Call("db", visits=2)]),
                        cs.Flow("report", 0.5, [cs.Call("db"), cs.Call("web")])])
    w = cs.MixedWorkload([cs.OpenWorkload(1, 8.0, flows=("api",)),
                          cs.ClosedWorkload(4, E(0.3), flows=("report",))],
                         names=("api", "batch"))
    twin = solve(system, w)
    assert "exact MVA means" in twin.notes[0]
    res = run(system, w, 8, 3_000, seed=32)
    agree_flows(res, twin, ("api",), ("mean_s",))
    agree_flows(res, twin, ("report",))
    agree_components(res, twin, ("web", "db"), width=0.06)


def app_and_db_on_one_box() -> cs.System:
    return cs.System(
        [cs.Service("app", 8, E(0.012), host="box"), cs.Database("db", 4, E(0.008), host="box")],
        [cs.Flow("page", 0.7, [cs.Call("app", calls=[cs.Read("db")])]),
         cs.Flow("save", 0.3, [cs.Call("app", calls=[cs.Read("db"), cs.Write("db")])])],
        hosts=[cs.Host("box", cores=2)])


def test_a_host_shared_by_app_and_database():
    system = app_and_db_on_one_box()
    w = cs.OpenWorkload(1, 60.0)  # rho_host = 60 x (0.012 + 1.3 x 0.008) / 2 = 0.67
    twin = solve(system, w)
    res = run(system, w, 6, 400, seed=33)
    agree_components(res, twin, ("box",), ("utilization", "throughput_per_s"), width=0.02)
    mean, p99 = gaps(res, twin, "mean_s"), gaps(res, twin, "p99_s")
    assert mean.abs().max() < 0.05, mean.to_string()  # +0.5% .. +1.6% measured
    assert p99.abs().max() < 0.15, p99.to_string()  # -6% .. -10% measured
    # the same box under a closed population: the host is a load-dependent MVA station
    closed = cs.ClosedWorkload(6, E(0.1))
    twin = solve(system, closed)
    res = run(system, closed, 6, 400, seed=34)
    mean = gaps(res, twin, "mean_s")
    assert mean.abs().max() < 0.03, mean.to_string()  # about -0.6% measured
    agree_components(res, twin, ("box",), ("utilization",), width=0.02)


def test_priority_station_per_flow_means():
    # one server, class-dependent service: Cobham with the classes' own moments, exact
    one = cs.System(
        [cs.Service("app", 1, E(0.1), discipline="priority")],
        [cs.Flow("gold", 0.3, [cs.Call("app", service_time=cs.Gamma(0.05, 0.5))], priority=0),
         cs.Flow("silver", 0.7, [cs.Call("app", service_time=E(0.1))])])
    w = cs.OpenWorkload(1, 8.0)
    twin = solve(one, w)
    res = run(one, w, 6, 4_000, seed=35)
    agree_flows(res, twin, ("gold", "silver"), ("mean_s",))
    # two servers, three classes with their own service: Bondi-Buzen, an approximation
    two = cs.System(
        [cs.Service("app", 2, E(0.1), discipline="priority")],
        [cs.Flow("gold", 0.3, [cs.Call("app", service_time=E(0.05))], priority=0),
         cs.Flow("silver", 0.4, [cs.Call("app", service_time=E(0.1))], priority=1),
         cs.Flow("bronze", 0.3, [cs.Call("app", service_time=E(0.15))])])
    w = cs.OpenWorkload(1, 16.0)  # rho = 0.8
    twin = solve(two, w)
    res = run(two, w, 6, 2_000, seed=36)
    mean = gaps(res, twin, "mean_s")
    assert mean.abs().max() < 0.05, mean.to_string()  # within -2.3% .. +0.1% measured
    order = twin.latency().set_index("flow")["mean_s"]
    assert order["gold"] < order["silver"] < order["bronze"]


def test_processor_sharing_with_high_cv_service():
    system = cs.System([cs.Service("s", 2, cs.HyperExponential(mean=1.0, cv=3.0),
                                   discipline="ps")], [cs.Flow("f", 1.0, [cs.Call("s")])])
    w = cs.OpenWorkload(1, 1.4)  # rho = 0.7 on two cores
    twin = solve(system, w)
    res = run(system, w, 10, 40_000, seed=37)
    agree_flows(res, twin, ("f",), ("mean_s",), width=0.07)
    agree_components(res, twin, ("s",), ("utilization",), width=0.03)
    p99 = gaps(res, twin, "p99_s")
    assert abs(p99["f"]) < 0.10, p99.to_string()
