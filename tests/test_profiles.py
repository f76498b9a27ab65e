"""Time-varying arrivals: profiles, the thinned Poisson process, and windowed time series."""

import math

import numpy as np
import pytest
from scipy import stats

import capsim as cs
from capsim.model.profiles import Constant, Piecewise, Step

ONE = cs.System([cs.Service("s", 8, cs.Exponential(0.01))], [cs.Flow("f", 1.0, [cs.Call("s")])])


def test_profile_shapes():
    d = cs.Diurnal(trough=0.25, peak_hour=18)
    assert d.multiplier(18 * 3600) == pytest.approx(1.0)
    assert d.multiplier(6 * 3600) == pytest.approx(0.25)
    assert d.mean(0, 86_400) == pytest.approx((1 + 0.25) / 2, rel=1e-4)
    spike = cs.Spike(100, 50, 3.0)
    assert list(spike.multiplier([99, 100, 149.9, 150])) == [1, 3, 3, 1]
    assert Step(10, 2.0).multiplier(10) == 2.0 and Step(10, 2.0).peak(0, 5) == 1.0
    assert cs.Growth(0.08).multiplier(12 * 30 * 86_400) == pytest.approx(1.08**12)
    both = d * spike
    assert both.peak(0, 1e5) == 3.0
    assert both.multiplier(125) == pytest.approx(3 * d.multiplier(125))
    assert Constant(2.0).mean(0, 10) == pytest.approx(2.0)


def test_piecewise_from_csv(tmp_path):
    path = tmp_path / "rate.csv"
    path.write_text("time_s,rate_per_s\n0,10\n60,30\n120,10\n")
    p = Piecewise.from_csv(path)
    assert p.multiplier(30) == pytest.approx(20) and p.peak(0, 120) == 30
    with pytest.raises(cs.ModelError, match="times_s: must be strictly increasing"):
        Piecewise((0, 0), (1, 2))
    with pytest.raises(cs.ModelError, match="needs columns"):
        Piecewise.from_csv(path, rate_column="rps")


def test_bad_profile_input():
    with pytest.raises(cs.ModelError, match=r"Diurnal.trough: must be <= 1"):
        cs.Diurnal(trough=1.5)
    with pytest.raises(cs.ModelError, match=r"Spike.duration_s: must be > 0, got 0"):
        cs.Spike(0, 0, 2)
    with pytest.raises(cs.ModelError, match="interarrival: must be Exponential"):
        cs.OpenWorkload(1, 1.0, interarrival=cs.Deterministic(1.0), profile=cs.Diurnal())
    with pytest.raises(cs.ModelError, match="profile: must be a Profile"):
        cs.OpenWorkload(1, 1.0, profile="diurnal")


@pytest.mark.parametrize("seed", [1, 2])
def test_nhpp_counts_follow_the_rate_profile(seed):
    # counts per window of a non-homogeneous Poisson process are independent Poisson with
    # mean = the integral of the rate over the window: a chi-square test over 96 windows
    profile = cs.Diurnal(trough=0.2, peak_hour=12) * cs.Spike(20 * 3600, 3600, 2.5)
    base = 5.0
    run = cs.simulate(ONE, cs.OpenWorkload(1, base, profile=profile), 86_400, seed=seed,
                      sample_interval_s=900)
    edges = np.arange(0, 86_400 + 1, 900)
    counts = np.histogram(run.arrival_s, bins=edges)[0]
    expected = np.array([base * profile.mean(a, b) * (b - a)
                         for a, b in zip(edges[:-1], edges[1:], strict=True)])
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert stats.chi2.sf(chi2, df=counts.size) > 0.001
    # the spike hour really has 2.5x the traffic of the same hour's diurnal level
    spike = counts[(edges[:-1] >= 20 * 3600) & (edges[:-1] < 21 * 3600)].sum()
    assert spike == pytest.approx(expected[(edges[:-1] >= 72_000) & (edges[:-1] < 75_600)].sum(),
                                  rel=0.1)


def test_stability_is_judged_at_the_busiest_five_minutes():
    # 2x capacity for an hour: the queue grows for an hour, users feel it; the mean rate over
    # the run (0.875) used to call this stable
    s = cs.System([cs.Service("s", 1, cs.Exponential(1.0))], [cs.Flow("f", 1.0, [cs.Call("s")])])
    load = cs.OpenWorkload(1, 0.5, profile=cs.Spike(3600, 3600, 4.0))
    run = cs.simulate(s, load, 4 * 3600, seed=1)
    assert not run.stable
    assert run.components()["offered_load"].item() == pytest.approx(2.0, rel=1e-3)
    # a burst of a few seconds is absorbed: judged at the five minutes around it
    burst = cs.OpenWorkload(1, 0.5, profile=cs.Spike(3600, 6, 4.0))
    assert burst.judged_rate_per_s(4 * 3600) == pytest.approx(0.5 * (294 + 24) / 300, rel=1e-2)
    assert cs.simulate(s, burst, 4 * 3600, seed=1).stable


def test_timeseries_windows_add_up_to_the_run():
    run = cs.simulate(ONE, cs.OpenWorkload(1, 200.0), 600, seed=3, sample_interval_s=5)
    ts = run.timeseries(60)
    tput = ts[(ts["name"] == "s") & (ts["metric"] == "throughput_per_s")]
    assert len(tput) == 10 and list(tput["time_s"]) == list(np.arange(60, 601, 60.0))
    assert (tput["value"] * 60).sum() == pytest.approx(run.components()["throughput_per_s"].item()
                                                       * 600, rel=1e-9)
    util = ts[(ts["name"] == "s") & (ts["metric"] == "utilization")]["value"]
    assert util.mean() == pytest.approx(run.components()["utilization"].item(), rel=1e-9)
    count = ts[(ts["name"] == "f") & (ts["metric"] == "count")]["value"].sum()
    assert count == run.latency()["count"].item()
    p99 = ts[(ts["name"] == "f") & (ts["metric"] == "p99_s")]["value"]
    assert p99.notna().all() and (p99 > 0).all()

# -- Diurnal.rising_time: when the morning ramp reaches a level (closed form)


@pytest.mark.parametrize("profile", [cs.Diurnal(trough=0.35, peak_hour=20),
                                     cs.Diurnal(trough=0.35, peak_hour=20, period_s=10_800),
                                     cs.Diurnal(trough=0.0, peak_hour=3)])
def test_rising_time_inverts_the_morning_ramp(profile):
    hour = profile.period_s / 24
    grid = np.linspace((profile.peak_hour - 12) * hour, profile.peak_hour * hour, 100_001)
    for level in (0.5, 0.8, 0.93, 0.999):
        t = profile.rising_time(level)
        assert profile.multiplier(t) == pytest.approx(level)
        # the first time on the rising half, as a fine grid search finds it
        first = grid[np.argmax(profile.multiplier(grid) >= level)]
        assert t == pytest.approx(first, abs=profile.period_s / 2 / 100_000 + 1e-9)


def test_rising_time_at_the_ends():
    day = cs.Diurnal(trough=0.3, peak_hour=20)
    assert day.rising_time(1.0) == pytest.approx(20 * 3600)
    assert day.rising_time(0.3) == day.rising_time(0.1) == 8 * 3600
    assert day.rising_time(1.2) == math.inf
    flat = cs.Diurnal(trough=1.0, peak_hour=20)
    assert flat.rising_time(1.0) == 8 * 3600
    with pytest.raises(cs.ModelError, match="level"):
        day.rising_time(float("nan"))
