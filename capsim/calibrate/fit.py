"""Service times from measurements: fit candidate families, compare them, hand back the best.

``fit_service_time(samples)`` fits each family by maximum likelihood with the location fixed at
zero (scipy's ``fit(..., floc=0)``; a duration starts at 0), and ranks them by AIC (or BIC, or
the Kolmogorov-Smirnov distance). The report keeps the whole comparison table, because "which
family" is a judgement: when two families are within 2 AIC points of each other the data cannot
tell them apart, and the table says so.

The KS p-values are computed with the parameters estimated from the same samples, which makes
them optimistic (Lilliefors' point): read them as a goodness-of-fit indication, not as an exact
test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, stats

from capsim.calibrate.weibull import Weibull
from capsim.dists import Distribution, Exponential, Gamma, LogNormal
from capsim.errors import ModelError, fail

__all__ = ["FAMILIES", "FIT_COLUMNS", "FitReport", "fit_service_time", "read_durations"]

FAMILIES = ("exponential", "gamma", "lognormal", "weibull")
CRITERIA = ("aic", "bic", "ks")
UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}

FIT_COLUMNS = [
    "family",
    "n_params",  # free parameters (the location is fixed at 0)
    "shape",  # scipy's shape parameter (NaN for the exponential)
    "scale",  # scipy's scale parameter, seconds
    "mean_s",
    "cv",
    "loglik",
    "aic",
    "bic",
    "ks_stat",
    "ks_pvalue",  # optimistic: parameters estimated from the same samples
    "delta",  # criterion minus the best family's (0 for the best)
]


@dataclass(frozen=True)
class _Family:
    scipy: stats.rv_continuous
    n_params: int
    has_shape: bool

    def fit(self, x: np.ndarray) -> tuple[float, float]:
        """(shape, scale) by maximum likelihood with loc = 0; shape is NaN without one."""
        if not self.has_shape:
            return math.nan, float(x.mean())  # the exponential's MLE, exactly
        if self.scipy is stats.weibull_min:
            return _weibull_mle(x)
        shape, _, scale = self.scipy.fit(x, floc=0)
        return float(shape), float(scale)

    def frozen(self, shape: float, scale: float):
        args = () if not self.has_shape else (shape,)
        return self.scipy(*args, loc=0, scale=scale)


def _weibull_mle(x: np.ndarray) -> tuple[float, float]:
    """Weibull (shape, scale) MLE with loc = 0 from its profile equation, solved to 1e-12.

    scipy's generic optimiser stops near 1e-5 relative error; the score equation in ``k``,
    sum(y^k ln y) / sum(y^k) - 1/k - mean(ln y) = 0, is increasing in ``k``, so a bracketing
    root finder gets it exactly. ``y = x / max(x)`` keeps ``y^k`` in range.
    """
    top = float(x.max())
    ly = np.log(x / top)  # <= 0
    mean_ly = float(ly.mean())

    def score(log_k: float) -> float:
        k = math.exp(log_k)
        w = np.exp(k * ly)
        return float((w * ly).sum() / w.sum()) - 1.0 / k - mean_ly

    lo, hi = math.log(1e-3), math.log(1e4)
    if not score(lo) < 0 < score(hi):
        raise fail("fit_service_time", "samples", "vary too little for a Weibull fit "
                   "(cv below 1e-4)", float(np.std(x) / np.mean(x)))
    k = math.exp(optimize.brentq(score, lo, hi, xtol=1e-13, rtol=1e-13))
    return k, top * float(np.mean(np.exp(k * ly))) ** (1.0 / k)


_FAMILIES = {
    "exponential": _Family(stats.expon, 1, False),
    "gamma": _Family(stats.gamma, 2, True),
    "lognormal": _Family(stats.lognorm, 2, True),
    "weibull": _Family(stats.weibull_min, 2, True),
}


def _distribution(family: str, shape: float, scale: float) -> Distribution:
    """The capsim distribution that is exactly the fitted scipy one."""
    if family == "exponential":
        return Exponential(scale)
    if family == "gamma":
        return Gamma(mean=shape * scale, cv=1.0 / math.sqrt(shape))
    if family == "lognormal":
        return LogNormal(mean=scale * math.exp(shape**2 / 2), cv=math.sqrt(math.expm1(shape**2)))
    return Weibull.from_shape_scale(shape, scale)


def _params(family: str, shape: float, scale: float, dist: Distribution) -> dict[str, float]:
    natural = {
        "exponential": {"mean_s": scale},
        "gamma": {"shape": shape, "scale_s": scale},
        "lognormal": {"mu": math.log(scale), "sigma": shape},
        "weibull": {"shape": shape, "scale_s": scale},
    }[family]
    return {**natural, "mean_s": dist.mean, "cv": dist.cv}


@dataclass(frozen=True)
class FitReport:
    """The outcome of :func:`fit_service_time`.

    ``best`` is the family chosen by ``criterion``; ``params`` its parameters in the family's own
    terms (exponential: mean; gamma and Weibull: shape and scale; log-normal: mu and sigma of
    log X), plus ``mean_s`` and ``cv``; ``distribution`` the ready-to-use capsim distribution
    (``cs.Service(..., service_time=report.distribution)``); ``table`` one row per family
    (columns :data:`FIT_COLUMNS`), best first.
    """

    best: str
    params: dict[str, float]
    distribution: Distribution
    criterion: str
    n: int
    table: pd.DataFrame = field(repr=False, compare=False)

    def __str__(self) -> str:
        t = self.table
        ranks = ", ".join(f"{f} {d:+.1f}" for f, d in zip(t["family"], t["delta"], strict=True))
        return (f"best fit of {self.n} samples by {self.criterion.upper()}: {self.best} "
                f"{self.distribution!r}; {self.criterion} differences: {ranks}")


def _check_samples(samples, owner: str = "fit_service_time", name: str = "samples") -> np.ndarray:
    """Samples as a float array of durations > 0; a bad one is named by index and value."""
    try:
        x = np.asarray(samples, dtype=float)
    except (TypeError, ValueError) as exc:
        raise fail(owner, name, "must be numbers", samples) from exc
    if x.ndim != 1:
        raise fail(owner, name, "must be one-dimensional", f"an array of shape {x.shape}")
    if x.size < 2:
        raise fail(owner, name, "must hold at least 2 durations", x.size)
    for test, expected in ((~np.isfinite(x), "must be a finite number"),
                           (x < 0, "must be >= 0 (a duration)"),
                           (x == 0, "must be > 0 (the families fitted have no mass at 0; "
                                    "durations rounded down to 0?)")):
        bad = np.flatnonzero(test)
        if bad.size:
            i = int(bad[0])
            more = f" ({bad.size - 1} more)" if bad.size > 1 else ""
            raise ModelError(f"{owner}.{name}[{i}]: {expected}, got {float(x[i])!r}{more}")
    return x


def fit_service_time(
    samples,
    families: Sequence[str] = FAMILIES,
    criterion: str = "aic",
) -> FitReport:
    """Fit each family in ``families`` to ``samples`` (durations in seconds) and pick the best.

    ``criterion`` is ``"aic"`` (lowest Akaike information criterion; the default), ``"bic"``
    (Bayesian, penalises parameters more as n grows) or ``"ks"`` (smallest Kolmogorov-Smirnov
    distance to the empirical distribution). Use :func:`read_durations` to load a CSV.
    """
    x = _check_samples(samples)
    if isinstance(families, str):
        families = (families,)
    families = tuple(families)
    if not families:
        raise fail("fit_service_time", "families", f"must name at least one of {FAMILIES}",
                   families)
    for f in families:
        if f not in _FAMILIES:
            raise fail("fit_service_time", "families", f"each must be one of {FAMILIES}", f)
    if criterion not in CRITERIA:
        raise fail("fit_service_time", "criterion", f"must be one of {CRITERIA}", criterion)
    if np.ptp(x) == 0:
        raise fail("fit_service_time", "samples",
                   "must vary (all equal: use Deterministic instead)", float(x[0]))

    n = x.size
    rows, dists = [], {}
    for name in dict.fromkeys(families):
        fam = _FAMILIES[name]
        shape, scale = fam.fit(x)
        frozen = fam.frozen(shape, scale)
        loglik = float(np.sum(frozen.logpdf(x)))
        ks = stats.kstest(x, frozen.cdf)
        dist = _distribution(name, shape, scale)
        dists[name] = (shape, scale, dist)
        rows.append({
            "family": name, "n_params": fam.n_params, "shape": shape, "scale": scale,
            "mean_s": dist.mean, "cv": dist.cv, "loglik": loglik,
            "aic": 2 * fam.n_params - 2 * loglik,
            "bic": fam.n_params * math.log(n) - 2 * loglik,
            "ks_stat": float(ks.statistic), "ks_pvalue": float(ks.pvalue),
        })
    table = pd.DataFrame(rows)
    key = {"aic": "aic", "bic": "bic", "ks": "ks_stat"}[criterion]
    table["delta"] = table[key] - table[key].min()
    table = table.sort_values(key, kind="stable").reset_index(drop=True)[FIT_COLUMNS]
    best = str(table.loc[0, "family"])
    shape, scale, dist = dists[best]
    return FitReport(best=best, params=_params(best, shape, scale, dist), distribution=dist,
                     criterion=criterion, n=n, table=table)


def read_durations(path: str | Path, column: str | None = None, unit: str = "s") -> np.ndarray:
    """Durations in seconds from a CSV file (one duration per row).

    ``column`` picks the column; without it the file must have exactly one column (a header
    line is optional). ``unit`` is the unit the file is written in: ``"s"``, ``"ms"`` or
    ``"us"``. Lines starting with ``#`` are comments. An empty, non-numeric, negative or zero
    value fails with its row number (0 = first data row) and value.
    """
    path = Path(path)
    owner = f"read_durations({path.name!r})"
    if unit not in UNITS:
        raise fail("read_durations", "unit", f"must be one of {sorted(UNITS)}", unit)
    if not path.is_file():
        raise fail("read_durations", "path", "must be an existing file", str(path))
    try:
        frame = pd.read_csv(path, comment="#", skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        raise fail("read_durations", "path", "must hold at least 2 durations",
                   "an empty file") from None
    if _is_number(frame.columns[0]):  # no header line: the first row is data
        frame = pd.read_csv(path, comment="#", header=None, skip_blank_lines=True)
        frame.columns = [str(c) for c in frame.columns]
    columns = [str(c) for c in frame.columns]
    if column is None:
        if len(columns) != 1:
            raise fail("read_durations", "column", f"must name one of {columns}", None)
        column = columns[0]
    elif column not in columns:
        raise fail("read_durations", "column", f"must be one of {columns}", column)
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(np.isnan(values))
    if bad.size:
        i = int(bad[0])
        raw = frame[column].iloc[i]
        shown = "an empty cell" if pd.isna(raw) else repr(raw)
        raise ModelError(f"{owner}.{column}[{i}]: must be a number, got {shown}")
    return _check_samples(values, owner, column) * UNITS[unit]


def _is_number(text) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True
