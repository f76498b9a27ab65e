"""The saturation point: at how many users the latency budget first breaks, and why.

``Budget`` states the limits; ``SweepResult.saturation`` reads the answer off a grid sweep;
``find_saturation`` searches for it adaptively: the analytic twin brackets it for free, then
bisection with replicated simulations narrows the bracket, spending runs only where the
answer is uncertain.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from capsim.analytic import solve
from capsim.errors import ModelError, check_number
from capsim.model import System

LATENCY_LIMITS = ("p99_s", "p95_s", "mean_s", "error_rate")


@dataclass(frozen=True)
class Budget:
    """Performance budget: each limit is optional; a point meets the budget when all hold.

    Latency limits apply to ``flow`` ("all" pools every flow); ``utilization`` is a ceiling
    for every component (0.8 = alarm at 80%).
    """

    p99_s: float | None = None
    p95_s: float | None = None
    mean_s: float | None = None
    error_rate: float | None = None
    utilization: float | None = None
    flow: str = "all"

    def __post_init__(self) -> None:
        limits = self.limits()
        if not limits:
            raise ModelError("Budget: give at least one limit, e.g. Budget(p99_s=0.200)")
        for _, metric, value in limits:
            check_number("Budget", metric, value, strict=metric != "error_rate")

    def limits(self) -> list[tuple[str, str, float]]:
        """(kind, metric, limit) triples: kind "flow" or "component"."""
        out = [("flow", m, getattr(self, m)) for m in LATENCY_LIMITS
               if getattr(self, m) is not None]
        if self.utilization is not None:
            out.append(("component", "utilization", self.utilization))
        return out

    def __str__(self) -> str:
        parts = [f"{m}<={v:g}" for _, m, v in self.limits()]
        return "Budget(" + ", ".join(parts) + (f", flow={self.flow}" if self.flow != "all"
                                                else "") + ")"


@dataclass(frozen=True)
class Saturation:
    """Where the budget breaks: ``users`` with a CI ``(users_low, users_high)``."""

    users: float
    users_low: float
    users_high: float
    breaks_on: str  # the budget metric that fails first
    bottleneck: str  # highest utilization where it breaks
    bottleneck_by_latency: str  # largest share of the latency there
    table: pd.DataFrame = field(repr=False)  # per point: metric, mean, CI, meets

    def __str__(self) -> str:
        if math.isinf(self.users):
            return f"The budget holds at every point swept (up to {self.users_low:,.0f} users)."
        if self.users_low <= 0:
            return f"The budget is already broken at the first point ({self.users_high:,.0f})."
        return (f"The budget breaks at about {self.users:,.0f} users "
                f"(95% CI {self.users_low:,.0f}-{self.users_high:,.0f}) on {self.breaks_on}; "
                f"bottleneck: {self.bottleneck} (utilization), {self.bottleneck_by_latency} "
                f"(latency share).")


def _curve(result, kind: str, metric: str, name: str) -> pd.DataFrame:
    if kind == "flow":
        return result.metric(metric, name, "flow")
    comp = result.components()
    util = comp[comp["metric"] == metric]
    worst = util.loc[util.groupby("point")["mean"].idxmax()]
    return worst.merge(result.points[["point"]], on="point").assign(stable=True).sort_values(
        "users").reset_index(drop=True)


def _crossing(users, values, limit, beyond: float = 0.5) -> float:
    """Users where a piecewise-linear curve first exceeds ``limit`` (inf if never).

    When the first point over the limit has no finite value (unstable), the crossing is
    somewhere in the interval before it: ``beyond`` places it (0 = its start, 1 = its end,
    0.5 = the middle, for an estimate; 0 and 1 bound a confidence interval honestly)."""
    for i, v in enumerate(values):
        if v > limit:
            if i == 0:
                return 0.0
            v0 = values[i - 1]
            if not np.isfinite(v):
                return float(users[i - 1] + beyond * (users[i] - users[i - 1]))
            return float(users[i - 1] + (limit - v0) / (v - v0) * (users[i] - users[i - 1]))
    return math.inf


def saturation_from_sweep(result, budget: Budget) -> Saturation:
    rows, best = [], None
    for kind, metric, limit in budget.limits():
        c = _curve(result, kind, metric, budget.flow)
        mean = np.where(c["stable"], c["mean"], np.inf)
        low = np.where(c["stable"], c["ci_low"].fillna(c["mean"]), np.inf)
        high = np.where(c["stable"], c["ci_high"].fillna(c["mean"]), np.inf)
        users = c["users"].to_numpy(dtype=float)
        at = _crossing(users, mean, limit)
        lo = _crossing(users, high, limit, beyond=0.0)
        hi = _crossing(users, low, limit, beyond=1.0)
        rows.append(pd.DataFrame({"metric": metric, "limit": limit, "users": users,
                                  "mean": mean, "ci_low": low, "ci_high": high,
                                  "meets": mean <= limit}))
        if best is None or at < best[0]:
            best = (at, lo, min(hi, users[-1]) if math.isinf(hi) and not math.isinf(at) else hi,
                    metric)
    at, lo, hi, metric = best
    users_all = result.points["users"].to_numpy(dtype=float)
    where = users_all[-1] if math.isinf(at) else users_all[users_all >= at].min(initial=np.inf)
    if math.isinf(at):
        lo = users_all[-1]
    point = int(result.points.loc[result.points["users"] == where, "point"].iloc[0])
    util_top, latency_top = bottlenecks(result, point)
    return Saturation(at, lo, hi, metric, util_top, latency_top, pd.concat(rows))


def bottlenecks(result, point: int) -> tuple[str, str]:
    """(highest utilization, largest share of mean latency) among components at ``point``."""
    comp = result.components()
    comp = comp[comp["point"] == point]
    util = comp[comp["metric"] == "utilization"].set_index("component")["mean"]
    offered = comp[comp["metric"] == "offered_load"].set_index("component")["mean"]
    util = util.where(util.notna(), offered)
    visits = result.system.visits()
    resp = comp[comp["metric"] == "mean_response_s"].set_index("component")["mean"]
    share = pd.Series({k: visits[k] * resp.get(k, np.nan) for k in util.index})
    by_latency = share.idxmax() if share.notna().any() else util.idxmax()
    return str(util.idxmax()), str(by_latency)


# ---------------------------------------------------------------------- adaptive search


@dataclass(frozen=True)
class SaturationSearch:
    """The result of ``find_saturation``: a bracket, its evaluations and what it cost."""

    users: float
    users_low: float  # highest users simulated that meets the budget
    users_high: float  # lowest users simulated that breaks it
    twin_guess: float
    bottleneck: str
    evaluations: pd.DataFrame  # users, metric mean/CI, verdict, replications, requests
    simulated_requests: int
    wall_s: float

    def __str__(self) -> str:
        return (f"Saturation between {self.users_low:,.0f} and {self.users_high:,.0f} users "
                f"(twin's first guess {self.twin_guess:,.0f}); bottleneck {self.bottleneck}; "
                f"{len(self.evaluations)} points, {self.simulated_requests:,} simulated "
                f"requests, {self.wall_s:.1f} s")


def twin_saturation(system: System, workload, budget: Budget, *, tol: float = 1e-4) -> float:
    """Users where the analytic twin breaks ``budget`` (bisection on the twin; free)."""
    def breaks(users: float) -> bool:
        twin = solve(system, workload.with_users(_users(workload, users)))
        if not twin.stable:
            return True
        lat = twin.latency().set_index("flow")
        name = budget.flow if budget.flow in lat.index else lat.index[0]
        comp = twin.components()
        for kind, metric, limit in budget.limits():
            value = (lat.loc[name, metric] if kind == "flow"
                     else comp["utilization"].max())
            if np.isfinite(value) and value > limit or np.isinf(value):
                return True
        return False

    hi = float(workload.users)
    while not breaks(hi):
        hi *= 2.0
        if hi > 1e12:
            return math.inf
    lo = hi / 2.0
    while breaks(lo) and lo > 1e-9:
        hi, lo = lo, lo / 2.0
    while (hi - lo) > tol * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if breaks(mid) else (mid, hi)
    return hi


def _users(workload, users: float):
    return max(1, round(users)) if isinstance(workload.users, int) else users


def find_saturation(system: System, workload, budget: Budget, *, duration_s: float,
                    replications: int = 5, max_replications: int = 20, rel_tol: float = 0.02,
                    seed: int = 0, max_points: int = 20, **sweep_kwargs) -> SaturationSearch:
    """Bracket the saturating user count to ``rel_tol`` with as few simulations as it takes.

    The twin's answer gives the first bracket (+-20%), widened until a simulation confirms
    each end; then bisection. At each midpoint replications are added while the CI of the
    budget metric straddles the limit; a point the CI cannot decide within
    ``max_replications`` ends the search (the answer is as precise as the noise allows).

    Adding replications reuses the runs already made (a temporary result store when none is
    given), and one process pool serves the whole search.
    """
    with ExitStack() as stack:
        if sweep_kwargs.get("store", "results") is None:
            sweep_kwargs["store"] = stack.enter_context(tempfile.TemporaryDirectory())
        if sweep_kwargs.get("executor") is None and sweep_kwargs.get("cluster") is None:
            workers = sweep_kwargs.pop("processes", None) or os.cpu_count() or 1
            if workers > 1:
                sweep_kwargs["executor"] = stack.enter_context(ProcessPoolExecutor(workers))
        return _search(system, workload, budget, duration_s, replications, max_replications,
                       rel_tol, seed, max_points, sweep_kwargs)


def _search(system, workload, budget, duration_s, replications, max_replications, rel_tol,
            seed, max_points, sweep_kwargs) -> SaturationSearch:
    from capsim.experiment.sweep import sweep

    started = time.perf_counter()
    evaluations: list[dict] = []
    requests = 0

    def verdict(users: float) -> bool:
        """True when ``users`` breaks the budget."""
        nonlocal requests
        reps = replications
        while True:
            res = sweep(system, [workload.with_users(_users(workload, users))], reps, seed,
                        duration_s=duration_s, progress=False, **sweep_kwargs)
            requests_here = res.simulated_requests  # earlier replications reused, not rerun
            sat = res.saturation(budget)
            rows = sat.table
            decided, broken = True, bool((~rows["meets"]).any())
            for _, r in rows.iterrows():
                if np.isfinite(r["mean"]) and r["ci_low"] <= r["limit"] <= r["ci_high"]:
                    decided = False
            if decided or reps >= max_replications:
                break
            reps = min(max_replications, reps * 2)
        requests += requests_here
        first = rows.iloc[0]
        evaluations.append({"users": users, "metric": first["metric"], "mean": first["mean"],
                            "ci_low": first["ci_low"], "ci_high": first["ci_high"],
                            "limit": first["limit"], "breaks": broken, "decided": decided,
                            "replications": reps, "requests": requests_here})
        return broken

    guess = twin_saturation(system, workload, budget)
    if math.isinf(guess):
        raise ModelError("find_saturation: the twin finds no load that breaks the budget")
    lo, hi = 0.8 * guess, 1.2 * guess
    while verdict(lo):
        hi, lo = lo, lo * 0.7
    while not verdict(hi):
        lo, hi = hi, hi * 1.3
    while (hi - lo) > rel_tol * hi and len(evaluations) < max_points:
        mid = 0.5 * (lo + hi)
        broken = verdict(mid)
        if evaluations[-1]["decided"]:
            lo, hi = (lo, mid) if broken else (mid, hi)
            continue
        # the CI still straddles the limit: the answer is within noise of mid; probe
        # rel_tol either side and keep whichever ends the simulation can decide
        for probe in (mid * (1 - rel_tol), mid * (1 + rel_tol)):
            if lo < probe < hi:
                broken = verdict(probe)
                if evaluations[-1]["decided"]:
                    lo, hi = (lo, probe) if broken else (probe, hi)
        break
    table = pd.DataFrame(evaluations)
    bottleneck = solve(system, workload.with_users(_users(workload, hi))).bottleneck
    return SaturationSearch(0.5 * (lo + hi), lo, hi, guess, bottleneck, table, requests,
                            time.perf_counter() - started)
