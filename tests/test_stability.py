"""Stability judged from the model *and* from the run (issue 10, finding 1), run-length
adequacy, censored requests, and the rate a time-varying load is judged at.

The five diverging systems each came back ``stable=True`` with finite means that grew with
the run length before the run-side check and the model's offered-load fixes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import capsim as cs
from capsim.engine import stability
from capsim.experiment.sweep import MAX_EXTENSION


def _service(name="db", servers=1, mean=1.0):
    return cs.Service(name, servers=servers, service_time=cs.Exponential(mean=mean))


def retries():
    """M/M/1 at rho 0.9 behind a 2 s timeout with 3 retries: 4x retry amplification."""
    system = cs.System([_service()], flows=[cs.Flow("q", weight=1.0, steps=[
        cs.Call("db", timeout_s=2, retries=3)])])
    return system, cs.OpenWorkload(users=0.9, requests_per_user_s=1.0), "db"


def ttl_cache():
    """A TTL expires most keys at this rate: the database gets ~1.47x what it can do."""
    cache = cs.Cache("redis", keys=10_000, zipf_s=0.9, capacity_keys=5_000, ttl_s=1.0,
                     servers=4, service_time=cs.Exponential(mean=0.0005))
    system = cs.System([cache, cs.Database("pg", servers=1,
                                           service_time=cs.Exponential(mean=0.01))],
                       flows=[cs.Flow("read", weight=1.0, steps=[
                           cs.Read("redis", on_miss=[cs.Read("pg")])])])
    return system, cs.OpenWorkload(users=200, requests_per_user_s=1.0), "pg"


def autoscaler():
    """Ten instances in the pool, at most two may run: 1.5x what two can do."""
    app = cs.Service("app", servers=1, instances=10, service_time=cs.Exponential(mean=0.1))
    system = cs.System([app], flows=[cs.Flow("f", weight=1.0, steps=[cs.Call("app")])],
                       autoscalers=[cs.Autoscaler("app", min_instances=1, max_instances=2,
                                                  target_utilization=0.7)])
    return system, cs.OpenWorkload(users=30, requests_per_user_s=1.0), "app[0]"


def closed_publish():
    """A closed population publishing faster than the one consumer can process."""
    queue = cs.MessageQueue("orders", partitions=1, consumer=_service("worker", mean=0.05))
    system = cs.System([_service("web", 4, 0.01), queue], flows=[cs.Flow("buy", weight=1.0,
                       steps=[cs.Call("web"), cs.Publish("orders")])])
    return system, cs.ClosedWorkload(users=50, think_time=cs.Exponential(1.0)), \
        "orders/consumer0"


def holding():
    """web holds its one worker while it waits on a db shared with direct API calls: the
    model's lower bound says 0.80, the waits make it more than web can do."""
    system = cs.System([_service("web", 1, 0.005), _service("db", 1, 0.02)], flows=[
        cs.Flow("page", weight=2 / 3, steps=[cs.Call("web", calls=[cs.Call("db")])]),
        cs.Flow("api", weight=1 / 3, steps=[cs.Call("db")])])
    return system, cs.OpenWorkload(users=48, requests_per_user_s=1.0), "web"


DIVERGING = [retries, ttl_cache, autoscaler, closed_publish, holding]


@pytest.mark.parametrize("make", DIVERGING, ids=lambda f: f.__name__)
def test_diverging_systems_are_reported_unstable_with_the_reason(make):
    system, load, culprit = make()
    run = cs.simulate(system, load, duration_s=300, warmup_s=30, seed=3)
    assert not run.stable
    comp = run.components().set_index("component")
    assert not comp.loc[culprit, "stable"]
    assert comp.loc[culprit, "instability"] != ""
    assert np.isinf(comp.loc[culprit, "mean_in_system"])
    lat = run.latency()
    assert np.isinf(lat["mean_s"]).any()
    # what the run saw stays available, and its queue really grew
    seen = run.components(observed=True).set_index("component")
    assert seen.loc[culprit, "mean_in_system"] > 100


