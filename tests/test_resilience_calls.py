"""Circuit breakers, retry budgets and backoff on calls: exact timelines with deterministic
times, the long-run figures theory gives when the callee stays down, and the retry storm they
prevent (a metastable collapse measured over 30 seeds)."""

from __future__ import annotations

import math

import jsonschema
import numpy as np
import pytest
import simpy
import yaml
from scipy import stats

import capsim as cs
from capsim.engine.resilience import ResilientCall
from capsim.engine.steps import TimedCall
from capsim.scenario import load_scenario
from capsim.scenario.schema import json_schema

D = cs.Deterministic


def _system(service: float, timeout: float | None, retries: int, outage=None, *,
            app: bool = False, capacity=None, **resilience) -> cs.System:
    """One request flow calling ``db`` (Deterministic ``service``), from an ``app`` worker
    if asked; ``outage`` = (start, duration) of db."""
    call = cs.Call("db", timeout_s=timeout, retries=retries, **resilience)
    comps = [cs.Service("db", 1, D(service), queue_capacity=capacity)]
    steps = [call]
    if app:
        comps.append(cs.Service("app", 1, D(0.1)))
        steps = [cs.Call("app", calls=[call])]
    return cs.System(comps, [cs.Flow("q", 1.0, steps)],
                     outages=[cs.Outage("db", *outage)] if outage else [])


def _every(gap_s: float = 1.0) -> cs.OpenWorkload:
    """One request every ``gap_s`` seconds, the first at ``gap_s``."""
    return cs.OpenWorkload(users=1, requests_per_user_s=1.0 / gap_s, interarrival=D(1.0))


def _run(system, duration_s: float, workload=None, **kw):
    return cs.simulate(system, workload or _every(), duration_s, sample_interval_s=0.1,
                       trace=True, **kw)


def _log(run) -> list[tuple[float, str, str]]:
    return [(round(t, 9), a, b) for _, t, a, b in run.breaker_log().itertuples(index=False)]


def _db_arrivals(run) -> list[float]:
    tr = run.trace()
    return tr.loc[(tr["component"] == "db") & (tr["event"] == "arrive"), "time_s"].round(
        9).tolist()


def _arrivals_by(run, t: float) -> int:
    """db's arrivals counter (the station's own) at sample time ``t``."""
    i = int(np.searchsorted(run.sample_times_s, t - 1e-9))
    return int(run.counter("arrivals")[i, list(run.station_names).index("db")])


# -- the breaker, exactly ------------------------------------------------------------------
def test_breaker_opens_at_min_calls_fails_fast_half_opens_and_closes():
    # a request each second from 1 s; db takes 0.1 s but is down from 0.5 s to 7 s, and
    # callers give up after 0.5 s. The 1st..4th attempts time out at 1.5, 2.5, 3.5, 4.5 s:
    # all failures, but only the 4th fills min_calls, so it opens at 4.5 s. Calls at 5, 6,
    # 7 s fail fast; half-open at 4.5 + 3 = 7.5 s; db is back at 7 s (its 4 abandoned
    # attempts done by 7.4 s), the trials at 8 and 9 s succeed, and it closes at 9.1 s
    breaker = cs.CircuitBreaker(failure_ratio=0.5, window_s=10, min_calls=4, open_s=3,
                                half_open_calls=2)
    run = _run(_system(0.1, 0.5, 0, (0.5, 6.5), breaker=breaker), 12)
    assert _log(run) == [(4.5, "closed", "open"), (7.5, "open", "half_open"),
                         (9.1, "half_open", "closed")]
    assert _db_arrivals(run) == [1.0, 2.0, 3.0, 4.0, 8.0, 9.0, 10.0, 11.0]
    # the callee sees nothing while the breaker is open: its arrivals counter stands still
    assert _arrivals_by(run, 4.6) == _arrivals_by(run, 7.9) == 4
    np.testing.assert_array_equal(np.sort(run.drop_arrival_s), [1, 2, 3, 4, 5, 6, 7])
    np.testing.assert_allclose(run.finish_s - run.arrival_s, 0.1)
    row = run.calls().iloc[0]
    assert (row["call"], row["calls"], row["attempts"], row["retries"], row["timeouts"],
            row["failures"], row["fast_fails"], row["retries_denied"]) == \
        ("q/0 -> db", 11, 8, 0, 4, 7, 3, 0)
    timeline = run.breaker_state("q/0 -> db")
    assert timeline["time_s"].tolist() == [0.0, 4.5, 7.5, pytest.approx(9.1), 12.0]
    assert timeline["state"].tolist() == ["closed", "open", "half_open", "closed", "closed"]
    assert timeline["level"].tolist() == [0, 2, 1, 0, 0]
    with pytest.raises(cs.ModelError, match="breaker_state.call.*'nope'"):
        run.breaker_state("nope")


