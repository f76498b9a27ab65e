"""Service-time and inter-arrival distributions.

Each distribution knows its own ``mean`` and ``cv`` (the analytic twin needs them), samples in
numpy batches from a ``Generator`` it is handed (never a global RNG), gives its ``cdf`` (the twin
builds latency percentiles from it) and can be ``scaled`` to a new mean with the same shape (a
workload sets the arrival rate, the user picks the shape).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from capsim.errors import ModelError, check_int, check_number, fail

__all__ = [
    "Distribution",
    "Exponential",
    "Deterministic",
    "Erlang",
    "Gamma",
    "LogNormal",
    "HyperExponential",
    "Empirical",
    "Count",
    "Poisson",
    "Geometric",
]


@dataclass(frozen=True)
class Distribution:
    """Base class: a non-negative random duration in seconds."""

    kind: ClassVar[str] = "distribution"

    @property
    def mean(self) -> float:
        raise NotImplementedError

    @property
    def cv(self) -> float:
        """Coefficient of variation (standard deviation / mean)."""
        raise NotImplementedError

    @property
    def scv(self) -> float:
        """Squared coefficient of variation, the variability term of queueing formulas."""
        return self.cv**2

    @property
    def variance(self) -> float:
        return (self.cv * self.mean) ** 2

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` values from ``rng`` as a float64 array."""
        raise NotImplementedError

    def cdf(self, x: np.ndarray | float) -> np.ndarray:
        """P(X <= x), vectorised."""
        raise NotImplementedError

    def scaled(self, mean: float) -> Distribution:
        """Same shape (same cv), new mean."""
        raise NotImplementedError

    def _owner(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class Exponential(Distribution):
    """Memoryless durations: Poisson arrivals, the M of M/M/c."""

    mean_s: float = field(default=1.0)

    def __init__(self, mean: float = 1.0) -> None:
        object.__setattr__(self, "mean_s", check_number("Exponential", "mean", mean))

    @property
    def mean(self) -> float:
        return self.mean_s

    @property
    def cv(self) -> float:
        return 1.0

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.mean_s, n)

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x > 0, -np.expm1(-np.maximum(x, 0) / self.mean_s), 0.0)

    def scaled(self, mean: float) -> Exponential:
        return Exponential(mean)

    def __repr__(self) -> str:
        return f"Exponential(mean={self.mean_s!r})"


@dataclass(frozen=True)
class Deterministic(Distribution):
    """A constant duration (cv = 0): the D of M/D/1, or a fixed think time (may be 0)."""

    value: float = 1.0

    def __post_init__(self) -> None:
        v = check_number("Deterministic", "value", self.value, strict=False)
        object.__setattr__(self, "value", v)

    @property
    def mean(self) -> float:
        return self.value

    @property
    def cv(self) -> float:
        return 0.0

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value)

    def cdf(self, x):
        return np.where(np.asarray(x, dtype=float) >= self.value, 1.0, 0.0)

    def scaled(self, mean: float) -> Deterministic:
        return Deterministic(mean)


@dataclass(frozen=True)
class _ByMeanAndCv(Distribution):
    """A family given by its mean and cv (what people measure), validated once here."""

    mean_s: float = 1.0
    cv_: float = 1.0

    def __init__(self, mean: float = 1.0, cv: float = 1.0) -> None:
        object.__setattr__(self, "mean_s", check_number(self._owner(), "mean", mean))
        object.__setattr__(self, "cv_", check_number(self._owner(), "cv", cv))

    @property
    def mean(self) -> float:
        return self.mean_s

    @property
    def cv(self) -> float:
        return self.cv_

    def scaled(self, mean: float) -> _ByMeanAndCv:
        return type(self)(mean, self.cv_)

    def __repr__(self) -> str:
        return f"{self._owner()}(mean={self.mean_s!r}, cv={self.cv_!r})"


@dataclass(frozen=True, init=False, repr=False)
class Gamma(_ByMeanAndCv):
    """Gamma durations by mean and cv; cv < 1 is smoother than exponential, cv > 1 burstier."""

    @property
    def shape(self) -> float:
        return 1.0 / self.cv_**2

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.gamma(self.shape, self.mean_s / self.shape, n)

    def cdf(self, x):
        from scipy import special  # here, not at import: a run never needs it

        x = np.maximum(np.asarray(x, dtype=float), 0.0)
        return special.gammainc(self.shape, x * self.shape / self.mean_s)


