"""Per-step demands, repeated steps, populations, priorities and hosts: the model's checks and
the run's bookkeeping (fast; the numbers against theory are in tests/validation)."""

import numpy as np
import pytest

import capsim as cs
from capsim.analytic import solve
from capsim.model import shares

E = cs.Exponential


def shop() -> cs.System:
    db = cs.Database("db", servers=2, service_time=E(0.004))
    web = cs.Service("web", servers=8, service_time=E(0.01))
    return cs.System([web, db], [
        cs.Flow("page", 0.6, [cs.Call("web", calls=[cs.Read("db", service_time=E(0.003))])]),
        cs.Flow("search", 0.3, [cs.Call("web", calls=[cs.Read("db", service_time=E(0.06))])]),
        cs.Flow("checkout", 0.1, [cs.Call("web", calls=[cs.Write("db",
                                                                 service_time=E(0.04))])]),
    ])


@pytest.mark.parametrize(("make", "message"), [
    (lambda: cs.Call("db", visits=-1), "Call('db').visits: must be >= 0, got -1"),
    (lambda: cs.Read("db", visits=2.5), "Read('db').visits: must be an integer >= 0"),
    (lambda: cs.Write("db", visits=E(3)), "Write('db').visits: must be an integer >= 0 or a "
                                          "count distribution"),
    (lambda: cs.Call("db", service_time=0.003), "Call('db').service_time: must be a "
                                                "distribution"),
    (lambda: cs.Flow("f", 1.0, [cs.Call("a")], priority=-1), "Flow('f').priority: must be >= 0"),
    (lambda: cs.Host("box", cores=0), "Host('box').cores: must be >= 1, got 0"),
    (lambda: cs.Service("a", 2, E(1), discipline="lifo"), "Service('a').discipline: must be "
                                                          "one of fcfs, ps, priority"),
    (lambda: cs.Service("a", 2, E(1), max_concurrency=8), "Service('a').max_concurrency: "
                                                          "needs discipline='ps'"),
    (lambda: cs.Service("a", 4, E(1), discipline="ps", max_concurrency=2),
     "Service('a').max_concurrency: must be >= 4, got 2"),
    (lambda: cs.Service("a", 2, E(1), discipline="priority", host="box"),
     "Service('a').discipline: must be 'fcfs' or 'ps' on a host"),
    (lambda: cs.Database("pg", 2, E(1), read_replicas=1, host="box"), "Database('pg').host:"),
    (lambda: cs.MixedWorkload([]), "MixedWorkload.populations: must hold at least one"),
    (lambda: cs.MixedWorkload([cs.OpenWorkload(1, 1)], names=("a", "b")),
     "MixedWorkload.names: must hold 1 names"),
    (lambda: cs.OpenWorkload(1, 1, flows=()), "OpenWorkload.flows: must name at least one flow"),
])
def test_bad_fields_are_named_with_their_value(make, message):
    with pytest.raises(cs.ModelError, match=None) as err:
        make()
    assert message in str(err.value)


def test_system_checks_hosts_and_priorities_against_its_parts():
    web = cs.Service("web", 4, E(0.01), host="bx")
    with pytest.raises(cs.ModelError, match=r"Service\('web'\).host: unknown host 'bx' \(did "
                                            r"you mean 'box'\?\)"):
        cs.System([web], [cs.Flow("f", 1.0, [cs.Call("web")])], hosts=[cs.Host("box", 2)])
    with pytest.raises(cs.ModelError, match=r"Flow\('f'\).priority: set to 0, but none of the "
                                            "components it calls serves by priority"):
        cs.System([cs.Service("web", 1, E(1))], [cs.Flow("f", 1.0, [cs.Call("web")],
                                                         priority=0)])
    with pytest.raises(cs.ModelError, match="unknown flow 'serch' \\(did you mean 'search'"):
        shares(shop(), cs.OpenWorkload(1, 1, flows=("page", "serch")))


def test_populations_scale_together_or_one_at_a_time():
    w = cs.MixedWorkload([cs.ClosedWorkload(20, E(2.0), flows=("page", "search")),
                          cs.OpenWorkload(5, 1.0, flows=("checkout",))])
    assert w.names == ("page+search", "checkout")
    assert w.users == 25
    doubled = w.with_users(50)
    assert [p.users for p in doubled.populations] == [40, 10.0]
    assert isinstance(doubled.populations[0].users, int)
    one = w.with_users(9, population="checkout")
    assert [p.users for p in one.populations] == [20, 9]
    with pytest.raises(cs.ModelError, match="no population named 'chekout' \\(did you mean"):
        w.with_users(9, population="chekout")
    assert [g.users for g in cs.growth(w, [50, 100])] == [50, 100]


