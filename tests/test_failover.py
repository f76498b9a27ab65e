"""Database failover: exact timelines with deterministic times, and the writes a failed
primary loses against the replication-lag distribution."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import capsim as cs
from capsim.scenario import load_scenario


def _system(writes: str = "fail", *, service: float = 0.1, lag=None, replicas: int = 2,
            outage_at: float = 10.5, outage_s: float = 20.0, reads: float = 0.0,
            servers: int = 1, outages=None) -> cs.System:
    db = cs.Database("pg", servers=servers, service_time=cs.Deterministic(service),
                     read_replicas=replicas, replication_lag=lag,
                     failover=cs.Failover(detect_s=3.0, promote_s=2.0, writes=writes))
    flows = [cs.Flow("write", 1.0 - reads, [cs.Write("pg")])]
    if reads:
        flows.append(cs.Flow("read", reads, [cs.Read("pg")]))
    return cs.System(components=[db], flows=flows,
                     outages=outages or [cs.Outage("pg", outage_at, outage_s)])


def _every(gap_s: float) -> cs.OpenWorkload:
    """One request every ``gap_s`` seconds, the first at ``gap_s``."""
    return cs.OpenWorkload(users=1, requests_per_user_s=1.0 / gap_s,
                           interarrival=cs.Deterministic(1.0))


def _run(system, workload=None, duration_s: float = 40.0, seed: int = 1):
    return cs.simulate(system, workload or _every(1.0), duration_s=duration_s, warmup_s=0.0,
                       seed=seed)


def test_failover_with_failing_writes_follows_the_timeline_exactly():
    # writes at 1, 2, 3, ... s, 0.1 s each; the primary fails at 10.5 s, the failure is
    # detected 3 s later and replica1 takes writes 2 s after that (15.5 s); the old primary
    # comes back as a replica at the outage's end (30.5 s)
    run = _run(_system("fail"))
    log = run.failover_log()
    assert len(log) == 1
    row = log.iloc[0]
    assert (row["failed"], row["promoted"]) == ("pg", "pg/replica1")
    assert (row["failed_at_s"], row["detected_at_s"], row["promoted_at_s"],
            row["rejoined_at_s"]) == (10.5, 13.5, 15.5, 30.5)
    assert row["recovery_s"] == 5.0
    # the writes sent at 11..15 s are refused, nothing is lost (synchronous replication)
    np.testing.assert_array_equal(np.sort(run.drop_arrival_s), [11, 12, 13, 14, 15])
    assert (row["write_errors"], row["writes_waited"], row["lost_writes"]) == (5, 0, 0)
    db = run.databases().iloc[0]
    assert (db["write_errors"], db["lost_writes"]) == (5, 0)
    # every other write took its 0.1 s, on the old primary before and on replica1 after
    np.testing.assert_allclose(run.finish_s - run.arrival_s, 0.1)
    done = run.components().set_index("component")["throughput_per_s"] * 40
    assert done["pg"] == pytest.approx(10)  # the writes sent at 1..10 s
    assert done["pg/replica1"] == pytest.approx(24)  # 16..39 s
    assert done["pg/replica2"] == 0
    errors = run.latency().set_index("flow").loc["write", "error_rate"]
    assert errors == pytest.approx(5 / 39)  # of the 39 sent at 1..39 s


def test_failover_with_waiting_writes_sends_them_to_the_new_primary_in_order():
    run = _run(_system("wait"))
    row = run.failover_log().iloc[0]
    assert (row["write_errors"], row["writes_waited"]) == (0, 5)
    assert run.drop_arrival_s.size == 0
    order = np.argsort(run.arrival_s)
    arrival, response = run.arrival_s[order], (run.finish_s - run.arrival_s)[order]
    held = (arrival > 10.5) & (arrival < 15.5)
    np.testing.assert_array_equal(arrival[held], [11, 12, 13, 14, 15])
    # promoted at 15.5 s, they are served one after another on replica1's one connection
    np.testing.assert_allclose(arrival[held] + response[held], [15.6, 15.7, 15.8, 15.9, 16.0])
    np.testing.assert_allclose(response[~held], 0.1)


def test_a_write_in_service_when_the_primary_dies_fails_or_is_redone():
    # the write sent at 10 s is in service until 10.1 s; the primary dies at 10.05 s
    run = _run(_system("fail", outage_at=10.05))
    assert 10.0 in run.drop_arrival_s
    assert run.failover_log().iloc[0]["write_errors"] == 6  # 10 s and 11..15 s
    run = _run(_system("wait", outage_at=10.05))
    order = np.argsort(run.arrival_s)
    finish = dict(zip(run.arrival_s[order], run.finish_s[order], strict=True))
    assert finish[10.0] == pytest.approx(15.15)  # redone first at the new primary (15.05 s)
    assert run.failover_log().iloc[0]["writes_waited"] == 6


def test_writes_queued_at_the_failed_primary_are_refused():
    # a write every 0.5 s that takes 1 s: by 10.25 s the primary holds a queue
    run = _run(_system("fail", service=1.0, outage_at=10.25), _every(0.5), duration_s=12.0)
    row = run.failover_log().iloc[0]
    # sent at 0.5, 1.0, ..., 10.0 s; 1 s each on one connection, the one sent at 0.5 k s
    # ends at 0.5 + k s. At 10.25 s those sent up to 4.5 s are done; the one sent at 5.0 s
    # is in service (its box dies under it) and the 10 sent at 5.5..10.0 s wait: all refused
    refused = run.drop_arrival_s
    np.testing.assert_allclose(np.sort(refused[refused <= 10.25]), np.arange(5.0, 10.01, 0.5))
    assert row["write_errors"] == refused.size
    np.testing.assert_allclose(np.sort(run.arrival_s), np.arange(0.5, 4.51, 0.5))


def test_lost_writes_are_the_commits_inside_the_lag_window():
    # a write every 0.1 s commits 0.01 s after it is sent; each takes 0.3 s to reach the
    # replicas. At 10.055 s the commits of 9.81, 9.91 and 10.01 s are not on any replica yet
    run = _run(_system("fail", service=0.01, lag=cs.Deterministic(0.3), outage_at=10.055),
               _every(0.1), duration_s=12.0)
    assert run.failover_log().iloc[0]["lost_writes"] == 3
    assert run.databases().iloc[0]["lost_writes"] == 3


def test_lost_writes_follow_the_exponential_lag_by_theory():
    # Poisson writes at rate w, exponential lag of mean m: the commits not yet shipped at any
    # moment are an M/M/inf population, Poisson with mean w x m (Little's law), so the
    # writes a failure loses average w x m
    w, m, seeds = 20.0, 0.5, 40
    system = _system("fail", service=0.001, lag=cs.Exponential(m), servers=4,
                     outage_at=30.0, outage_s=5.0)
    lost = np.array([_run(system, cs.OpenWorkload(users=w, requests_per_user_s=1.0),
                          duration_s=31.0, seed=s).failover_log().iloc[0]["lost_writes"]
                     for s in range(seeds)])
    mean, se = lost.mean(), lost.std(ddof=1) / math.sqrt(seeds)
    half = stats.t.ppf(0.995, seeds - 1) * se
    assert abs(mean - w * m) <= half, (mean, half)
    # and it is Poisson: the variance is the mean (a deterministic lag would give less)
    assert 0.5 < lost.var(ddof=1) / (w * m) < 1.8


def test_reads_go_on_at_the_replicas_and_the_old_primary_rejoins_as_one():
    system = _system("fail", reads=0.5, outage_at=10.5, outage_s=10.0)
    run = _run(system, _every(0.1), duration_s=40.0)
    row = run.failover_log().iloc[0]
    assert row["promoted"] == "pg/replica1" and row["rejoined_at_s"] == 20.5
    flows = run.latency().set_index("flow")
    assert flows.loc["read", "error_rate"] == 0  # reads never failed
    # writes refused only between the failure and the promotion (5 s of ~5 writes/s)
    assert row["write_errors"] == pytest.approx(25, abs=8)


def test_a_replica_outage_does_not_fail_over():
    system = _system("fail", reads=0.5, outages=[cs.Outage("pg/replica1", 5.0, 10.0)])
    run = _run(system, _every(0.1), duration_s=30.0)
    assert run.failover_log().empty
    assert run.latency().set_index("flow").loc["all", "error_rate"] == 0


def test_failover_validation_and_yaml():
    with pytest.raises(cs.ModelError, match=r"failover: needs a replica to promote"):
        cs.Database("pg", service_time=cs.Exponential(0.01), failover=cs.Failover())
    with pytest.raises(cs.ModelError, match=r"Failover.writes: must be one of fail, wait"):
        cs.Failover(writes="queue")
    with pytest.raises(cs.ModelError, match=r"Failover.detect_s"):
        cs.Failover(detect_s=-1)
    text = """
