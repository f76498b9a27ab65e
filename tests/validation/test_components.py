"""The web components against theory: caches, replicas and shards, scans, queues, balancers,
synchronous calls, outages and stale data.

Each proof states its theory in closed form (thinning of a Poisson stream, Erlang C, Che's
approximation and its transient, GI/M/1, an M/M/1 busy period started by a backlog, Little's
law on a held worker) and checks the simulation against it with confidence intervals over
independent replications; comparisons between variants use paired replications (common random
numbers) and a CI of the difference. Nothing is pinned to one seed's output.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import numpy as np
import pytest
from scipy import optimize

import capsim as cs
from capsim.analytic.mva import mva
from capsim.analytic.queues import mmc, mmc_response_quantile
from capsim.experiment import mean_ci, replicate
from capsim.model.popularity import che_hit_ratio, zipf_probabilities
from tests.validation.agreement import CONFIDENCE, assert_agrees, column

E = cs.Exponential


# -- helpers ------------------------------------------------------------------------------------


def replicate_sampled(system, workload, reps: int, seed: int, *, duration_s: float,
                      warmup_s: float = 0.0, every_s: float) -> list[cs.RunResult]:
    """Like ``replicate`` (replication i runs on ``SeedSequence(seed).spawn(reps)[i]``) but with
    the station counters sampled every ``every_s``, for time series."""
    children = np.random.SeedSequence(seed).spawn(reps)
    run = partial(cs.simulate, system, workload, duration_s, warmup_s,
                  sample_interval_s=every_s)
    with ProcessPoolExecutor(2) as pool:
        return list(pool.map(run, children))


def counter(run: cs.RunResult, station: str, name: str) -> np.ndarray:
    """One cumulative counter of one station at every sample time."""
    return run.counter(name)[:, run.station_names.index(station)]


def rate_between(run: cs.RunResult, station: str, t0: float, t1: float,
                 name: str = "completions") -> float:
    """Per-second increase of a cumulative counter over [t0, t1] (both sample times)."""
    t = run.sample_times_s
    i0, i1 = np.searchsorted(t, t0 - 1e-9), np.searchsorted(t, t1 - 1e-9)
    assert abs(t[i0] - t0) < 1e-9 and abs(t[i1] - t1) < 1e-9, "window ends must be samples"
    c = counter(run, station, name)
    return float((c[i1] - c[i0]) / (t[i1] - t[i0]))


def present(run: cs.RunResult, stations: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(window end times, mean number present over each sampling window) summed over
    ``stations``: the time-integral of the number present, differenced."""
    area = sum(counter(run, s, "area_in_system") for s in stations)
    t = run.sample_times_s
    return t[1:], np.diff(area) / np.diff(t)


def assert_positive(diffs, label: str) -> None:
    """The paired differences are positive: their whole CI lies above zero."""
    m, half = mean_ci(diffs, CONFIDENCE)
    assert m - half > 0, f"{label}: mean difference {m:.4g} +- {half:.3g} includes 0"


def one_flow(components, steps, **kw) -> cs.System:
    return cs.System(components, [cs.Flow("f", 1.0, steps)], **kw)


# -- caches ---------------------------------------------------------------------------------------


def test_cache_hit_ratio_thins_the_database_stream():
    # A cache with hit ratio h passes a Poisson(lambda (1 - h)) stream of misses to the
    # database: its throughput is lambda (1 - h), its utilization lambda (1 - h) S / c, and
    # (Poisson in, exponential service) it is an M/M/c queue at that rate.
    lam, h, db_servers, db_s = 1000.0, 0.8, 2, 0.006
    system = one_flow(
        [cs.Cache("redis", servers=2, service_time=E(0.0005), hit_ratio=h),
         cs.Database("pg", servers=db_servers, service_time=E(db_s))],
        [cs.Read("redis", on_miss=[cs.Read("pg")])])
    res = replicate(system, cs.OpenWorkload(1, lam), 10, seed=21, duration_s=60, warmup_s=5)
    comp = res.components_runs()
    miss_rate = lam * (1 - h)
    assert_agrees(column(comp, "component", "pg", "throughput_per_s"), miss_rate,
                  "pg throughput = lambda (1 - h)", max_rel_half_width=0.02)
    assert_agrees(column(comp, "component", "pg", "utilization"),
                  miss_rate * db_s / db_servers, "pg utilization", max_rel_half_width=0.02)
    assert_agrees(column(comp, "component", "pg", "mean_response_s"),
                  mmc(miss_rate, db_s, db_servers).mean_response, "pg response (M/M/2)")
    assert_agrees(column(comp, "component", "redis", "throughput_per_s"), lam,
                  "redis throughput = lambda", max_rel_half_width=0.02)
    hits = [r.caches().set_index("cache").loc["redis", "hit_ratio"] for r in res.runs]
    assert_agrees(hits, h, "measured hit ratio", max_rel_half_width=0.01)


