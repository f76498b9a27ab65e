"""capsim.scaling: option arithmetic (USL, speed, cost), today's deployment of the example shop,
compare / cheapest on a small system with hand-checkable answers, failures by simulation, and the
autoscaling summary. The catalogue itself is tested in test_catalogue.py.

The small system is one tier with 10 ms exponential requests on a reference core. With
``sigma = kappa = 0`` an N-core box is exactly N reference cores, so capacities are N / 10 ms.
"""

import math

import pytest

import capsim as cs
from capsim import scaling as sc
from capsim.scaling.autoscale import simulate_autoscaling, tier_alone
from capsim.scaling.cheapest import cheapest
from capsim.scaling.compare import compare, twin_saturation_users, twin_view
from capsim.scaling.examples import ecommerce_scalable, today
from capsim.scaling.options import database_as_services

E = cs.Exponential
S = 0.010  # reference demand per request


def inst(name="box-2", vcpus=2, speed=1.0, price=0.10, memory=8.0, family="test"):
    return sc.Instance(name, family, vcpus, speed, memory, price)


def one_tier() -> cs.System:
    return cs.System([cs.Service("web", servers=1, service_time=E(S))],
                     [cs.Flow("page", 1.0, [cs.Call("web")])])


NO_USL = {"sigma": 0.0, "kappa": 0.0}


# -- USL, speed, cost ------------------------------------------------------------------------


def test_usl_capacity_formula_and_published_default():
    assert sc.usl_capacity(1) == 1.0
    assert sc.usl_capacity(64, 0.0, 0.0) == 64.0
    assert sc.usl_capacity(16, 0.05, 0.0) == pytest.approx(16 / (1 + 0.05 * 15))  # Amdahl
    assert sc.usl_capacity(8, 0.1, 0.01) == pytest.approx(8 / (1 + 0.7 + 0.56))
    # the default is SPEC SDM91 (GCaP 2007): 64 cores are about 27 cores' worth, not 64
    assert sc.usl_capacity(64) == pytest.approx(26.75, abs=0.01)
    assert sc.usl_capacity(64) / sc.usl_capacity(2) < 32 / 2


def test_vertical_scales_the_worker_time_by_n_over_c_and_divides_by_speed():
    big = inst("big-16", vcpus=16, speed=1.25, price=1.6)
    opt = sc.Vertical(big, sigma=0.05, kappa=0.001)
    c16 = 16 / (1 + 0.05 * 15 + 0.001 * 16 * 15)
    assert opt.service_factor == pytest.approx(16 / c16 / 1.25)
    assert opt.effective_cores == pytest.approx(c16 * 1.25)
    web = sc.apply(one_tier(), "web", opt).component("web")
    assert web.servers == 16 and web.instances == 1
    assert web.service_time.mean == pytest.approx(S * 16 / c16 / 1.25)
    assert isinstance(web.service_time, cs.Exponential)  # shape kept
    # N workers each N / C(N) slower complete C(N) x speed / S per second: the USL's X(N)
    assert sc.capacity_per_s(sc.apply(one_tier(), "web", opt)) == pytest.approx(
        c16 * 1.25 / S)


def test_costs():
    box = inst(price=0.25)
    assert sc.Vertical(box).cost_per_hour_usd == 0.25
    assert sc.Horizontal(box, 4, balancer_usd_per_hour=0.03).cost_per_hour_usd == \
        pytest.approx(4 * 0.25 + 0.03)
    db = sc.DatabaseOptions(box, read_replicas=2, shards=3)
    assert db.boxes == 9 and db.cost_per_hour_usd == pytest.approx(9 * 0.25)


def test_horizontal_capacity_is_count_times_one_box():
    box = inst(vcpus=4)
    one = sc.capacity_per_s(sc.apply(one_tier(), "web", sc.Vertical(box)))
    four = sc.apply(one_tier(), "web", sc.Horizontal(box, 4, policy="round_robin"))
    assert four.component("web").instances == 4
    assert four.component("web").balancing == "round_robin"
    assert sc.capacity_per_s(four) == pytest.approx(4 * one)


