"""Load shedding and network faults: token-bucket rate limits, queue deadlines, lossy hops and
latency spikes. Exact timelines with deterministic arrivals; the long-run admitted rate of a
token bucket and the thinning of a lossy hop against theory, with CIs over replications."""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy
from scipy import stats

import capsim as cs
from capsim.engine.shedding import Limited, Lossy, SpikeGate
from capsim.model.shedding import admitted_fraction, admitted_rate
from capsim.scenario import load_scenario


def _every(gap_s: float) -> cs.OpenWorkload:
    """One request every ``gap_s`` seconds, the first at ``gap_s``."""
    return cs.OpenWorkload(users=1, requests_per_user_s=1.0 / gap_s,
                           interarrival=cs.Deterministic(1.0))


def _one(component, *, flow_limit=None, spikes=(), call=None) -> cs.System:
    flow = cs.Flow("f", 1.0, [call or cs.Call(component.name)], rate_limit=flow_limit)
    return cs.System([component], [flow], spikes=spikes)


def _ci(values, level: float = 0.99) -> tuple[float, float]:
    x = np.asarray(values, dtype=float)
    half = stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return x.mean() - half, x.mean() + half


# -- token buckets: exact logs -------------------------------------------------------------


@pytest.mark.parametrize("where", ["component", "flow"])
def test_token_bucket_admits_the_burst_then_one_per_token(where):
    # 2 tokens/s, 3 kept, full at 0; a request every 0.1 s from 0.1 s. The first three take
    # the burst (0.3 s: 0.4 token left, +0.2 a request), the next token is whole at 0.6 s,
    # then one every 0.5 s
    limit = cs.RateLimit(rate_per_s=2.0, burst=3)
    app = cs.Service("app", servers=10, service_time=cs.Deterministic(0.01),
                     rate_limit=limit if where == "component" else None)
    run = cs.simulate(_one(app, flow_limit=limit if where == "flow" else None), _every(0.1),
                      duration_s=3.05)
    admitted = [0.1, 0.2, 0.3, 0.6, 1.1, 1.6, 2.1, 2.6]
    np.testing.assert_allclose(np.sort(run.arrival_s), admitted, atol=1e-9)
    sent = np.arange(1, 31) * 0.1
    np.testing.assert_allclose(np.sort(run.drop_arrival_s),
                               [t for t in sent if np.min(np.abs(t - admitted)) > 1e-6],
                               atol=1e-9)
    row = run.rate_limits().iloc[0]
    assert (row["limiter"], row["scope"], row["status"]) == ("app" if where == "component"
                                                             else "f", where, "429")
    assert (row["offered"], row["admitted"], row["rejected"]) == (30, 8, 22)
    assert row["admitted_per_s"] == pytest.approx(8 / 3.05)
    lat = run.latency().iloc[0]
    assert (lat["errors"], lat["error_rate"]) == (22, pytest.approx(22 / 30))
    # the service itself never saw the rejected ones
    assert run.components().iloc[0]["throughput_per_s"] * 3.05 == pytest.approx(8)


def test_a_rejected_attempt_is_a_failure_the_caller_may_retry_at_once():
    # 1 token/s, 1 kept; a call every 0.25 s with 2 retries: a rejection is immediate, so its
    # retries come at the same instant and are rejected too (no token meanwhile)
    app = cs.Service("app", servers=4, service_time=cs.Deterministic(0.01),
                     rate_limit=cs.RateLimit(1.0, 1))
    run = cs.simulate(_one(app, call=cs.Call("app", timeout_s=1.0, retries=2)), _every(0.25),
                      duration_s=4.1)
    np.testing.assert_allclose(np.sort(run.arrival_s), [0.25, 1.25, 2.25, 3.25], atol=1e-9)
    calls = run.calls().iloc[0]
    assert (calls["calls"], calls["failures"], calls["attempts"]) == (16, 12, 4 + 12 * 3)
    assert run.rate_limits().iloc[0]["rejected"] == 36


# -- queue deadlines ------------------------------------------------------------------------