def test_a_mixed_run_reports_each_flow_and_each_population():
    w = cs.MixedWorkload([cs.ClosedWorkload(10, E(1.0), flows=("page", "search")),
                          cs.OpenWorkload(4, 1.0, flows=("checkout",)),
                          cs.OpenWorkload(6, 1.0)], names=("browsers", "buyers", "api"))
    run = cs.simulate(shop(), w, 600, 60, seed=4)
    by_flow = run.latency().set_index("flow")
    by_pop = run.latency(by="population").set_index("flow")
    assert list(by_pop.index) == ["browsers", "buyers", "api"]
    # every request is in exactly one flow row and one population row
    assert by_pop["count"].sum() == by_flow.loc["all", "count"]
    assert by_flow.loc[["page", "search", "checkout"], "count"].sum() == by_flow.loc["all",
                                                                                     "count"]
    # the buyers run only checkout: their row is the checkouts not sent by the api
    requests = run.requests()
    assert by_pop.loc["buyers", "count"] < (requests["flow"] == "checkout").sum()
    assert by_pop.loc["buyers", "throughput_per_s"] == pytest.approx(4.0, rel=0.15)
    assert by_pop.loc["browsers", "throughput_per_s"] == pytest.approx(10 / 1.03, rel=0.15)
    with pytest.raises(cs.ModelError, match="RunResult.latency.by"):
        cs.simulate(shop(), cs.OpenWorkload(5, 1.0), 50, seed=1).latency(by="population")


def test_one_population_on_some_flows_runs_only_those():
    run = cs.simulate(shop(), cs.OpenWorkload(20, 1.0, flows=("search",)), 300, 30, seed=2)
    lat = run.latency().set_index("flow")
    assert lat.loc["search", "count"] > 4000
    assert lat.loc[["page", "checkout"], "count"].sum() == 0
    db = run.components().set_index("component").loc["db"]
    assert db["offered_load"] == pytest.approx(20 * 0.06 / 2)
    twin = solve(shop(), cs.OpenWorkload(20, 1.0, flows=("search",)))
    assert twin.components().set_index("component").loc["db", "utilization"] == \
        pytest.approx(0.6)


def test_the_twin_pools_open_populations_and_mixes_their_rows():
    w = cs.MixedWorkload([cs.OpenWorkload(5, 1.0, flows=("checkout",)),
                          cs.OpenWorkload(10, 2.0, flows=("page", "search"))],
                         names=("buyers", "browsers"))
    twin = solve(shop(), w)
    flows = twin.latency().set_index("flow")
    pops = twin.latency(by="population").set_index("flow")
    # browsers send page and search 2:1; their mean is the mix of those flows' means
    mix = (2 * flows.loc["page", "mean_s"] + flows.loc["search", "mean_s"]) / 3
    assert pops.loc["browsers", "mean_s"] == pytest.approx(mix, rel=1e-12)
    assert pops.loc["buyers", "mean_s"] == pytest.approx(flows.loc["checkout", "mean_s"])
    assert pops["throughput_per_s"].to_dict() == pytest.approx({"buyers": 5.0, "browsers": 20.0})


def test_visits_and_own_demands_change_the_offered_load_as_the_twin_says():
    db = cs.Database("db", servers=1, service_time=E(0.002))
    system = cs.System([cs.Service("web", 4, E(0.01)), db], [
        cs.Flow("listing", 1.0, [cs.Call("web", calls=[
            cs.Read("db", visits=cs.Poisson(mean=6), service_time=E(0.001))])])])
    load = system.offered_load(50)
    assert load["db"] == pytest.approx(50 * 6 * 0.001)
    assert load["web"] == pytest.approx(50 * (0.01 + 6 * 0.001) / 4, rel=1e-5)
    k, p = cs.Poisson(mean=6).support()
    assert p.sum() == pytest.approx(1.0) and (k * p).sum() == pytest.approx(6, rel=1e-5)
    assert cs.Geometric(mean=4).scaled(6) == cs.Geometric(mean=6)
    draws = cs.Geometric(mean=4).sample(np.random.default_rng(1), 200_000)
    assert draws.min() == 0 and draws.mean() == pytest.approx(4, rel=0.02)


