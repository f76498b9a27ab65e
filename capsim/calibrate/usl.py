"""Fitting the Universal Scalability Law to load-test measurements: ``fit(n, x) -> USLFit``.

The law itself, X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1)), is in
``capsim.analytic.usl``; this module finds the sigma, kappa and lambda that measurements say.

Two ways to fit, because the literature publishes both:

* ``fit(n, x)`` (the default): non-linear least squares on the measured throughput, with
  ``sigma``, ``kappa`` and ``lambda`` all free (``scipy.optimize.curve_fit``, bounds >= 0),
  started from the linearised estimate below. This is the fit of Schwartz's *Practical
  Scalability Analysis with the USL* (2015), of the ``usl`` R package since 2.0 and of Coda
  Hale's usl/usl4j; it needs no measurement at N = 1.
* ``fit(n, x, normalise=True)``: Gunther's procedure in *Guerrilla Capacity Planning* (2007),
  section 5.2.3, used by the ``usl`` R package before 2.0: ``lambda`` is pinned to the measured
  X(1), throughput is normalised to the capacity ratio C(N) = X(N) / X(1), and ``sigma`` and
  ``kappa`` come from the linear least-squares fit of ``N / C(N) - 1`` against ``N - 1`` (the
  USL is a quadratic through the origin in those coordinates). The coefficients GCaP prints are
  these; they differ from a non-linear fit of C(N), which weighs the points differently.

Confidence intervals are t-intervals from the fit's covariance (``n - p`` degrees of freedom),
cut at 0 where they cross it (the coefficients cannot be negative). They assume measurement
errors of about the same size at every load level; when the scatter grows with throughput (a
few percent of X at each level), the kappa interval is too narrow: in simulation a nominal
95 % interval held the true kappa about 87 % of the time. This module never imports SimPy;
the figure (:meth:`USLFit.plot`) is drawn by ``capsim.report.usl``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats

from capsim.analytic.usl import peak_concurrency, peak_throughput
from capsim.analytic.usl import throughput as usl_throughput
from capsim.errors import ModelError, check_number, fail

__all__ = ["USLFit", "fit"]

MIN_POINTS = 4  # three coefficients and at least one degree of freedom for the intervals


@dataclass(frozen=True)
class USLFit:
    """A fitted USL: coefficients with their confidence intervals, and what follows from them.

    ``normalised`` says which fit made it (see the module notes); ``level`` is the confidence
    level of the ``*_ci`` intervals. ``concurrency`` and ``throughput`` are the measurements.
    """

    sigma: float
    kappa: float
    lambda_: float
    sigma_ci: tuple[float, float]
    kappa_ci: tuple[float, float]
    lambda_ci: tuple[float, float]
    r_squared: float
    normalised: bool
    level: float
    concurrency: tuple[float, ...] = field(repr=False)
    throughput: tuple[float, ...] = field(repr=False)

    @property
    def n_max(self) -> float:
        """Concurrency of peak throughput, sqrt((1 - sigma) / kappa).

        ``inf`` when kappa = 0 (throughput only levels off, towards lambda / sigma); 1 when
        sigma >= 1 (no concurrency helps).
        """
        return peak_concurrency(self.sigma, self.kappa)

    @property
    def x_max(self) -> float:
        """Peak throughput X(N_max); with kappa = 0 the ceiling lambda / sigma (or inf)."""
        return peak_throughput(self.sigma, self.kappa, self.lambda_)

    def predict(self, n) -> np.ndarray | float:
        """Throughput X(N) at concurrency ``n`` (a number or an array)."""
        return usl_throughput(n, self.sigma, self.kappa, self.lambda_)

    def coefficients(self) -> pd.DataFrame:
        """The three coefficients with their intervals, one row each."""
        rows = [(name, value, *ci) for name, value, ci in (
            ("sigma", self.sigma, self.sigma_ci),
            ("kappa", self.kappa, self.kappa_ci),
            ("lambda", self.lambda_, self.lambda_ci),
        )]
        return pd.DataFrame(rows, columns=["coefficient", "estimate", "ci_low", "ci_high"])

    def __str__(self) -> str:
        how = "normalised to X(1), linearised" if self.normalised else "non-linear"
        return (f"USL ({how} fit of {len(self.concurrency)} points, R^2 {self.r_squared:.4f}): "
                f"sigma {self.sigma:.4g} [{self.sigma_ci[0]:.3g}, {self.sigma_ci[1]:.3g}], "
                f"kappa {self.kappa:.4g} [{self.kappa_ci[0]:.3g}, {self.kappa_ci[1]:.3g}], "
                f"lambda {self.lambda_:.4g}; N_max {self.n_max:.4g}, X_max {self.x_max:.4g}")

    def plot(self, ax=None, *, n_to: float | None = None, label: str = "USL fit"):
        """Measured points, the fitted curve, linear scaling and the peak, on ``ax``."""
        from capsim.report.usl import usl_plot

        return usl_plot(self, ax, n_to=n_to, label=label)


def _inputs(concurrency, throughput_) -> tuple[np.ndarray, np.ndarray]:
    try:
        n = np.asarray(concurrency, dtype=float).ravel()
        x = np.asarray(throughput_, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise ModelError(f"usl.fit: concurrency and throughput must be numbers ({exc})") from None
    if n.size != x.size:
        raise fail("usl.fit", "throughput", f"must have one value per concurrency ({n.size})",
                   x.size)
    if n.size < MIN_POINTS:
        raise fail("usl.fit", "concurrency", f"must hold at least {MIN_POINTS} measurements",
                   n.size)
    for name, values, minimum in (("concurrency", n, 1.0), ("throughput", x, 0.0)):
        bad = np.flatnonzero(~np.isfinite(values) | (values < minimum if minimum else
                                                     values <= 0))
        if bad.size:
            i = int(bad[0])
            rule = "must be finite and >= 1" if minimum else "must be finite and > 0"
            raise ModelError(f"usl.fit.{name}[{i}]: {rule}, got {float(values[i])!r}")
    if np.unique(n).size < 3:
        raise fail("usl.fit", "concurrency", "must hold at least 3 distinct levels",
                   np.unique(n).tolist())
    return n, x


def _linearised(n: np.ndarray, x: np.ndarray, lambda_: float) -> tuple[np.ndarray, np.ndarray]:
    """(sigma, kappa) >= 0 by least squares on N / C - 1 = sigma (N - 1) + kappa N (N - 1).

    Returns the estimate and its covariance (from the linear regression's residuals).
    """
    c = x / lambda_
    y = n / c - 1.0
    design = np.column_stack([n - 1.0, n * (n - 1.0)])
    est = optimize.lsq_linear(design, y, bounds=(0.0, np.inf), method="bvls").x
    rows = n != 1.0  # the reference point has no residual: it fixes lambda, not sigma or kappa
    dof = int(rows.sum()) - 2
    resid = y - design @ est
    if dof > 0:
        s2 = float(resid[rows] @ resid[rows]) / dof
        cov = s2 * np.linalg.pinv(design.T @ design)
    else:
        cov = np.full((2, 2), np.nan)
    return est, cov


def _interval(value: float, var: float, t: float) -> tuple[float, float]:
    if not np.isfinite(var) or var < 0:
        return (math.nan, math.nan)
    half = t * math.sqrt(var)
    return (max(value - half, 0.0), value + half)


def fit(concurrency, throughput, *, normalise: bool = False, level: float = 0.95) -> USLFit:
    """Fit the USL to measured ``throughput`` at each ``concurrency`` (users, threads, CPUs...).

    ``normalise=False`` fits sigma, kappa and lambda freely by non-linear least squares;
    ``normalise=True`` pins lambda to the throughput measured at N = 1 (the mean, if N = 1 was
    measured more than once) and fits sigma and kappa by Gunther's linearised regression (see the
    module notes). ``level`` is the confidence level of the intervals.
    """
    n, x = _inputs(concurrency, throughput)
    level = check_number("usl.fit", "level", level)
    if not level < 1:
        raise fail("usl.fit", "level", "must be between 0 and 1", level)
    q = 0.5 + level / 2

    if normalise:
        ones = n == 1.0
        if not ones.any():
            raise fail("usl.fit", "concurrency", "must include N = 1 when normalise=True "
                       "(X(1) is the reference); or fit with normalise=False", float(n.min()))
        lambda_ = float(x[ones].mean())
        (sigma, kappa), cov = _linearised(n, x, lambda_)
        dof = int((~ones).sum()) - 2
        t = stats.t.ppf(q, dof) if dof > 0 else math.nan
        cis = [_interval(sigma, cov[0, 0], t), _interval(kappa, cov[1, 1], t),
               (lambda_, lambda_)]
    else:
        # Start: lambda from the most efficient point (X / N is largest at low N), then the
        # linearised sigma, kappa given that lambda.
        lam0 = float(np.max(x / n))
        (s0, k0), _ = _linearised(n, x, lam0)
        # Fit throughput relative to lam0, so the three unknowns are of comparable size.
        scale = np.array([1.0, 1.0, lam0])
        popt, pcov = optimize.curve_fit(
            usl_throughput, n, x / lam0,
            p0=[s0, k0, 1.0], bounds=([0.0, 0.0, 0.0], [np.inf, np.inf, np.inf]),
            method="trf", x_scale="jac", ftol=1e-15, xtol=1e-15, gtol=1e-15, max_nfev=10_000,
        )
        sigma, kappa, lambda_ = (float(v) for v in popt * scale)
        # The solver stays strictly inside the bounds: a coefficient whose term adds less than
        # 1e-12 to the denominator anywhere in the data is at its bound, 0.
        top = float(n.max())
        sigma = 0.0 if sigma * (top - 1.0) < 1e-12 else sigma
        kappa = 0.0 if kappa * top * (top - 1.0) < 1e-12 else kappa
        cov = pcov * np.outer(scale, scale)
        t = stats.t.ppf(q, n.size - 3)
        cis = [_interval(v, cov[i, i], t) for i, v in enumerate((sigma, kappa, lambda_))]

    predicted = usl_throughput(n, sigma, kappa, lambda_)
    ss_tot = float(np.sum((x - x.mean()) ** 2))
    r2 = 1.0 - float(np.sum((x - predicted) ** 2)) / ss_tot if ss_tot > 0 else math.nan
    return USLFit(
        sigma=sigma, kappa=kappa, lambda_=lambda_,
        sigma_ci=cis[0], kappa_ci=cis[1], lambda_ci=cis[2],
        r_squared=r2, normalised=normalise, level=level,
        concurrency=tuple(n.tolist()), throughput=tuple(x.tolist()),
    )
