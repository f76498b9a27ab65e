"""capsim.model.demands: one service time per component, and where each request's work goes.

The averaged system must offer exactly the load of the per-step one (checked at several
rates, on a model with every kind of weight: flow shares, branches, fixed and random visits,
cache misses, a full scan, instances, a held call), and the weights must be the right ones
(a case computed by hand). Each test also checks that something did change, so returning the
system untouched cannot pass.
"""

import math

import pytest

import capsim as cs
from capsim.model.demands import averaged, demand_table
from capsim.model.flows import Branch, Call, Read, Write


def _has_own_service(steps) -> bool:
    for s in steps:
        if isinstance(s, Branch):
            if any(_has_own_service(sub) for _, sub in s.options):
                return True
        elif isinstance(s, Call | Read | Write):
            if s.service_time is not None:
                return True
            if _has_own_service(getattr(s, "calls", ()) + getattr(s, "on_miss", ())):
                return True
    return False


def _per_component(system: cs.System, load: dict[str, float]) -> dict[str, float]:
    """Busy servers per component (offered load x servers, summed over its stations)."""
    out: dict[str, float] = {}
    for st in system.stations():
        if st.servers is not None:
            out[st.component] = out.get(st.component, 0.0) + load[st.name] * st.servers
    return out


def busy_shop(held: bool = False) -> cs.System:
    """Flow shares, branches, fixed and Poisson visits, a cache miss, a full scan, two app
    instances; with ``held`` the page's app worker waits for its two db reads."""
    app = cs.Service("app", servers=4, instances=2, service_time=cs.LogNormal(0.01, cv=1.0))
    db = cs.Database("db", servers=3, service_time=cs.Gamma(mean=0.004, cv=0.7),
                     table_rows=200_000, scan_rows_per_s=2e6)
    cache = cs.Cache("cache", servers=2, service_time=cs.Exponential(0.0005), hit_ratio=0.7)
    flows = [
        cs.Flow("page", 0.5, [cs.Call("app", calls=[cs.Read("db", visits=2)]) if held
                              else cs.Call("app"), *([] if held else [cs.Read("db", visits=2)]),
                              cs.Read("cache", on_miss=[
                                  cs.Read("db", service_time=cs.Exponential(0.03))])]),
        cs.Flow("search", 0.3, [cs.Call("app", service_time=cs.LogNormal(0.02, cv=0.5)),
                                Branch([(0.9, [cs.Read("db", service_time=cs.Gamma(0.06, 0.4))]),
                                        (0.1, [cs.Read("db", index=False)])])]),
        cs.Flow("order", 0.2, [cs.Call("app"),
                               cs.Write("db", service_time=cs.Exponential(0.04),
                                        visits=cs.Poisson(mean=1.5)),
                               cs.Write("cache", service_time=cs.Exponential(0.002))]),
    ]
    return cs.System([app, db, cache], flows, name="busy")


@pytest.mark.parametrize("rate", [0.3, 17.0, 95.0])
def test_the_averaged_system_offers_the_same_load_per_component(rate):
    system = busy_shop()
    flat = averaged(system)
    assert not any(_has_own_service(f.steps) for f in flat.flows)
    assert flat.component("db").service_time.mean != system.component("db").service_time.mean
    assert flat.component("app").service_time.mean != system.component("app").service_time.mean
    before = _per_component(system, system.offered_load(rate))
    after = _per_component(flat, flat.offered_load(rate))
    assert before.keys() == after.keys() == {"app", "db", "cache"}
    for name in before:
        assert after[name] == pytest.approx(before[name], rel=1e-12), name
    assert before["db"] > 0.0