name: failover
components:
  - Database: {name: pg, service_time: {Exponential: {mean: 0.01}}, read_replicas: 1,
               failover: {detect_s: 5, promote_s: 10, writes: wait}}
flows:
  - {name: w, steps: [{Write: pg}]}
workload: {OpenWorkload: {users: 10, requests_per_user_s: 1}}
outages: [{component: pg, start_s: 10, duration_s: 60}]
"""
    scenario = load_scenario(text)
    db = scenario.system.component("pg")
    assert db.failover == cs.Failover(5.0, 10.0, "wait")
    with pytest.raises(cs.ModelError, match=r"failover.writes.*line 5"):
        load_scenario(text.replace("writes: wait", "writes: later"))


def _replicated_shop():
    db = cs.Database("pg", servers=4, service_time=cs.Exponential(0.008), read_replicas=2,
                     replication_lag=cs.Exponential(0.2),
                     failover=cs.Failover(detect_s=5.0, promote_s=5.0))
    app = cs.Service("app", servers=8, service_time=cs.Exponential(0.02))
    flows = [cs.Flow("browse", 0.8, [cs.Call("app"), cs.Read("pg"), cs.Read("pg")]),
             cs.Flow("buy", 0.2, [cs.Call("app"), cs.Read("pg"), cs.Write("pg")])]
    return cs.System([app, db], flows), cs.OpenWorkload(users=100, requests_per_user_s=1.0)


def test_after_failover_has_one_replica_fewer_and_the_twin_sees_it():
    from capsim.scaling import after_failover, twin_states

    system, workload = _replicated_shop()
    after = after_failover(system, "pg")
    assert after.component("pg").read_replicas == 1
    twin = twin_states(system, workload, "pg").set_index("state")
    # 100 pages/s x 1.8 reads x 8 ms on 4 connections: 0.18 busy per replica with two, 0.36
    # with one; the primary's 20 writes/s x 8 ms / 4 = 0.04
    assert twin.loc["before", "utilization"] == pytest.approx(0.18)
    assert twin.loc["after", "utilization"] == pytest.approx(0.36)
    assert twin.loc["after", "p99_s"] > twin.loc["before", "p99_s"]
    shards = system.evolve("pg", shards=2, read_replicas=2)
    lowered = after_failover(shards, "pg", shard=1)
    names = [st.name for st in lowered.stations()]
    # shard 1 is left with one replica (one station), shard 0 keeps its two
    assert "pg/shard1/replicas" in names and "pg/shard0/replicas[1]" in names
    with pytest.raises(cs.ModelError, match="shard"):
        after_failover(shards, "pg", shard=2)


def test_simulate_failover_counts_refused_and_lost_writes_by_theory(tmp_path):
    from capsim.scaling import simulate_failover

    system, workload = _replicated_shop()
    result = simulate_failover(system, workload, "pg", fail_at_s=40.0, duration_s=80.0,
                               warmup_s=10.0, replications=4)
    s = result.summary().set_index("measure")
    # 20 buy pages/s write once each; 10 s without a primary refuse ~200 of them; the lag
    # window holds 20 x 0.2 = 4 unshipped commits on average
    assert s.loc["write_errors", "mean"] == pytest.approx(200, rel=0.15)
    assert s.loc["recovery_s", "mean"] == 10.0
    assert abs(s.loc["lost_writes", "mean"] - 4) < 3 * max(s.loc["lost_writes",
                                                               "ci_half_width"], 1)
    assert set(result.twin["state"]) == {"before", "after"}
    fig = result.plot()
    assert len(fig.axes) == 3
    labels = [t.get_text() for t in fig.axes[2].get_legend().get_texts()]
    assert any("promoted at 50 s" in t for t in labels)
    fig.savefig(tmp_path / "failover.png")
    with pytest.raises(cs.ModelError, match="fail_at_s"):
        simulate_failover(system, workload, "pg", fail_at_s=5.0, warmup_s=10.0)


def test_compare_reports_what_the_primary_failover_costs(tmp_path, capsys):
    from capsim import scaling as sc
    from capsim.cli import main

    system, workload = _replicated_shop()
    system = system.evolve("pg", read_replicas=0, failover=None)
    box = sc.Instance("db-4", "db", 4, 1.0, 16.0, 0.2)
    result = sc.compare(system, "pg", vertical=[sc.Vertical(box, sigma=0, kappa=0)],
                        options=[sc.DatabaseOptions(box, read_replicas=2, sigma=0, kappa=0)],
                        workload=workload, failover=cs.Failover(detect_s=4, promote_s=6),
                        simulate_saturation=False, requests=4_000, seed=2)
    rows = result.table().set_index("option")
    replicated = rows.loc["db-4 primary + 2 replicas"]
    # 20 writes/s (the buy pages) refused for the 10 s without a primary: ~200
    assert replicated["failover_recovery_s"] == 10.0
    assert replicated["failover_write_errors"] == pytest.approx(200, rel=0.2)
    assert replicated["failover_lost_writes"] == pytest.approx(20 * 0.2, abs=4)
    assert np.isnan(rows.loc["1 x db-4", "failover_write_errors"])  # nothing to promote
    text = result.summary()["failover (primary dies)"].tolist()
    assert any("10 s to a new primary" in t for t in text)
    assert "no failover modelled" in text
    assert "Failover (simulated" in result.caption()
    # the command line: --failover DETECT,PROMOTE[,wait]
    (tmp_path / "boxes.csv").write_text("# label: test boxes\nfamily,name,vcpus,speed,"
                                        "memory_gib,price_per_hour_usd\ndb,db-4,4,1,16,0.2\n")
    (tmp_path / "shop.yaml").write_text("""
name: shop
components:
  - Database: {name: pg, servers: 4, service_time: {Exponential: {mean: 0.008}},
               replication_lag: {Exponential: {mean: 0.2}}}
flows:
  - {name: buy, steps: [{Read: pg}, {Write: pg}]}
workload: {OpenWorkload: {users: 20, requests_per_user_s: 1}}
""")
    base = ["compare", str(tmp_path / "shop.yaml"), "--catalogue", str(tmp_path / "boxes.csv"),
            "--component", "pg", "--database", "db-4+r1", "--no-saturation", "--duration", "40",
            "--budget", "p99=200ms"]
    assert main([*base, "--failover", "5s,5s,wait"]) == 0
    assert "writes held" in capsys.readouterr().out
    for bad in ("5s", "5s,5s,later", "x,5s"):
        assert main([*base, "--failover", bad]) == 2
        assert "--failover" in capsys.readouterr().err
