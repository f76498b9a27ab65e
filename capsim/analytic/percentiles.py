"""Latency percentiles of the twin: per-route sojourn times convolved on a grid.

Stations are taken as independent: exact for one M/M/c station and for M/M/1 tandems (Reich),
an approximation elsewhere.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special

from capsim.analytic.stations import prio_of, visit_mean, visit_variance, visit_wait
from capsim.model import Visit

__all__ = ["GRID_POINTS", "QUANTILES", "latency_percentiles"]

NAN = math.nan
QUANTILES = (0.50, 0.95, 0.99)
STRETCH_POINTS = 24  # quadrature of a PS visit's random slowdown
GRID_POINTS = 1 << 13  # cells per route grid: M/M/1 p99 within ~1e-5 relative (midpoint rule)


def latency_percentiles(groups, stations, states) -> dict[str, tuple[float, float, float]]:
    """p50/p95/p99 of each group's mixture of routes, from grid convolutions per route.

    Each route gets its own grid (a power-of-two span from mean + 10 sd, doubled until
    99.99% of the mass is on it), so a 1 ms route is not blurred by a 10 s one; the mixture
    CDF is then inverted by root finding on the interpolated route CDFs.
    """
    spectra: dict[tuple[str, float, float, int], np.ndarray] = {}
    cdfs = {}
    for calls in {calls for routes in groups.values() for _, calls in routes}:
        cdfs[calls] = _route_cdf(calls, stations, states, spectra)
    out = {}
    for label, routes in groups.items():
        parts = _merged([(p, *cdfs[calls]) for p, calls in routes])
        out[label] = tuple(_mixture_quantile(parts, q) for q in QUANTILES)
    return out


def _merged(parts):
    """The mixture with its routes on one grid summed first: the same piecewise-linear CDF
    (interpolation is linear in the values), read with one interpolation per distinct grid
    instead of one per route (a shop's flow has hundreds of routes on a handful of grids)."""
    grids: dict[tuple[int, float], list] = {}
    for w, xs, fs in parts:
        key = (xs.size, float(xs[-1]))  # a route grid is fixed by its cells and its span
        if key in grids:
            grids[key][1] = grids[key][1] + w * fs
        else:
            grids[key] = [xs, w * fs]
    return [(1.0, xs, fs) for xs, fs in grids.values()]


def _route_cdf(calls, stations, states, spectra) -> tuple[np.ndarray, np.ndarray]:
    """CDF of one route's latency at cell edges ``(i + 1/2) dx``, with a leading (0, 0)."""
    mean = sum(visit_mean(c, stations, states) for c in calls)
    var = sum(visit_variance(c, stations, states) for c in calls)
    wide = mean + 10.0 * math.sqrt(max(var, 0.0))
    span = 2.0 ** math.ceil(math.log2(wide)) if wide > 0 else 1e-9
    n = GRID_POINTS
    for _ in range(12):
        dx = span / n
        # the route's spectrum is the product of its visits' (a repeated visit's to a power):
        # one inverse transform per route. Mass pushed past the grid only moves further out,
        # so truncating once at the end is truncating after every visit, up to what wraps
        # round past twice the grid (the grid holds all but 1e-4 of the mass)
        counts: dict = {}
        for call in calls:
            counts[call] = counts.get(call, 0) + 1
        spectrum = np.ones(n + 1, dtype=complex)
        for call, k in counts.items():
            one = _spectrum(call, span, n, stations, states, spectra)
            spectrum = spectrum * (one if k == 1 else one**k)
        pmf = np.maximum(np.fft.irfft(spectrum, 2 * n)[:n], 0.0)
        cdf = np.cumsum(pmf)
        if cdf[-1] >= 1.0 - 1e-4:
            break
        span, n = 2.0 * span, min(2 * n, 16 * GRID_POINTS)
    edges = (np.arange(n) + 0.5) * dx
    return np.concatenate([[0.0], edges]), np.concatenate([[0.0], cdf])


def _spectrum(visit: Visit, span, n, stations, states, cache) -> np.ndarray:
    """FFT (length 2n) of one visit's pmf: the station's wait convolved with the visit's own
    (scaled) service; the calls a holder makes are visits of their own on the route. A visit
    to a priority station waits its class's wait; under processor sharing (or on a shared
    host) its own service is stretched by a random slowdown: a gamma factor with the
    station's mean slowdown (``E[T | x] = x stretch``, exact in mean for M/G/1-PS) and the
    scv that gives M/M/1-PS its exact second moment (``r / (2 - r)``, ``r = 1 - 1 /
    stretch``): an approximation of PS tails.

    Each grid point carries the mass of the cell around it (midpoint rule), so sums of
    stations land on grid points without a drift of half a cell per station.
    """
    name, state = visit.component, states[visit.component]
    scale = visit.scale * state.stretch  # processor sharing: the mean slowdown, applied
    prio = prio_of(visit)
    key = (name, scale, visit.service, prio, span, n)
    if key not in cache:
        edges = (np.arange(n) + 0.5) * (span / n)
        wait = np.diff(visit_wait(visit, state)[2](edges), prepend=0.0)
        own = visit.service_of(stations[name].service)
        cdf = np.zeros(n)
        for y, w in _stretch_points(state.stretch_scv):
            cdf += w * np.asarray(own.cdf(edges / (scale * y)), float)
        service = np.diff(cdf, prepend=0.0)
        cache[key] = np.fft.rfft(_convolve(wait, np.fft.rfft(service, 2 * n)), 2 * n)
    return cache[key]


def _stretch_points(scv: float) -> list[tuple[float, float]]:
    """Gauss-Laguerre points (factor, weight) of a mean-1 gamma with this scv: the slowdown
    a PS visit draws (one point, 1, when it is as good as fixed)."""
    if scv < 0.02:
        return [(1.0, 1.0)]
    k = 1.0 / scv
    x, w = special.roots_genlaguerre(STRETCH_POINTS, k - 1.0)
    w = w / w.sum()
    return [(float(xi / k), float(wi)) for xi, wi in zip(x, w, strict=True) if wi > 1e-14]


def _convolve(pmf: np.ndarray, spectrum: np.ndarray) -> np.ndarray:
    """Linear (not circular) convolution, truncated to the grid: mass past the end is dropped."""
    n = pmf.size
    out = np.fft.irfft(np.fft.rfft(pmf, 2 * n) * spectrum, 2 * n)[:n]
    return np.maximum(out, 0.0)


def _mixture_quantile(parts, q: float) -> float:
    """Invert ``sum_r w_r F_r(x)`` (piecewise linear F_r); NaN if the grids hold too little."""
    def cdf(x: float) -> float:
        return sum(w * np.interp(x, xs, fs) for w, xs, fs in parts)

    hi = max(xs[-1] for _, xs, _ in parts)
    if cdf(hi) < q:
        return NAN
    return float(optimize.brentq(lambda x: cdf(x) - q, 0.0, hi, xtol=1e-12 * hi, rtol=1e-12))
