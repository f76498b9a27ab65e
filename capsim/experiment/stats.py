"""Confidence intervals over independent replications (Student t)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float]:
    """(mean, half-width) of the t confidence interval of the mean of i.i.d. ``values``.

    Infinite values (an unstable run) give (inf, nan): there is no interval for a divergent
    quantity. With one value the half-width is nan.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    if np.isinf(x).any():
        return float("inf"), float("nan")
    m = float(x.mean())
    if x.size < 2:
        return m, float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return m, float(half)


def ci_table(runs: pd.DataFrame, by: str, metrics: list[str],
             confidence: float = 0.95) -> pd.DataFrame:
    """Long table: one row per (``by`` value, metric) with mean, half_width, ci_low, ci_high."""
    rows = []
    for key, group in runs.groupby(by, sort=False, observed=True):
        for metric in metrics:
            m, half = mean_ci(group[metric], confidence)
            rows.append({by: key, "metric": metric, "mean": m, "half_width": half,
                         "ci_low": m - half, "ci_high": m + half,
                         "replications": int(group[metric].notna().sum())})
    return pd.DataFrame(rows)


def log_ci(estimate: float, per_run, confidence: float = 0.95) -> tuple[float, float]:
    """An interval around ``estimate`` as wide, on a log scale, as the t-interval of the mean
    of ``log(per_run)``: for positive, right-skewed estimates such as per-run percentiles.
    NaN bounds with fewer than two positive values."""
    x = np.asarray(per_run, dtype=float)
    x = x[np.isfinite(x) & (x > 0)]
    if x.size < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, x.size - 1) * np.log(x).std(ddof=1) / np.sqrt(
        x.size)
    return float(estimate * np.exp(-half)), float(estimate * np.exp(half))
