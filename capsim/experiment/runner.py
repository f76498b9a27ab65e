"""One way to run simulations: jobs, their seeds, and where they run.

Every experiment (replications, sweeps, the saturation search, scaling comparisons) is a list
of ``Job``s. A job is a pure function of its fields, so it gives the same answer in this
process, in local processes or on a dask cluster, and a finished job stored under a
fingerprint of its fields never runs again: an interrupted experiment loses nothing it
finished.

Local processes come from one pool per size, kept for the life of the interpreter: a notebook
that runs twenty sweeps forks its workers once, and nobody builds a pool by hand.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np

from capsim.experiment.store import NullStore, ResultStore
from capsim.model import System
from capsim.model.workload import Workload

__all__ = ["Job", "Runner", "replication_seeds", "run_jobs", "shared_pool"]


def replication_seeds(seed: int | np.random.SeedSequence, n: int,
                      start: int = 0) -> list[np.random.SeedSequence]:
    """Seeds of replications ``start .. start + n - 1``: child r of ``SeedSequence(seed)``,
    the same child ``SeedSequence(seed).spawn`` would give. Replication r has the same seed
    at every point of a sweep and for every option of a comparison (common random numbers:
    differences between them are not noise), and adding replications later keeps the
    earlier ones."""
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return [np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, r),
                                   pool_size=root.pool_size)
            for r in range(start, start + n)]


@dataclass(frozen=True)
class Job:
    """One simulation and how to summarise it.

    ``task(job)`` runs it; it must be a module-level function (worker processes import it by
    name). ``key`` is where the caller files the answer and is not part of the result, so a
    stored job is found again at another position of another experiment. ``kind`` and
    ``settings`` (whatever else the task reads) are part of the store key; a task that returns
    a DataFrame can be stored.
    """

    key: Hashable
    task: Callable[[Job], Any]
    kind: str
    system: System
    workload: Workload
    duration_s: float
    seed: np.random.SeedSequence
    warmup_s: float = 0.0
    settings: tuple = ()

    def store_key(self, store: ResultStore) -> str:
        return store.key(kind=self.kind, system=self.system, workload=self.workload,
                         duration_s=self.duration_s, warmup_s=self.warmup_s, seed=self.seed,
                         settings=self.settings)


_POOLS: dict[int, ProcessPoolExecutor] = {}


def shared_pool(workers: int) -> ProcessPoolExecutor:
    """The interpreter's pool of ``workers`` local processes (made on first use)."""
    pool = _POOLS.get(workers)
    if pool is None:
        pool = _POOLS[workers] = ProcessPoolExecutor(workers)
    return pool


def _drop_pool(pool: Executor) -> None:
    """Forget a pool that broke or was interrupted: the next use makes a fresh one."""
    for workers, p in list(_POOLS.items()):
        if p is pool:
            del _POOLS[workers]
    pool.shutdown(wait=False, cancel_futures=True)


@atexit.register
def _close_pools() -> None:
    for pool in list(_POOLS.values()):
        pool.shutdown(wait=False, cancel_futures=True)
    _POOLS.clear()


def as_store(store: ResultStore | str | os.PathLike | None) -> ResultStore:
    """A ResultStore from a directory, a store, or None (store nothing)."""
    if store is None:
        return NullStore()
    if isinstance(store, ResultStore):
        return store
    return ResultStore(store)


class Runner:
    """Where the jobs of one experiment run, for as long as it lasts (a sweep's rounds, a
    search's points), with one progress bar over all of them.

    Jobs go to ``executor`` (any ``concurrent.futures.Executor``) if given, else to the dask
    cluster at ``cluster`` ("tcp://host:8786"), else to the shared pool of ``processes`` local
    processes (default: one per core; 1 runs them in this process). Finished jobs whose
    result is a DataFrame are stored in ``store`` the moment they finish.
    """

    def __init__(self, *, executor: Executor | None = None, cluster: str | None = None,
                 processes: int | None = None, store: ResultStore | str | None = None,
                 progress: bool = False, desc: str = "runs") -> None:
        self.store = as_store(store)
        self._executor = executor
        self._cluster = cluster
        self._client = None
        self._workers = processes or os.cpu_count() or 1
        self._progress = progress
        self._desc = desc
        self._bar = None

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def _pool(self, jobs: int) -> Executor | None:
        if self._executor is not None:
            return self._executor
        if self._cluster is not None:
            if self._client is None:
                try:
                    from distributed import Client
                except ImportError as exc:  # pragma: no cover - depends on the install
                    raise ImportError("cluster=... needs dask.distributed: "
                                      "pip install 'capsim[cluster]'") from exc
                self._client = Client(self._cluster)
            return self._client.get_executor()
        if self._workers <= 1 or jobs <= 1:
            return None  # one job: not worth a round trip to another process
        return shared_pool(self._workers)

    def _tick(self, total: int) -> None:
        if not self._progress:
            return
        if self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=0, desc=self._desc, unit="run")
        self._bar.total += total
        self._bar.refresh()

    def run(self, jobs: Iterable[Job]) -> dict[Hashable, Any]:
        """Each job's result by its key: stored ones read back, the rest run (and stored)."""
        jobs = list(jobs)
        keys = [j.key for j in jobs]
        if len(set(keys)) != len(keys):
            raise ValueError("Runner.run: two jobs have the same key")
        self._tick(len(jobs))
        done: dict[Hashable, Any] = {}
        pending = []
        keeps = self.store.path is not None  # no store: no fingerprint to compute
        for job in jobs:
            cached = self.store.get(job.store_key(self.store)) if keeps else None
            if cached is not None:
                done[job.key] = cached
                self._advance()
            else:
                pending.append(job)
        pool = self._pool(len(pending))
        if pool is None:
            for job in pending:
                self._finish(job, job.task(job), done)
        else:
            self._run_on(pool, pending, done)
        return {k: done[k] for k in keys}

    def _run_on(self, pool: Executor, jobs: list[Job], done: dict) -> None:
        try:
            futures: dict[Future, Job] = {pool.submit(j.task, j): j for j in jobs}
        except BrokenProcessPool:
            if pool not in _POOLS.values():
                raise  # the caller's executor: theirs to mend
            _drop_pool(pool)  # a worker of ours died earlier: start afresh, once
            pool = self._pool(len(jobs))
            futures = {pool.submit(j.task, j): j for j in jobs}
        try:
            for future in as_completed(futures):
                self._finish(futures[future], future.result(), done)
        except BaseException as exc:
            for future in futures:
                future.cancel()
            if isinstance(exc, KeyboardInterrupt | BrokenProcessPool) and pool in \
                    _POOLS.values():
                _drop_pool(pool)  # stop its workers instead of finishing the cancelled runs
            raise

    def _finish(self, job: Job, result: Any, done: dict) -> None:
        if self.store.path is not None and hasattr(result, "columns"):  # a DataFrame
            self.store.put(job.store_key(self.store), result)
        done[job.key] = result
        self._advance()

    def _advance(self) -> None:
        if self._bar is not None:
            self._bar.update()


def run_jobs(jobs: Iterable[Job], *, executor: Executor | None = None,
             cluster: str | None = None, processes: int | None = None,
             store: ResultStore | str | None = None, progress: bool = False,
             desc: str = "runs") -> dict[Hashable, Any]:
    """Run ``jobs`` once (see ``Runner``): each job's result by its key."""
    with Runner(executor=executor, cluster=cluster, processes=processes, store=store,
                progress=progress, desc=desc) as runner:
        return runner.run(jobs)