def test_averaging_keeps_the_shape_the_visits_and_the_scans():
    system = busy_shop()
    flat = averaged(system)
    db = flat.component("db").service_time
    assert isinstance(db, cs.Gamma) and db.cv == pytest.approx(0.7)
    assert isinstance(flat.component("app").service_time, cs.LogNormal)
    assert flat.component("app").service_time.cv == pytest.approx(1.0)
    order = flat.flow("order")
    assert order.steps[1].visits == cs.Poisson(mean=1.5)
    scan = flat.flow("search").steps[1].options[1][1][0]
    assert scan.index is False
    # a scan costs the table's time whatever the lookup time: it stays a scan, unaveraged
    scan_demand = [sum(v.scale * v.service_of(flat.component("db").service_time).mean
                       for v in r.calls if v.scale != 1.0) for r in flat.flow_routes("search")]
    assert max(scan_demand) == pytest.approx(200_000 / 2e6)


def test_a_held_worker_follows_its_callees_average_and_the_callee_stays_exact():
    system = busy_shop(held=True)
    flat = averaged(system)
    before = _per_component(system, system.offered_load(50.0))
    after = _per_component(flat, flat.offered_load(50.0))
    assert after["db"] == pytest.approx(before["db"], rel=1e-12)
    # the page's app worker is busy for its two db reads: at the db's average, not at 4 ms
    shift = 50.0 * 0.5 * 2 * (flat.component("db").service_time.mean - 0.004)
    assert after["app"] - before["app"] == pytest.approx(shift, rel=1e-9)


def test_a_system_without_own_service_times_is_returned_equal():
    db = cs.Database("db", servers=2, service_time=cs.Exponential(0.005), table_rows=10_000)
    system = cs.System([cs.Service("app", service_time=cs.Exponential(0.01)), db], [
        cs.Flow("a", 0.6, [cs.Call("app", calls=[cs.Read("db", visits=cs.Geometric(3))])]),
        cs.Flow("b", 0.4, [cs.Call("app"), Branch([(0.5, [cs.Read("db", index=False)]),
                                                   (0.5, [cs.Write("db", visits=2)])])])])
    assert averaged(system) == system
    assert averaged(system, arrival_rate_per_s=20.0) == system


def hand_case() -> cs.System:
    db = cs.Database("db", servers=2, service_time=cs.Gamma(mean=0.002, cv=0.7))
    cache = cs.Cache("cache", service_time=cs.Exponential(0.001), hit_ratio=0.8)
    return cs.System([db, cache], [
        cs.Flow("a", 0.2, [cs.Read("db", service_time=cs.Exponential(0.020), visits=3)]),
        cs.Flow("b", 0.5, [Branch([(0.4, [cs.Read("db", service_time=cs.Exponential(0.05))]),
                                   (0.6, [])]),
                           cs.Write("db", visits=cs.Poisson(mean=2))]),
        cs.Flow("c", 0.3, [cs.Read("cache", on_miss=[
            cs.Read("db", service_time=cs.Exponential(0.1))])]),
    ])


def test_visits_branches_and_misses_weigh_as_by_hand():
    # db visits per request: a 0.2 x 3, b 0.5 x 0.4 (branch) + 0.5 x 2 (Poisson), c 0.3 x 0.2
    visits = 0.2 * 3 + 0.5 * 0.4 + 0.5 * 2 + 0.3 * 0.2  # 1.86
    work = 0.2 * 3 * 0.020 + 0.5 * 0.4 * 0.05 + 0.5 * 2 * 0.002 + 0.3 * 0.2 * 0.1  # 0.030 s
    flat = averaged(hand_case())
    db = flat.component("db").service_time
    assert db.mean == pytest.approx(work / visits, rel=1e-5)  # 16.13 ms; Poisson cut at 1e-6
    assert isinstance(db, cs.Gamma) and db.cv == pytest.approx(0.7)
    assert flat.component("cache") == hand_case().component("cache")  # no own demand on it