def test_queue_deadline_drops_exactly_the_requests_that_waited_too_long():
    # one worker, 1 s per request, a request every 0.5 s, deadline 1.5 s. Each worker frees
    # at a whole or half second; a waiting request older than 1.5 s then is dropped (one
    # that waited exactly 1.5 s is served): from 2.5 s on, every other request is dropped,
    # and no served one waits more than the deadline
    app = cs.Service("app", servers=1, service_time=cs.Deterministic(1.0),
                     queue_deadline_s=1.5)
    run = cs.simulate(_one(app), _every(0.5), duration_s=10.2)
    order = np.argsort(run.arrival_s)
    np.testing.assert_array_equal(run.arrival_s[order], [0.5, 1, 1.5, 2, 3, 4, 5, 6, 7])
    np.testing.assert_allclose((run.finish_s - run.arrival_s)[order],
                               [1.0, 1.5, 2.0] + [2.5] * 6)
    np.testing.assert_array_equal(np.sort(run.drop_arrival_s), [2.5, 3.5, 4.5, 5.5, 6.5, 7.5])
    row = run.shedding().iloc[0]
    assert (row["name"], row["kind"], row["status"]) == ("app", "queue_deadline", "503")
    # started: 0.5..2 and the ones sent at 3..8 s (8 s starts at 9.5 s); dropped: 6
    assert (row["passed"], row["shed"]) == (10, 6)
    comp = run.components().iloc[0]
    assert comp["drops"] == 6 and comp["stable"]  # it sheds load: never unstable
    # without the deadline the backlog makes every later request later still
    late = cs.simulate(_one(cs.Service("app", servers=1, service_time=cs.Deterministic(1.0))),
                       _every(0.5), duration_s=10.2)
    assert np.max(late.finish_s - late.arrival_s) > 4.0


def test_queue_deadline_agrees_with_mmc_plus_d():
    # M/M/2 + D overloaded (rho = 1.5): the requests that would wait longer than D are lost.
    # The engine drops them when a worker would take them, which serves exactly the ones
    # with a virtual wait <= D: the loss and the served ones' wait are M/M/c + D's
    lam, d = 3.0, 1.0
    app = cs.Service("app", servers=2, service_time=cs.Exponential(1.0), queue_deadline_s=d)
    system = _one(app)
    w = cs.OpenWorkload(users=1, requests_per_user_s=lam)
    twin = cs.analytic.solve(system, w)
    loss = twin.latency().iloc[0]["error_rate"]
    wait = twin.components().iloc[0]["mean_wait_s"]
    errs, waits = [], []
    for seed in range(6):
        run = cs.simulate(system, w, duration_s=1500, warmup_s=50, seed=seed)
        errs.append(run.latency().iloc[0]["error_rate"])
        waits.append(run.components().iloc[0]["mean_wait_s"])
    lo, hi = _ci(errs)
    assert lo <= loss <= hi and 0.3 < loss < 0.4
    lo, hi = _ci(waits)
    assert lo <= wait <= hi


# -- lossy hops -----------------------------------------------------------------------------


def test_a_lost_request_with_no_timeout_watching_it_fails_at_once():
    net = cs.Delay("net", latency=cs.Deterministic(0.1), loss=0.3)
    run = cs.simulate(_one(net), _every(1.0), duration_s=100.5, seed=3)
    row = run.shedding().iloc[0]
    assert (row["kind"], row["status"], row["seen"]) == ("loss", "lost", 100)
    assert row["shed"] == run.drop_arrival_s.size > 0  # every loss is an error of its flow
    np.testing.assert_allclose(run.finish_s - run.arrival_s, 0.1)
    # the hop's own row counts only what it carried
    assert run.components().iloc[0]["throughput_per_s"] * 100.5 == pytest.approx(row["passed"])


def test_a_lost_attempt_is_noticed_by_the_callers_timeout_and_retried():
    # a lost TCP request gets no answer: the caller times out after 1 s and tries again, so
    # a request's latency is (lost attempts) x 1 s + 0.1 s; failing all three attempts fails
    net = cs.Delay("net", latency=cs.Deterministic(0.1), loss=0.3)
    run = cs.simulate(_one(net, call=cs.Call("net", timeout_s=1.0, retries=2)), _every(1.0),
                      duration_s=300.5, seed=3)
    lat = run.finish_s - run.arrival_s
    lost_first = np.round((lat - 0.1) / 1.0)
    np.testing.assert_allclose(lat, lost_first + 0.1, atol=1e-9)
    assert set(lost_first) == {0, 1, 2}
    row, calls = run.shedding().iloc[0], run.calls().iloc[0]
    assert calls["attempts"] == row["seen"]  # every attempt crosses the hop
    # a timeout (a loss noticed) is retried, or fails the call after the third
    assert calls["timeouts"] == calls["attempts"] - calls["calls"] + calls["failures"]
    assert calls["failures"] == run.drop_arrival_s.size > 0
    # the losses not yet noticed at the end: attempts sent at 300 s, their timeout at 301 s
    assert 0 <= row["shed"] - calls["timeouts"] <= 3


