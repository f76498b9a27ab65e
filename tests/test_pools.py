"""Connection pools and bulkheads: exact timelines with deterministic times, Erlang C for a pool
in front of a database, M/M/c + D for a pool's max_wait_s, and the twin against both."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import capsim as cs
from capsim.analytic.components import mm1_retention
from capsim.analytic.pools import mmc_patience
from capsim.analytic.queues import erlang_b, mmc
from capsim.scenario import load_scenario
from capsim.scenario.schema import json_schema


def _pooled(size: int = 2, servers: int = 4, *, per: str = "system", max_wait_s=None,
            query=None) -> cs.System:
    db = cs.Database("pg", servers=servers, service_time=query or cs.Deterministic(1.0),
                     pool=cs.Pool(size, per=per, max_wait_s=max_wait_s))
    return cs.System([db], [cs.Flow("q", 1.0, [cs.Read("pg")])])


def _burst(users: int, flows=None) -> cs.ClosedWorkload:
    """``users`` requests at once at t = 5 s (and none again before 10 s)."""
    return cs.ClosedWorkload(users=users, think_time=cs.Deterministic(5.0), flows=flows)


def _events(run, component: str) -> list[tuple]:
    log = run.trace()
    log = log[log["component"] == component]
    return list(zip(log["time_s"], log["request"], log["event"], strict=True))


def test_a_full_pool_makes_the_next_query_wait_for_a_connection():
    # pool of 2 in front of 4 servers: queries 1 and 2 take the connections at 5 s, query 3
    # waits, takes the one query 1 gives back at 6 s and is done at 7 s
    run = cs.simulate(_pooled(), _burst(3), duration_s=8.0, trace=True)
    assert _events(run, "pg/pool") == [
        (5.0, 1, "acquire"), (5.0, 2, "acquire"), (5.0, 3, "wait"),
        (6.0, 1, "release"), (6.0, 3, "acquire"), (6.0, 2, "release"), (7.0, 3, "release")]
    # the database never saw the third query before it had a connection
    assert (6.0, 3, "arrive") in _events(run, "pg")
    order = np.argsort(run.arrival_s)
    np.testing.assert_array_equal(run.finish_s[order], [6.0, 6.0, 7.0])
    row = run.pools().iloc[0]
    assert (row["pool"], row["database"], row["caller"], row["size"]) == ("pg/pool", "pg",
                                                                         "all", 2)
    assert (row["requests"], row["acquired"], row["waited"], row["timeouts"]) == (3, 3, 1, 0)
    assert row["exhausted_share"] == pytest.approx(1 / 3)
    assert row["mean_wait_s"] == pytest.approx(1 / 3)
    assert row["max_in_use"] == 2
    # 2 connections for 1 s and 1 for 1 s over 8 s; one query waited 1 s
    assert row["mean_in_use"] == pytest.approx(3 / 8)
    assert row["mean_waiting"] == pytest.approx(1 / 8)
    # a pool that binds is all the database serves: 2 servers, no queue of its own
    db = run.components().set_index("component").loc["pg"]
    assert (db["servers"], db["mean_wait_s"]) == (2, 0.0)


def test_a_query_that_waits_longer_than_max_wait_fails_at_that_instant():
    # one connection, 1 s queries: query 2 gets it after 1 s (< 1.5 s), query 3 gives up at
    # 5 + 1.5 s; its error is counted for its flow, and the connection goes on to no one
    run = cs.simulate(_pooled(1, max_wait_s=1.5), _burst(3), duration_s=9.0, trace=True)
    assert _events(run, "pg/pool") == [
        (5.0, 1, "acquire"), (5.0, 2, "wait"), (5.0, 3, "wait"), (6.0, 1, "release"),
        (6.0, 2, "acquire"), (6.5, 3, "timeout"), (7.0, 2, "release")]
    np.testing.assert_array_equal(run.drop_arrival_s, [5.0])
    row = run.pools().iloc[0]
    assert (row["requests"], row["acquired"], row["waited"], row["timeouts"]) == (3, 2, 2, 1)
    assert row["timeout_share"] == pytest.approx(1 / 3)
    assert row["mean_wait_s"] == pytest.approx(0.5)  # 0 and 1 s
    assert run.latency().iloc[0]["errors"] == 1
    # a wait of exactly max_wait_s is not longer: the release at that instant serves it
    run = cs.simulate(_pooled(1, max_wait_s=1.0), _burst(3), duration_s=9.0, trace=True)
    assert (6.0, 2, "acquire") in _events(run, "pg/pool")
    assert (6.0, 3, "timeout") in _events(run, "pg/pool")


def test_each_caller_instance_holds_its_own_pool_and_the_entry_one_more():
    # two api instances (round robin), one connection each: of four calls at once, two per
    # instance, the second of each waits a query; queries made straight from a flow share
    # the entry's pool
    api = cs.Service("api", servers=4, service_time=cs.Deterministic(0.0), instances=2)
    db = cs.Database("pg", servers=8, service_time=cs.Deterministic(1.0),
                     pool=cs.Pool(1, per="instance"))
    system = cs.System([api, db], [
        cs.Flow("nested", 0.5, [cs.Call("api", calls=[cs.Read("pg")])]),
        cs.Flow("direct", 0.5, [cs.Read("pg")])])
    # 1 connection x (2 instances + the entry): the database serves at most 3 at once
    assert {s.name: s.servers for s in system.stations()}["pg"] == 3
    workload = cs.MixedWorkload([_burst(4, flows=("nested",)), _burst(2, flows=("direct",))])
    run = cs.simulate(system, workload, duration_s=8.0)
    pools = run.pools().set_index("caller")
    assert list(pools.index) == ["api[0]", "api[1]", "(entry)"]
    assert list(pools["pool"]) == ["pg/pool@api[0]", "pg/pool@api[1]", "pg/pool@(entry)"]
    for caller in pools.index:
        assert (pools.loc[caller, "requests"], pools.loc[caller, "waited"]) == (2, 1)
        assert pools.loc[caller, "mean_wait_s"] == pytest.approx(0.5)
    lat = run.latency(by="population").set_index("flow")
    assert lat["mean_s"].tolist() == pytest.approx([1.5, 1.5])


def _bulkheaded(servers: int = 3) -> cs.System:
    api = cs.Service("api", servers=servers, service_time=cs.Deterministic(0.0),
                     bulkheads={"pay": 2})
    pay = cs.Delay("pay", latency=cs.Deterministic(1.0))
    inv = cs.Delay("inv", latency=cs.Deterministic(1.0))
    return cs.System([api, pay, inv], [
        cs.Flow("pay", 0.5, [cs.Call("api", calls=[cs.Call("pay")])]),
        cs.Flow("inv", 0.5, [cs.Call("api", calls=[cs.Call("inv")])])])


def test_a_bulkhead_rejects_the_call_beyond_its_slots_and_frees_the_worker():
    # 3 workers, at most 2 in calls to pay: the third pay call at 5 s fails at once, and the
    # worker it had takes the inv call (which would otherwise wait for a pay call to end)
    workload = cs.MixedWorkload([_burst(3, flows=("pay",)), _burst(1, flows=("inv",))])
    run = cs.simulate(_bulkheaded(), workload, duration_s=8.0, trace=True)
    assert _events(run, "api/bulkhead:pay") == [
        (5.0, 1, "acquire"), (5.0, 2, "acquire"), (5.0, 3, "reject"), (6.0, 1, "release"),
        (6.0, 2, "release")]
    np.testing.assert_array_equal(run.drop_arrival_s, [5.0])
    lat = run.latency(by="population").set_index("flow")
    assert (lat["count"].tolist(), lat["errors"].tolist()) == ([2, 1], [1, 0])
    assert lat["mean_s"].tolist() == [1.0, 1.0]
    row = run.bulkheads().iloc[0]
    assert (row["bulkhead"], row["service"], row["instance"], row["dependency"],
            row["limit"]) == ("api/bulkhead:pay", "api", "api", "pay", 2)
    assert (row["calls"], row["admitted"], row["rejected"], row["max_in_use"]) == (3, 2, 1, 2)
    assert row["rejected_share"] == pytest.approx(1 / 3)


def test_a_rejected_call_inside_a_watched_call_fails_its_attempt():
    # the caller retries its call to api when the bulkhead turns the pay call away; the
    # retry goes at once, finds the slots still taken, and the call fails after it
    system = cs.replace(_bulkheaded(servers=4), flows=(
        cs.Flow("pay", 1.0, [cs.Call("api", retries=1, calls=[cs.Call("pay")])]),))
    run = cs.simulate(system, _burst(3), duration_s=8.0, trace=True)
    assert [e for e in _events(run, "api/bulkhead:pay") if e[0] == 5.0] == [
        (5.0, 1, "acquire"), (5.0, 2, "acquire"), (5.0, 3, "reject"), (5.0, 3, "reject")]
    np.testing.assert_array_equal(run.drop_arrival_s, [5.0])
    row = run.bulkheads().iloc[0]
    assert (row["calls"], row["admitted"], row["rejected"]) == (4, 2, 2)
    call = run.calls().iloc[0]
    assert (call["calls"], call["attempts"], call["failures"]) == (3, 4, 1)


def test_bad_pools_and_bulkheads_name_the_field():
    with pytest.raises(cs.ModelError, match=r"Pool\.size: must be >= 1, got 0"):
        cs.Pool(0)
    with pytest.raises(cs.ModelError, match=r"Pool\.per: must be one of instance, system"):
        cs.Pool(4, per="host")
    with pytest.raises(cs.ModelError, match=r"Pool\.max_wait_s: must be >= 0"):
        cs.Pool(4, max_wait_s=-1)
    with pytest.raises(cs.ModelError, match=r"Database\('pg'\)\.pool: must be a Pool"):
        cs.Database("pg", service_time=cs.Exponential(0.01), pool=10)
    with pytest.raises(cs.ModelError, match=r"bulkheads\['pay'\]: must be >= 1, got 0"):
        cs.Service("api", service_time=cs.Exponential(0.01), bulkheads={"pay": 0})
    pay = cs.Delay("pay", latency=cs.Exponential(0.1))
    with pytest.raises(cs.ModelError, match=r"unknown component 'pai' \(did you mean 'pay'"):
        cs.System([cs.Service("api", service_time=cs.Exponential(0.01),
                              bulkheads={"pai": 2}), pay],
                  [cs.Flow("f", 1.0, [cs.Call("api", calls=[cs.Call("pay")])])])
    with pytest.raises(cs.ModelError, match=r"bulkheads\['pay'\]: no flow calls pay from api"):
        cs.System([cs.Service("api", service_time=cs.Exponential(0.01),
                              bulkheads={"pay": 2}), pay],
                  [cs.Flow("f", 1.0, [cs.Call("api"), cs.Call("pay")])])


# -- theory --------------------------------------------------------------------------------

S, LAM, REPS = 0.01, 150.0, 8  # queries of 10 ms at 150/s: 1.5 erlangs


def _replicate(system, what, reps: int = REPS, duration_s: float = 60.0) -> np.ndarray:
    workload = cs.OpenWorkload(users=1, requests_per_user_s=LAM)
    return np.array([what(cs.simulate(system, workload, duration_s=duration_s, warmup_s=5.0,
                                      seed=seed)) for seed in range(reps)])


def _covers(x: np.ndarray, value: float, level: float = 0.99) -> None:
    half = stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    assert abs(x.mean() - value) <= half, (x.mean(), half, value)


def test_a_pool_of_n_in_front_of_more_servers_is_mm_n_and_of_more_is_mm_c():
    # Poisson arrivals, exponential queries: with N = 2 connections before c = 4 servers a
    # query waits for a connection as in M/M/2 (Erlang C) and never at the database; with
    # N = 4 before c = 2 it is M/M/2 again, the wait now split between pool and database
    exp = cs.Exponential(S)
    theory = mmc(LAM, S, 2)
    narrow = _replicate(_pooled(2, 4, query=exp), lambda r: (
        r.latency().iloc[0]["mean_s"], r.pools().iloc[0]["mean_wait_s"],
        r.components().iloc[0]["mean_wait_s"]))
    _covers(narrow[:, 0], theory.mean_response)
    _covers(narrow[:, 1], theory.mean_wait)
    assert np.all(narrow[:, 2] == 0.0)
    wide = _replicate(_pooled(4, 2, query=exp), lambda r: (
        r.latency().iloc[0]["mean_s"], r.pools().iloc[0]["mean_wait_s"]))
    # one FIFO order overall: the very same queries, served at the very same times
    np.testing.assert_allclose(wide[:, 0], narrow[:, 0], rtol=1e-12)
    assert np.all(wide[:, 1] < narrow[:, 1])
    # the twin: the pool's 2 connections are the database's 2 servers, exactly Erlang C
    for system in (_pooled(2, 4, query=exp), _pooled(4, 2, query=exp)):
        twin = cs.analytic.solve(system, cs.OpenWorkload(users=1, requests_per_user_s=LAM))
        assert twin.latency().iloc[0]["mean_s"] == pytest.approx(theory.mean_response)
        assert any(n.startswith("pool pg:") for n in twin.notes)


def test_max_wait_loses_the_share_mmc_with_deterministic_patience_predicts():
    # M/M/2 + D: a query that would wait more than D = 5 ms for a connection gives up. The
    # loss and the served queries' response come from M/M/c + D exactly; the twin uses it
    patience = mmc_patience(LAM, S, 2, 0.005)
    system = _pooled(2, 4, max_wait_s=0.005, query=cs.Exponential(S))
    runs = _replicate(system, lambda r: (
        r.latency().iloc[0]["error_rate"], r.latency().iloc[0]["mean_s"],
        r.pools().iloc[0]["timeout_share"]))
    _covers(runs[:, 0], patience.loss)
    _covers(runs[:, 1], patience.mean_wait + S)
    np.testing.assert_allclose(runs[:, 2], runs[:, 0], atol=2e-3)  # by arrival vs by event
    twin = cs.analytic.solve(system, cs.OpenWorkload(users=1, requests_per_user_s=LAM))
    row = twin.latency().iloc[0]
    assert row["error_rate"] == pytest.approx(patience.loss)
    assert row["mean_s"] == pytest.approx(patience.mean_wait + S)
    assert twin.stable
    # overloaded (3 erlangs on 2 connections) it still sheds its way to a steady state
    over = cs.analytic.solve(system, cs.OpenWorkload(users=1, requests_per_user_s=2 * LAM))
    assert over.stable
    assert over.latency().iloc[0]["error_rate"] == pytest.approx(
        mmc_patience(2 * LAM, S, 2, 0.005).loss)


def test_mmc_with_deterministic_patience_in_its_known_limits():
    # one server: M/M/1 + D; no patience: Erlang B; endless patience: Erlang C's wait
    one, known = mmc_patience(0.8, 1.0, 1, 0.7), mm1_retention(0.8, 1.0, 0.7)
    assert (one.loss, one.mean_wait) == pytest.approx((known.loss, known.mean_wait))
    assert mmc_patience(3.0, 1.0, 4, 0.0).loss == pytest.approx(erlang_b(4, 3.0))
    long = mmc_patience(3.0, 1.0, 4, 500.0)
    assert long.loss < 1e-100
    assert long.mean_wait == pytest.approx(mmc(3.0, 1.0, 4).mean_wait)
    # overloaded, it serves c / S: loss 1 - c mu / lambda as patience grows
    assert mmc_patience(10.0, 1.0, 4, 200.0).loss == pytest.approx(0.6)
    losses = [mmc_patience(4.0, 1.0, 4, d).loss for d in (0.0, 0.1, 0.5, 2.0, 10.0)]
    assert all(a > b for a, b in zip(losses, losses[1:], strict=False))


def test_a_scenario_file_builds_pools_and_bulkheads(tmp_path):
    path = tmp_path / "pool.yaml"
    path.write_text("""
components:
  - Service: {name: api, servers: 8, service_time: {Exponential: {mean: 0.01}},
              bulkheads: {pg: 4}}
  - Database: {name: pg, servers: 16, service_time: {Exponential: {mean: 0.005}},
               pool: {size: 5, per: instance, max_wait_s: 0.5}}
flows:
  - {name: q, steps: [{Call: {component: api, calls: [{Read: pg}]}}]}
workload: {OpenWorkload: {users: 10, requests_per_user_s: 5}}
""")
    scenario = load_scenario(path)
    api, db = scenario.system.components
    assert api.bulkheads == (("pg", 4),)
    assert db.pool == cs.Pool(5, per="instance", max_wait_s=0.5)
    path.write_text(path.read_text().replace("per: instance", "per: instanse"))
    with pytest.raises(cs.ModelError, match="did you mean 'instance'"):
        load_scenario(path)
    defs = json_schema()["$defs"]
    assert defs["Pool"]["properties"]["per"]["enum"] == ["instance", "system"]
    assert defs["Database"]["properties"]["pool"] == {"$ref": "#/$defs/Pool"}
    assert defs["Service"]["properties"]["bulkheads"]["type"] == "object"
