"""A long run keeps per-request records in typed arrays and no Python object per request.

Bytes are counted with tracemalloc (deterministic, unlike RSS); the peak RSS of a
million-request run is measured by bench/memory.py, never here.
"""

import tracemalloc
from array import array

import numpy as np

import capsim as cs
from capsim.engine.sources import BATCH, Recorder

E = cs.Exponential


def mm1_run(requests: int, rho: float = 0.8) -> cs.RunResult:
    system = cs.System([cs.Service("s1", 1, E(rho))], [cs.Flow("f", 1.0, [cs.Call("s1")])])
    return cs.simulate(system, cs.OpenWorkload(1, 1.0), requests, seed=7)


def test_records_are_typed_arrays_of_8_byte_fields_shared_with_the_result():
    recorder = Recorder()
    for records in (recorder.t0, recorder.t1, recorder.rid, recorder.drop_t0,
                    recorder.drop_rid):
        assert isinstance(records, array) and records.itemsize == 8
    run = mm1_run(2_000)
    assert run.arrival_s.dtype == run.finish_s.dtype == np.float64
    assert run.route.dtype == run.drop_route.dtype == np.int64
    assert isinstance(run.arrival_s.base.obj, array)  # a view: no copy at the end of the run
    assert (run.finish_s >= run.arrival_s).all() and run.arrival_s.size > 1_800
    assert all(a.shape == (0,) for a in Recorder().arrays())


def test_records_move_to_the_arrays_in_batches_without_loss():
    class Finished:  # what the recorder reads of a request
        def __init__(self, k: int) -> None:
            self.t0, self.t_now, self.rid = k / 3, k / 3 + 0.5, k % 3

    recorder = Recorder()
    n = 2 * BATCH + 17
    for k in range(n):
        recorder.finish(Finished(k))
    assert len(recorder.t0) == 2 * BATCH  # the rest still waits in the list
    arrival_s, finish_s, route, drop_arrival_s, _ = recorder.arrays()
    k = np.arange(n)
    np.testing.assert_array_equal(arrival_s, k / 3)
    np.testing.assert_array_equal(finish_s, k / 3 + 0.5)
    np.testing.assert_array_equal(route, k % 3)
    assert drop_arrival_s.size == 0


def _peak_bytes(requests: int) -> tuple[int, int]:
    tracemalloc.start()
    try:
        run = mm1_run(requests)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, run.arrival_s.size


def test_memory_grows_by_the_records_alone():
    # what 40,000 more requests cost at the peak: 3 fields x 8 bytes each, plus the arrays'
    # growth slack; a list of Python floats per field would cost 32 bytes a field
    small, n_small = _peak_bytes(10_000)
    large, n_large = _peak_bytes(50_000)
    per_request = (large - small) / (n_large - n_small)
    assert per_request < 32, f"{per_request:.1f} bytes per finished request"


def test_the_memory_bench_runs(capsys, load_bench):
    bench = load_bench("memory")
    assert bench.main(["--requests", "2000"]) == 0
    table = capsys.readouterr().out
    assert "| import capsim |" in table and "**the run adds** (run - warm)" in table