def test_a_failed_trial_reopens_the_breaker_and_others_fail_fast_while_it_is_out():
    # db takes 0.6 s, down from 0.5 s to 6.8 s; timeout 2.5 s, min_calls 2, one trial. The
    # attempts of 1 and 2 s time out at 3.5 and 4.5 s: open at 4.5 s, half-open at 6.7 s.
    # The trial at 7 s queues behind the four abandoned attempts (db back at 6.8 s, busy
    # until 9.2 s) and times out at 9.5 s: open again; the calls at 8 and 9 s fail fast (the
    # one trial is out). Half-open at 11.7 s; the trial at 12 s succeeds at 12.6 s: closed
    breaker = cs.CircuitBreaker(failure_ratio=0.5, window_s=10, min_calls=2, open_s=2.2,
                                half_open_calls=1)
    run = _run(_system(0.6, 2.5, 0, (0.5, 6.3), breaker=breaker), 14)
    assert _log(run) == [(4.5, "closed", "open"), (6.7, "open", "half_open"),
                         (9.5, "half_open", "open"), (11.7, "open", "half_open"),
                         (12.6, "half_open", "closed")]
    assert _db_arrivals(run) == [1.0, 2.0, 3.0, 4.0, 7.0, 12.0, 13.0]
    np.testing.assert_array_equal(np.sort(run.drop_arrival_s), np.arange(1, 12))
    row = run.calls().iloc[0]
    assert (row["attempts"], row["timeouts"], row["fast_fails"], row["failures"]) == \
        (7, 5, 6, 11)


def test_late_answers_from_before_an_opening_do_not_count():
    # timeout 2.5 s: the attempts of 1 and 2 s fail at 3.5 and 4.5 s (open, min_calls 2);
    # those of 3 and 4 s were let through while closed and answer at 5.3 and 5.4 s, in
    # time for their callers, after the breaker went half-open (5.1 s). They are not
    # trials: it closes only on the trial at 6 s (6.1 s), not at 5.3 s
    breaker = cs.CircuitBreaker(failure_ratio=0.5, window_s=10, min_calls=2, open_s=0.6,
                                half_open_calls=1)
    run = _run(_system(0.1, 2.5, 0, (0.5, 4.5), breaker=breaker), 8)
    assert _log(run) == [(4.5, "closed", "open"), (5.1, "open", "half_open"),
                         (6.1, "half_open", "closed")]
    order = np.argsort(run.arrival_s)
    np.testing.assert_allclose(run.arrival_s[order], [3, 4, 6, 7])
    np.testing.assert_allclose((run.finish_s - run.arrival_s)[order], [2.3, 1.4, 0.1, 0.1])
    np.testing.assert_array_equal(np.sort(run.drop_arrival_s), [1, 2, 5])


def test_an_open_breaker_fails_the_call_without_using_its_retries():
    # retries=3, timeout 0.4 s, db down: the first call's attempts at 1.0 and 1.4 s time
    # out at 1.4 and 1.8 s, which opens the breaker (min_calls 2); its next retry is refused
    # and the call fails at once, two retries unused. Every later call fails fast
    breaker = cs.CircuitBreaker(failure_ratio=0.5, window_s=10, min_calls=2, open_s=100)
    run = _run(_system(0.1, 0.4, 3, (0.5, 100), breaker=breaker), 5)
    assert _log(run) == [(1.8, "closed", "open")]
    assert _db_arrivals(run) == [1.0, 1.4]
    row = run.calls().iloc[0]
    assert (row["calls"], row["attempts"], row["retries"], row["timeouts"], row["failures"],
            row["fast_fails"]) == (4, 2, 1, 2, 4, 4)