def test_options_refuse_what_a_tier_cannot_do():
    system, _ = ecommerce_scalable()
    box = inst()
    with pytest.raises(cs.ModelError, match="stateful: it scales out with DatabaseOptions"):
        sc.apply(system, "postgres", sc.Horizontal(box, 3))
    with pytest.raises(cs.ModelError, match="DatabaseOptions .* need a Database"):
        sc.apply(system, "app", sc.DatabaseOptions(box, read_replicas=1))
    with pytest.raises(cs.ModelError, match="policy: must be one of"):
        sc.Horizontal(box, 2, policy="sticky")
    with pytest.raises(cs.ModelError, match="count: must be >= 1"):
        sc.Horizontal(box, 0)


def test_database_options_scale_reads_with_replicas_and_writes_with_shards():
    system, load = ecommerce_scalable()
    box = inst(vcpus=8)
    base = sc.apply(system, "postgres", sc.Vertical(box))
    rate = load.arrival_rate_per_s
    reads, writes = 2.0, 0.25  # per page, by construction of the example
    per_box = sc.usl_capacity(8) / 0.008  # queries per second one box completes (8 ms)
    assert sc.capacity_per_s(base, "postgres") == pytest.approx(per_box / (reads + writes))
    replicas = sc.apply(system, "postgres", sc.DatabaseOptions(box, read_replicas=3))
    loads = replicas.offered_load(rate)
    assert loads["postgres"] == pytest.approx(rate * writes / per_box)  # the primary: writes
    assert loads["postgres/replica1"] == pytest.approx(rate * reads / 3 / per_box)
    shards = sc.apply(system, "postgres", sc.DatabaseOptions(box, shards=2))
    assert shards.offered_load(rate)["postgres/shard0"] == pytest.approx(
        rate * (reads + writes) / 2 / per_box)


def test_database_as_services_keeps_every_station_load():
    system, load = ecommerce_scalable()
    db = sc.apply(system, "postgres", sc.DatabaseOptions(inst(vcpus=8), read_replicas=2,
                                                         shards=2))
    plain = database_as_services(db, "postgres")
    rate = load.arrival_rate_per_s
    a, b = db.offered_load(rate), plain.offered_load(rate)
    assert b["postgres/shard1"] == pytest.approx(a["postgres/shard1"])
    assert b["postgres/shard0/replicas[1]"] == pytest.approx(a["postgres/shard0/replica2"])
    assert sc.capacity_per_s(plain) == pytest.approx(sc.capacity_per_s(db))


def test_twin_view_pools_balanced_boxes_with_the_same_capacity():
    system = sc.apply(one_tier(), "web", sc.Horizontal(inst(vcpus=4), 3))
    view = twin_view(system)
    web = view.component("web")
    assert (web.instances, web.servers) == (1, 12)
    assert sc.capacity_per_s(view) == pytest.approx(sc.capacity_per_s(system))
    rr = sc.apply(one_tier(), "web", sc.Horizontal(inst(vcpus=4), 3, policy="round_robin"))
    assert twin_view(rr).component("web").instances == 3  # left as it is


# -- the example -----------------------------------------------------------------------------


def test_example_today_holds_today_and_its_database_is_the_bottleneck():
    system, load = ecommerce_scalable()
    plan = today()
    assert (plan["app"].label, plan["postgres"].instance.name) == ("2 x m7i.2xlarge",
                                                                  "db.r6i.2xlarge")
    now = sc.deploy(system, plan)
    assert now.component("app").instances == 2
    db_users = sc.capacity_per_s(now, "postgres") / load.requests_per_user_s
    app_users = sc.capacity_per_s(now, "app") / load.requests_per_user_s
    assert load.users < db_users < app_users
    # 8 vCPUs under the USL, each db.r6i vCPU 3.5 GHz x IPC 1.0 / 3.1 (an m5 vCPU) as fast
    db_speed = 3.5 * 1.0 / 3.1
    assert db_users == pytest.approx(sc.usl_capacity(8) * db_speed / (2.25 * 0.008 * 0.02),
                                     rel=1e-4)
    assert 20_000 < db_users < 25_000 and 35_000 < app_users < 40_000


# -- compare: failures come from simulation ---------------------------------------------------


