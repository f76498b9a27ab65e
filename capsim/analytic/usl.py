"""Universal Scalability Law (Gunther): throughput as a function of concurrency.

    X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1))

``lambda`` is the throughput of one unit of concurrency without interference, ``sigma`` the
contention (the serial share, Amdahl's law when ``kappa = 0``) and ``kappa`` the coherency
cost (crosstalk, which makes throughput go *down* past ``N_max = sqrt((1 - sigma) / kappa)``).

This module holds the law itself, so that the scaling layer and the fitted model compute it
one way. Fitting it to measurements is calibration: ``capsim.calibrate.usl`` (``fit`` and
``USLFit`` are re-exported here, where they used to live, and imported on first use).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["capacity", "peak_concurrency", "peak_throughput", "throughput"]

_CALIBRATION = ("USLFit", "fit")  # fitting lives in capsim.calibrate.usl (see __getattr__)


def throughput(n, sigma: float, kappa: float, lambda_: float) -> np.ndarray | float:
    """X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1)), vectorised over ``n``."""
    x = _usl(np.asarray(n, dtype=float), sigma, kappa, lambda_)
    return float(x) if np.ndim(x) == 0 else x


def capacity(n, sigma: float, kappa: float) -> np.ndarray | float:
    """C(N) = X(N) / lambda = N / (1 + sigma (N - 1) + kappa N (N - 1)): the capacity of ``n``
    units of concurrency (cores, workers) in units of one."""
    return throughput(n, sigma, kappa, 1.0)


def peak_concurrency(sigma: float, kappa: float) -> float:
    """Concurrency of peak throughput, N_max = sqrt((1 - sigma) / kappa).

    ``inf`` when kappa = 0 (throughput only levels off, towards lambda / sigma); 1 when
    sigma >= 1 (no concurrency helps).
    """
    if sigma >= 1.0:
        return 1.0
    if kappa == 0.0:
        return math.inf
    return math.sqrt((1.0 - sigma) / kappa)


def peak_throughput(sigma: float, kappa: float, lambda_: float) -> float:
    """Peak throughput X(N_max); with kappa = 0 the ceiling lambda / sigma (or inf)."""
    n = peak_concurrency(sigma, kappa)
    if math.isinf(n):
        return lambda_ / sigma if sigma > 0 else math.inf
    return throughput(n, sigma, kappa, lambda_)


def _usl(n: np.ndarray, sigma: float, kappa: float, lambda_: float) -> np.ndarray:
    return lambda_ * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))


def __getattr__(name: str):
    """``usl.fit`` and ``usl.USLFit`` from calibration, imported when first asked for (the
    calibration module imports this one, and brings scipy)."""
    if name in _CALIBRATION:
        from capsim.calibrate import usl as calibration

        return getattr(calibration, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