@dataclass(frozen=True)
class Erlang(Gamma):
    """Sum of ``k`` exponential phases: cv = 1/sqrt(k)."""

    k: int = 1

    def __init__(self, k: int = 2, mean: float = 1.0) -> None:
        k = check_int("Erlang", "k", k, minimum=1)
        super().__init__(mean, 1.0 / math.sqrt(k))
        object.__setattr__(self, "k", k)

    @property
    def shape(self) -> float:
        return float(self.k)

    def scaled(self, mean: float) -> Erlang:
        return Erlang(self.k, mean)

    def __repr__(self) -> str:
        return f"Erlang(k={self.k!r}, mean={self.mean_s!r})"


@dataclass(frozen=True, init=False, repr=False)
class LogNormal(_ByMeanAndCv):
    """Log-normal by mean and cv: the long right tail of real request latencies."""

    @property
    def sigma(self) -> float:
        return math.sqrt(math.log1p(self.cv_**2))

    @property
    def mu(self) -> float:
        return math.log(self.mean_s) - self.sigma**2 / 2

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(self.mu, self.sigma, n)

    def cdf(self, x):
        from scipy import stats

        return stats.lognorm.cdf(np.asarray(x, dtype=float), s=self.sigma, scale=math.exp(self.mu))


@dataclass(frozen=True, init=False, repr=False)
class HyperExponential(_ByMeanAndCv):
    """Two exponential phases with balanced means: bursty durations with cv > 1."""

    def __init__(self, mean: float = 1.0, cv: float = 2.0) -> None:
        super().__init__(mean, cv)
        if not self.cv_ > 1.0:
            raise fail("HyperExponential", "cv", "must be > 1 (use Gamma or Erlang below 1)", cv)

    @property
    def phases(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """((p1, mean1), (p2, mean2)) with p_i * mean_i = mean / 2 (balanced means)."""
        scv = self.cv_**2
        p1 = 0.5 * (1.0 + math.sqrt((scv - 1.0) / (scv + 1.0)))
        p2 = 1.0 - p1
        return (p1, self.mean_s / (2 * p1)), (p2, self.mean_s / (2 * p2))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        (p1, m1), (_, m2) = self.phases
        first = rng.random(n) < p1
        return rng.exponential(1.0, n) * np.where(first, m1, m2)

    def cdf(self, x):
        x = np.maximum(np.asarray(x, dtype=float), 0.0)
        (p1, m1), (p2, m2) = self.phases
        return 1.0 - p1 * np.exp(-x / m1) - p2 * np.exp(-x / m2)


@dataclass(frozen=True)
class Empirical(Distribution):
    """Resample measured durations (seconds) as they are: no fitted shape assumed."""

    samples: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        try:
            values = np.asarray(self.samples, dtype=float).ravel()
        except (TypeError, ValueError) as exc:
            raise fail("Empirical", "samples", "must be numbers", self.samples) from exc
        if values.size < 2:
            raise fail("Empirical", "samples", "must hold at least 2 values", values.size)
        bad = values[~np.isfinite(values) | (values < 0)]
        if bad.size:
            raise fail("Empirical", "samples", "must be finite and >= 0", float(bad[0]))
        if values.mean() <= 0:
            raise ModelError("Empirical.samples: mean must be > 0, got all zeros")
        object.__setattr__(self, "samples", tuple(values.tolist()))

    @property
    def _values(self) -> np.ndarray:
        return np.asarray(self.samples)

    @property
    def mean(self) -> float:
        return float(self._values.mean())

    @property
    def cv(self) -> float:
        v = self._values
        return float(v.std() / v.mean())

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(self._values, n)

    def cdf(self, x):
        v = np.sort(self._values)
        return np.searchsorted(v, np.asarray(x, dtype=float), side="right") / v.size

    def scaled(self, mean: float) -> Empirical:
        factor = check_number("Empirical", "mean", mean) / self.mean
        return replace(self, samples=tuple((self._values * factor).tolist()))

    def __repr__(self) -> str:
        return f"Empirical(<{len(self.samples)} samples, mean={self.mean:.4g}, cv={self.cv:.3g}>)"


@dataclass(frozen=True)
class Count(Distribution):
    """Base class of a random count (0, 1, 2, ...): how many times a step repeats
    (``Call("db", visits=Geometric(mean=10))``, the N of an N+1 query page)."""

    kind: ClassVar[str] = "count"
    TAIL: ClassVar[float] = 1e-4  # the mass a twin expands as one mean-keeping pair of counts

    def pmf(self, k: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def support(self, tail: float | None = None, limit: int = 400) -> tuple[np.ndarray,
                                                                            np.ndarray]:
        """(counts, probabilities) of all but ``tail`` of the mass (at most ``limit`` counts),
        with the mass left out put on the two counts around its conditional mean: what the
        analytic twin expands a repeated step into. Probabilities sum to 1 and the mean is
        the distribution's, so offered loads stay exact."""
        tail = self.TAIL if tail is None else tail
        k = np.arange(limit + 1)
        p = self.pmf(k)
        keep = np.flatnonzero(np.cumsum(p) < 1.0 - tail)
        last = min(int(keep[-1]) + 2 if keep.size else 1, limit + 1)
        k, p = k[:last].astype(float), p[:last]
        rest = 1.0 - p.sum()
        if rest > 1e-15:
            beyond = max((self.mean - float(np.dot(k, p))) / rest, k[-1] + 1.0)
            lo = math.floor(beyond)
            share = rest * (lo + 1.0 - beyond)  # on lo; the rest on lo + 1
            k = np.concatenate([k, [lo, lo + 1.0]])
            p = np.concatenate([p, [share, rest - share]])
        nz = p > 0
        k, p = k[nz].astype(int), p[nz]
        return k, p / p.sum()

    def scaled(self, mean: float) -> Count:
        """The same kind of count with a new mean (its constructor takes ``mean``)."""
        return type(self)(check_number(self._owner(), "mean", mean, strict=False))


@dataclass(frozen=True)
class Poisson(Count):
    """A Poisson number of repeats with the given ``mean`` (0 is possible)."""

    mean_count: float = 1.0

    def __init__(self, mean: float = 1.0) -> None:
        object.__setattr__(self, "mean_count",
                           check_number("Poisson", "mean", mean, strict=False))

    @property
    def mean(self) -> float:
        return self.mean_count

    @property
    def cv(self) -> float:
        return 1.0 / math.sqrt(self.mean_count) if self.mean_count > 0 else 0.0

    def pmf(self, k):
        from scipy import stats

        return stats.poisson.pmf(np.asarray(k), self.mean_count)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.poisson(self.mean_count, n).astype(float)

    def cdf(self, x):
        from scipy import stats

        return stats.poisson.cdf(np.floor(np.asarray(x, dtype=float)), self.mean_count)

    def __repr__(self) -> str:
        return f"Poisson(mean={self.mean_count!r})"


@dataclass(frozen=True)
class Geometric(Count):
    """A geometric number of repeats on 0, 1, 2, ... with the given ``mean``: each repeat is
    followed by another with probability ``mean / (1 + mean)`` (a page that lists a random
    number of items and queries once per item)."""

    mean_count: float = 1.0

    def __init__(self, mean: float = 1.0) -> None:
        object.__setattr__(self, "mean_count",
                           check_number("Geometric", "mean", mean, strict=False))

    @property
    def _q(self) -> float:
        return self.mean_count / (1.0 + self.mean_count)

    @property
    def mean(self) -> float:
        return self.mean_count

    @property
    def cv(self) -> float:
        m = self.mean_count
        return math.sqrt(m * (1.0 + m)) / m if m > 0 else 0.0

    def pmf(self, k):
        k = np.asarray(k, dtype=float)
        return np.where(k >= 0, (1.0 - self._q) * self._q ** np.maximum(k, 0), 0.0)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        # numpy's geometric counts trials to the first success (1, 2, ...): shift to 0, 1, ...
        return (rng.geometric(1.0 - self._q, n) - 1).astype(float)

    def cdf(self, x):
        x = np.floor(np.asarray(x, dtype=float))
        return np.where(x >= 0, 1.0 - self._q ** (np.maximum(x, 0) + 1), 0.0)

    def __repr__(self) -> str:
        return f"Geometric(mean={self.mean_count!r})"