def test_loss_thins_the_traffic_after_the_hop_by_theory():
    # Poisson requests at 50/s through a hop losing p = 0.2, then a service: the service gets
    # (1 - p) x 50/s and the flow fails p of its requests (CIs over replications); the twin
    # says exactly that, and the model's offered load after the hop is thinned too
    p, lam = 0.2, 50.0
    net = cs.Delay("net", latency=cs.Exponential(0.005), loss=p)
    app = cs.Service("app", servers=2, service_time=cs.Exponential(0.01))
    system = cs.System([net, app], [cs.Flow("f", 1.0, [cs.Call("net"), cs.Call("app")])])
    w = cs.OpenWorkload(users=1, requests_per_user_s=lam)
    delivered, errors = [], []
    for seed in range(8):
        run = cs.simulate(system, w, duration_s=80, seed=seed)
        offered = run.shedding().iloc[0]["seen"]
        comps = run.components().set_index("component")
        delivered.append(comps.loc["app", "throughput_per_s"] * 80 / offered)
        errors.append(run.latency().iloc[0]["error_rate"])
    for values, want in ((delivered, 1 - p), (errors, p)):
        lo, hi = _ci(values)
        assert lo <= want <= hi and hi - lo < 0.03
    twin = cs.analytic.solve(system, w)
    assert twin.latency().iloc[0]["error_rate"] == pytest.approx(p)
    assert twin.latency().iloc[0]["throughput_per_s"] == pytest.approx((1 - p) * lam)
    assert twin.components().set_index("component").loc["app", "throughput_per_s"] == \
        pytest.approx((1 - p) * lam)
    assert system.offered_load(lam)["app"] == pytest.approx((1 - p) * lam * 0.01 / 2)


# -- latency spikes -------------------------------------------------------------------------


def test_a_spike_multiplies_the_hops_latency_exactly_during_its_window():
    hop = cs.Delay("hop", latency=cs.Exponential(0.1))
    spike = cs.DelaySpike("hop", start_s=4.5, duration_s=2.0, factor=3.0, extra_s=0.05)
    base = cs.simulate(_one(hop), _every(0.5), duration_s=10.0, seed=2)
    spiked = cs.simulate(_one(hop, spikes=[spike]), _every(0.5), duration_s=10.0, seed=2)
    before = dict(zip(base.arrival_s, base.finish_s - base.arrival_s, strict=True))
    after = dict(zip(spiked.arrival_s, spiked.finish_s - spiked.arrival_s, strict=True))
    assert sorted(before) == sorted(after)
    for t, x in before.items():  # the same draws (common random numbers), spiked in [4.5, 6.5)
        want = 3.0 * x + 0.05 if 4.5 <= t < 6.5 else x
        assert after[t] == pytest.approx(want, rel=1e-12), t
    assert sum(4.5 <= t < 6.5 for t in before) == 4


def test_overlapping_spikes_multiply_and_add():
    hop = cs.Delay("hop", latency=cs.Deterministic(0.1))
    spikes = [cs.DelaySpike("hop", 1.5, 2.0, factor=2.0), cs.DelaySpike("hop", 2.5, 2.0,
                                                                         extra_s=0.3)]
    run = cs.simulate(_one(hop, spikes=spikes), _every(1.0), duration_s=6.0)
    order = np.argsort(run.arrival_s)
    np.testing.assert_allclose((run.finish_s - run.arrival_s)[order],
                               [0.1, 0.2, 0.5, 0.4, 0.1])  # sent at 1, 2, 3, 4, 5 s


# -- token buckets: theory ------------------------------------------------------------------


def test_token_bucket_admission_formula_limits():
    limit = cs.RateLimit(10.0, 1)
    assert admitted_fraction(10.0, limit) == pytest.approx(0.5)  # 1 / (1 + rho): Erlang B
    assert admitted_fraction(5.0, cs.RateLimit(10.0, 2)) == pytest.approx(
        math.exp(0.5) / (1 + 0.5 * math.exp(0.5)))
    for lam in (2.0, 8.0, 9.9, 10.1, 15.0, 40.0):  # long buckets: min(lambda, rate)
        assert admitted_rate(lam, cs.RateLimit(10.0, 5000)) == pytest.approx(min(lam, 10.0),
                                                                            rel=2e-3)
        small, large = (admitted_rate(lam, cs.RateLimit(10.0, b)) for b in (41, 42))
        assert abs(small - large) < 1e-3 * lam  # exact series and asymptote join smoothly
    assert admitted_rate(10.0, cs.RateLimit(10.0, 1e6)) == pytest.approx(10.0, rel=1e-5)