CHE_CASES = [(s, cap) for s in (0.7, 0.9, 1.1) for cap in (100, 1_000)]


@pytest.mark.parametrize(("zipf_s", "capacity"), CHE_CASES,
                         ids=[f"s{s}-cap{c}" for s, c in CHE_CASES])
def test_lru_hit_ratio_agrees_with_che(zipf_s, capacity):
    # Che's approximation for an LRU of C keys under independent Zipf(s) requests over 10k
    # keys (1% and 10% of them cached). Warm start, then 20k requests (> 6 characteristic
    # times) of warm-up: the 99% CI of the simulated hit ratio lies within 2 points of Che.
    keys, lam = 10_000, 1000.0
    system = one_flow([cs.Cache("c", servers=64, service_time=E(0.001), keys=keys,
                                zipf_s=zipf_s, capacity_keys=capacity)],
                      [cs.Read("c")])
    res = replicate(system, cs.OpenWorkload(1, lam), 4, seed=31, duration_s=70, warmup_s=20)
    hits = [r.caches().loc[0, "hit_ratio"] for r in res.runs]
    che = che_hit_ratio(keys, zipf_s, capacity)
    m, half = mean_ci(hits, CONFIDENCE)
    assert half < 0.01, f"CI half-width {half:.4f} too wide to decide"
    assert abs(m - che) + half <= 0.02, (
        f"LRU hit ratio {m:.4f} +- {half:.4f} vs Che {che:.4f}: more than 2 points apart")


def transient_hit_ratio(p: np.ndarray, lam: float, t: np.ndarray, t_fill: float) -> np.ndarray:
    """Expected hit ratio of a cold LRU at times ``t``: until it is full it holds every key
    requested so far, so h(t) = sum_i p_i (1 - exp(-p_i lam t)) exactly; it fills when the
    expected number of distinct keys reaches its capacity, i.e. at Che's characteristic time,
    after which Che's steady state holds (h is continuous there)."""
    tt = np.minimum(np.asarray(t, dtype=float), t_fill)[:, None]
    return np.sum(p * -np.expm1(-p * lam * tt), axis=1)


def window_theory(p, lam, t_fill, a: float, b: float) -> float:
    """Mean of the transient hit ratio over [a, b] (reads are uniform in time)."""
    grid = np.linspace(a, b, 201)
    return float(np.mean(transient_hit_ratio(p, lam, grid, t_fill)))


