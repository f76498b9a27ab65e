"""Engine behaviour: exact event order, purity, streams, overload, drops, SimPy interface."""

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

import capsim as cs
from capsim.engine import Network
from capsim.experiment import mean_ci, replicate

D, E = cs.Deterministic, cs.Exponential


def one(servers=1, service=None, capacity=None):
    return cs.System([cs.Service("s", servers, service or E(1.0), queue_capacity=capacity)],
                     [cs.Flow("f", 1.0, [cs.Call("s")])])


def test_exact_event_order_in_a_deterministic_tandem():
    # arrivals every 1 s; station a serves in 1.5 s, b in 0.5 s: a queues, b never does.
    # Ties at the same instant follow SimPy: the event scheduled first runs first (the
    # arrival at t=3 was scheduled at t=2, before b's service of request 1 at t=2.5).
    system = cs.System([cs.Service("a", 1, D(1.5)), cs.Service("b", 1, D(0.5))],
                       [cs.Flow("f", 1.0, [cs.Call("a"), cs.Call("b")])])
    run = cs.simulate(system, cs.OpenWorkload(1, 1.0, D(1.0)), duration_s=4.6, trace=True)
    log = [(t, req, comp if isinstance(comp, str) else None, ev)
           for t, req, comp, ev in run.trace().itertuples(index=False)]
    assert log == [
        (1.0, 1, "a", "arrive"),
        (2.0, 2, "a", "arrive"),
        (2.5, 1, "a", "depart"),
        (2.5, 1, "b", "arrive"),
        (3.0, 3, "a", "arrive"),
        (3.0, 1, "b", "depart"),
        (3.0, 1, None, "finish"),
        (4.0, 2, "a", "depart"),
        (4.0, 2, "b", "arrive"),
        (4.0, 4, "a", "arrive"),
        (4.5, 2, "b", "depart"),
        (4.5, 2, None, "finish"),
    ]
    assert run.latency()["count"].item() == 2
    assert not run.stable  # a is offered 1.5 s of work per second
    assert run.latency(observed=True)["mean_s"].item() == pytest.approx((2.0 + 2.5) / 2)


def test_finite_queue_drops_exactly_what_does_not_fit():
    # service 1 s, arrivals every 1/3 s, one waiting place: per second 1 served, 2 dropped
    run = cs.simulate(one(1, D(1.0), capacity=1), cs.OpenWorkload(1, 3.0, D(1.0)),
                      duration_s=100.1, trace=True)
    lat = run.latency().iloc[0]
    drops = run.trace().query("event == 'drop'")
    assert lat["errors"] == len(drops) == run.components()["drops"].item()
    assert lat["error_rate"] == pytest.approx(2 / 3, abs=0.02)
    assert lat["stable"]  # a full finite queue sheds load: saturated but steady
    assert "Saturated, shedding load: s" in run.summary()


def test_same_seed_same_result_and_different_seed_different_result():
    system, load = one(2, cs.LogNormal(1.0, 2.0)), cs.OpenWorkload(1, 1.5)
    a = cs.simulate(system, load, 2_000, 100, seed=42)
    b = cs.simulate(system, load, 2_000, 100, seed=42)
    c = cs.simulate(system, load, 2_000, 100, seed=43)
    assert np.array_equal(a.finish_s, b.finish_s)
    assert a.latency().equals(b.latency())
    assert not np.array_equal(a.finish_s[:100], c.finish_s[:100])


def test_streams_are_keyed_by_name_so_variants_share_random_numbers():
    # adding an unrelated component must not change the arrivals or web's service times
    web = cs.Service("web", 1, E(0.5))
    base = cs.System([web], [cs.Flow("f", 1.0, [cs.Call("web")])])
    more = cs.System([cs.Service("cache", 1, E(0.1)), web],
                     [cs.Flow("f", 1.0, [cs.Call("web")])])
    load = cs.OpenWorkload(1, 1.0)
    a = cs.simulate(base, load, 500, seed=9)
    b = cs.simulate(more, load, 500, seed=9)
    assert np.array_equal(a.finish_s, b.finish_s)


def test_overload_is_reported_unstable_never_as_a_finite_mean():
    run = cs.simulate(one(2, E(1.0)), cs.OpenWorkload(1, 2.5), 2_000, 100, seed=1)
    assert not run.stable and run.unstable_components == ("s",)
    lat, comp = run.latency().iloc[0], run.components().iloc[0]
    assert not lat["stable"] and np.isinf(lat["mean_s"]) and np.isinf(lat["p99_s"])
    assert comp["offered_load"] == pytest.approx(1.25)
    assert np.isinf(comp["mean_queue_length"])
    assert "UNSTABLE" in run.summary() and "s: offered load 1.25" in run.summary()
    observed = run.latency(observed=True).iloc[0]
    assert np.isfinite(observed["mean_s"]) and not observed["stable"]
    # exactly at capacity is unstable too (rho = 1 has no steady state)
    assert not cs.simulate(one(1, E(1.0)), cs.OpenWorkload(1, 1.0), 100, seed=1).stable


def test_bad_run_arguments_name_the_field():
    with pytest.raises(cs.ModelError, match=r"simulate.duration_s: must be > 0, got -1"):
        cs.simulate(one(), cs.OpenWorkload(1, 0.5), -1)
    with pytest.raises(cs.ModelError, match=r"simulate.warmup_s: must be < duration_s"):
        cs.simulate(one(), cs.OpenWorkload(1, 0.5), 10, warmup_s=10)
    with pytest.raises(ValueError, match=r"simulate.seed"):
        cs.simulate(one(), cs.OpenWorkload(1, 0.5), 10, seed=-3)