def test_token_bucket_admits_min_of_offered_and_rate_in_the_long_run():
    # Poisson at 5/s and at 20/s into 10 tokens/s with 20 kept: the admitted rate is
    # min(lambda, r) within the CI (the burst only matters near lambda = r)
    for lam in (5.0, 20.0):
        app = cs.Service("app", servers=50, service_time=cs.Deterministic(0.001))
        system = _one(app, flow_limit=cs.RateLimit(10.0, 20))
        w = cs.OpenWorkload(users=1, requests_per_user_s=lam)
        rates = [cs.simulate(system, w, duration_s=300, warmup_s=10, seed=s).rate_limits()
                 .iloc[0]["admitted_per_s"] for s in range(8)]
        lo, hi = _ci(rates)
        assert lo <= min(lam, 10.0) <= hi, (lam, lo, hi)


def test_token_bucket_admits_the_m_d_1_share_near_its_rate():
    # at lambda = r with a small burst the bucket turns some away; the share it admits,
    # given each run's own number of arrivals, is H/(1 + rho H) (M/D/1 workload) within CI
    limit = cs.RateLimit(10.0, 3)
    app = cs.Service("app", servers=50, service_time=cs.Deterministic(0.001), rate_limit=limit)
    w = cs.OpenWorkload(users=1, requests_per_user_s=10.0)
    residuals = []
    for seed in range(10):
        row = cs.simulate(_one(app), w, duration_s=600, seed=seed).rate_limits().iloc[0]
        residuals.append(row["admitted"] / row["offered"]
                         - admitted_fraction(row["offered"] / 600, limit))
    lo, hi = _ci(residuals)
    assert lo <= 0.0 <= hi and hi - lo < 0.01
    assert admitted_fraction(10.0, limit) == pytest.approx(0.8236572, abs=1e-6)
    twin = cs.analytic.solve(_one(app), w).latency().iloc[0]
    assert twin["error_rate"] == pytest.approx(1 - admitted_fraction(10.0, limit))


def test_a_limit_protects_an_overloaded_backend():
    # 200/s offered to a database that serves 100/s, behind a gateway limit of 50/s: the
    # model's offered load counts what the limit admits, so the run is stable
    gw = cs.Service("gw", servers=8, service_time=cs.Exponential(0.001),
                    rate_limit=cs.RateLimit(50.0, 10))
    db = cs.Service("db", servers=1, service_time=cs.Exponential(0.01))
    system = cs.System([gw, db], [cs.Flow("f", 1.0, [cs.Call("gw"), cs.Call("db")])])
    assert system.offered_load(200.0)["db"] == pytest.approx(0.5, rel=1e-3)
    run = cs.simulate(system, cs.OpenWorkload(users=1, requests_per_user_s=200.0),
                      duration_s=60, seed=1)
    assert run.stable
    assert run.latency().iloc[0]["error_rate"] == pytest.approx(0.75, abs=0.03)
    twin = cs.analytic.solve(system, cs.OpenWorkload(users=1, requests_per_user_s=200.0))
    assert twin.components().set_index("component").loc["db", "utilization"] == \
        pytest.approx(0.5, rel=1e-3)
    assert any("rate limits" in n for n in twin.notes)


# -- wiring, model errors, scenarios --------------------------------------------------------


def test_nothing_is_wrapped_where_nothing_sheds():
    app = cs.Service("app", servers=1, service_time=cs.Exponential(0.01))
    net = cs.Network(_one(app), simpy.Environment(), seed=1)
    (program,), _ = net.programs(lambda c: None)
    assert program[0] == net["app"].arrive  # the station's own step: no cost per request
    limited = cs.Service("app", servers=1, service_time=cs.Exponential(0.01),
                         rate_limit=cs.RateLimit(5.0))
    hop = cs.Delay("hop", latency=cs.Exponential(0.01), loss=0.1)
    system = cs.System([limited, hop], [cs.Flow("f", 1.0, [cs.Call("app"), cs.Call("hop")])],
                       spikes=[cs.DelaySpike("hop", 1.0, 1.0, factor=2.0)])
    net = cs.Network(system, simpy.Environment(), seed=1)
    (program,), _ = net.programs(lambda c: None)
    assert isinstance(program[0], Limited) and isinstance(program[1], Lossy)
    assert isinstance(program[1].visit, SpikeGate)
    assert cs.RateLimit(5.0).burst == 5.0 and cs.RateLimit(0.5).burst == 1.0