def test_cold_cache_warms_up_as_theory_says_and_the_database_takes_the_miss_storm():
    # 10k keys, Zipf 0.7, room for 5k: Che's steady hit ratio is 0.73, but a cold cache starts
    # empty, so the first second's reads nearly all miss and go to the database.
    keys, s, capacity, lam = 10_000, 0.7, 5_000, 200.0
    system = one_flow(
        [cs.Cache("c", servers=64, service_time=E(0.0005), keys=keys, zipf_s=s,
                  capacity_keys=capacity, warm=False),
         cs.Database("pg", servers=8, service_time=E(0.01))],
        [cs.Read("c", on_miss=[cs.Read("pg")])])
    runs = replicate_sampled(system, cs.OpenWorkload(1, lam), 24, seed=41, duration_s=150,
                             every_s=0.5)
    p = zipf_probabilities(keys, s)
    t_char = optimize.brentq(lambda t: np.sum(-np.expm1(-p * t)) - capacity, 1, 1e9)
    t_fill = t_char / lam  # about 55 s
    steady = che_hit_ratio(keys, s, capacity)

    def hit_ratio(run, a, b):
        ts = run.hit_ratio_timeseries()
        w = ts[(ts.time_s > a + 1e-9) & (ts.time_s <= b + 1e-9)]
        return float((w.reads * w.hit_ratio.fillna(0)).sum() / w.reads.sum())

    # the database takes the misses, lambda (1 - h(t)): a storm at first, then Che's share
    first_db = np.array([rate_between(r, "pg", 0, 1) for r in runs])
    steady_db = np.array([rate_between(r, "pg", 100, 150) for r in runs])
    assert_agrees(first_db, lam * (1 - window_theory(p, lam, t_fill, 0, 1)),
                  "pg throughput in the first second", max_rel_half_width=0.05)
    assert_agrees(steady_db, lam * (1 - steady), "pg steady throughput",
                  max_rel_half_width=0.05)
    assert_positive(first_db / steady_db - 3, "miss storm: first-second pg load / steady - 3")

    # the hit ratio starts near 0 and rises as the exact transient says until the cache fills,
    # then holds at Che's steady state
    assert_positive(0.2 * steady - np.array([hit_ratio(r, 0, 1) for r in runs]),
                    "first-second hit ratio below a fifth of the steady one")
    for a, b in [(1, 5), (5, 15), (15, 35)]:
        assert_agrees([hit_ratio(r, a, b) for r in runs], window_theory(p, lam, t_fill, a, b),
                      f"cold cache hit ratio over [{a}, {b}] s", max_rel_half_width=0.05)
    m, half = mean_ci([hit_ratio(r, 100, 150) for r in runs], CONFIDENCE)
    assert abs(m - steady) + half <= 0.02, f"steady hit ratio {m:.4f} +- {half:.4f} vs Che"


def stale_ratio_theory(keys: int, s: float, capacity: int, read_rate: float,
                       write_rate: float) -> float:
    """Fraction of reads served stale by an LRU that is not invalidated on writes.

    Che's picture: key i stays cached while its reads come less than T apart (T solves
    sum_i (1 - exp(-p_i T)) = C over reads); an entry made at a miss serves a run of hits
    whose gaps are each < T, and a hit is stale when a write (Poisson, rate w_i) fell since the
    entry was made. With q = P(gap < T) and phi = E[exp(-w G) | G < T] for a gap G ~ Exp(r_i),
    a read of key i is a fresh hit with probability (1 - q) q phi / (1 - q phi), a hit with q.
    """
    p = zipf_probabilities(keys, s)
    t = optimize.brentq(lambda x: np.sum(-np.expm1(-p * x)) - capacity, 1e-9, 1e15) / read_rate
    r, w = read_rate * p, write_rate * p
    q = -np.expm1(-r * t)
    phi = r / (r + w) * -np.expm1(-(r + w) * t) / q
    return float(np.sum(p * (q - (1 - q) * q * phi / (1 - q * phi))))


def test_cache_without_invalidation_serves_stale_reads_and_with_invalidation_none():
    keys, s, capacity, lam, writes = 10_000, 0.9, 1_000, 1000.0, 0.1

    def system(invalidate: bool) -> cs.System:
        cache = cs.Cache("c", servers=64, service_time=E(0.0005), keys=keys, zipf_s=s,
                         capacity_keys=capacity, invalidate_on_write=invalidate)
        pg = cs.Database("pg", servers=64, service_time=E(0.002))
        return cs.System([cache, pg], [
            cs.Flow("read", 1 - writes, [cs.Read("c", on_miss=[cs.Read("pg")])]),
            cs.Flow("write", writes, [cs.Write("pg"), cs.Write("c")])])

    load = cs.OpenWorkload(1, lam)
    stale = replicate(system(False), load, 6, seed=51, duration_s=60, warmup_s=20)
    fresh = replicate(system(True), load, 6, seed=51, duration_s=60, warmup_s=20)
    stale_ratio = [r.caches().loc[0, "stale_ratio"] for r in stale.runs]
    theory = stale_ratio_theory(keys, s, capacity, lam * (1 - writes), lam * writes)
    m, half = mean_ci(stale_ratio, CONFIDENCE)
    assert abs(m - theory) + half <= 0.02, (
        f"stale reads {m:.4f} +- {half:.4f} of reads vs Che with Poisson writes {theory:.4f}")
    assert [int(r.caches().loc[0, "stale_reads"]) for r in fresh.runs] == [0] * 6
    # invalidation trades stale hits for misses
    diffs = [a.caches().loc[0, "hit_ratio"] - b.caches().loc[0, "hit_ratio"]
             for a, b in zip(stale.runs, fresh.runs, strict=True)]
    assert_positive(diffs, "hit ratio without invalidation minus with")


