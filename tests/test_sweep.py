"""Sweeps: same answer on any executor, resumable without recomputation, auto replications."""

import importlib

import numpy as np
import pandas as pd
import pytest

import capsim as cs
from capsim.experiment.growth import growth, growth_curve

# the package re-exports the function under the module's name; the tests need the module
sweep_module = importlib.import_module("capsim.experiment.sweep")

E = cs.Exponential


def small_system(servers: int = 2) -> cs.System:
    return cs.System([cs.Service("app", 4, E(0.02)), cs.Service("db", servers, E(0.01))],
                     [cs.Flow("f", 1.0, [cs.Call("app"), cs.Call("db")])])


LOADS = growth(cs.OpenWorkload(users=1000, requests_per_user_s=0.05), users=[1000, 2000, 3000])


def rows(result) -> pd.DataFrame:
    return result.rows.drop(columns=["wall_s"]).sort_values(
        ["point", "replication", "kind", "name", "metric", "warmup_s"]).reset_index(drop=True)


def test_growth_builds_workloads_and_curves():
    assert [w.users for w in LOADS] == [1000, 2000, 3000]
    curve = growth_curve(1000, 0.08, 24)
    assert curve.size == 25 and curve[0] == 1000
    assert curve[12] == pytest.approx(1000 * 1.08**12)
    monthly = growth(cs.ClosedWorkload(10), monthly_growth=0.5, months=2)
    assert [w.users for w in monthly] == [10, 15, 22]  # rounded: closed users are people
    with pytest.raises(ValueError, match="give users"):
        growth(LOADS[0])


@pytest.mark.xdist_group("dask")
def test_serial_processes_and_dask_give_equal_results():
    from distributed import Client, LocalCluster

    kw = dict(replications=3, seed=5, duration_s=60, store=None, progress=False)
    serial = sweep_module.sweep(small_system(), LOADS, processes=1, **kw)
    pooled = sweep_module.sweep(small_system(), LOADS, processes=2, **kw)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        dask = sweep_module.sweep(small_system(), LOADS, executor=client.get_executor(), **kw)
        by_address = sweep_module.sweep(small_system(), LOADS, cluster=cluster.scheduler_address,
                                        **kw)
    pd.testing.assert_frame_equal(rows(serial), rows(pooled))
    pd.testing.assert_frame_equal(rows(serial), rows(dask))
    pd.testing.assert_frame_equal(rows(serial), rows(by_address))
    assert serial.simulated_requests > 0


def test_interrupted_sweep_resumes_without_recomputing(tmp_path, monkeypatch):
    calls = []
    interrupt_at = [4]
    real = sweep_module.run_job

    def counting(job):
        calls.append(job.key)  # (point, replication)
        if len(calls) == interrupt_at[0]:
            interrupt_at[0] = -1
            raise KeyboardInterrupt  # Ctrl-C while the 4th run is going
        return real(job)

    monkeypatch.setattr(sweep_module, "run_job", counting)
    kw = dict(replications=3, seed=1, duration_s=60, processes=1, progress=False)
    with pytest.raises(KeyboardInterrupt):
        sweep_module.sweep(small_system(), LOADS, store=tmp_path, **kw)
    finished = calls[:3]
    assert len(cs.ResultStore(tmp_path)) == 3  # every run that finished was stored

    calls.clear()
    resumed = sweep_module.sweep(small_system(), LOADS, store=tmp_path, **kw)
    assert len(calls) == 9 - 3 and not set(calls) & set(finished)  # only what was missing

    fresh = sweep_module.sweep(small_system(), LOADS, store=None,
                               **{**kw, "progress": False})
    pd.testing.assert_frame_equal(rows(resumed), rows(fresh))  # nothing lost or altered

    calls.clear()
    sweep_module.sweep(small_system(servers=3), LOADS, store=tmp_path, **kw)
    assert len(calls) == 9  # a changed model reuses nothing


def test_unstable_points_are_not_simulated_and_read_as_infinite():
    loads = growth(LOADS[0], users=[2000, 5000])  # db capacity 200/s: 250/s is overload
    res = sweep_module.sweep(small_system(), loads, 2, duration_s=60, store=None,
                             processes=1, progress=False)
    assert list(res.points["simulated"]) == [True, False]
    p99 = res.metric("p99_s")
    assert np.isfinite(p99["mean"].iloc[0]) and np.isinf(p99["mean"].iloc[1])
    assert list(p99["stable"]) == [True, False]


def test_auto_replications_add_runs_until_the_ci_is_tight():
    res = sweep_module.sweep(small_system(), LOADS, "auto", duration_s=30, store=None,
                             processes=1, progress=False, target_half_width=0.03,
                             max_replications=12)
    lat = res.latency()
    p99 = lat[(lat["flow"] == "f") & (lat["metric"] == "p99_s")]
    for _, row in p99.iterrows():
        assert row["replications"] >= 3
        assert row["half_width"] <= 0.03 * row["mean"] or row["replications"] == 12
    assert p99["replications"].max() > 3  # the busiest point needed more


def test_bad_sweep_arguments():
    with pytest.raises(cs.ModelError, match="sweep.duration_s: must be > 0"):
        sweep_module.sweep(small_system(), LOADS, duration_s=0, store=None)
    with pytest.raises(cs.ModelError, match="sweep.replications: must be >= 1, got 0"):
        sweep_module.sweep(small_system(), LOADS, 0, duration_s=10, store=None)
    with pytest.raises(cs.ModelError, match="sweep.workloads: must hold at least one"):
        sweep_module.sweep(small_system(), [], duration_s=10, store=None)


def test_stored_runs_are_reused_at_a_different_position(tmp_path):
    # the same workload at point 2 of one sweep and point 0 of the next: the stored run must
    # be filed under its new position
    kw = dict(replications=2, seed=1, duration_s=30, processes=1, progress=False,
              store=tmp_path)
    sweep_module.sweep(small_system(), LOADS, **kw)
    again = sweep_module.sweep(small_system(), LOADS[::-1], **kw)
    fresh = sweep_module.sweep(small_system(), LOADS[::-1], **{**kw, "store": None})
    pd.testing.assert_frame_equal(rows(again), rows(fresh))


def test_curve_is_the_sweeps_metric_indexed_by_users():
    system = cs.System([cs.Service("web", 2, cs.Exponential(0.01))],
                       [cs.Flow("get", 1.0, [cs.Call("web")])])
    result = cs.sweep(system, cs.growth(cs.OpenWorkload(1, 50.0), users=[1, 2]), 2, seed=1,
                      duration_s=20, store=None, progress=False, processes=1)
    got = result.curve("p99_s", "get")
    long = result.metric("p99_s", "get")
    assert list(got.columns) == ["mean", "ci_low", "ci_high"]
    assert list(got.index) == list(long["users"])
    assert got.loc[2, "mean"] == long.set_index("users").loc[2, "mean"]
    util = result.curve("utilization", "web", kind="component")
    assert (util["ci_low"] <= util["mean"]).all() and (util["mean"] <= util["ci_high"]).all()