@pytest.mark.parametrize(("build", "message"), [
    (lambda: cs.RateLimit(0), "RateLimit.rate_per_s: must be > 0, got 0"),
    (lambda: cs.RateLimit(10, 0.5), "RateLimit.burst: must be >= 1, got 0.5"),
    (lambda: cs.Service("a", service_time=cs.Exponential(1), rate_limit=10),
     "Service('a').rate_limit: must be a RateLimit"),
    (lambda: cs.Service("a", service_time=cs.Exponential(1), queue_deadline_s=0),
     "Service('a').queue_deadline_s: must be > 0, got 0"),
    (lambda: cs.Service("a", service_time=cs.Exponential(1), discipline="ps",
                        queue_deadline_s=1.0), "queue_deadline_s: needs an fcfs or priority"),
    (lambda: cs.Delay("d", latency=cs.Exponential(1), loss=1.0), "Delay('d').loss: must be < 1"),
    (lambda: cs.Delay("d", latency=cs.Exponential(1), loss=-0.1), "Delay('d').loss: must be >="),
    (lambda: cs.DelaySpike("d", 1.0, 2.0), "DelaySpike('d').factor: gives no spike"),
    (lambda: cs.DelaySpike("d", 1.0, 0.0, factor=2), "DelaySpike('d').duration_s: must be > 0"),
    (lambda: cs.Flow("f", 1.0, [cs.Call("a")], rate_limit=(10, 2)),
     "Flow('f').rate_limit: must be a RateLimit"),
    (lambda: cs.MessageQueue("q", consumer=cs.Service("c", service_time=cs.Exponential(1),
                                                      queue_deadline_s=1.0)),
     "MessageQueue('q').consumer.queue_deadline_s: is not used by a consumer group"),
    (lambda: _one(cs.Service("a", service_time=cs.Exponential(1)),
                  spikes=[cs.DelaySpike("a", 0.0, 1.0, factor=2)]),
     "System.spikes[0].component: must name a Delay (a hop), got 'a'"),
])
def test_bad_input_names_the_field_and_the_value(build, message):
    with pytest.raises(cs.ModelError) as err:
        build()
    assert message in str(err.value)


SCENARIO = """
components:
  - Service: {name: app, servers: 4, service_time: {Exponential: {mean: 0.01}},
              rate_limit: {rate_per_s: 100, burst: 20}, queue_deadline_s: 0.5}
  - Delay: {name: net, latency: {Deterministic: {value: 0.002}}, loss: 0.01}
flows:
  - name: browse
    rate_limit: {rate_per_s: 80}
    steps: [{Call: net}, {Call: app}]
spikes:
  - {component: net, start_s: 10, duration_s: 5, factor: 4}
workload: {OpenWorkload: {users: 1, requests_per_user_s: 50}}
"""


def test_scenarios_carry_limits_deadlines_loss_and_spikes():
    sc = load_scenario(SCENARIO)
    app, net = sc.system.components
    assert app.rate_limit == cs.RateLimit(100, 20) and app.queue_deadline_s == 0.5
    assert net.loss == 0.01 and sc.system.flows[0].rate_limit == cs.RateLimit(80, 80)
    assert sc.system.spikes == (cs.DelaySpike("net", 10, 5, factor=4),)
    with pytest.raises(cs.ModelError, match=r"spikes\[0\]\.factor \(line \d+\): gives no"):
        load_scenario(SCENARIO.replace("factor: 4", "factor: 1"))
    with pytest.raises(cs.ModelError, match=r"rate_limit\.burst \(line 4\): must be >= 1"):
        load_scenario(SCENARIO.replace("burst: 20", "burst: 0"))
    from capsim.scenario.schema import json_schema

    schema = json_schema()
    assert set(schema["$defs"]["RateLimit"]["properties"]) == {"rate_per_s", "burst"}
    assert schema["properties"]["spikes"]["items"] == {"$ref": "#/$defs/DelaySpike"}
    assert schema["$defs"]["Service"]["properties"]["rate_limit"] == {
        "$ref": "#/$defs/RateLimit"}