# -- databases ----------------------------------------------------------------------------------


def shares(comp, stations: list[str], metric: str = "throughput_per_s") -> np.ndarray:
    """Per replication (rows) each station's share (columns) of the stations' total."""
    x = np.column_stack([column(comp, "component", s, metric) for s in stations])
    return x / x.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("policy", ["round_robin", "random", "least_connections"])
def test_read_replicas_share_reads_and_the_primary_takes_all_writes(policy):
    # Reads are routed to the replicas only, evenly under every policy (identical replicas);
    # writes to the primary only. Shares are of the measured totals (conditioned on how many
    # reads and writes arrived); one absolute check ties the replicas to lambda.
    lam, reads, servers, svc, replicas = 300.0, 0.8, 2, 0.01, 3
    pg = cs.Database("pg", servers=servers, service_time=E(svc), read_replicas=replicas,
                     read_policy=policy)
    system = cs.System([pg], [cs.Flow("read", reads, [cs.Read("pg")]),
                              cs.Flow("write", 1 - reads, [cs.Write("pg")])])
    res = replicate(system, cs.OpenWorkload(1, lam), 8, seed=61, duration_s=200, warmup_s=5)
    comp, lat = res.components_runs(), res.latency_runs()
    names = [f"pg/replica{j}" for j in range(1, replicas + 1)]
    for name, share in zip(names, shares(comp, names, "utilization").T, strict=True):
        assert_agrees(share, 1 / replicas, f"{policy}: {name} share of read utilization",
                      max_rel_half_width=0.03)
    total = sum(column(comp, "component", n, "utilization") for n in names)
    assert_agrees(total, lam * reads * svc / servers, f"{policy}: replicas' utilization",
                  max_rel_half_width=0.03)
    assert_agrees(column(comp, "component", "pg", "throughput_per_s")
                  / column(lat, "flow", "write", "throughput_per_s"), 1.0,
                  "primary throughput / write throughput", max_rel_half_width=0.01)
    assert_agrees(column(comp, "component", "pg", "utilization")
                  / column(comp, "component", "pg", "throughput_per_s"), svc / servers,
                  "primary busy time per write / servers", max_rel_half_width=0.03)


def test_reads_never_reach_the_primary_when_replicas_exist():
    pg = cs.Database("pg", servers=2, service_time=E(0.01), read_replicas=2, shards=2)
    run = cs.simulate(one_flow([pg], [cs.Read("pg")]), cs.OpenWorkload(1, 100.0), 50, seed=1)
    comp = run.components().set_index("component")
    assert comp.loc[["pg/shard0", "pg/shard1"], "throughput_per_s"].tolist() == [0.0, 0.0]
    assert (comp.loc[[f"pg/shard{k}/replica{j}" for k in (0, 1) for j in (1, 2)],
                     "throughput_per_s"] > 0).all()


def test_shards_split_load_by_weight_and_the_hot_shard_runs_hotter_by_the_weight_ratio():
    # A 75/25 key split: each shard's primary takes that share of the writes, its replica that
    # share of the reads, and (same servers, same service) the hot shard's utilization is
    # 3x the cold one's.
    lam, reads, svc, weights = 300.0, 0.8, 0.003, (0.75, 0.25)
    pg = cs.Database("pg", servers=1, service_time=E(svc), read_replicas=1, shards=2,
                     shard_weights=weights)
    system = cs.System([pg], [cs.Flow("read", reads, [cs.Read("pg")]),
                              cs.Flow("write", 1 - reads, [cs.Write("pg")])])
    res = replicate(system, cs.OpenWorkload(1, lam), 8, seed=71, duration_s=200, warmup_s=5)
    comp = res.components_runs()
    primaries = ["pg/shard0", "pg/shard1"]
    readers = ["pg/shard0/replica1", "pg/shard1/replica1"]
    for group in (primaries, readers):
        for name, share, w in zip(group, shares(comp, group).T, weights, strict=True):
            assert_agrees(share, w, f"{name} share of its kind's throughput",
                          max_rel_half_width=0.03)
        hot, cold = (column(comp, "component", n, "utilization") for n in group)
        assert_agrees(hot / cold, weights[0] / weights[1], f"{group[0]} / {group[1]} "
                      "utilization", max_rel_half_width=0.05)
    assert_agrees(column(comp, "component", readers[0], "utilization"),
                  lam * reads * weights[0] * svc, "hot replica utilization",
                  max_rel_half_width=0.03)