@pytest.mark.parametrize("ratio, window_s, opens_at", [
    (0.5, 10.0, 4.5),  # 2 ok + 2 failed: 0.5
    (0.6, 10.0, 5.5),  # needs 3 of 5
    (0.6, 2.5, 4.5),  # the 1.1 s success has left the window: 2 of 3
    (0.75, 10.0, 8.5),  # 6 of 8
])
def test_the_failure_ratio_is_judged_over_a_sliding_window(ratio, window_s, opens_at):
    # successes at 1.1 and 2.1 s, then (db down from 2.5 s) failures at 3.5, 4.5, ... s
    breaker = cs.CircuitBreaker(failure_ratio=ratio, window_s=window_s, min_calls=2,
                                open_s=100)
    run = _run(_system(0.1, 0.5, 0, (2.5, 100), breaker=breaker), 10)
    assert _log(run) == [(opens_at, "closed", "open")]


def test_rejections_count_as_failures():
    # no waiting room: db serves the call of 1 s until 2.5 s, the one of 2 s is rejected
    # (a failure at 2.0 s), the answer at 2.5 s is the second outcome: 1 of 2 failed
    breaker = cs.CircuitBreaker(failure_ratio=0.5, window_s=10, min_calls=2, open_s=100)
    run = _run(_system(1.5, None, 0, capacity=0, breaker=breaker), 3.9)
    assert _log(run) == [(2.5, "closed", "open")]
    assert run.calls().iloc[0]["fast_fails"] == 1  # the call of 3 s


def test_breaker_cycles_by_theory_when_the_callee_stays_down():
    # Poisson calls at rate lam, db down for good, one trial: each half-open spell lasts
    # until the next call (Exp(lam), memoryless) plus the trial's timeout T, and each open
    # one exactly open_s; the callee gets one attempt per cycle
    lam, timeout, open_s = 5.0, 0.2, 1.0
    breaker = cs.CircuitBreaker(failure_ratio=0.5, window_s=10, min_calls=5, open_s=open_s,
                                half_open_calls=1)
    system = _system(0.01, timeout, 0, (0.0, 1e6), breaker=breaker)
    run = cs.simulate(system, cs.OpenWorkload(1, lam), 400, seed=3)
    log = run.breaker_log()
    t, state = log["time_s"].to_numpy(), log["state"].to_numpy()
    opened, halved = t[state == "open"], t[state == "half_open"]
    np.testing.assert_allclose(halved - opened[:halved.size], open_s)
    spells = opened[1:] - halved[:opened.size - 1]
    wait = spells - timeout
    assert wait.min() > 0
    se = wait.std(ddof=1) / math.sqrt(wait.size)
    assert wait.size > 200 and abs(wait.mean() - 1 / lam) < 4 * se, (wait.mean(), se)
    # while closed every call got through (all of them failed); then one per half-open
    # spell (the last may have ended with the run before a call came)
    closed = int((run.drop_arrival_s < opened[0]).sum())
    assert closed >= 5
    assert run.calls().iloc[0]["attempts"] - closed in (halved.size - 1, halved.size)