def test_user_processes_share_the_servers_through_request_and_release():
    # one server, a user process holds it for 5 s from t=0: the built-in request that
    # arrives at t=1 waits until t=5, then is served (D(1)) and departs at t=6
    env = simpy.Environment()
    net = Network(one(1, D(1.0)), env, seed=1)
    station = net["s"]
    times = {}

    def batch_job(env):
        with station.request() as req:
            yield req
            times["granted"] = env.now
            yield env.timeout(5.0)

    def second_user(env):
        yield env.timeout(0.5)
        req = station.request()
        yield req
        times["second"] = env.now
        yield station.release(req)

    env.process(batch_job(env))
    env.process(second_user(env))
    env.run(until=20)
    assert times == {"granted": 0.0, "second": 5.0}
    assert station.busy == 0 and station.completions == 2 and station.wait_sum == 4.5
    with pytest.raises(cs.ModelError, match="no component or station named 'nope'"):
        net["nope"]


def test_closed_workload_never_has_more_requests_in_flight_than_users():
    system = one(1, E(1.0))
    run = cs.simulate(system, cs.ClosedWorkload(3, D(0.0)), 1_000, 10, seed=1)
    comp = run.components().iloc[0]
    assert comp["mean_in_system"] == pytest.approx(3.0)  # zero think: all 3 always present
    assert comp["utilization"] == pytest.approx(1.0)


def test_serial_and_parallel_replications_are_identical():
    system, load = one(2, cs.Gamma(1.0, 0.5)), cs.OpenWorkload(1, 1.2)
    serial = replicate(system, load, 4, seed=3, duration_s=500, processes=1)
    parallel = replicate(system, load, 4, seed=3, duration_s=500, processes=2)
    assert serial.latency_runs().equals(parallel.latency_runs())
    assert len(set(serial.seeds)) == 4


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    servers=st.integers(1, 8),
    rho=st.floats(0.1, 0.9),
    mean=st.floats(0.001, 10.0),
    cv=st.floats(0.2, 3.0),
)
def test_property_utilization_is_lambda_times_mean_service_over_servers(servers, rho, mean, cv):
    service = cs.Gamma(mean, cv)
    lam = rho * servers / mean
    res = replicate(one(servers, service), cs.OpenWorkload(1, lam), 5, seed=1,
                    duration_s=4_000 / lam, warmup_s=200 / lam, processes=1)
    util = res.components_runs()["utilization"]
    m, half = mean_ci(util, 0.999)
    assert abs(m - rho) <= max(half, 0.01), (m, half, rho)


def _timed(service_s: float, timeout_s: float | None, retries: int, capacity=None):
    return cs.System(
        [cs.Service("api", 1, D(0.1)),
         cs.Service("payment", 1, D(service_s), queue_capacity=capacity)],
        [cs.Flow("order", 1.0, [cs.Call("api", calls=[
            cs.Call("payment", timeout_s=timeout_s, retries=retries)])])])


def test_timeouts_retry_then_fail_and_free_the_callers_worker():
    # one request at t=1: api 0.1 s, then payment takes 1 s but the caller waits 0.25 s,
    # three times (1 try + 2 retries): the request fails at 1.1 + 3 x 0.25 = 1.85 s
    run = cs.simulate(_timed(1.0, 0.25, 2), cs.OpenWorkload(1, 1.0, D(1.0)), 1.9,
                      sample_interval_s=0.1)
    calls = run.calls().iloc[0]
    assert (calls["calls"], calls["attempts"], calls["timeouts"], calls["failures"]) == \
        (1, 3, 3, 1)
    assert calls["amplification"] == 3.0
    lat = run.latency(observed=True).iloc[0]
    assert lat["errors"] == 1 and lat["count"] == 0
    comp = run.components(observed=True).set_index("component")
    # api was held from 1.0 to the failure at 1.85; payment keeps working on abandoned tries
    assert comp.loc["api", "utilization"] == pytest.approx(0.85 / 1.9)
    assert comp.loc["payment", "mean_in_system"] > 0


def test_a_call_within_its_timeout_succeeds_without_retries():
    run = cs.simulate(_timed(0.2, 0.5, 3), cs.OpenWorkload(1, 1.0, D(1.0)), 5.5)
    calls = run.calls().iloc[0]
    assert (calls["calls"], calls["attempts"], calls["timeouts"], calls["failures"]) == \
        (5, 5, 0, 0)
    assert run.latency(observed=True)["mean_s"].item() == pytest.approx(0.3)


def test_rejected_attempts_are_retried():
    # payment has no waiting room and is busy with an abandoned try: the retry is rejected
    # at once, and the request fails when retries run out, releasing the api worker
    run = cs.simulate(_timed(1.0, 0.3, 1, capacity=0), cs.OpenWorkload(1, 1.0, D(1.0)), 1.95,
                      sample_interval_s=0.05)
    calls = run.calls().iloc[0]
    assert (calls["attempts"], calls["timeouts"], calls["failures"]) == (2, 1, 1)
    assert run.components(observed=True).set_index("component").loc["payment", "drops"] == 1
    assert run.latency(observed=True)["errors"].item() == 1
