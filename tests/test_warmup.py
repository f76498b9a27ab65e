"""MSER-5 finds the end of a known transient and leaves a stationary series alone."""

import numpy as np
import pytest

import capsim as cs
from capsim.experiment import mean_ci
from capsim.experiment.warmup import detect_warmup, mser


def test_stationary_series_is_not_truncated_much():
    rng = np.random.default_rng(1)
    cuts = [mser(rng.normal(10, 1, 5_000)) for _ in range(20)]
    assert np.median(cuts) < 250  # < 5% of the series


def test_finds_the_end_of_a_linear_ramp():
    # the first 1,000 values climb from 0 to the steady level 10; then noise around 10
    rng = np.random.default_rng(2)
    cuts = []
    for _ in range(20):
        x = rng.normal(10, 1, 10_000)
        x[:1000] = np.linspace(0, 10, 1000) + rng.normal(0, 1, 1000)
        cuts.append(mser(x))
    assert 700 <= np.median(cuts) <= 1300


def test_short_series_and_batches():
    assert mser([1.0, 2.0, 3.0]) == 0
    assert mser(np.r_[np.zeros(100), np.ones(900)]) % 5 == 0


def test_detected_warmup_cuts_the_fill_up_of_an_empty_start():
    # M/M/16 at rho 0.95 started empty fills up over ~100 s; the state series averaged over
    # replications shows it, and what is left agrees with Erlang C.
    from capsim.analytic import mmc

    system = cs.System([cs.Service("s", 16, cs.Exponential(1.0))],
                       [cs.Flow("f", 1.0, [cs.Call("s")])])
    load = cs.OpenWorkload(1, 15.2)
    runs = [cs.simulate(system, load, 4_000, seed=s, sample_interval_s=4) for s in range(10)]
    w = detect_warmup(runs)
    assert 20 <= w <= 1_000
    theory = mmc(15.2, 1.0, 16).mean_in_system
    cut = [r.with_warmup(w).components()["mean_in_system"].item() for r in runs]
    m, half = mean_ci(cut, 0.99)
    assert abs(m - theory) <= half


def test_with_warmup_moves_component_window_to_a_sample_time():
    system = cs.System([cs.Service("s", 2, cs.Exponential(1.0))],
                       [cs.Flow("f", 1.0, [cs.Call("s")])])
    run = cs.simulate(system, cs.OpenWorkload(1, 1.0), 1_000, seed=3, sample_interval_s=10)
    late = run.with_warmup(123.0)
    assert late.warmup_s == 130.0
    assert late.components()["throughput_per_s"].item() == pytest.approx(
        run.components()["throughput_per_s"].item(), rel=0.15)
    # a warm-up given to simulate() is the same as moving it afterwards
    direct = cs.simulate(system, cs.OpenWorkload(1, 1.0), 1_000, warmup_s=130.0, seed=3,
                         sample_interval_s=10)
    assert direct.components().equals(late.components())
    assert direct.latency().equals(late.latency())