def test_unindexed_read_costs_table_rows_over_scan_rate():
    # A full scan costs (table_rows / scan_rows_per_s) / S index lookups: the utilization
    # ratio of the same read rate with and without the index is that factor (here 10).
    lam, servers, svc, rows, scan_rate = 100.0, 2, 0.001, 50_000, 5e6
    factor = rows / scan_rate / svc

    def system(index: bool) -> cs.System:
        pg = cs.Database("pg", servers=servers, service_time=E(svc), table_rows=rows,
                         scan_rows_per_s=scan_rate)
        return one_flow([pg], [cs.Read("pg", index=index)])

    load = cs.OpenWorkload(1, lam)
    indexed = replicate(system(True), load, 8, seed=81, duration_s=200, warmup_s=5)
    scanned = replicate(system(False), load, 8, seed=81, duration_s=200, warmup_s=5)
    u_index = column(indexed.components_runs(), "component", "pg", "utilization")
    scan_comp = scanned.components_runs()
    u_scan = column(scan_comp, "component", "pg", "utilization")
    assert_agrees(u_index, lam * svc / servers, "indexed utilization", max_rel_half_width=0.03)
    assert_agrees(u_scan, lam * svc * factor / servers, "scan utilization",
                  max_rel_half_width=0.03)
    assert_agrees(u_scan / u_index, factor, "scan / index utilization ratio",
                  max_rel_half_width=0.03)
    # and each scan is an M/M/2 service of mean rows / scan rate
    assert_agrees(column(scan_comp, "component", "pg", "mean_response_s"),
                  mmc(lam, rows / scan_rate, servers).mean_response, "scan response (M/M/2)")


def test_replica_read_right_after_a_write_is_stale_with_probability_exp_minus_gap_over_lag():
    # Replication lag ~ Exp(L); the read reaches the replica a fixed gap g after the write
    # (a Delay; the primary's own service is 0.1 ms, no queue): stale iff lag > g, so
    # P(stale) = exp(-g / L). Three databases in one run, one gap each.
    lag, gaps, lam = 0.05, (0.025, 0.05, 0.1), 300.0
    comps, flows = [], []
    for k, g in enumerate(gaps):
        comps += [cs.Database(f"pg{k}", servers=64, service_time=cs.Deterministic(1e-4),
                              read_replicas=2, replication_lag=E(lag)),
                  cs.Delay(f"gap{k}", cs.Deterministic(g))]
        flows.append(cs.Flow(f"f{k}", 1 / len(gaps),
                             [cs.Write(f"pg{k}"), cs.Call(f"gap{k}"), cs.Read(f"pg{k}")]))
    res = replicate(cs.System(comps, flows), cs.OpenWorkload(1, lam), 8, seed=91,
                    duration_s=100, warmup_s=5)
    for k, g in enumerate(gaps):
        p = [r.databases().set_index("database").loc[f"pg{k}", "stale_probability"]
             for r in res.runs]
        assert_agrees(p, math.exp(-g / lag), f"P(stale) with gap {g} s, mean lag {lag} s",
                      max_rel_half_width=0.06)


def test_replication_lag_counts_from_the_commit_not_from_the_write_request():
    # Primary M/M/1 at rho 0.6 (response Exp(1/0.05)), then a fixed 50 ms gap to the read:
    # from the commit the read is 50 ms later, so P(stale) = exp(-1) = 0.37. Counting from the
    # write's arrival adds the primary's response: E[exp(-(g + R)/L)] = 0.18.
    lag, gap, lam, svc = 0.05, 0.05, 30.0, 0.02
    pg = cs.Database("pg", servers=1, service_time=E(svc), read_replicas=2,
                     replication_lag=E(lag))
    system = one_flow([pg, cs.Delay("gap", cs.Deterministic(gap))],
                      [cs.Write("pg"), cs.Call("gap"), cs.Read("pg")])
    res = replicate(system, cs.OpenWorkload(1, lam), 8, seed=92, duration_s=300, warmup_s=10)
    p = [r.databases().loc[0, "stale_probability"] for r in res.runs]
    assert_agrees(p, math.exp(-gap / lag), "P(stale) from the commit", max_rel_half_width=0.06)


