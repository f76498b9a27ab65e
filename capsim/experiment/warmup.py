"""Warm-up detection by MSER-5 (White 1997; Hoad, Robinson & Davies 2010).

A run that starts empty is biased low until its queues fill. MSER picks the truncation point
that minimises the standard error of the mean of what is left: cutting the biased start lowers
it, cutting too much raises it again. Batches of 5 (MSER-5) smooth the per-request noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from capsim.engine import RunResult

BATCH = 5


def mser(values, batch: int = BATCH, max_fraction: float = 0.5) -> int:
    """Index into ``values`` where the steady part starts (a multiple of ``batch``).

    Only the first ``max_fraction`` of the series is a candidate: a minimum found later means
    the run is too short to tell, and the search says so by returning the limit.
    """
    x = np.asarray(values, dtype=float)
    n = x.size // batch
    if n < 4:
        return 0
    y = x[: n * batch].reshape(n, batch).mean(axis=1)
    # suffix sums give, for every cut d, the mean and SSE of y[d:] in O(n)
    s1 = np.cumsum(y[::-1])[::-1]
    s2 = np.cumsum((y * y)[::-1])[::-1]
    m = n - np.arange(n)
    stat = (s2 - s1 * s1 / m) / (m * m)
    limit = max(1, int(n * max_fraction))
    return int(np.argmin(stat[:limit])) * batch


def detect_warmup(runs: RunResult | Sequence[RunResult], batch: int = BATCH,
                  max_fraction: float = 0.5) -> float:
    """Warm-up time for replications of one model by MSER-5 on their averaged state.

    The series is the number of requests present (all stations) per sampling interval,
    averaged over the replications first (Welch's idea): a single run's random excursions
    would otherwise be cut away as if they were the transient, biasing the estimate low.
    """
    runs = [runs] if isinstance(runs, RunResult) else list(runs)
    times = runs[0].sample_times_s
    series = np.mean([np.diff(r.counter("area_in_system").sum(axis=1)) for r in runs], axis=0)
    series /= np.diff(times)
    cut = mser(series, batch, max_fraction)
    return float(times[cut])
