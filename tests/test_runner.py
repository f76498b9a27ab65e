"""The experiment runner: one seed derivation, the same answer wherever jobs run, stored jobs
never rerun, one shared pool, and every experiment built on it."""

import ast
import importlib
import os
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import capsim as cs
from capsim.experiment.runner import Job, Runner, replication_seeds, run_jobs, shared_pool

E = cs.Exponential
SYSTEM = cs.System([cs.Service("app", 2, E(0.01))], [cs.Flow("f", 1.0, [cs.Call("app")])])
LOAD = cs.OpenWorkload(users=100, requests_per_user_s=1.0)
ROOT = Path(__file__).resolve().parents[1]
# the package re-exports the function under the module's name; the test needs the module
compare_module = importlib.import_module("capsim.scaling.compare")


def mean_latency(job: Job) -> pd.DataFrame:
    run = cs.simulate(job.system, job.workload, job.duration_s, job.warmup_s, job.seed)
    return pd.DataFrame({"mean_s": [run.latency()["mean_s"].iloc[0]],
                         "requests": [int(run.arrival_s.size)]})


def jobs(n: int = 4, duration_s: float = 20.0) -> list[Job]:
    return [Job(r, mean_latency, "test", SYSTEM, LOAD, duration_s, s)
            for r, s in enumerate(replication_seeds(7, n))]


def test_replication_seeds_are_spawn_children_and_extend_without_changing():
    spawned = np.random.SeedSequence(7).spawn(5)
    ours = replication_seeds(7, 5)
    for a, b in zip(spawned, ours, strict=True):
        assert a.entropy == b.entropy and a.spawn_key == b.spawn_key
        assert np.array_equal(a.generate_state(4), b.generate_state(4))
    later = replication_seeds(7, 2, start=3)
    assert [s.spawn_key for s in later] == [(3,), (4,)]
    assert len({tuple(s.generate_state(2)) for s in ours}) == 5  # independent


def test_serial_and_processes_give_equal_results():
    serial = run_jobs(jobs(), processes=1)
    pooled = run_jobs(jobs(), processes=2)
    assert list(serial) == [0, 1, 2, 3]  # in the order given, by key
    for k in serial:
        pd.testing.assert_frame_equal(serial[k], pooled[k])
    assert len({float(df["mean_s"].iloc[0]) for df in serial.values()}) == 4


def test_stored_jobs_are_not_run_again(tmp_path, monkeypatch):
    calls = []

    def counting(job):
        calls.append(job.key)
        return mean_latency(job)

    todo = [Job(j.key, counting, j.kind, j.system, j.workload, j.duration_s, j.seed)
            for j in jobs(3)]
    first = run_jobs(todo, processes=1, store=tmp_path)
    assert calls == [0, 1, 2] and len(cs.ResultStore(tmp_path)) == 3
    # the same jobs filed under other keys are found by what they compute, not where
    again = run_jobs([Job(("moved", j.key), *(getattr(j, f) for f in
                      ("task", "kind", "system", "workload", "duration_s", "seed")))
                      for j in todo], processes=1, store=tmp_path)
    assert calls == [0, 1, 2]
    for k in first:
        pd.testing.assert_frame_equal(first[k], again["moved", k])
    longer = [Job(j.key, counting, j.kind, j.system, j.workload, 30.0, j.seed) for j in todo]
    run_jobs(longer, processes=1, store=tmp_path)
    assert len(calls) == 6  # a changed input reuses nothing


def test_one_runner_keeps_one_bar_and_the_pool_is_shared():
    with Runner(processes=2, progress=True, desc="t") as runner:
        runner.run(jobs(2))
        runner.run(jobs(3)[2:])
        assert runner._bar.total == 3 and runner._bar.n == 3
    assert shared_pool(2) is shared_pool(2)
    with pytest.raises(ValueError, match="same key"):
        run_jobs(jobs(2) + jobs(1), processes=1)


def die(job: Job) -> None:
    os._exit(1)  # a worker killed mid-run (out of memory, a segfault in a C extension)


def test_a_broken_pool_is_reported_and_the_next_experiment_gets_a_fresh_one():
    doomed = [Job(k, die, "test", SYSTEM, LOAD, 1.0, s)
              for k, s in enumerate(replication_seeds(1, 2))]
    with pytest.raises(BrokenProcessPool):
        run_jobs(doomed, processes=2)
    after = run_jobs(jobs(2), processes=2)
    pd.testing.assert_frame_equal(after[1], run_jobs(jobs(2), processes=1)[1])


@pytest.mark.xdist_group("dask")
def test_comparisons_give_equal_results_serial_in_processes_and_on_dask():
    from distributed import LocalCluster

    one_tier = cs.System([cs.Service("web", 1, E(0.01))], [cs.Flow("page", 1.0,
                                                                  [cs.Call("web")])])
    box = cs.scaling.Instance("box-2", "test", 2, 1.0, 8.0, 0.10)
    options = dict(vertical=[cs.scaling.Vertical(box, sigma=0.0, kappa=0.0)],
                   horizontal=[cs.scaling.Horizontal(box, 2, sigma=0.0, kappa=0.0)])
    kw = dict(workload=cs.OpenWorkload(users=60, requests_per_user_s=1.0), requests=2_000,
              replications=2, seed=3, simulate_saturation=False)  # searches: test_sweep's
    serial = compare_module.compare(one_tier, "web", **options, processes=1, **kw)
    pooled = compare_module.compare(one_tier, "web", **options, processes=2, **kw)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        dask = compare_module.compare(one_tier, "web", **options,
                                      cluster=cluster.scheduler_address, **kw)
    for other in (pooled, dask):
        pd.testing.assert_frame_equal(serial.table(), other.table())
        pd.testing.assert_frame_equal(serial.runs.drop(columns="wall_s"),
                                      other.runs.drop(columns="wall_s"))


def test_every_experiment_fans_out_through_the_runner():
    """No module but the runner builds a process pool or derives replication seeds."""
    offenders = []
    for path in sorted((ROOT / "capsim").rglob("*.py")):
        if path.name == "runner.py":
            continue
        text = path.read_text()
        tree = ast.parse(text)
        for node in ast.walk(tree):
            name = (node.attr if isinstance(node, ast.Attribute)
                    else node.id if isinstance(node, ast.Name) else None)
            if name in ("ProcessPoolExecutor", "as_completed"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
            if isinstance(node, ast.keyword) and node.arg == "spawn_key" and \
                    "streams.py" not in path.name:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} spawn_key=")
    assert not offenders, "\n".join(offenders)