# -- message queues -------------------------------------------------------------------------


def test_consumer_outage_backlog_peaks_at_lambda_t_and_drains_in_lambda_t_over_spare_capacity():
    # K consumers, one per partition, each an M/M/1 at rate lambda / K. During an outage of T s
    # every message waits: the backlog at the restart is B = lambda T + Lq (the queue already
    # there). A partition then drains like an M/M/1 busy period started by B / K messages,
    # which lasts on average (B / K) / (mu - lambda / K) = B / (K mu - lambda).
    lam, k, svc, start, outage = 100.0, 4, 0.03, 20.0, 20.0
    mu = 1 / svc
    rho = lam / k / mu
    lq = k * rho**2 / (1 - rho)
    orders = cs.MessageQueue("orders", partitions=k,
                             consumer=cs.Service("worker", servers=k, service_time=E(svc)))
    system = one_flow([orders], [cs.Publish("orders")],
                      outages=[cs.Outage("orders", start, outage)])
    runs = replicate_sampled(system, cs.OpenWorkload(1, lam), 16, seed=101, duration_s=160,
                             every_s=0.05)
    consumers = [f"orders/consumer{i}" for i in range(k)]
    end = start + outage
    peaks, drains = [], []
    for run in runs:
        t, backlog = present(run, consumers)
        peaks.append(backlog.max())
        assert t[backlog.argmax()] == pytest.approx(end, abs=2.0)
        per_partition = []
        for name in consumers:
            t, n = present(run, [name])
            # the first window after the restart with less than one message present on
            # average: the partition emptied in it (before, at least one is always present)
            per_partition.append(t[np.nonzero((t > end) & (n < 1))[0][0]] - end)
        drains.append(np.mean(per_partition))
    backlog = lam * outage + lq
    assert_agrees(peaks, backlog, "backlog peak = lambda T + Lq", max_rel_half_width=0.03)
    assert_agrees(drains, backlog / (k * mu - lam), "drain time = B / (K mu - lambda)",
                  max_rel_half_width=0.06)


# -- load balancing -------------------------------------------------------------------------


def erlang_k_gim1_decay(k: int, lam: float, mu: float) -> float:
    """GI/M/1 with Erlang-k arrivals of rate lam: the sojourn time is Exp(mu (1 - sigma)),
    sigma the root in (0, 1) of sigma = (k lam / (k lam + mu (1 - sigma)))**k."""
    sigma = optimize.brentq(lambda x: (k * lam / (k * lam + mu * (1 - x))) ** k - x,
                            1e-12, 1 - 1e-12)
    return mu * (1 - sigma)


def balanced(policy: str, service) -> cs.System:
    return one_flow([cs.Service("app", 1, service, instances=8, balancing=policy)],
                    [cs.Call("app")])


def test_balancers_against_theory_and_each_other_exponential_service():
    # 8 instances x 1 worker, rho 0.8, the same arrivals for every policy (paired runs).
    # random: each instance is an M/M/1 (Poisson thinning); round robin: each sees every 8th
    # arrival, an E8/M/1 queue; both have exponential sojourn times. Least connections (join
    # the shortest queue) and power of two choices see the queues and must beat both at p99.
    svc, lam_i, n = 0.01, 80.0, 8
    mu = 1 / svc
    load = cs.OpenWorkload(1, n * lam_i)
    lat = {}
    for policy in ("random", "round_robin", "least_connections", "power_of_two"):
        res = replicate(balanced(policy, E(svc)), load, 8, seed=111, duration_s=80,
                        warmup_s=5)
        lat[policy] = res.latency_runs().set_index("replication")
    assert_agrees(lat["random"]["mean_s"], 1 / (mu - lam_i), "random: M/M/1 mean sojourn",
                  max_rel_half_width=0.08)
    rate = erlang_k_gim1_decay(n, lam_i, mu)
    assert_agrees(lat["round_robin"]["mean_s"], 1 / rate, "round robin: E8/M/1 mean sojourn")
    # an exponential sojourn time: p99 = ln(100) x mean (the ratio cancels the run's noise)
    assert_agrees(lat["round_robin"]["p99_s"] / lat["round_robin"]["mean_s"], math.log(100),
                  "round robin: p99 / mean of an exponential sojourn", max_rel_half_width=0.08)
    for smart in ("least_connections", "power_of_two"):
        for naive in ("random", "round_robin"):
            assert_positive(lat[naive]["p99_s"] - lat[smart]["p99_s"],
                            f"p99 {naive} minus {smart}")
    assert_positive(lat["power_of_two"]["p99_s"] - lat["least_connections"]["p99_s"],
                    "p99 power_of_two minus least_connections (full information wins)")