@pytest.fixture(scope="module")
def small_comparison():
    box2, box8 = inst("box-2", 2, price=0.10), inst("box-8", 8, price=0.30)
    load = cs.OpenWorkload(users=150, requests_per_user_s=3.0)  # 450/s; 8 cores do 800/s
    result = compare(one_tier(), "web", vertical=[sc.Vertical(box8, **NO_USL)],
                     horizontal=[sc.Horizontal(box2, 4, balancer_usd_per_hour=0.0, **NO_USL)],
                     workload=load, budget=cs.Budget(p99_s=0.100), replications=1,
                     requests=10_000, processes=1, simulate_saturation=False)
    return result, load


def test_compare_table_arithmetic(small_comparison):
    result, load = small_comparison
    t = result.table().set_index("kind")
    assert list(t.index) == ["vertical", "horizontal"]
    assert t.loc["vertical", "cost_per_hour_usd"] == pytest.approx(0.30)
    assert t.loc["horizontal", "cost_per_hour_usd"] == pytest.approx(0.40)
    assert t.loc["horizontal", "cost_per_month_usd"] == pytest.approx(0.40 * 730)
    for kind in t.index:  # 8 cores x 100/s each, in users of 3 requests/s
        assert t.loc[kind, "capacity_users"] == pytest.approx(800 / 3)
        assert 0.5 * 800 / 3 < t.loc[kind, "twin_users_at_budget"] < 800 / 3
        # simulate_saturation=False: users at budget is the twin's, and says so
        assert t.loc[kind, "users_at_budget"] == t.loc[kind, "twin_users_at_budget"]
        assert t.loc[kind, "users_at_budget_status"] == "twin"
        assert math.isnan(t.loc[kind, "users_at_budget_low"])
        assert t.loc[kind, "usd_per_month_per_1k_users"] == pytest.approx(
            t.loc[kind, "cost_per_month_usd"] / t.loc[kind, "users_at_budget"] * 1e3)
    assert t.loc["vertical", "meets_budget"] and t.loc["horizontal", "meets_budget"]
    # 2x peak is 900/s of 800/s: no steady state, not simulated, no headroom
    assert math.isinf(t.loc["vertical", "p99_at_2x_peak_s"])
    assert not t.loc["vertical", "meets_budget_at_2x_peak"]
    assert t.loc["vertical", "headroom_at_2x_peak"] == pytest.approx(
        t.loc["vertical", "users_at_budget"] / 300 - 1)
    assert t.loc["vertical", "headroom_at_2x_peak"] < 0


def test_failure_rows_come_from_simulation(small_comparison):
    result, load = small_comparison
    t = result.table().set_index("kind")
    runs = result.runs
    assert set(runs.loc[runs["option"] == "1 x box-8", "scenario"]) == {"target", "probe"}
    assert set(runs.loc[runs["option"] == "4 x box-2", "scenario"]) == {"target", "probe",
                                                                       "one_down"}
    # the single box down: nothing is served, nothing is left
    assert t.loc["vertical", "failure"] == "outage: the only box"
    assert t.loc["vertical", "pages_served_one_down"] == 0.0
    assert t.loc["vertical", "capacity_one_down_users"] == 0.0
    assert math.isinf(t.loc["vertical", "p99_one_down_s"])
    assert not t.loc["vertical", "survives_one_failure"]
    assert not t.loc["vertical", "meets_every_check"]
    # 4 boxes, one down: the balancer skips it and 3/4 of the capacity is measured
    assert t.loc["horizontal", "failure"] == "outage: 1 of 4 instances"
    assert t.loc["horizontal", "pages_served_one_down"] == pytest.approx(1.0, abs=0.01)
    assert t.loc["horizontal", "capacity_left_one_down"] == pytest.approx(0.75, abs=0.03)
    # 450/s on the 6 workers left (600/s): simulated, and slower than with all 4
    assert t.loc["horizontal", "p99_at_target_s"] < t.loc["horizontal", "p99_one_down_s"] \
        < math.inf


