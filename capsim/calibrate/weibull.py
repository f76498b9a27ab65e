"""Weibull durations by mean and cv, with the interface of the families in :mod:`capsim.dists`.

The Weibull is the fourth family :func:`capsim.calibrate.fit_service_time` tries: with shape
``k < 1`` it has a heavier tail than the exponential, with ``k > 1`` it is smoother (``k = 1`` is
the exponential). Like the other families it is declared by what people measure, its mean and
cv; :meth:`Weibull.from_shape_scale` builds it from the textbook parameters a fit returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import optimize, special

from capsim.dists import _ByMeanAndCv
from capsim.errors import check_number, fail

__all__ = ["Weibull"]

# Shapes the cv can be solved for: cv(0.02) is about 4e21, cv(1e4) about 1.3e-4.
_SHAPE_RANGE = (0.02, 1e4)


def weibull_cv(shape: float) -> float:
    """Coefficient of variation of a Weibull of shape ``k``: sqrt(G(1+2/k) / G(1+1/k)^2 - 1)."""
    k = float(shape)
    log_ratio = special.gammaln(1 + 2 / k) - 2 * special.gammaln(1 + 1 / k)
    return math.sqrt(math.expm1(log_ratio))


_CV_RANGE = (weibull_cv(_SHAPE_RANGE[1]), weibull_cv(_SHAPE_RANGE[0]))


def _shape_for_cv(cv: float) -> float:
    """The shape k with weibull_cv(k) == cv (cv decreases monotonically in k)."""
    target = math.log(cv)
    return math.exp(optimize.brentq(
        lambda log_k: math.log(weibull_cv(math.exp(log_k))) - target,
        math.log(_SHAPE_RANGE[0]), math.log(_SHAPE_RANGE[1]), xtol=1e-14, rtol=1e-14,
    ))


@dataclass(frozen=True, init=False, repr=False)
class Weibull(_ByMeanAndCv):
    """Weibull durations by mean and cv; cv < 1 is smoother than exponential, cv > 1 burstier."""

    def __init__(self, mean: float = 1.0, cv: float = 1.0) -> None:
        super().__init__(mean, cv)
        low, high = _CV_RANGE
        if not low <= self.cv_ <= high:
            raise fail("Weibull", "cv", f"must be between {low:.3g} and {high:.3g}", cv)

    @classmethod
    def from_shape_scale(cls, shape: float, scale: float) -> Weibull:
        """From the textbook parameters: P(X <= x) = 1 - exp(-(x / scale) ** shape)."""
        k = check_number("Weibull", "shape", shape)
        lam = check_number("Weibull", "scale", scale)
        return cls(lam * math.gamma(1 + 1 / k), weibull_cv(k))

    @cached_property
    def shape(self) -> float:
        """The shape ``k`` (1 is the exponential; below 1 a heavier tail)."""
        return _shape_for_cv(self.cv_)

    @property
    def scale(self) -> float:
        """The scale ``lambda`` (seconds): mean / G(1 + 1/k)."""
        return self.mean_s / math.gamma(1 + 1 / self.shape)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.scale * rng.weibull(self.shape, n)

    def cdf(self, x):
        x = np.maximum(np.asarray(x, dtype=float), 0.0)
        return -np.expm1(-((x / self.scale) ** self.shape))
