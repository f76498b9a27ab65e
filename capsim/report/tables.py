"""The small tables that report plots draw: analytic curves, simulated points, checks.

Analytic curves come from :mod:`capsim.analytic.queues` (exact where theory is exact, and
flagged when it is an approximation); simulated points come from replications with their
confidence intervals. Column names follow :mod:`capsim.schema` (``mean_s``, ``p99_s``,
``mean_wait_s``) so a curve and the points it is checked against line up by name.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from capsim.analytic.queues import mg1_wait, mmc, mmc_response_quantile
from capsim.engine import RunResult
from capsim.schema import ALL_FLOWS

if TYPE_CHECKING:  # read by duck typing: reporting imports nothing from capsim.experiment
    from capsim.experiment import Replications

__all__ = ["burst_headroom", "compare_to_theory", "littles_law_table", "replication_points",
           "station_curve"]

CURVE_COLUMNS = ["utilization", "arrival_rate_per_s", "mean_wait_s", "mean_s", "p99_s",
                 "exact", "stable"]


def _station_point(rho: float, servers: int, mean_service_s: float,
                   cv: float) -> tuple[float, float, float, bool]:
    """(mean wait, mean response, p99 response, exact) of one station at utilization ``rho``."""
    lam = rho * servers / mean_service_s
    if rho >= 1.0:
        return math.inf, math.inf, math.inf, True
    if cv == 1.0:  # M/M/c: Erlang C, and the exact sojourn distribution
        res = mmc(lam, mean_service_s, servers)
        p99 = mmc_response_quantile(0.99, lam, mean_service_s, servers)
        return res.mean_wait, res.mean_response, p99, True
    if servers == 1:  # M/G/1: Pollaczek-Khinchine is exact for the mean; no closed-form p99
        wait = mg1_wait(lam, mean_service_s, cv**2)
        return wait, wait + mean_service_s, math.nan, True
    # M/G/c: Allen-Cunneen, i.e. the M/M/c wait scaled by (1 + cs2) / 2 (an approximation)
    wait = mmc(lam, mean_service_s, servers).mean_wait * (1.0 + cv**2) / 2.0
    return wait, wait + mean_service_s, math.nan, False


def station_curve(utilizations: Iterable[float], *, servers: int = 1,
                  mean_service_s: float = 0.010, cv: float = 1.0) -> pd.DataFrame:
    """Analytic latency of one Poisson-fed station against its utilization.

    The hockey stick in numbers: one row per utilization with the arrival rate that gives it,
    mean wait, mean and p99 response (seconds). ``cv`` is the service-time coefficient of
    variation: cv = 1 is M/M/c (mean and p99 exact); otherwise the mean is exact for one
    server (P-K) and approximate for several (``exact`` False), and p99 is NaN (no closed
    form). At utilization >= 1 there is no steady state: latencies are ``inf``.
    """
    if servers < 1 or mean_service_s <= 0 or cv < 0:
        raise ValueError("station_curve: need servers >= 1, mean_service_s > 0, cv >= 0")
    rows = []
    for rho in utilizations:
        rho = float(rho)
        if not rho >= 0.0:  # also rejects NaN
            raise ValueError(f"station_curve: utilization must be >= 0, got {rho!r}")
        wait, mean, p99, exact = _station_point(rho, servers, mean_service_s, cv)
        rows.append({"utilization": rho, "arrival_rate_per_s": rho * servers / mean_service_s,
                     "mean_wait_s": wait, "mean_s": mean, "p99_s": p99, "exact": exact,
                     "stable": rho < 1.0})
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def burst_headroom(utilizations: Sequence[float], *, burst: float = 0.2, servers: int = 1,
                   mean_service_s: float = 0.010, cv: float = 1.0) -> pd.DataFrame:
    """What a traffic burst of ``burst`` (0.2 = +20%) does to a station at each utilization.

    Columns: utilization before and after the burst, the share of the spare capacity the burst
    uses (``headroom_used``; > 1 means the burst does not fit), the slope of mean latency in
    seconds per percentage point of utilization, and mean / p99 latency before and after with
    the ``slowdown`` (after / before mean). This is why an alarm line sits near 80%: past it a
    modest burst multiplies latency or has no steady state at all.
    """
    if burst < 0:
        raise ValueError(f"burst_headroom: burst must be >= 0, got {burst!r}")
    rhos = np.asarray(utilizations, dtype=float)
    kw = {"servers": servers, "mean_service_s": mean_service_s, "cv": cv}
    before = station_curve(rhos, **kw)
    after = station_curve(rhos * (1.0 + burst), **kw)
    h = 1e-6  # central difference; exact enough for a curve this smooth below rho = 1
    up = station_curve(np.minimum(rhos + h, 1.0), **kw)["mean_s"].to_numpy()
    down = station_curve(np.maximum(rhos - h, 0.0), **kw)["mean_s"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(rhos + h < 1.0, (up - down) / (2 * h) / 100.0, np.inf)
        spare = 1.0 - rhos
        used = np.where(spare > 0, burst * rhos / spare, np.inf)
        slowdown = after["mean_s"].to_numpy() / before["mean_s"].to_numpy()
    return pd.DataFrame({
        "utilization": rhos,
        "after_burst": rhos * (1.0 + burst),
        "headroom_used": used,
        "slope_s_per_point": slope,
        "mean_s": before["mean_s"].to_numpy(),
        "mean_after_s": after["mean_s"].to_numpy(),
        "p99_s": before["p99_s"].to_numpy(),
        "p99_after_s": after["p99_s"].to_numpy(),
        "slowdown": slowdown,
        "stable_after": after["stable"].to_numpy(),
    })


def replication_points(results: Mapping[float, Replications],
                       metrics: Sequence[str] = ("mean_s", "p99_s"), *,
                       table: Literal["latency", "components"] = "latency",
                       name: str | None = None, x: str = "utilization") -> pd.DataFrame:
    """Simulated points with confidence intervals, one row per (x value, metric).

    ``results`` maps an x value (say the utilization a run was set up for) to its
    replications; ``table`` picks ``latency()`` (per flow) or ``components()``. ``name``
    keeps one flow or component; by default the pooled ``"all"`` flow row if there is one,
    else the only row. Columns: x, metric, mean, half_width, ci_low, ci_high.
    """
    key = "flow" if table == "latency" else "component"
    frames = []
    for xv, reps in results.items():
        df = getattr(reps, table)()
        names = list(dict.fromkeys(df[key]))
        pick = name
        if pick is None:
            if table == "latency" and ALL_FLOWS in names:
                pick = ALL_FLOWS
            elif len(names) == 1:
                pick = names[0]
            else:
                raise ValueError(f"replication_points: several {key}s {names}; pass name=")
        sel = df[(df[key] == pick) & df["metric"].isin(metrics)]
        if sel.empty:
            raise ValueError(f"replication_points: no {metrics} for {key} {pick!r}")
        frames.append(sel.assign(**{x: float(xv)}))
    out = pd.concat(frames, ignore_index=True)
    return out[[x, "metric", "mean", "half_width", "ci_low", "ci_high"]]


def compare_to_theory(points: pd.DataFrame, curve: pd.DataFrame, *,
                      x: str = "utilization") -> pd.DataFrame:
    """Simulated points next to the analytic value at the same x: does theory sit in the CI?

    ``points`` is a :func:`replication_points` table, ``curve`` a :func:`station_curve` table
    evaluated at (at least) the same x values. Adds ``theory``, ``rel_error`` (simulated /
    theory - 1) and ``inside_ci``; metrics the curve has no value for get NaN / False.
    """
    theory = curve.melt(id_vars=[x], value_vars=[m for m in points["metric"].unique()
                                                  if m in curve.columns],
                        var_name="metric", value_name="theory")
    key = "_x_key"  # match x values up to float noise (0.7 vs 140 / 200)
    out = points.assign(**{key: points[x].round(9)}).merge(
        theory.assign(**{key: theory[x].round(9)}).drop(columns=[x]), on=[key, "metric"],
        how="left").drop(columns=[key])
    out["rel_error"] = out["mean"] / out["theory"] - 1.0
    out["inside_ci"] = (out["ci_low"] <= out["theory"]) & (out["theory"] <= out["ci_high"])
    return out


def littles_law_table(run: RunResult) -> pd.DataFrame:
    """L = lambda W checked on one run: per component, and for the system as a whole.

    ``L`` is the time-average number present (measured by integrating over time);
    ``lambda_w`` is throughput x mean time spent, measured per request. They are measured
    independently, so their agreement (``rel_diff``) is a check, not an identity. The system
    row uses end-to-end latency: requests in the system = rate x mean latency.
    """
    comp = run.components()
    rows = [{"name": r.component, "throughput_per_s": r.throughput_per_s,
             "mean_time_s": r.mean_response_s, "L": r.mean_in_system}
            for r in comp.itertuples()]
    lat = run.latency().set_index("flow")
    total = ALL_FLOWS if ALL_FLOWS in lat.index else lat.index[0]
    rows.append({"name": "whole system", "throughput_per_s": lat.loc[total, "throughput_per_s"],
                 "mean_time_s": lat.loc[total, "mean_s"], "L": comp["mean_in_system"].sum()})
    out = pd.DataFrame(rows)
    out["lambda_w"] = out["throughput_per_s"] * out["mean_time_s"]
    out["rel_diff"] = out["lambda_w"] / out["L"] - 1.0
    return out