def test_vertical_scaling_moves_every_demand_on_the_tier_and_a_host_is_its_cores():
    from capsim.scaling.catalogue import Instance
    from capsim.scaling.options import Vertical, apply, capacity_per_s, one_down

    box = Instance("m.4x", "m", 4, 2.0, 16, 0.5)
    bigger = apply(shop(), "db", Vertical(box))
    factor = Vertical(box).service_factor
    search = bigger.flow("search").steps[0].calls[0]
    assert search.service_time.mean == pytest.approx(0.06 * factor)
    assert bigger.component("db").servers == 4
    # a monolith: app and database on one box; a bigger box is more and faster cores
    hosted = cs.System(
        [cs.Service("web", 16, E(0.01), host="box"), cs.Database("db", 8, E(0.004), host="box")],
        shop().flows, hosts=[cs.Host("box", cores=2)])
    work = 0.01 + 0.6 * 0.003 + 0.3 * 0.06 + 0.1 * 0.04  # core-seconds per request
    assert capacity_per_s(hosted, "box") == pytest.approx(2 / work)
    scaled = apply(hosted, "box", Vertical(box))
    assert scaled.hosts[0].cores == 4 and scaled.hosts[0].speed == pytest.approx(1 / factor)
    assert capacity_per_s(scaled, "box") == pytest.approx(4 / factor / work)
    # the database onto a box of its own: the app keeps the shared one to itself
    split = apply(hosted, "db", Vertical(box))
    assert split.component("db").host is None and split.component("db").servers == 4
    assert [h.name for h in split.hosts] == ["box"]
    assert capacity_per_s(split, "box") == pytest.approx(2 / 0.01)
    alone = apply(split, "web", Vertical(box))  # and the app too: the empty box goes
    assert alone.hosts == () and alone.component("web").host is None
    down = one_down(hosted, "box", Vertical(box))
    assert {o.component for o in down.system.outages} == {"web", "db"}


def test_growth_grows_all_populations_or_the_named_one():
    w = cs.MixedWorkload([cs.ClosedWorkload(20, E(2.0)), cs.OpenWorkload(5, 1.0)],
                         names=("browsers", "api"))
    months = cs.growth(w, monthly_growth=0.5, months=2, population="api")
    assert [p.populations[1].users for p in months] == pytest.approx([5, 7.5, 11.25])
    assert {p.populations[0].users for p in months} == {20}
    with pytest.raises(cs.ModelError, match="growth.population: needs a MixedWorkload"):
        cs.growth(cs.OpenWorkload(5, 1.0), [1, 2], population="api")


def test_one_population_on_some_flows_has_its_population_row_in_the_twin_too():
    load = cs.OpenWorkload(20, 1.0, flows=("page", "search"))
    twin = solve(shop(), load)
    pops = twin.latency(by="population").set_index("flow")
    pooled = twin.latency().set_index("flow").loc["all"]
    assert list(pops.index) == ["page+search"]
    assert pops.loc["page+search", "mean_s"] == pooled["mean_s"]
    run = cs.simulate(shop(), load, 200, 20, seed=3)
    assert list(run.latency(by="population")["flow"]) == ["page+search"]


def test_a_review_and_a_saturation_search_name_a_host_that_runs_out_of_cores():
    from capsim.experiment.review import capacity_review

    E_ = cs.Exponential
    system = cs.System(
        [cs.Service("app", 16, E_(0.01), host="box"), cs.Database("db", 8, E_(0.003), host="box")],
        [cs.Flow("page", 1.0, [cs.Call("app", calls=[cs.Read("db", visits=2)])])],
        hosts=[cs.Host("box", cores=1)])
    load = cs.MixedWorkload([cs.ClosedWorkload(4, E_(1.0)), cs.OpenWorkload(10, 1.0)])
    review = capacity_review(system, load, cs.Budget(p99_s=0.5), points=3, replications=2,
                             duration_s=20, store=None, progress=False, processes=1)
    assert "host box" in review.recommendation
    search = cs.find_saturation(system, load, cs.Budget(p99_s=0.25), duration_s=20,
                                replications=2, seed=1, processes=1, rel_tol=0.2, store=None)
    assert search.bottleneck == "box"
