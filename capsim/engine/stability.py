"""Is this run in a steady state, and is it long enough for its tail estimates?

The model's offered load is a lower bound where the model cannot see everything (waits that
hold a caller's worker, retries after timeouts): a system it calls stable can still diverge.
So every run is also judged on what it measured, from the cumulative counters it samples
anyway (no extra cost per request):

* **Measured overload.** Arrivals at a station times its mean busy time per visit, against
  what its servers can do: ``rho_hat = A s / (c W)``. Flagged when ``rho_hat >= 1`` by more
  than ``Z`` standard errors of the offered work (Poisson counts, service variability).
* **Growth.** In the second half of the window the station was never idle (busy >= 98% of
  the time) *and* the number present has a significant upward trend (a t-test on the slope of
  ten batch means) that is large against the level (it grew by at least a fifth of its mean)
  and against the wandering of a critically loaded queue over the window. A window shorter
  than ``JUDGE_RELAXATIONS`` relaxation times at the model's offered load cannot tell a slow
  excursion from divergence: growth is not judged there (and its rows are not adequate).
  A stable station is rarely saturated for that long, and then its queue does not climb
  steadily; a diverging one does both. The false-alarm rate is measured in
  ``tests/validation/test_divergence.py``.

Run length. Near saturation a queue forgets its past slowly: its relaxation time is about
``(1 + cs^2) / 2 * s / (c (1 - sqrt(rho))^2)`` (exact for M/M/1's spectral gap, the
heavy-traffic order for M/G/c), from the measured utilization ``rho``, mean busy time ``s``
and service variability ``cs^2``. A window shorter than ``ADEQUATE_RELAXATIONS`` relaxation
times of the slowest station a flow visits gives tail estimates that are biased and whose
spread across replications understates their error: such rows are marked ``adequate=False``
and :class:`capsim.RunLengthWarning` is raised.
"""

from __future__ import annotations

import math

import numpy as np

Z = 5.0  # standard errors for "measured overload": false alarms ~3e-7 per station
BUSY = 0.98  # "never idle" in the second half of the window
TREND_P = 1e-3  # one-sided p-value of the batch-means trend
GROWTH = 0.2  # the trend must add at least this fraction of the mean present
WANDER = 2.0  # ... and more than a critically loaded queue wanders, in standard deviations
JUDGE_RELAXATIONS = 5.0  # growth is judged only in windows this many model relaxation times
BATCHES = 10
ADEQUATE_RELAXATIONS = 50.0  # window / relaxation time needed for tail estimates


def measured_overload(arrivals: float, work_per_visit_s: float, servers: float,
                      window_s: float, scv: float) -> float | None:
    """``rho_hat`` when the arrivals significantly exceed capacity, else None."""
    if not (arrivals > 0 and math.isfinite(servers) and servers > 0
            and work_per_visit_s > 0 and window_s > 0):
        return None
    rho = arrivals * work_per_visit_s / (servers * window_s)
    se = rho * math.sqrt((1.0 + scv) / arrivals)
    return rho if rho - 1.0 > Z * se else None


def growth(times: np.ndarray, present_mean: np.ndarray, busy_fraction_late: float,
           arrivals: float, completions: float, scv: float) -> float | None:
    """Growth rate (per second) of the number present when it is significant, else None.

    ``present_mean`` is the time-average number present per sampling interval ending at
    ``times``; ``busy_fraction_late`` the fraction of server time busy in the window's second
    half; ``arrivals`` and ``completions`` count the window. The growth must also outrun what
    a critically loaded queue (rho = 1, a random walk of variance ``(1 + scv)`` per request)
    would wander in that time, by ``WANDER`` standard deviations: a long busy excursion of a
    stable queue then does not pass for divergence.
    """
    if busy_fraction_late < BUSY or present_mean.size < 2 * BATCHES:
        return None
    from scipy import stats  # here, not at import: a worker that only simulates never needs it

    n = present_mean.size // BATCHES * BATCHES
    x = times[-n:].reshape(BATCHES, -1).mean(axis=1)
    y = present_mean[-n:].reshape(BATCHES, -1).mean(axis=1)
    fit = stats.linregress(x, y)
    grown = fit.slope * float(times[-1] - times[0])
    wander = WANDER * math.sqrt((1.0 + scv) * (arrivals + completions) / 2.0)
    if not fit.slope > 0 or grown < max(GROWTH * float(np.mean(y)), wander):
        return None
    if fit.stderr > 0 and stats.t.sf(fit.slope / fit.stderr, BATCHES - 2) > TREND_P:
        return None
    return float(fit.slope)


def autocorrelation_time_s(series: np.ndarray, step_s: float) -> float:
    """Integrated autocorrelation time (seconds) of a sampled state, summed up to the first
    negative lag (Geyer's initial positive sequence, simplified).

    For a station whose queue is bounded (a finite buffer, a closed population) the
    heavy-traffic formula does not hold; what the run itself shows does.
    """
    x = np.asarray(series, dtype=float) - np.mean(series)
    var = float(x @ x)
    if x.size < 4 or var <= 0:
        return 0.0
    acf = np.correlate(x, x, mode="full")[x.size:] / var
    stop = np.argmax(acf < 0) if (acf < 0).any() else acf.size
    return float(step_s * (0.5 + acf[:stop].sum()))


def relaxation_time_s(utilization: float, servers: float, busy_per_visit_s: float,
                      scv: float) -> float:
    """Relaxation time of a queue at this utilization (0 for delays and idle stations)."""
    if not (math.isfinite(servers) and servers > 0 and busy_per_visit_s > 0
            and utilization > 0):
        return 0.0
    rho = min(utilization, 0.999_999)
    return (1.0 + scv) / 2.0 * busy_per_visit_s / (servers * (1.0 - math.sqrt(rho)) ** 2)