def test_database_failures_come_from_simulation_too():
    system = cs.System([cs.Database("db", servers=1, service_time=E(S))],
                       [cs.Flow("read", 1.0, [cs.Read("db")])])
    box = inst("box-4", 4)
    result = compare(system, "db", options=[sc.DatabaseOptions(box, shards=2, **NO_USL),
                                            sc.DatabaseOptions(box, read_replicas=2, **NO_USL)],
                     workload=cs.OpenWorkload(1, 200.0), budget=cs.Budget(p99_s=0.1),
                     replications=1, requests=6_000, processes=1, simulate_saturation=False)
    t = result.table().set_index("option")
    shards = t.loc["2 shards x (box-4 primary)"]
    # shard 0's primary is down and has no replica: the half of the reads that go there wait
    assert shards["failure"] == "outage: shard 0 of 2 (no replica)"
    assert shards["pages_served_one_down"] == pytest.approx(0.5, abs=0.05)
    assert shards["capacity_one_down_users"] == 0.0
    # one of two replicas lost (failover): the reads have one replica left, half the capacity
    replicas = t.loc["box-4 primary + 2 replicas"]
    assert replicas["failure"] == "failover: the database on 2 of its 3 boxes"
    assert replicas["pages_served_one_down"] == pytest.approx(1.0, abs=0.02)
    assert replicas["capacity_left_one_down"] == pytest.approx(0.5, abs=0.03)


def test_compare_plot_and_growth_target(small_comparison):
    import matplotlib

    matplotlib.use("Agg")
    result, load = small_comparison
    fig = result.plot()
    assert len(fig.axes) >= 4
    import matplotlib.pyplot as plt

    plt.close(fig)
    with pytest.raises(cs.ModelError, match="at least one option"):
        compare(one_tier(), "web", workload=cs.growth(load, users=[50, 100]))


def test_twin_saturation_users_of_mm1_matches_the_closed_form():
    # M/M/1 at rate lam: p99 = ln(100) / (mu - lam); budget 100 ms, mu = 100/s
    system = sc.apply(one_tier(), "web", sc.Vertical(inst("box-1", 1), **NO_USL))
    load = cs.OpenWorkload(users=1, requests_per_user_s=10.0)
    users = twin_saturation_users(system, load, cs.Budget(p99_s=0.100), rel_tol=1e-4)
    lam = 100 - math.log(100) / 0.100
    assert users * 10.0 == pytest.approx(lam, rel=1e-3)


# -- cheapest ---------------------------------------------------------------------------------


def test_cheapest_picks_the_cheaper_of_two_that_meet_the_budget_and_respects_n_plus_one():
    big, small = inst("box-8", 8, price=0.30), inst("box-4", 4, price=0.16)
    options = {"web": [sc.Horizontal(small, 2, balancer_usd_per_hour=0.0, **NO_USL),
                       sc.Vertical(big, **NO_USL)]}
    load = cs.OpenWorkload(users=1, requests_per_user_s=1.0)
    budget = cs.Budget(p99_s=0.100)
    kw = {"workload": load, "replications": 1, "requests": 4_000, "processes": 1}
    # 200/s: both do 800/s; the single box ($0.30) is cheaper than two ($0.32)
    found = cheapest(one_tier(), budget, 200, options, **kw)
    assert found.plan["web"].label == "1 x box-8"
    assert found.cost_per_hour_usd == pytest.approx(0.30)
    assert found.candidates.iloc[0]["stage"] == "simulation"
    assert found.checks.set_index("scenario")["meets"].all()
    # with one box down required, a single box cannot be the answer
    n1 = cheapest(one_tier(), budget, 200, options, n_plus_one=True, **kw)
    assert n1.plan["web"].label == "2 x box-4"
    why = n1.screened.set_index("option").loc["1 x box-8", "reason"]
    assert why.startswith("N+1")
    assert set(n1.checks["scenario"]) == {"target", "peak", "one_down:web"}
    # nothing fits: 1,000/s x 2 is beyond both
    none = cheapest(one_tier(), budget, 1_000, options, **kw)
    assert none.plan is None and math.isinf(none.cost_per_hour_usd)
    assert "none found" in str(none)


