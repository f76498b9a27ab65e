"""The analytic twin on the web components, against answers checkable by hand.

Delays, caches, CDNs, replicated and sharded databases, unindexed scans, holding calls and
message queues are solved as the stations they lower to (``System.stations()``); each test
builds the smallest system that shows one of them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize

import capsim as cs
from capsim import analytic as an
from capsim.analytic import components as comp
from capsim.model.popularity import che_hit_ratio, zipf_probabilities
from capsim.schema import ALL_FLOWS, COMPONENT_COLUMNS, LATENCY_COLUMNS

E = cs.Exponential


def load(rate: float) -> cs.OpenWorkload:
    return cs.OpenWorkload(users=1, requests_per_user_s=rate)


def rows(res):
    return res.latency().set_index("flow"), res.components().set_index("component")


# ---------------------------------------------------------------------------------- delays


def test_delay_adds_its_mean_and_never_queues():
    system = cs.System([cs.Delay("net", latency=E(0.05)), cs.Service("app", 1, E(0.1))],
                       [cs.Flow("f", 1.0, [cs.Call("net"), cs.Call("app")])])
    res = an.solve(system, load(5.0))  # app: M/M/1 at rho = 0.5, W = 0.2
    lat, cmp = rows(res)
    assert lat.loc["f", "mean_s"] == pytest.approx(0.05 + 0.2)
    net = cmp.loc["net"]
    # as the engine reports a delay: infinite servers, utilization 0, no wait
    assert net["servers"] == math.inf and net["offered_load"] == 0 and net["utilization"] == 0
    assert net["mean_wait_s"] == 0 and net["mean_queue_length"] == 0
    assert net["mean_response_s"] == pytest.approx(0.05)
    assert net["mean_in_system"] == pytest.approx(5.0 * 0.05)  # Little
    assert net["throughput_per_s"] == pytest.approx(5.0) and net["stable"]
    assert res.bottleneck == "app"
    # sojourn = Exp(mean 0.05) + Exp(rate 5): hypoexponential
    r1, r2 = 20.0, 5.0

    def sf(t):
        return (r1 * math.exp(-r2 * t) - r2 * math.exp(-r1 * t)) / (r1 - r2)

    p99 = optimize.brentq(lambda t: sf(t) - 0.01, 0.0, 10.0)
    assert lat.loc["f", "p99_s"] == pytest.approx(p99, rel=1e-3)
    assert any("infinite-server" in n for n in res.notes)


def test_delay_percentiles_follow_its_distribution_and_match_engine_layout():
    system = cs.System([cs.Delay("api", latency=cs.Deterministic(0.3))],
                       [cs.Flow("f", 1.0, [cs.Call("api")])])
    res = an.solve(system, load(1000.0))  # any load: no queue
    lat, cmp = rows(res)
    for col in ("mean_s", "p50_s", "p95_s", "p99_s"):
        assert lat.loc["f", col] == pytest.approx(0.3, rel=1e-3)
    assert res.stable and list(res.components().columns) == COMPONENT_COLUMNS
    assert res.components()["servers"].dtype == float  # inf, as in the simulation
    run = cs.simulate(system, load(50.0), duration_s=20, seed=1)
    sim = run.components().set_index("component")
    assert sim.loc["api", "servers"] == cmp.loc["api", "servers"] == math.inf
    assert sim.loc["api", "utilization"] == cmp.loc["api", "utilization"] == 0.0


# ------------------------------------------------------------------------- service mixtures


def scan_system(scan_share: float, rows_: int = 1_000_000) -> cs.System:
    db = cs.Database("db", servers=1, service_time=E(0.001), table_rows=rows_,
                     scan_rows_per_s=5e6)  # a scan: 0.2 s = 200 index lookups
    return cs.System(
        [cs.Service("web", 2, E(0.01)), db],
        [cs.Flow("f", 1.0, [cs.Call("web"), cs.Branch([
            (1 - scan_share, [cs.Read("db")]), (scan_share, [cs.Read("db", index=False)])])])])


def test_unindexed_read_scales_service_and_is_the_bottleneck():
    system = scan_system(0.05)
    assert any(v.scale == pytest.approx(200.0) for r in system.flow_routes("f") for v in r.calls)
    lam = 20.0
    res = an.solve(system, load(lam))
    lat, cmp = rows(res)
    es = 0.95 * 0.001 + 0.05 * 0.2
    es2 = 0.95 * 2 * 0.001**2 + 0.05 * 2 * 0.2**2  # a mixture of exponentials
    rho = lam * es
    assert cmp.loc["db", "offered_load"] == pytest.approx(rho)
    assert cmp.loc["db", "offered_load"] > cmp.loc["web", "offered_load"] == pytest.approx(0.1)
    assert res.bottleneck == "db"
    # Poisson into db (Burke, after the M/M/2 web): Pollaczek-Khinchine with the mixture
    wq = lam * es2 / (2 * (1 - rho))
    assert cmp.loc["db", "mean_wait_s"] == pytest.approx(wq, rel=1e-9)
    assert cmp.loc["db", "mean_response_s"] == pytest.approx(wq + es)
    web_w = an.mmc(lam, 0.01, 2).mean_response
    assert lat.loc["f", "mean_s"] == pytest.approx(web_w + wq + es)
    assert any("mixtures" in n and "db" in n for n in res.notes)


def test_scans_in_the_hundreds_saturate_a_database_the_index_would_not():
    fine = an.solve(scan_system(0.0), load(20.0))
    heavy = an.solve(scan_system(0.3), load(20.0))  # 6 scans/s x 0.2 s = 1.2 > 1
    assert fine.stable and fine.bottleneck == "web"
    assert not heavy.stable and heavy.unstable_components == ("db",)
    assert heavy.bottleneck == "db"


def test_mixture_wait_tail_matches_m_h2_1():
    # M/H2/1: the wait given a wait is a two-exponential mixture, matched by three moments
    lam, p = 28.8, 0.9 / 28.8
    es = [1.0] + [math.factorial(k) * ((1 - p) * 0.02**k + p * 0.2**k) for k in (1, 2, 3, 4)]
    rho = lam * es[1]
    w = [1.0]
    for k in (1, 2, 3):
        w.append(lam / (1 - rho) * sum(math.comb(k, i) * es[i + 1] / (i + 1) * w[k - i]
                                       for i in range(1, k + 1)))
    db = cs.Database("db", servers=1, service_time=E(0.02), table_rows=1_000_000,
                     scan_rows_per_s=5e6)  # scale 10
    system = cs.System([db], [cs.Flow("f", 1.0, [cs.Branch([
        (1 - p, [cs.Read("db")]), (p, [cs.Read("db", index=False)])])])])
    res = an.solve(system, load(lam))
    cmp = res.components().set_index("component")
    assert cmp.loc["db", "mean_wait_s"] == pytest.approx(w[1], rel=1e-9)
    # exact sojourn quantiles of this M/H2/1 (Lindley recursion, 3e6 customers): 0.844, 1.437
    lat = res.latency().set_index("flow")
    assert lat.loc["f", "p95_s"] == pytest.approx(0.844, rel=0.02)
    assert lat.loc["f", "p99_s"] == pytest.approx(1.437, rel=0.03)


# ------------------------------------------------------------------------------- caches, CDN


def test_cache_hit_ratio_sends_the_misses_to_the_database():
    cache = cs.Cache("c", hit_ratio=0.75, servers=1, service_time=E(0.001))
    db = cs.Database("db", servers=1, service_time=E(0.01))
    system = cs.System([cache, db], [cs.Flow("f", 1.0, [cs.Read("c", on_miss=[cs.Read("db")])])])
    res = an.solve(system, load(20.0))
    lat, cmp = rows(res)
    assert cmp.loc["c", "throughput_per_s"] == pytest.approx(20.0)
    assert cmp.loc["db", "throughput_per_s"] == pytest.approx(20.0 * 0.25)
    assert cmp.loc["db", "utilization"] == pytest.approx(5.0 * 0.01)
    w_c = an.mmc(20.0, 0.001, 1).mean_response
    w_db = an.mmc(5.0, 0.01, 1).mean_response
    assert lat.loc["f", "mean_s"] == pytest.approx(w_c + 0.25 * w_db)


def test_lru_cache_uses_che_and_ttl_lowers_the_hit_ratio():
    def system(ttl):
        cache = cs.Cache("c", servers=4, service_time=E(0.001), keys=2000, zipf_s=0.8,
                         capacity_keys=200, ttl_s=ttl, invalidate_on_write=False)
        db = cs.Database("db", servers=4, service_time=E(0.005))
        return cs.System([cache, db], [cs.Flow("f", 1.0, [cs.Read("c", on_miss=[cs.Read("db")])])])

    che = che_hit_ratio(2000, 0.8, 200)
    plain = an.solve(system(None), load(100.0)).components().set_index("component")
    assert plain.loc["db", "throughput_per_s"] == pytest.approx(100.0 * (1 - che))
    short = an.solve(system(1.0), load(100.0))
    h = comp.hit_ratios(system(1.0), 100.0)["c"]
    assert h == pytest.approx(comp.lru_hit_ratio(2000, 0.8, 200, ttl_requests=100.0))
    assert h < che
    assert short.components().set_index("component").loc["db", "throughput_per_s"] == \
        pytest.approx(100.0 * (1 - h))
    assert any("Che" in n and "TTL" in n for n in short.notes)
    # the TTL counts from insertion (as the engine's): more traffic, more hits per stay
    assert comp.hit_ratios(system(1.0), 400.0)["c"] > h


def test_lru_hit_ratio_limits():
    assert comp.lru_hit_ratio(500, 0.9, 50) == che_hit_ratio(500, 0.9, 50)
    # a pure TTL cache (room for every key): key i hits n / (1 + n), n = p_i x TTL x rate
    p = zipf_probabilities(300, 1.0)
    n = p * 50.0
    assert comp.lru_hit_ratio(300, 1.0, 300, ttl_requests=50.0) == \
        pytest.approx(float(np.sum(p * n / (1 + n))), rel=1e-12)
    # a huge TTL changes nothing; invalidating writes lower the ratio
    assert comp.lru_hit_ratio(500, 0.9, 50, ttl_requests=1e12) == \
        pytest.approx(che_hit_ratio(500, 0.9, 50), rel=1e-6)
    assert comp.lru_hit_ratio(500, 0.9, 50, writes_per_read=0.2) < che_hit_ratio(500, 0.9, 50)


def test_cdn_is_a_delay_with_a_fixed_ratio():
    cdn = cs.CDN("cdn", hit_ratio=0.9, edge_latency=cs.Deterministic(0.01))
    system = cs.System([cdn, cs.Service("origin", 2, E(0.05))],
                       [cs.Flow("f", 1.0, [cs.Read("cdn", on_miss=[cs.Call("origin")])])])
    res = an.solve(system, load(100.0))
    lat, cmp = rows(res)
    assert cmp.loc["cdn", "servers"] == math.inf and cmp.loc["cdn", "utilization"] == 0
    assert cmp.loc["origin", "throughput_per_s"] == pytest.approx(10.0)
    w = an.mmc(10.0, 0.05, 2).mean_response
    assert lat.loc["f", "mean_s"] == pytest.approx(0.01 + 0.1 * w)
    assert lat.loc["f", "p50_s"] == pytest.approx(0.01, rel=1e-3)  # 90% are edge hits


# ----------------------------------------------------------------- replicas, shards, writes


def test_replicas_split_reads_and_writes_go_to_the_primary():
    db = cs.Database("db", servers=1, service_time=E(0.01), read_replicas=2,
                     read_policy="random")
    system = cs.System([db], [cs.Flow("r", 0.8, [cs.Read("db")]),
                              cs.Flow("w", 0.2, [cs.Write("db")])])
    res = an.solve(system, load(50.0))
    _, cmp = rows(res)
    assert list(cmp.index) == ["db", "db/replica1", "db/replica2"]
    assert cmp.loc["db", "throughput_per_s"] == pytest.approx(10.0)  # writes only
    assert cmp.loc["db/replica1", "throughput_per_s"] == pytest.approx(20.0)
    assert cmp.loc["db/replica2", "throughput_per_s"] == pytest.approx(20.0)
    assert cmp.loc["db/replica1", "mean_wait_s"] == pytest.approx(an.mmc(20.0, 0.01, 1).mean_wait)
    assert any("replicas" in n for n in res.notes)


def test_shards_split_by_weight():
    db = cs.Database("db", servers=2, service_time=E(0.01), shards=2, shard_weights=(0.7, 0.3),
                     read_replicas=1)
    system = cs.System([db], [cs.Flow("r", 0.5, [cs.Read("db")]),
                              cs.Flow("w", 0.5, [cs.Write("db")])])
    res = an.solve(system, load(100.0))
    _, cmp = rows(res)
    assert cmp.loc["db/shard0", "throughput_per_s"] == pytest.approx(35.0)  # writes
    assert cmp.loc["db/shard1", "throughput_per_s"] == pytest.approx(15.0)
    assert cmp.loc["db/shard0/replica1", "throughput_per_s"] == pytest.approx(35.0)  # reads
    assert cmp.loc["db/shard1/replica1", "throughput_per_s"] == pytest.approx(15.0)
    assert res.bottleneck in ("db/shard0", "db/shard0/replica1")


def test_instances_split_evenly_and_balancing_is_noted():
    def system(policy):
        return cs.System([cs.Service("web", 2, E(0.02), instances=4, balancing=policy)],
                         [cs.Flow("f", 1.0, [cs.Call("web")])])

    random = an.solve(system("random"), load(160.0))
    _, cmp = rows(random)
    assert list(cmp.index) == [f"web[{i}]" for i in range(4)]
    assert np.allclose(cmp["throughput_per_s"], 40.0)
    assert cmp.loc["web[0]", "mean_wait_s"] == pytest.approx(an.mmc(40.0, 0.02, 2).mean_wait)
    rr = rows(an.solve(system("round_robin"), load(160.0)))[1]
    # every 4th request: smoother than Poisson, so a shorter wait than the random split
    assert rr.loc["web[0]", "mean_wait_s"] < cmp.loc["web[0]", "mean_wait_s"]
    lc = an.solve(system("least_connections"), load(160.0))
    assert rows(lc)[1].loc["web[0]", "mean_wait_s"] == pytest.approx(
        cmp.loc["web[0]", "mean_wait_s"])
    assert any("even random" in n and "least_connections" in n for n in lc.notes)


# -------------------------------------------------------------------------- holding calls


def holding(db_mean: float, db_servers: int = 1) -> cs.System:
    return cs.System([cs.Service("web", 2, E(0.01)), cs.Service("db", db_servers, E(db_mean))],
                     [cs.Flow("f", 1.0, [cs.Call("web", calls=[cs.Call("db")])])])


def test_holder_is_busy_for_its_service_plus_the_downstream_response():
    lam = 20.0
    res = an.solve(holding(0.02), load(lam))
    lat, cmp = rows(res)
    w_db = 0.02 / (1 - lam * 0.02)  # M/M/1 at rho = 0.4
    held = 0.01 + w_db
    assert cmp.loc["db", "mean_response_s"] == pytest.approx(w_db)
    assert cmp.loc["web", "offered_load"] == pytest.approx(lam * held / 2)
    assert cmp.loc["web", "utilization"] == pytest.approx(lam * held / 2)
    wq = cmp.loc["web", "mean_wait_s"]
    assert wq > 0
    # the station's response includes the call; the flow counts the call once
    assert cmp.loc["web", "mean_response_s"] == pytest.approx(wq + held)
    assert lat.loc["f", "mean_s"] == pytest.approx(wq + held)
    assert cmp.loc["web", "mean_in_system"] == pytest.approx(lam * (wq + held))
    assert any("method of surrogates" in n for n in res.notes)


def test_slow_downstream_saturates_the_holding_pool():
    # db at rho = 0.9: response 0.45 s, so web needs 20 x 0.46 = 9.2 busy workers of 2
    res = an.solve(holding(0.045), load(20.0))
    lat, cmp = rows(res)
    assert cmp.loc["db", "stable"] and cmp.loc["db", "offered_load"] == pytest.approx(0.9)
    assert not cmp.loc["web", "stable"] and cmp.loc["web", "offered_load"] > 1
    assert cmp.loc["web", "offered_load"] == pytest.approx(20.0 * (0.01 + 0.045 / 0.1) / 2)
    assert res.bottleneck == "web" and res.unstable_components == ("web",)
    assert not lat.loc["f", "stable"] and lat.loc["f", "mean_s"] == math.inf
    # the same downstream without holding leaves web at its own load (0.1)
    plain = cs.System([cs.Service("web", 2, E(0.01)), cs.Service("db", 1, E(0.045))],
                      [cs.Flow("f", 1.0, [cs.Call("web"), cs.Call("db")])])
    assert an.solve(plain, load(20.0)).stable


def test_overloaded_downstream_is_the_bottleneck_not_its_caller():
    res = an.solve(holding(0.06), load(20.0))  # db rho = 1.2
    assert set(res.unstable_components) == {"web", "db"}
    assert res.bottleneck == "db"


def test_nested_holding_adds_up_layer_by_layer():
    system = cs.System(
        [cs.Service("web", 4, E(0.01)), cs.Service("api", 2, E(0.01)),
         cs.Service("db", 1, E(0.02))],
        [cs.Flow("f", 1.0, [cs.Call("web", calls=[cs.Call("api", calls=[cs.Call("db")])])])])
    res = an.solve(system, load(15.0))
    lat, cmp = rows(res)
    # db is fed when api's own (exponential) service ends: Poisson, M/M/1 at rho = 0.3
    assert cmp.loc["db", "mean_response_s"] == pytest.approx(0.02 / 0.7)
    held_api = cmp.loc["api", "mean_response_s"] - cmp.loc["api", "mean_wait_s"]
    assert held_api == pytest.approx(0.01 + cmp.loc["db", "mean_response_s"])
    held_web = cmp.loc["web", "mean_response_s"] - cmp.loc["web", "mean_wait_s"]
    assert held_web == pytest.approx(0.01 + cmp.loc["api", "mean_response_s"])
    assert cmp.loc["web", "utilization"] == pytest.approx(15.0 * held_web / 4)
    assert lat.loc["f", "mean_s"] == pytest.approx(cmp.loc["web", "mean_response_s"])
    assert set(res.unstable_components) == set()


def test_finite_queue_behind_a_smaller_pool_cannot_drop():
    def system(web_servers):
        return cs.System(
            [cs.Service("web", web_servers, E(0.01)),
             cs.Service("api", 2, E(0.05), queue_capacity=3)],
            [cs.Flow("f", 1.0, [cs.Call("web", calls=[cs.Call("api")])])])

    small = an.solve(system(4), load(30.0))  # at most 4 calls in flight: 2 + 3 places
    assert small.latency()["error_rate"].iloc[0] == 0
    assert small.components().set_index("component").loc["api", "drops"] == 0
    big = an.solve(system(40), load(30.0))  # 40 workers can overflow it
    assert big.latency()["error_rate"].iloc[0] > 0


# ---------------------------------------------------------------------------- message queues


def queue_system(consumer_mean: float, retention: float | None = None) -> cs.System:
    mq = cs.MessageQueue("q", partitions=3, consumer=cs.Service("worker", 2, E(consumer_mean)),
                         retention_s=retention)
    return cs.System([cs.Service("web", 4, E(0.01)), mq],
                     [cs.Flow("buy", 0.5, [cs.Call("web"), cs.Publish("q")]),
                      cs.Flow("look", 0.5, [cs.Call("web")])])


def test_consumers_are_fed_by_their_partitions_share():
    lam = 6.0  # 3 messages/s; 3 partitions over 2 consumers: shares 2/3 and 1/3
    res = an.solve(queue_system(0.1), load(lam))
    lat, cmp = rows(res)
    assert list(lat.index) == ["buy", "look", "q (async)", ALL_FLOWS]
    assert list(res.latency().columns) == LATENCY_COLUMNS
    assert cmp.loc["q/consumer0", "throughput_per_s"] == pytest.approx(2.0)
    assert cmp.loc["q/consumer1", "throughput_per_s"] == pytest.approx(1.0)
    assert cmp.loc["q/consumer0", "servers"] == 1
    w0, w1 = 0.1 / (1 - 0.2), 0.1 / (1 - 0.1)  # M/M/1 each, not M/M/2
    assert cmp.loc["q/consumer0", "mean_response_s"] == pytest.approx(w0)
    row = lat.loc["q (async)"]
    assert row["mean_s"] == pytest.approx(2 / 3 * w0 + 1 / 3 * w1)
    assert row["throughput_per_s"] == pytest.approx(3.0)
    p99 = optimize.brentq(lambda x: 2 / 3 * math.exp(-x / w0) + 1 / 3 * math.exp(-x / w1)
                          - 0.01, 0.0, 10.0)
    assert row["p99_s"] == pytest.approx(p99, rel=1e-3)
    # the all row pools the requests only
    assert lat.loc[ALL_FLOWS, "throughput_per_s"] == pytest.approx(lam)
    w_web = an.mmc(lam, 0.01, 4).mean_response
    assert lat.loc[ALL_FLOWS, "mean_s"] == pytest.approx(w_web)


def test_overloaded_consumer_makes_only_the_async_row_unstable():
    res = an.solve(queue_system(0.6), load(6.0))  # consumer0 rho = 1.2, consumer1 0.6
    lat, cmp = rows(res)
    assert res.unstable_components == ("q/consumer0",) and not res.stable
    assert not lat.loc["q (async)", "stable"] and lat.loc["q (async)", "mean_s"] == math.inf
    for flow in ("buy", "look", ALL_FLOWS):
        assert lat.loc[flow, "stable"] and math.isfinite(lat.loc[flow, "mean_s"])
    assert cmp.loc["q/consumer1", "stable"]
    assert res.bottleneck == "q/consumer0"


def test_retention_is_m_m_1_with_deterministic_patience():
    # at rho = 1: P0 = 1 / (2 + mu D), loss = P0
    r = comp.mm1_retention(10.0, 0.1, 0.5)
    assert r.p0 == pytest.approx(1 / (2 + 5.0))
    assert r.loss == pytest.approx(1 / 7)
    assert r.utilization == pytest.approx(1 - r.p0)  # busy exactly when V > 0
    # overload is stable: loss about 1 - 1/rho once the patience is long
    big = comp.mm1_retention(30.0, 0.1, 50.0)
    assert big.loss == pytest.approx(1 - 1 / 3, rel=1e-6)
    assert big.mean_wait < 50.0
    # a long patience is plain M/M/1
    mm1 = comp.mm1_retention(5.0, 0.1, 1e3)
    assert mm1.loss < 1e-12 and mm1.mean_wait == pytest.approx(an.mmc(5.0, 0.1, 1).mean_wait)
    cdf = mm1.wait_cdf()
    assert cdf(np.array([0.0]))[0] == pytest.approx(0.5)  # P(no wait) = 1 - rho


def test_retention_keeps_an_overloaded_consumer_stable_and_counts_losses():
    res = an.solve(queue_system(0.6, retention=0.5), load(6.0), duration_s=100.0)
    lat, cmp = rows(res)
    assert res.stable and lat.loc["q (async)", "stable"]
    r0 = comp.mm1_retention(2.0, 0.6, 0.5)
    r1 = comp.mm1_retention(1.0, 0.6, 0.5)
    assert lat.loc["q (async)", "error_rate"] == pytest.approx(2 / 3 * r0.loss + 1 / 3 * r1.loss)
    assert lat.loc["q (async)", "errors"] == pytest.approx(
        100.0 * 3.0 * (2 / 3 * r0.loss + 1 / 3 * r1.loss))
    assert cmp.loc["q/consumer0", "drops"] == pytest.approx(100.0 * 2.0 * r0.loss)
    assert cmp.loc["q/consumer0", "mean_wait_s"] <= 0.5
    assert any("impatience" in n for n in res.notes)


# --------------------------------------------------------------------------- notes, layout


def test_outages_are_noted_and_ignored():
    system = cs.System([cs.Service("web", 2, E(0.01))], [cs.Flow("f", 1.0, [cs.Call("web")])],
                       outages=[cs.Outage("web", start_s=10, duration_s=5)])
    res = an.solve(system, load(50.0))
    assert any("outages are not modelled" in n for n in res.notes)
    base = cs.System([cs.Service("web", 2, E(0.01))], [cs.Flow("f", 1.0, [cs.Call("web")])])
    assert res.latency().equals(an.solve(base, load(50.0)).latency())


def test_rows_have_the_simulation_names_and_order():
    mq = cs.MessageQueue("q", partitions=2, consumer=cs.Service("w", 2, E(0.01)),
                         publish_latency=E(0.001))
    system = cs.System(
        [cs.Delay("edge", E(0.002)), cs.Service("web", 2, E(0.01), instances=2),
         cs.Cache("c", hit_ratio=0.5, servers=1, service_time=E(0.001)),
         cs.Database("db", servers=1, service_time=E(0.01), read_replicas=1, shards=2), mq],
        [cs.Flow("a", 0.5, [cs.Call("edge"), cs.Call("web", calls=[
            cs.Read("c", on_miss=[cs.Read("db")])])]),
         cs.Flow("b", 0.5, [cs.Call("web"), cs.Write("db"), cs.Publish("q")])])
    twin = an.solve(system, load(20.0))
    run = cs.simulate(system, load(20.0), duration_s=20, seed=3)
    assert list(twin.latency()["flow"]) == list(run.latency()["flow"])
    assert list(twin.components()["component"]) == list(run.components()["component"])


def test_closed_workload_counts_delays_as_think_time():
    system = cs.System([cs.Delay("net", E(0.5)), cs.Service("app", 1, E(0.1))],
                       [cs.Flow("f", 1.0, [cs.Call("net"), cs.Call("app")])])
    res = an.solve(system, cs.ClosedWorkload(users=8, think_time=E(1.0)))
    ref = an.mva([0.1], 8, 1.5)  # the delay is infinite-server demand, like thinking
    lat, cmp = rows(res)
    assert lat.loc["f", "throughput_per_s"] == pytest.approx(ref.throughput)
    assert lat.loc["f", "mean_s"] == pytest.approx(ref.response_time + 0.5)
    assert cmp.loc["net", "servers"] == math.inf and cmp.loc["net", "utilization"] == 0
    assert cmp.loc["net", "mean_in_system"] == pytest.approx(ref.throughput * 0.5)


def test_closed_workload_holder_row_counts_the_calls_it_waits_on():
    system = holding(0.02)
    res = an.solve(system, cs.ClosedWorkload(users=10, think_time=E(0.5)))
    ref = an.mva([0.01, 0.02], 10, 0.5, servers=[2, 1])  # MVA queues for own service only
    lat, cmp = rows(res)
    assert lat.loc["f", "throughput_per_s"] == pytest.approx(ref.throughput)
    x = ref.throughput
    held = 0.01 + cmp.loc["db", "mean_response_s"]
    assert cmp.loc["web", "utilization"] == pytest.approx(x * held / 2)
    assert cmp.loc["web", "mean_response_s"] == pytest.approx(cmp.loc["web", "mean_wait_s"] + held)
    assert lat.loc["f", "mean_s"] == pytest.approx(ref.response_time)
    assert any("MVA queues for its own service only" in n for n in res.notes)