# -- backoff --------------------------------------------------------------------------------
def test_backoff_waits_exactly_and_the_caller_keeps_its_worker():
    # one request at 10 s: app 0.1 s, then db (down) with timeout 1 s and 4 retries after
    # waits of min(1.5, 0.5 x 2^(k-1)) = 0.5, 1, 1.5, 1.5 s: attempts at 10.1, 11.6, 13.6,
    # 16.1, 18.6 s; the call fails at 19.6 s, and app's worker was held all along
    backoff = cs.Backoff(base_s=0.5, multiplier=2.0, max_s=1.5, jitter="none")
    run = _run(_system(0.1, 1.0, 4, (0.5, 100), app=True, backoff=backoff), 19.9,
               _every(10.0))
    assert _db_arrivals(run) == [10.1, 11.6, 13.6, 16.1, 18.6]
    row = run.calls().iloc[0]
    assert (row["attempts"], row["retries"], row["failures"]) == (5, 4, 1)
    assert row["backoff_s"] == pytest.approx(4.5)
    util = run.components(observed=True).set_index("component")["utilization"]
    assert util["app"] == pytest.approx((19.6 - 10.0) / 19.9)
    # without backoff the retries are immediate, as they always were
    run = _run(_system(0.1, 1.0, 4, (0.5, 100)), 9)
    assert _db_arrivals(run)[:5] == [1.0, 2.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize("jitter, low", [("full", 0.0), ("equal", 0.5)])
def test_jittered_backoff_is_uniform(jitter, low):
    # each request's one retry waits U(low x cap, cap) after its timeout: Kolmogorov-Smirnov
    cap, timeout = 0.4, 0.1
    backoff = cs.Backoff(base_s=cap, max_s=5.0, jitter=jitter)
    run = cs.simulate(_system(0.01, timeout, 1, (0.0, 1e6), backoff=backoff),
                      _every(1.0), 400, trace=True, seed=5)
    tr = run.trace()
    tr = tr[(tr["component"] == "db") & (tr["event"] == "arrive")]
    first = tr.groupby("request")["time_s"].min()
    retry = tr.groupby("request")["time_s"].max()
    waits = ((retry - first - timeout) / cap)[tr.groupby("request").size() == 2].to_numpy()
    assert waits.size > 350
    assert low <= waits.min() and waits.max() <= 1.0
    assert stats.kstest(waits, stats.uniform(low, 1 - low).cdf).pvalue > 1e-3
    assert run.calls().iloc[0]["backoff_s"] == pytest.approx(waits.sum() * cap, rel=0.02)


# -- the retry budget ---------------------------------------------------------------------
@pytest.mark.parametrize("budget, retried_at", [
    # counting it, retries of the last 10 s <= 0.5 x calls: every second failure retries
    (cs.RetryBudget(ratio=0.5, window_s=10, min_retries_per_s=0), np.arange(2.25, 21, 2.0)),
    # a 3 s window holds 3 calls: one retry, and the next only once it has left
    (cs.RetryBudget(ratio=0.5, window_s=3, min_retries_per_s=0), np.arange(2.25, 21, 3.0)),
    # no share of the calls, a floor of 0.5/s x 2 s = one retry per window
    (cs.RetryBudget(ratio=0.0, window_s=2, min_retries_per_s=0.5), np.arange(1.25, 21, 2.0)),
])
def test_retry_budget_allows_exactly(budget, retried_at):
    # calls at 1..20 s, db down, timeout 0.25 s, one retry each: the retry of the call of
    # k s would go at k + 0.25 s
    run = _run(_system(0.1, 0.25, 1, (0.5, 100), retry_budget=budget), 20.75)
    retries = [t for t in _db_arrivals(run) if t % 1]
    np.testing.assert_allclose(retries, retried_at)
    row = run.calls().iloc[0]
    assert (row["calls"], row["retries"], row["retries_denied"], row["failures"]) == \
        (20, retried_at.size, 20 - retried_at.size, 20)


def test_retry_budget_caps_the_amplification_by_theory():
    # the callee stays down and every call wants 3 retries: the budget binds, and retries
    # run at ratio x lam + min_retries_per_s (less ~1 per window): attempts per call
    # 1 + ratio + min / lam, against 4 without it
    lam, ratio, floor = 50.0, 0.2, 2.0
    budget = cs.RetryBudget(ratio=ratio, window_s=10, min_retries_per_s=floor)
    run = cs.simulate(_system(0.01, 0.1, 3, (0.0, 1e6), retry_budget=budget),
                      cs.OpenWorkload(1, lam), 210, warmup_s=10, seed=2)
    row = run.calls().iloc[0]
    expected = 1 + ratio + floor / lam
    assert row["amplification"] == pytest.approx(expected, abs=0.01)
    assert row["retries_denied"] > 0.9 * row["calls"]  # at most one per call


# -- model, yaml, twin ----------------------------------------------------------------------
def test_plain_calls_keep_the_plain_step_and_its_counters():
    def node(system):
        net = cs.Network(system, simpy.Environment())
        net.programs(lambda c: None)
        return net.timed_calls["q/0 -> db"]

    assert type(node(_system(0.1, 0.5, 2))) is TimedCall  # no cost for what is not used
    assert isinstance(node(_system(0.1, None, 0, breaker=cs.CircuitBreaker())),
                      ResilientCall)
    run = _run(_system(0.1, 0.5, 2, (0.5, 100)), 3.2)
    row = run.calls().iloc[0]
    assert (row["calls"], row["attempts"], row["retries"], row["fast_fails"],
            row["retries_denied"], row["backoff_s"]) == (3, 7, 4, 0, 0, 0.0)
    assert run.breaker_log().empty


def test_validation_names_the_field_and_the_value():
    with pytest.raises(cs.ModelError, match=r"CircuitBreaker.failure_ratio: .*got 1.5"):
        cs.CircuitBreaker(failure_ratio=1.5)
    with pytest.raises(cs.ModelError, match=r"CircuitBreaker.min_calls: .*got 0"):
        cs.CircuitBreaker(min_calls=0)
    with pytest.raises(cs.ModelError, match=r"CircuitBreaker.open_s: .*got -1"):
        cs.CircuitBreaker(open_s=-1)
    with pytest.raises(cs.ModelError, match=r"CircuitBreaker.half_open_calls: .*got 2.5"):
        cs.CircuitBreaker(half_open_calls=2.5)
    with pytest.raises(cs.ModelError, match=r"Backoff.jitter: must be one of full, equal, "
                                            r"none, got 'decorrelated'"):
        cs.Backoff(jitter="decorrelated")
    with pytest.raises(cs.ModelError, match=r"Backoff.multiplier: must be >= 1, got 0.5"):
        cs.Backoff(multiplier=0.5)
    with pytest.raises(cs.ModelError, match=r"RetryBudget.ratio: must be >= 0, got -0.1"):
        cs.RetryBudget(ratio=-0.1)
    with pytest.raises(cs.ModelError, match=r"RetryBudget.window_s: must be > 0, got 0"):
        cs.RetryBudget(window_s=0)
    with pytest.raises(cs.ModelError, match=r"Call\('db'\).backoff: needs retries >= 1"):
        cs.Call("db", timeout_s=1, backoff=cs.Backoff())
    with pytest.raises(cs.ModelError, match=r"Call\('db'\).retry_budget: needs retries"):
        cs.Call("db", timeout_s=1, retry_budget=cs.RetryBudget())
    with pytest.raises(cs.ModelError, match=r"Call\('db'\).breaker: must be a CircuitBreaker"
                                            r".*got \{'open_s': 1\}"):
        cs.Call("db", breaker={"open_s": 1})
    assert cs.Call("db", breaker=cs.CircuitBreaker()).guarded  # rejections count
    assert cs.Backoff(0.1, 2.0, 0.3).cap_s(1) == 0.1 and cs.Backoff(0.1, 2.0, 0.3).cap_s(3) \
        == 0.3


SCENARIO = """
name: guarded
components:
  - Service: {name: db, servers: 1, service_time: {Exponential: {mean: 0.01}}}
flows:
  - name: q
    steps:
      - Call: {component: db, timeout_s: 0.3, retries: 3,
               breaker: {failure_ratio: 0.5, window_s: 1, min_calls: 20, open_s: 0.5},
               backoff: {base_s: 0.05, max_s: 1, jitter: equal},
               retry_budget: {ratio: 0.1, window_s: 1}}
workload: {OpenWorkload: {users: 1, requests_per_user_s: 50}}
"""


def test_yaml_and_schema():
    jsonschema.validate(yaml.safe_load(SCENARIO), json_schema())
    call = load_scenario(SCENARIO).system.flows[0].steps[0]
    assert call.breaker == cs.CircuitBreaker(0.5, 1.0, 20, 0.5, 3)
    assert call.backoff == cs.Backoff(0.05, 2.0, 1.0, "equal")
    assert call.retry_budget == cs.RetryBudget(0.1, 1.0, 1.0)
    with pytest.raises(cs.ModelError, match=r"backoff.jitter \(line 10\): unknown jitter "
                                            r"\(did you mean 'equal'\?\)"):
        load_scenario(SCENARIO.replace("jitter: equal", "jitter: equl"))
    with pytest.raises(cs.ModelError, match=r"breaker.failure_ratio \(line 9\): must be in "
                                            r"\(0, 1\].*got 2"):
        load_scenario(SCENARIO.replace("failure_ratio: 0.5", "failure_ratio: 2"))
    with pytest.raises(cs.ModelError, match=r"retry_budget.ratios .*not a field of "
                                            r"RetryBudget \(did you mean 'ratio'\?\)"):
        load_scenario(SCENARIO.replace("ratio: 0.1", "ratios: 0.1"))
    bad = yaml.safe_load(SCENARIO.replace("jitter: equal", "jitter: equl"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json_schema())


def test_the_twin_solves_it_as_one_attempt_per_call_and_says_so():
    scenario = load_scenario(SCENARIO)
    twin = cs.analytic.solve(scenario.system, scenario.workload)
    assert twin.components().set_index("component").loc["db", "utilization"] == \
        pytest.approx(0.5)
    assert any("breakers, backoff, retry budgets" in n for n in twin.notes)


# -- the retry storm ----------------------------------------------------------------------
def _storm_system(**resilience) -> cs.System:
    # an M/M/1 db at 70% (10 ms service, 70 calls/s); callers wait 300 ms (30 services,
    # well above the normal p99 of 150 ms, so the normal state is stable) and retry 3 times
    return cs.System([cs.Service("db", 1, cs.Exponential(0.01))],
                     [cs.Flow("q", 1.0, [cs.Call("db", timeout_s=0.3, retries=3,
                                                 **resilience)])])


def test_retry_storm_plain_retries_collapse_and_a_budget_or_a_breaker_prevent_it():
    # 6 s = 600 service times; traffic doubles for 0.65 s at 1 s. With plain retries a
    # clear share of the seeds never recovers: after the spike the offered load is back to
    # 0.7, yet the db gets ~4 attempts per call (all time out) and the divergence check
    # flags it. A retry budget or a breaker caps the attempts and every seed recovers
    spike = cs.OpenWorkload(1, 70.0, profile=cs.Spike(1.0, 0.65, 2.0))
    variants = {"plain": _storm_system(),
                "budget": _storm_system(retry_budget=cs.RetryBudget(0.1, 1.0, 1.0)),
                "breaker": _storm_system(breaker=cs.CircuitBreaker(0.5, 1.0, 20, 0.5, 3))}
    runs = cs.retry_storm(variants, spike, 6.0, 30, per_run=True, processes=1)
    table = runs.groupby("variant", sort=False)
    collapses = table["collapsed"].sum()
    assert collapses["plain"] >= 8  # of 30 (14 with these seeds)
    assert collapses["budget"] == collapses["breaker"] == 0
    plain = runs[runs["variant"] == "plain"]
    storm = plain[plain["collapsed"]]
    assert (storm["amplification_after"] > 3).all()  # the storm: retries, not traffic
    assert storm["instability"].str.contains("db: arrivals need").all()
    # the cost: calls failed fast or retries denied, in the seeds the spike tipped over
    tipped = plain["collapsed"].to_numpy()
    by = {name: runs[runs["variant"] == name] for name in variants}
    assert (by["breaker"]["fast_fails"].to_numpy()[tipped] > 0).all()
    assert (by["budget"]["retries_denied"].to_numpy()[tipped] > 0).all()
    mean_after = table["error_rate_after"].mean()
    assert mean_after["budget"] < 0.5 * mean_after["plain"]
    assert mean_after["breaker"] < 0.5 * mean_after["plain"]
    # without the spike plain retries hold: the collapse is the spike's doing
    calm = cs.retry_storm({"plain": variants["plain"]}, cs.OpenWorkload(1, 70.0), 6.0, 30,
                          trigger_s=(1.0, 1.65), processes=1)
    assert calm["collapses"].item() == 0
    summary = cs.retry_storm({"plain": variants["plain"]}, spike, 6.0, 5, processes=1)
    assert summary["runs"].item() == 5 and 0 <= summary["collapse_low"].item() <= \
        summary["collapse_rate"].item() <= summary["collapse_high"].item() <= 1