def test_cheapest_screens_with_the_twin_before_simulating():
    # at 300/s, 2 boxes of 2 workers are 75% busy: p99 ~60 ms by the twin, over 50 ms; the
    # dearer single box of 8 is 38% busy (~46 ms) and is the one simulated and taken
    options = {"web": [sc.Horizontal(inst("box-2", 2, price=0.10), 2, balancer_usd_per_hour=0.0,
                                      **NO_USL),
                       sc.Vertical(inst("box-8", 8, price=0.30), **NO_USL)]}
    found = cheapest(one_tier(), cs.Budget(p99_s=0.050), cs.OpenWorkload(1, 300.0), options,
                     peak_factor=1.0, replications=1, requests=4_000, processes=1)
    assert list(found.candidates["stage"]) == ["twin", "simulation"]
    assert found.candidates.iloc[0]["twin_target"] == pytest.approx(0.060, abs=0.003)
    assert found.plan["web"].label == "1 x box-8"
    assert set(found.checks["scenario"]) == {"target"}


def test_cheapest_enumerates_plans_by_total_cost():
    from capsim.scaling.cheapest import _by_cost

    a = [sc.Vertical(inst(f"a{p}", price=p)) for p in (1.0, 2.0, 5.0)]
    b = [sc.Vertical(inst(f"b{p}", price=p)) for p in (0.5, 3.0)]
    costs = [c for c, _ in _by_cost([a, b])]
    assert costs == sorted(costs) and len(costs) == 6


# -- autoscaling ------------------------------------------------------------------------------


def test_autoscaling_summary_cost_and_boot_damage():
    box = inst("box-4", 4, price=0.36)  # 0.0001 $ per second
    system = cs.System([cs.Service("web", servers=1, service_time=E(0.1))],
                       [cs.Flow("page", 1.0, [cs.Call("web")])])
    scaler = cs.Autoscaler("web", target_utilization=0.6, min_instances=2, max_instances=8,
                           interval_s=60, provision_s=120, cooldown_s=180)
    load = cs.OpenWorkload(1, 30.0, profile=cs.Spike(1200, 1200, 3.0))  # 30/s -> 90/s
    res = simulate_autoscaling(system, "web", sc.Horizontal(box, 2, balancer_usd_per_hour=0.0,
                                                            **NO_USL), scaler, load,
                               duration_s=3600, seed=3, window_s=300,
                               budget=cs.Budget(p99_s=1.0))
    h = res.history()
    # 30/s x 100 ms = 3 busy workers of 8 on 2 boxes (38%): no change before the spike
    assert (h.loc[h["time_s"] < 1200, "instances"] == 2).all()
    assert h["instances"].max() >= 4  # 9 busy workers at 60% of 4 per box: 4 boxes
    s = res.summary()
    paid = sum(n * (t1 - t0) for t0, t1, n in zip(h["time_s"], list(h["time_s"][1:]) + [3600],
                                                   h["instances"], strict=True))
    assert s["instance_hours"] == pytest.approx(paid / 3600)
    assert s["cost_usd"] == pytest.approx(paid * 0.0001)
    assert s["fixed_fleet_cost_usd"] == pytest.approx(s["max_instances"] * 0.36)
    assert s["cost_usd"] < s["fixed_fleet_cost_usd"]
    # 90/s overloads the 2 boxes (80/s) until the new ones serve: p99 pays for the boot
    assert s["p99_booting_s"] > 5 * s["p99_steady_s"]
    assert s["share_over_budget_booting"] > s["share_over_budget_steady"]
    first = res.boot_periods()[0]
    assert 1200 <= first[0] + 60 <= 1260 and first[1] - first[0] >= 120
    t = res.timeline()
    assert t["cost_usd"].sum() == pytest.approx(s["cost_usd"])
    assert t["offered_per_s"].max() == pytest.approx(90)
    with pytest.raises(cs.ModelError, match="must be an Autoscaler for 'web'"):
        simulate_autoscaling(system, "web", sc.Horizontal(box, 2), cs.Autoscaler("db"), load,
                             duration_s=10)


def test_tier_alone():
    system, _ = ecommerce_scalable()
    app = tier_alone(system, "app")
    assert [c.name for c in app.components] == ["app"]
    with pytest.raises(cs.ModelError, match="is not a Service"):
        tier_alone(system, "postgres")