def test_demand_table_by_hand():
    t = demand_table(hand_case()).set_index(["flow", "component"])
    assert t.loc[("a", "db"), "visits"] == pytest.approx(3)
    assert t.loc[("a", "db"), "demand_ms"] == pytest.approx(60.0)
    assert t.loc[("b", "db"), "visits"] == pytest.approx(2.4, rel=1e-5)
    assert t.loc[("b", "db"), "demand_ms"] == pytest.approx(24.0, rel=1e-5)
    assert t.loc[("c", "db"), "visits"] == pytest.approx(0.2)
    assert t.loc[("c", "db"), "demand_ms"] == pytest.approx(20.0)
    assert t.loc[("c", "cache"), "visits"] == pytest.approx(1.0)
    assert t.loc[("a", "cache"), "visits"] == 0.0 and math.isnan(t.loc[("a", "cache"),
                                                                        "service_ms"])
    assert t.loc[("all", "db"), "demand_ms"] == pytest.approx(30.0, rel=1e-5)
    assert t.loc[("all", "db"), "visits"] == pytest.approx(1.86, rel=1e-5)
    assert t.loc[("a", "db"), "service_cv"] == pytest.approx(1.0)  # one exponential


def test_demand_table_all_rows_are_the_systems_demands():
    system = busy_shop(held=True)  # instances, a held call (page), a cache miss, a scan
    t = demand_table(system)
    demands = system.demands()
    for c in system.components:
        total = sum(d for name, d in demands.items()
                    if name == c.name or name.startswith(f"{c.name}["))
        row = t[(t["flow"] == "all") & (t["component"] == c.name)]
        assert row["demand_ms"].item() == pytest.approx(total * 1e3, rel=1e-12), c.name
    # the held call: app is busy for the page's two db reads too
    page_app = t[(t["flow"] == "page") & (t["component"] == "app")]["demand_ms"].item()
    assert page_app == pytest.approx(10.0 + 2 * 4.0)


def test_service_cv_is_that_of_the_mix():
    db = cs.Database("db", service_time=cs.Deterministic(0.001))
    system = cs.System([db], [
        cs.Flow("short", 0.5, [cs.Read("db")]),
        cs.Flow("long", 0.5, [cs.Read("db", service_time=cs.Deterministic(0.003))])])
    t = demand_table(system).set_index(["flow", "component"])
    assert t.loc[("short", "db"), "service_cv"] == pytest.approx(0.0)
    # visits of 1 ms and 3 ms, half each: mean 2 ms, sd 1 ms
    assert t.loc[("all", "db"), "service_ms"] == pytest.approx(2.0)
    assert t.loc[("all", "db"), "service_cv"] == pytest.approx(0.5)
    flat = averaged(system)
    assert flat.component("db").service_time == cs.Deterministic(0.002)
    assert demand_table(flat).set_index(["flow", "component"]).loc[
        ("all", "db"), "service_cv"] == pytest.approx(0.0)  # what averaging loses


def test_a_delay_latency_is_averaged_and_a_ttl_cache_at_its_rate():
    net = cs.Delay("net", latency=cs.Deterministic(0.010))
    system = cs.System([net], [
        cs.Flow("near", 0.75, [cs.Call("net")]),
        cs.Flow("far", 0.25, [cs.Call("net", service_time=cs.Deterministic(0.090))])])
    latency = averaged(system).component("net").latency
    assert isinstance(latency, cs.Deterministic)
    assert latency.value == pytest.approx(0.75 * 0.010 + 0.25 * 0.090)

    cache = cs.Cache("cache", service_time=cs.Exponential(0.001), keys=1_000, zipf_s=0.8,
                     capacity_keys=200, ttl_s=5.0)
    db = cs.Database("db", servers=2, service_time=cs.Exponential(0.002))
    ttl = cs.System([cache, db], [
        cs.Flow("view", 0.8, [cs.Read("cache", on_miss=[
            cs.Read("db", service_time=cs.Exponential(0.02))])]),
        cs.Flow("list", 0.2, [cs.Read("db", visits=3)])])
    rate = 40.0
    flat = averaged(ttl, arrival_rate_per_s=rate)
    assert flat.component("db").service_time.mean != pytest.approx(0.002)
    before = ttl.offered_load(rate)["db"]
    assert flat.offered_load(rate)["db"] == pytest.approx(before, rel=1e-9)
