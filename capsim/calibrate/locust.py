"""Locust's stats history, read into capsim's table of load steps (:data:`LOADTEST_COLUMNS`).

``locust --csv=prefix`` appends to ``prefix_stats_history.csv`` about once a second (Locust 2.47,
``locust/stats.py``, ``StatsCSVFileWriter._stats_history_data_rows`` and
``StatsCSV._percentile_fields``). What a row holds depends on the mode:

* **default** (``--csv`` alone): only the ``Aggregated`` row (all endpoints), and its percentile
  columns are *cumulative since the test started*. They cannot give a step's own percentiles.
* **full history** (``--csv --csv-full-history``): one row per endpoint (``Type`` = method,
  ``Name``) then ``Aggregated``, and the percentile columns are the *current* ones: the responses
  of about the last 10 s (``CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW``). A window with no
  response in it, or none cached yet (the first seconds of a test), is written as ``0``; an
  endpoint with no request yet as ``N/A``. Both are missing values here, not 0 ms responses.

In both modes the ``Total …`` columns are cumulative from the start (failed requests, with their
response times, included), so a step's request count, failures and mean response time are exact
differences between its first and last kept rows. ``Requests/s`` is a 10 s average ending 2 s
before the last request, failures included; it is not used. A stepped test is cut into steps
(runs of rows with the same ``User Count``), and the first ``settle_s`` seconds of each are
dropped: the ramp, the queue filling, and the 10 s percentile window still holding the step
before. ``Timestamp`` is whole seconds while rows come a little more than 1 s apart, so a
step's span is the file's mean row period times their number (see :func:`_span`).
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from capsim.calibrate.loadtest import LOADTEST_COLUMNS, _paths
from capsim.errors import (
    MeasurementWarning,
    ModelError,
    check_name,
    check_number,
    did_you_mean,
    fail,
)

__all__ = ["LOCUST_WINDOW_S", "read_locust_history"]

LOCUST_REQUIRED = ["Timestamp", "User Count", "Type", "Name", "Total Request Count",
                   "Total Failure Count", "Total Average Response Time"]
LOCUST_WINDOW_S = 10.0  # Locust's CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW: the "current" span
TOTAL = "Aggregated"  # Locust's name for the all-endpoints row (its Type is empty)
_PERCENTILE = re.compile(r"^\d+(\.\d+)?%$")


def read_locust_history(path: str | Path, settle_s: float = 10.0, name: str = TOTAL, *,
                        method: str | None = None) -> pd.DataFrame:
    """One row per load step of a Locust ``prefix_stats_history.csv``, in either mode.

    A step is a run of consecutive rows with the same ``User Count`` (0 users is no step); its
    first ``settle_s`` seconds are dropped and a step with fewer than two rows left is skipped
    (a ramp passing through). Throughput, error rate and mean come from the cumulative totals.
    p50 / p95 / p99 are the median of the kept rows' windowed percentiles in a full-history
    file, and NaN, with a :class:`MeasurementWarning`, in a default-mode one (which only has
    cumulative percentiles). ``name`` picks an endpoint of a full-history file (``method`` its
    ``Type`` when one name has several), ``"Aggregated"`` all of them. The result's
    ``attrs`` hold ``locust_mode`` (``"default"`` or ``"full-history"``) and ``settle_s``.

    A kept row's percentile window reaches ~10 s back, so ``settle_s`` >= 10 keeps the step
    before out of it (a shorter one warns); at exactly 10 the first kept windows still hold the
    step's own start, which the median over the rows damps.
    """
    (path,) = _paths(path, "read_locust_history")
    settle_s = check_number("read_locust_history", "settle_s", settle_s, strict=False)
    owner = f"read_locust_history({path.name!r})"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in LOCUST_REQUIRED if c not in frame.columns]
    if missing:
        raise ModelError(f"{owner}: missing columns {missing}; expected the "
                         "prefix_stats_history.csv that `locust --csv=prefix` writes")
    kind, names = frame["Type"].str.strip(), frame["Name"].str.strip()
    is_total = (names == TOTAL) & (kind == "")
    full_history = not is_total.all()  # only --csv-full-history writes per-endpoint rows
    rows = _select(frame, is_total, kind, names, name, method, full_history, owner)
    if full_history and settle_s < LOCUST_WINDOW_S:
        warnings.warn(f"{owner}: settle_s={settle_s:g} is shorter than Locust's "
                      f"{LOCUST_WINDOW_S:g} s percentile window, so the first kept rows' "
                      "percentiles still hold responses of the step before",
                      MeasurementWarning, stacklevel=2)

    t = _numbers(rows, "Timestamp", owner)
    users = _numbers(rows, "User Count", owner)
    total = _numbers(rows, "Total Request Count", owner)
    failures = _numbers(rows, "Total Failure Count", owner)
    mean_ms = _numbers(rows, "Total Average Response Time", owner)
    _check_order(rows, t, "Timestamp", owner, "a file appended to twice?")
    pct = _windowed_percentiles(rows, owner) if full_history else None
    period = _row_period(frame[is_total] if is_total.sum() > 1 else rows, owner)

    out, blind = [], []
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], users.size]
    for a, b in zip(starts, ends, strict=True):
        if users[a] <= 0:
            continue
        steady = np.arange(a, b)[t[a:b] >= t[a] + settle_s]
        if steady.size < 2 or t[steady[-1]] <= t[steady[0]]:
            continue
        i, j = steady[0], steady[-1]
        _check_order(rows.iloc[i:j + 1], total[i:j + 1], "Total Request Count", owner,
                     "the totals restart (--reset-stats) inside a step's kept rows")
        dt, n, nf = _span(t, period, i, j), total[j] - total[i], failures[j] - failures[i]
        if pct is None:
            quantiles = dict.fromkeys((50, 95, 99), math.nan)
        else:
            quantiles = {q: _nanmedian(pct[q][steady]) for q in (50, 95, 99)}
            if n > 0 and math.isnan(quantiles[50]):
                blind.append(f"{users[a]:g} users")
        out.append({
            "source": path.name,
            "step": len(out),
            "concurrency": users[a],
            "arrival_rate_per_s": math.nan,  # closed loop: the users' wait time sets the rate
            "duration_s": dt,
            "requests": n,
            "throughput_per_s": (n - nf) / dt,
            "mean_s": ((mean_ms[j] * total[j] - mean_ms[i] * total[i]) / n * 1e-3
                       if n > 0 else math.nan),
            **{f"p{q}_s": v * 1e-3 for q, v in quantiles.items()},
            "error_rate": nf / n if n > 0 else math.nan,
        })
    if not out:
        raise ModelError(f"{owner}: no load step lasts longer than settle_s={settle_s:g} s plus "
                         "two rows; lower settle_s or run longer steps")
    if pct is None:
        warnings.warn(_default_mode_message(owner, rows), MeasurementWarning, stacklevel=2)
    elif blind:
        warnings.warn(f"{owner}: every kept row of the step(s) at {', '.join(blind)} has an "
                      "empty percentile window (0 or N/A), so their p50_s/p95_s/p99_s are NaN",
                      MeasurementWarning, stacklevel=2)
    table = pd.DataFrame(out, columns=LOADTEST_COLUMNS)
    table.attrs.update(locust_mode="full-history" if full_history else "default",
                       settle_s=settle_s)
    return table


def _select(frame: pd.DataFrame, is_total: pd.Series, kind: pd.Series, names: pd.Series,
            name: str, method: str | None, full_history: bool, owner: str) -> pd.DataFrame:
    """The rows of one endpoint (or of ``Aggregated``), with a clear error when none match."""
    check_name(owner, "name", name)
    if name == TOTAL:
        if method is not None:
            raise fail(owner, "method", "must be None for the Aggregated rows (they have no "
                       "Type)", method)
        if not is_total.any():
            raise ModelError(f"{owner}: no 'Aggregated' rows (Type empty); expected the "
                             "prefix_stats_history.csv that `locust --csv=prefix` writes")
        return frame[is_total]
    if not full_history:
        raise fail(owner, "name", "must be 'Aggregated': a file written without "
                   "--csv-full-history has only the Aggregated rows (run Locust with "
                   "--csv-full-history for per-endpoint rows)", name)
    endpoints = sorted(set(names[~is_total]))
    picked = (names == name) & ~is_total
    if not picked.any():
        raise fail(owner, "name", f"must be 'Aggregated' or an endpoint of the file "
                   f"{endpoints}{did_you_mean(name, [TOTAL, *endpoints])}", name)
    types = sorted(set(kind[picked]))
    if method is None and len(types) > 1:
        raise fail(owner, "method", f"must pick one of the request types {types} of "
                   f"endpoint {name!r}", method)
    if method is not None:
        if method not in types:
            raise fail(owner, "method", f"must be a request type of endpoint {name!r}, "
                       f"one of {types}", method)
        picked &= kind == method
    return frame[picked]


def _numbers(rows: pd.DataFrame, col: str, owner: str) -> np.ndarray:
    raw = rows[col].str.strip()
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ModelError(f"{owner}[{col!r}] row {rows.index[i]}: must be a number, "
                         f"got {rows[col].iloc[i]!r}")
    return values


def _check_order(rows: pd.DataFrame, values: np.ndarray, col: str, owner: str,
                 hint: str) -> None:
    back = np.flatnonzero(np.diff(values) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise ModelError(f"{owner}[{col!r}] row {rows.index[i]}: must not decrease, got "
                         f"{values[i]:g} after {values[i - 1]:g} ({hint})")


def _windowed_percentiles(rows: pd.DataFrame, owner: str) -> dict[int, np.ndarray]:
    """p50 / p95 / p99 (ms) of each row's 10 s window; NaN where the window is empty.

    Locust writes ``N/A`` before an endpoint's first request and ``0`` in every percentile
    column of a window without responses (or without a cached start yet), so a row whose
    percentile columns are all 0 or N/A is empty. A 0 beside a nonzero percentile is a real
    sub-millisecond response and is kept.
    """
    cols = [c for c in rows.columns if _PERCENTILE.match(c.strip())]
    table = {}
    for c in cols:
        raw = rows[c].str.strip()
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        bad = (np.isnan(values) & ~raw.isin(["N/A", ""]).to_numpy()) | (values < 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ModelError(f"{owner}[{c!r}] row {rows.index[i]}: must be a number of ms "
                             f"or N/A, got {rows[c].iloc[i]!r}")
        table[c.strip()] = values
    empty = np.ones(len(rows), dtype=bool)
    for values in table.values():
        empty &= np.isnan(values) | (values == 0)
    nan = np.full(len(rows), np.nan)
    return {q: np.where(empty, np.nan, table.get(f"{q}%", nan)) for q in (50, 95, 99)}


def _default_mode_message(owner: str, rows: pd.DataFrame) -> str:
    message = (f"{owner}: written without --csv-full-history, so its percentile columns are "
               "cumulative since the test started, not each step's own: p50_s/p95_s/p99_s are "
               "NaN (throughput, mean and error rate come from the cumulative totals and are "
               "exact). Re-run Locust with --csv --csv-full-history for per-step percentiles")
    # in this mode Locust's "50%" and "Total Median Response Time" are the same cumulative
    # median (up to clamping to min/max); a file where they differ was not written so
    if "50%" in rows.columns and "Total Median Response Time" in rows.columns:
        p50 = pd.to_numeric(rows["50%"].str.strip(), errors="coerce")
        median = pd.to_numeric(rows["Total Median Response Time"].str.strip(), errors="coerce")
        both = p50.notna() & median.notna() & (p50 > 0)
        differ = int((p50[both] != median[both]).sum())
        if differ > 0.1 * max(int(both.sum()), 1):
            message += (f". Its 50% column differs from 'Total Median Response Time' in "
                        f"{differ} of {int(both.sum())} rows, which Locust's default mode never "
                        "writes (both are the cumulative median there): was it made by hand?")
    return message


def _row_period(rows: pd.DataFrame, owner: str) -> float:
    """Mean seconds between Locust's writes, from one row a write (the Aggregated ones), so
    that every endpoint of a file is timed on the same clock."""
    t = _numbers(rows, "Timestamp", owner)
    return float((t[-1] - t[0]) / (t.size - 1)) if t.size > 1 and t[-1] > t[0] else 1.0


def _span(t: np.ndarray, period: float, i: int, j: int) -> float:
    """Seconds between rows ``i`` and ``j`` (timestamps ``t``), rows ``period`` s apart.

    Locust stamps a row with ``int(time.time())`` and writes one every second plus its own
    work, so now and then a whole second slips (a 14 s span stamped 15 s, 7 % off). The file's
    mean row period times the rows between gives the span; the stamps bound it to within 1 s
    of their difference, and it is clipped to that (a stalled writer).
    """
    stamped = t[j] - t[i]
    return float(np.clip((j - i) * period, stamped - 1, stamped + 1))


def _nanmedian(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(np.median(x)) if x.size else math.nan
