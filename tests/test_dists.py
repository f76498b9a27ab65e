"""Distributions: declared mean/cv agree with their samples and their cdf; bad input fails."""

import math

import numpy as np
import pytest
from scipy import stats

import capsim as cs
from capsim.experiment import mean_ci

DISTS = [
    cs.Exponential(2.0),
    cs.Deterministic(0.5),
    cs.Erlang(k=3, mean=1.5),
    cs.Gamma(mean=0.2, cv=0.4),
    cs.LogNormal(mean=0.02, cv=1.5),
    cs.HyperExponential(mean=1.0, cv=3.0),
    cs.Empirical([0.1, 0.2, 0.2, 0.5, 1.3]),
]


@pytest.mark.parametrize("dist", DISTS, ids=repr)
def test_samples_have_the_declared_mean_and_cv(dist):
    # 20 independent batches -> CI of the batch means and batch cvs must cover the declaration
    rng = np.random.default_rng(2024)
    batches = [dist.sample(rng, 20_000) for _ in range(20)]
    assert all(b.dtype == np.float64 and b.shape == (20_000,) and (b >= 0).all()
               for b in batches)
    m, half = mean_ci([b.mean() for b in batches], 0.999)
    assert abs(m - dist.mean) <= max(half, 1e-12)
    if dist.cv > 0:
        c, half = mean_ci([b.std() / b.mean() for b in batches], 0.999)
        # the cv of a heavy-tailed sample is biased low at finite n; allow 3%
        assert abs(c - dist.cv) <= half + 0.03 * dist.cv
    else:
        assert all(b.std() == 0 for b in batches)


@pytest.mark.parametrize("dist", [d for d in DISTS if d.cv > 0], ids=repr)
def test_cdf_matches_samples(dist):
    x = dist.sample(np.random.default_rng(7), 5_000)
    if isinstance(dist, cs.Empirical):
        assert dist.cdf(0.2) == pytest.approx(0.6)
        return
    assert stats.kstest(x, dist.cdf).pvalue > 0.001


@pytest.mark.parametrize("dist", DISTS, ids=repr)
def test_scaled_keeps_shape_and_sets_mean(dist):
    s = dist.scaled(3.0)
    assert type(s) is type(dist)
    assert s.mean == pytest.approx(3.0)
    assert s.cv == pytest.approx(dist.cv)


def test_derived_parameters():
    assert cs.Erlang(k=4, mean=1.0).cv == 0.5
    ln = cs.LogNormal(mean=2.0, cv=1.0)
    assert math.exp(ln.mu + ln.sigma**2 / 2) == pytest.approx(2.0)
    (p1, m1), (p2, m2) = cs.HyperExponential(mean=1.0, cv=2.0).phases
    assert p1 * m1 == pytest.approx(0.5) and p2 * m2 == pytest.approx(0.5)
    assert p1 * m1 + p2 * m2 == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: cs.Exponential(-1), r"Exponential.mean: must be > 0, got -1"),
        (lambda: cs.Exponential(float("nan")), r"Exponential.mean: must be finite, got nan"),
        (lambda: cs.Exponential(float("inf")), r"must be finite, got inf"),
        (lambda: cs.Exponential("fast"), r"Exponential.mean: must be a number, got 'fast'"),
        (lambda: cs.Deterministic(-0.1), r"Deterministic.value: must be >= 0, got -0.1"),
        (lambda: cs.Erlang(k=0, mean=1), r"Erlang.k: must be >= 1, got 0"),
        (lambda: cs.Gamma(1.0, cv=0), r"Gamma.cv: must be > 0, got 0"),
        (lambda: cs.LogNormal(0, 1), r"LogNormal.mean: must be > 0, got 0"),
        (lambda: cs.HyperExponential(1.0, cv=0.5), r"HyperExponential.cv: must be > 1"),
        (lambda: cs.Empirical([1.0]), r"Empirical.samples: must hold at least 2 values"),
        (lambda: cs.Empirical([1.0, -2.0]), r"Empirical.samples: must be finite and >= 0"),
    ],
)
def test_bad_parameters_name_field_and_value(make, message):
    with pytest.raises(cs.ModelError, match=message):
        make()


def test_distributions_are_frozen_and_hashable():
    d = cs.LogNormal(mean=1.0, cv=2.0)
    with pytest.raises(AttributeError):
        d.mean_s = 3.0
    assert hash(d) == hash(cs.LogNormal(mean=1.0, cv=2.0))
    assert hash(cs.Empirical([1, 2])) == hash(cs.Empirical([1.0, 2.0]))
