"""The USL figure: measured throughput, the fitted curve, linear scaling and the peak."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

if TYPE_CHECKING:
    from capsim.calibrate.usl import USLFit

__all__ = ["usl_plot"]


def usl_plot(fit: USLFit, ax: Axes | None = None, *, n_to: float | None = None,
             label: str = "USL fit") -> Axes:
    """Measured points, the fitted curve, linear scaling and the peak, on ``ax`` (a new figure
    if None); the x axis runs to ``n_to`` (default: past the data and, when near, the peak)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.2))
    n_obs = np.asarray(fit.concurrency)
    top = n_to or max(n_obs.max() * 1.5, min(fit.n_max * 1.3, n_obs.max() * 4))
    grid = np.linspace(min(1.0, n_obs.min()), top, 400)
    curve = fit.predict(grid)
    ax.plot(grid, curve, color="C0", lw=2,
            label=f"{label}: σ={fit.sigma:.3g}, κ={fit.kappa:.3g}, λ={fit.lambda_:.3g}")
    ideal = fit.lambda_ * grid
    keep = ideal <= curve.max() * 1.25
    ax.plot(grid[keep], ideal[keep], color="0.6", ls="--", lw=1, label="linear scaling λN")
    ax.plot(n_obs, fit.throughput, "o", color="C1", mec="white", label="measured")
    if np.isfinite(fit.n_max) and fit.n_max <= top:
        ax.plot([fit.n_max], [fit.x_max], "v", color="C3", ms=8,
                label=f"peak: N={fit.n_max:.3g}, X={fit.x_max:.4g}")
    ax.set_xlabel("concurrency N")
    ax.set_ylabel("throughput X(N)")
    ax.set_xlim(0, top)
    ax.set_ylim(0, None)
    ax.legend(loc="lower right", fontsize="small")
    return ax