def test_model_offered_load_counts_ttl_expiry_and_runnable_instances():
    system, load, _ = ttl_cache()
    assert system.offered_load(load.arrival_rate_per_s)["pg"] > 1.3  # 0.30 before
    system, load, _ = autoscaler()
    loads = system.offered_load(load.arrival_rate_per_s)
    assert loads["app[0]"] == pytest.approx(1.5) and loads["app[9]"] == 0.0


def test_closed_workload_offered_load_from_its_measured_throughput():
    system, load, _ = closed_publish()
    run = cs.simulate(system, load, duration_s=120, warmup_s=20, seed=1)
    comp = run.components().set_index("component")
    assert comp.loc["orders/consumer0", "offered_load"] > 2  # ~48 msgs/s x 0.05 s
    assert comp.loc["web", "offered_load"] == pytest.approx(comp.loc["web", "utilization"],
                                                            rel=0.05)
    assert comp.loc["web", "stable"]  # a closed loop is bounded by its users


def test_closed_loop_stations_saturate_but_are_not_unstable():
    system = cs.System([_service()], flows=[cs.Flow("f", 1.0, [cs.Call("db")])])
    run = cs.simulate(system, cs.ClosedWorkload(3, cs.Deterministic(0.0)), 500, 10, seed=1)
    assert run.stable and run.components()["utilization"].item() == pytest.approx(1.0)


def test_growth_check_needs_a_busy_station_and_a_real_climb():
    t = np.linspace(1, 1000, 200)
    climbing = 0.5 * t
    assert stability.growth(t, climbing, 1.0, 10_000, 9_500, 1.0) == pytest.approx(0.5)
    assert stability.growth(t, climbing, 0.9, 10_000, 9_500, 1.0) is None  # idle at times
    flat = 20 + np.sin(t)
    assert stability.growth(t, flat, 1.0, 10_000, 9_999, 1.0) is None
    # a climb no larger than a critically loaded queue wanders in the window
    assert stability.growth(t, 0.01 * t, 1.0, 10_000, 9_990, 1.0) is None


def test_measured_overload_needs_significance():
    assert stability.measured_overload(1_000, 1.0, 1, 1_000, 1.0) is None  # rho_hat = 1
    assert stability.measured_overload(4_000, 1.0, 1, 1_000, 1.0) == pytest.approx(4.0)
    assert stability.measured_overload(0, 1.0, 1, 1_000, 1.0) is None


def test_relaxation_time_matches_mm1_spectral_gap():
    # M/M/1: 1 / (mu (1 - sqrt(rho))^2)
    assert stability.relaxation_time_s(0.81, 1, 2.0, 1.0) == pytest.approx(2.0 / 0.1**2)
    assert stability.relaxation_time_s(0.0, 1, 2.0, 1.0) == 0.0


