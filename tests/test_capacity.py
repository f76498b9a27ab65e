"""The capacity table and the main job's plot."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

import capsim as cs  # noqa: E402
from capsim.experiment.capacity import capacity_table  # noqa: E402
from capsim.report.capacity import plot_capacity  # noqa: E402


def test_capacity_table_simulates_stable_points_and_marks_unstable_ones():
    system = cs.System([cs.Service("s", 2, cs.Exponential(0.1))],
                       [cs.Flow("f", 1.0, [cs.Call("s")])])
    table, result = capacity_table(system, cs.OpenWorkload(1, 1.0), users=[5, 15, 25],
                                   replications=2, duration_s=200, warmup_s=20,
                                   progress=False, processes=1)
    assert list(result.points["simulated"]) == [True, True, False]
    assert list(table["stable"]) == [True, True, False]  # 25/s > 2 / 0.1 s = 20/s capacity
    assert np.allclose(table["utilization_s"], [0.25, 0.75, 1.25])
    assert np.isinf(table["p99_sim_s"].iloc[2]) and np.isinf(table["p99_twin_s"].iloc[2])
    # M/M/2 p99 from the twin is exact; the short simulation lands near it
    assert table["p99_sim_s"].iloc[0] == table["p99_sim_s"].iloc[0]  # not NaN
    assert abs(table["p99_sim_s"].iloc[1] / table["p99_twin_s"].iloc[1] - 1) < 0.3
    fig = plot_capacity(table, budget_p99_s=0.5)
    assert len(fig.axes) == 2