def test_balancers_that_see_the_queues_win_with_lognormal_service():
    load = cs.OpenWorkload(1, 8 * 85.0)
    p99 = {policy: replicate(balanced(policy, cs.LogNormal(0.01, 1.5)), load, 4, seed=121,
                             duration_s=30, warmup_s=3).latency_runs()["p99_s"].to_numpy()
           for policy in ("random", "least_connections", "power_of_two")}
    for smart in ("least_connections", "power_of_two"):
        assert_positive(p99["random"] - p99[smart], f"lognormal p99 random minus {smart}")


# -- synchronous calls and isolation ----------------------------------------------------------


def test_a_synchronous_call_holds_the_callers_worker_for_the_downstream_response():
    # api calls db while holding its worker: by Little's law its busy workers are
    # lambda (S_api + R_db), R_db the db's M/M/2 response (the api never queues, so the db sees
    # Poisson arrivals). Without holding, the api's utilization is lambda S_api / c.
    lam, c_api, s_api, c_db, s_db = 80.0, 16, 0.01, 2, 0.015
    comps = [cs.Service("api", c_api, E(s_api)), cs.Service("db", c_db, E(s_db))]
    held = one_flow(comps, [cs.Call("api", calls=[cs.Call("db")])])
    flat = one_flow(comps, [cs.Call("api"), cs.Call("db")])
    load = cs.OpenWorkload(1, lam)
    held_comp = replicate(held, load, 8, seed=131, duration_s=200, warmup_s=10
                          ).components_runs()
    flat_comp = replicate(flat, load, 8, seed=131, duration_s=200, warmup_s=10
                          ).components_runs()
    r_db = mmc(lam, s_db, c_db).mean_response
    u_api = column(held_comp, "component", "api", "utilization")
    assert_agrees(u_api, lam * (s_api + r_db) / c_api, "held api utilization",
                  max_rel_half_width=0.04)
    measured = lam * (s_api + column(held_comp, "component", "db", "mean_response_s")) / c_api
    assert_agrees(u_api / measured, 1.0, "held api utilization / lambda (S + measured R_db) / c",
                  max_rel_half_width=0.01)
    assert_agrees(column(flat_comp, "component", "api", "utilization"), lam * s_api / c_api,
                  "flat api utilization", max_rel_half_width=0.03)


API_WORKERS, API_S, SLOW_S, SLOW_WORKERS, SLOW_LAMBDA = 16, 0.01, 0.3, 32, 80.0


def slow_downstream(publish: bool) -> cs.System:
    """api (16 workers, 10 ms) hands 300 ms of work to a pool of 32 (capacity 107/s, so
    rho 0.75 at 80/s): synchronously, or through a message queue the pool consumes."""
    api = cs.Service("api", API_WORKERS, E(API_S))
    slow = cs.Service("slow", SLOW_WORKERS, E(SLOW_S))
    if publish:
        queue = cs.MessageQueue("jobs", partitions=SLOW_WORKERS, consumer=slow)
        return one_flow([api, queue], [cs.Call("api", calls=[cs.Publish("jobs")])])
    return one_flow([api, slow], [cs.Call("api", calls=[cs.Call("slow")])])