def test_short_run_near_saturation_is_marked_inadequate_and_warns():
    system = cs.System([_service()], flows=[cs.Flow("q", 1.0, [cs.Call("db")])])
    load = cs.OpenWorkload(users=0.95, requests_per_user_s=1.0)
    run = cs.simulate(system, load, duration_s=4_000, warmup_s=400, seed=1)
    with pytest.warns(cs.RunLengthWarning, match="too short"):
        lat = run.latency()
    assert not lat["adequate"].item()
    light = cs.OpenWorkload(users=0.3, requests_per_user_s=1.0)
    run = cs.simulate(system, light, duration_s=4_000, warmup_s=400, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", cs.RunLengthWarning)
        assert run.latency()["adequate"].item()


def test_requests_in_flight_at_the_end_are_counted_as_censored():
    system, load, _ = holding()
    run = cs.simulate(system, load, duration_s=120, warmup_s=10, seed=1)
    lat = run.latency(observed=True).set_index("flow")
    present = int(run.samples[-1, list(run.station_names).index("web"), -1])
    assert lat.loc["page", "censored"] > 100  # the web queue at the end
    assert lat.loc["page", "censored"] <= present + 1
    assert lat.loc["all", "censored"] == lat.loc["page", "censored"] + lat.loc["api",
                                                                               "censored"]
    system, load, _ = closed_publish()
    run = cs.simulate(system, load, duration_s=60, warmup_s=5, seed=1)
    lat = run.latency(observed=True).set_index("flow")
    assert lat.loc["orders (async)", "censored"] > 1_000  # the unprocessed backlog
    assert 0 <= lat.loc["buy", "censored"] <= 50  # at most every user mid-request


def test_time_varying_load_is_judged_at_its_busiest_five_minutes_by_sim_and_twin():
    system = cs.System([_service(mean=0.01)], flows=[cs.Flow("q", 1.0, [cs.Call("db")])])
    # 60/s for most of an hour, 150/s for ten minutes: mean 75/s, peak 5-min 150/s
    load = cs.OpenWorkload(users=60, requests_per_user_s=1.0,
                           profile=cs.Spike(start_s=1_200, duration_s=600, level=2.5))
    assert load.judged_rate_per_s(3_600) == pytest.approx(150, rel=0.01)
    run = cs.simulate(system, load, duration_s=3_600, warmup_s=60, seed=1)
    twin = cs.analytic.solve(system, load, duration_s=3_600)
    assert not run.stable and not twin.stable
    short = cs.OpenWorkload(users=60, requests_per_user_s=1.0,
                            profile=cs.Spike(start_s=1_200, duration_s=20, level=2.5))
    assert load.judged_rate_per_s(3_600) > short.judged_rate_per_s(3_600) > 60
    run = cs.simulate(system, short, duration_s=3_600, warmup_s=60, seed=1)
    assert run.stable and cs.analytic.solve(system, short, duration_s=3_600).stable


def test_sweep_simulates_every_point_the_exact_bound_does_not_rule_out():
    """Holding waits make the twin's answer approximate; only the model's lower bound may
    skip a point."""
    system, load, _ = holding()
    points = [load.with_users(u) for u in (20, 40, 60)]
    result = cs.sweep(system, points, 2, duration_s=60, warmup_s=5, store=None,
                      processes=1, progress=False)
    simulated = result.points.set_index("users")["simulated"]
    assert simulated[20] and simulated[40]
    assert not simulated[60]  # db offered 60 x 0.02 = 1.2: certainly overloaded


def test_auto_replications_run_a_too_short_point_longer():
    system = cs.System([_service()], flows=[cs.Flow("q", 1.0, [cs.Call("db")])])
    load = cs.OpenWorkload(users=0.8, requests_per_user_s=1.0)
    # rho 0.8: relaxation ~89 s, 40x = 3,600 s of window needed; 1,000 s is too short
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cs.RunLengthWarning)
        result = cs.sweep(system, [load], "auto", duration_s=1_000, warmup_s=100,
                          store=None, processes=1, progress=False, target_half_width=0.5)
    assert result.points["duration_s"].item() >= 4_000
    assert result.metric("p99_s", "q")["adequate"].all()


def test_find_saturation_runs_a_too_short_point_longer():
    system = cs.System([_service()], flows=[cs.Flow("q", 1.0, [cs.Call("db")])])
    load = cs.OpenWorkload(users=0.5, requests_per_user_s=1.0)
    budget = cs.Budget(p99_s=float(np.log(100) / (1 - 0.8)))  # M/M/1: breaks at rho 0.8
    found = cs.find_saturation(system, load, budget, duration_s=1_000, replications=3,
                               max_points=4, store=None, processes=1)
    evals = found.evaluations
    assert (evals["duration_s"] > 1_000).all()  # 1,000 s is under 50 relaxations near 0.8
    # a point still too short was given the longest run allowed, and says so
    short = evals[~evals["adequate"]]
    assert (short["duration_s"] == 1_000 * MAX_EXTENSION).all()
    assert evals["adequate"].any()
