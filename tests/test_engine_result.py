"""RunResult's counter vocabulary: COUNTERS lives with the result columns, read by name."""

import numpy as np
import pytest

import capsim as cs
from capsim import schema

E = cs.Exponential


@pytest.fixture(scope="module")
def run() -> cs.RunResult:
    system = cs.System([cs.Service("a", 2, E(0.1)), cs.Service("b", 1, E(0.05))],
                       [cs.Flow("f", 1.0, [cs.Call("a"), cs.Call("b")])])
    return cs.simulate(system, cs.OpenWorkload(1, 10.0), 200, warmup_s=20, seed=3)


def test_counters_are_result_vocabulary_and_the_station_keeps_their_order():
    assert schema.COUNTERS == ("area_in_system", "area_busy", "wait_sum_s", "sojourn_sum_s",
                               "arrivals", "started", "completions", "drops", "present")


def test_counter_is_a_samples_by_stations_array_of_that_counter(run):
    for k, name in enumerate(schema.COUNTERS):
        values = run.counter(name)
        assert values.shape == (run.sample_times_s.size, len(run.station_names))
        np.testing.assert_array_equal(values, run.samples[:, :, k])
    completions = run.counter("completions")
    assert (np.diff(completions, axis=0) >= 0).all()  # cumulative
    window = run.stations[0]
    i0 = int(np.searchsorted(run.sample_times_s, run.warmup_s - 1e-9))
    assert completions[-1, 0] - completions[i0, 0] == window.completions
    assert run.counter("present")[-1, 0] == window.present_at_end


def test_an_unknown_counter_names_the_field_and_the_known_counters(run):
    with pytest.raises(cs.ModelError, match=r"RunResult\.counter\.name: must be one of the "
                       r"counters area_in_system, .*, present, got 'utilization'"):
        run.counter("utilization")
    with pytest.raises(ValueError, match="RunResult.counter.name"):
        run.counter(3)


def test_databases_table_with_calls_that_time_out():
    # the probes are caches, then databases, then calls: the database rows take their slice
    system = cs.System(
        [cs.Service("app", 4, E(0.01)), cs.Service("slow", 1, E(0.05)),
         cs.Database("db", service_time=E(0.01), read_replicas=1, replication_lag=E(0.05))],
        [cs.Flow("f", 1.0, [cs.Call("app", calls=[
            cs.Write("db"), cs.Read("db"), cs.Call("slow", timeout_s=0.05, retries=1)])])])
    run = cs.simulate(system, cs.OpenWorkload(1, 15.0), 200, seed=1)
    db, calls = run.databases(), run.calls()
    assert db["database"].tolist() == ["db"] and calls["call"].size == 1
    assert db["reads_after_write"].item() > 0
    assert 0 < db["stale_reads"].item() <= db["reads_after_write"].item()
    assert calls["timeouts"].item() > 0