def test_a_slow_synchronous_downstream_saturates_the_caller_and_a_queue_isolates_it():
    # Held: each api worker waits out the 300 ms downstream, lambda (S_api + R) / c = 1.55, so
    # the api saturates although the downstream itself has room (rho 0.75). Its 16 workers
    # then cycle api service -> slow pool: a closed product-form network of 16 customers,
    # whose exact MVA throughput (16 / 0.31 = 51.6/s < lambda) is all the api completes;
    # the rest piles up in its queue.
    # Published: the api pays only its own 10 ms and stays an M/M/16 at rho 0.05.
    load = cs.OpenWorkload(1, SLOW_LAMBDA)
    duration = 200
    held = replicate(slow_downstream(False), load, 6, seed=141, duration_s=duration,
                     warmup_s=20)
    comp = held.components_runs()
    closed = mva([SLOW_S], API_WORKERS, API_S, servers=[SLOW_WORKERS])
    assert closed.throughput < 0.7 * SLOW_LAMBDA
    assert_agrees(column(comp, "component", "api", "throughput_per_s"), closed.throughput,
                  "saturated api throughput = closed-network MVA X(16)",
                  max_rel_half_width=0.02)
    assert_agrees(column(comp, "component", "api", "utilization"), 1.0,
                  "held api pool saturated", max_rel_half_width=0.01)
    assert_agrees(column(comp, "component", "slow", "utilization"),
                  closed.throughput * SLOW_S / SLOW_WORKERS,
                  "the downstream is not saturated", max_rel_half_width=0.02)
    queued = np.array([r.stations[r.station_names.index("api")].present_at_end
                       for r in held.runs])
    growth = (SLOW_LAMBDA - closed.throughput) * duration
    assert_agrees(queued, growth, "api backlog at the end = (lambda - X) duration",
                  max_rel_half_width=0.1)

    isolated = replicate(slow_downstream(True), load, 6, seed=141, duration_s=duration,
                         warmup_s=20)
    comp, lat = isolated.components_runs(), isolated.latency_runs()
    api = mmc(SLOW_LAMBDA, API_S, API_WORKERS)
    assert_agrees(column(comp, "component", "api", "utilization"), api.utilization,
                  "published: api utilization = lambda S / c", max_rel_half_width=0.05)
    assert_agrees(column(lat, "flow", "f", "mean_s"), api.mean_response,
                  "published: request latency = api alone (M/M/16)")
    assert_agrees(column(lat, "flow", "f", "p99_s"),
                  mmc_response_quantile(0.99, SLOW_LAMBDA, API_S, API_WORKERS),
                  "published: request p99 = api alone (M/M/16)", max_rel_half_width=0.08)
    assert isolated.stable


def test_a_pool_saturated_by_holding_is_reported_unstable():
    run = cs.simulate(slow_downstream(False), cs.OpenWorkload(1, SLOW_LAMBDA), 200, 20, seed=3)
    comp = run.components().set_index("component")
    assert comp.loc["api", "utilization"] > 0.99  # it is saturated...
    assert not run.stable  # ...and should say so


# -- outages --------------------------------------------------------------------------------


def outage_system(lam_per_instance: float, svc: float) -> tuple[cs.System, cs.OpenWorkload]:
    system = one_flow([cs.Service("app", 1, E(svc), instances=4, balancing="round_robin")],
                      [cs.Call("app")], outages=[cs.Outage("app", 50, 100, instance=1)])
    return system, cs.OpenWorkload(1, 4 * lam_per_instance)


def test_balancer_routes_around_an_instance_in_an_outage():
    lam_i, svc = 100.0, 0.005  # rho 0.5 per instance, 0.67 on the three left
    system, load = outage_system(lam_i, svc)
    runs = replicate_sampled(system, load, 8, seed=151, duration_s=200, every_s=1.0)
    survivors = ["app[0]", "app[2]", "app[3]"]
    down = [rate_between(r, "app[1]", 51, 150) for r in runs]
    assert down == [0.0] * len(runs), "the failed instance completes nothing during its outage"
    total = [sum(rate_between(r, s, 51, 150) for s in survivors) for r in runs]
    assert_agrees(total, 4 * lam_i, "survivors' throughput = lambda", max_rel_half_width=0.02)
    for s in survivors:
        during = np.array([rate_between(r, s, 51, 150) for r in runs])
        assert_positive(during - 1.1 * lam_i, f"{s} absorbs a share of the failed instance's")
        assert_agrees([rate_between(r, s, 160, 200) for r in runs], lam_i,
                      f"{s} throughput after the outage", max_rel_half_width=0.05)
    assert all(r.latency().loc[0, "errors"] == 0 for r in runs)


def test_round_robin_spreads_a_failed_instances_share_evenly():
    lam_i = 25.0  # rho 0.125 per instance: survivors are often idle at the same time
    system, load = outage_system(lam_i, 0.005)
    runs = replicate_sampled(system, load, 8, seed=152, duration_s=200, every_s=1.0)
    for s in ("app[0]", "app[2]", "app[3]"):
        assert_agrees([rate_between(r, s, 51, 150) for r in runs], 4 * lam_i / 3,
                      f"{s} share during the outage", max_rel_half_width=0.05)
