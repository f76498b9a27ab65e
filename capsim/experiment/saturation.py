"""The saturation point: at how many users the latency budget first breaks, and why.

``Budget`` states the limits; ``SweepResult.saturation`` reads the answer off a grid sweep;
``find_saturation`` searches for it adaptively: the analytic twin brackets it for free, then
bisection with replicated simulations narrows the bracket, spending runs only where the
answer is uncertain.

A verdict covers what users do not see too: every MessageQueue's consumers must keep up (a
backlog breaks the budget unless ``allow_backlog``), and ``async_p99_s`` can limit messages'
publish-to-processed time. It judges on the upper confidence bound unless the budget says
``bound="mean"`` (one replication has no bound: the mean, said so). A value that cannot be
judged (NaN) never meets a limit.
"""

from __future__ import annotations

import math
import tempfile
import time
import warnings
from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from capsim.analytic import solve
from capsim.errors import ModelError, RunLengthWarning, check_number
from capsim.experiment.twin import round_users, twin_saturation
from capsim.model import Budget, System
from capsim.model.budget import BACKLOG_LOAD, Check
from capsim.model.lowering import async_flow_name, consumer_names


@dataclass(frozen=True)
class Saturation:
    """Where the budget breaks: ``users`` (where the mean breaks it) with a CI
    ``(users_low, users_high)``, and ``gate_users``, where the bound a verdict judges on
    (``bound``; the mean when there is no CI) breaks it: points below it meet the budget.

    ``users`` is 0 when the mean breaks the budget at the first point, inf when it never
    does; ``users_high`` is the last grid point, with ``high_beyond_grid``, when the lower
    bound never crosses inside the grid. ``table`` has one row per check and point: label,
    metric, flow, limit, users, mean, ci_low, ci_high and ``meets`` (on the chosen bound).
    """

    users: float
    users_low: float
    users_high: float
    breaks_on: str  # the check that fails first (by gate_users, then users)
    bottleneck: str  # highest utilization where it breaks
    bottleneck_by_latency: str  # largest share of the latency there
    table: pd.DataFrame = field(repr=False)
    gate_users: float = math.nan
    bound: str = "upper"
    has_ci: bool = True  # False with one replication: no interval, judged on the mean
    high_beyond_grid: bool = False
    first_users: float = math.nan  # the grid
    last_users: float = math.nan
    confidence: float = 0.95
    accepted_backlogs: tuple[tuple[str, float], ...] = ()  # (label, users) allow_backlog took

    @property
    def judged_on(self) -> str:
        """The bound the verdict uses, in words (every report prints it)."""
        if not self.has_ci:
            return "the mean (no CI from one replication)"
        if self.bound == "upper":
            return f"the upper {self.confidence:.0%} bound"
        return "the mean"

    def ci_text(self) -> str:
        """The CI in words: none from one replication, exact for a backlog (the model's
        offered load has no sampling error), "above N" past the grid."""
        if self.breaks_on.startswith("backlog of") and self.users_low == self.users_high:
            return "exact: where the consumers' offered load reaches 100%"
        if not self.has_ci:
            return "no CI from one replication"
        low = (f"below {self.first_users:,.0f}" if self.users_low <= 0
               else f"{self.users_low:,.0f}")
        high = (f"above {self.users_high:,.0f}" if self.high_beyond_grid
                else f"{self.users_high:,.0f}")
        return f"{self.confidence:.0%} CI {low} to {high}"

    def __str__(self) -> str:
        judged = f"judged on {self.judged_on}"
        where = (f"bottleneck: {self.bottleneck} (utilization), {self.bottleneck_by_latency} "
                 f"(latency share)")
        upper = self.has_ci and self.bound == "upper"
        if math.isinf(self.gate_users):
            text = (f"The budget holds at every point swept (up to {self.last_users:,.0f} "
                    f"users), {judged}.")
        elif self.gate_users <= 0:
            text = (f"The budget is already broken at the first point swept "
                    f"({self.first_users:,.0f} users) on {self.breaks_on}, {judged}")
            if upper and 0 < self.users < math.inf:
                text += f"; the mean breaks it at about {self.users:,.0f} users"
            text += f"; {where}."
        elif math.isinf(self.users):
            text = (f"Judged on {self.judged_on}, the budget breaks at about "
                    f"{self.gate_users:,.0f} users on {self.breaks_on}, although the mean "
                    f"meets it at every point swept (up to {self.last_users:,.0f} users); "
                    f"{where}.")
        elif upper and round(self.gate_users) != round(self.users):
            text = (f"The budget breaks at about {self.users:,.0f} users ({self.ci_text()}) "
                    f"on {self.breaks_on}; {judged} it holds up to {self.gate_users:,.0f} "
                    f"users; {where}.")
        else:
            ci = self.ci_text()
            ci = "" if ci.startswith("no CI") else f" ({ci})"  # judged_on says it then
            text = (f"The budget breaks at about {self.users:,.0f} users{ci} on "
                    f"{self.breaks_on}, {judged}; {where}.")
        for label, at in self.accepted_backlogs:
            text += (f" A growing {label} from about {at:,.0f} users is accepted "
                     f"(allow_backlog).")
        return text


def _curve(result, check: Check) -> pd.DataFrame:
    """users, mean, ci_low, ci_high, stable of one check, sorted by users."""
    if check.kind == "flow":
        return result.metric(check.metric, check.name, "flow")
    if check.kind == "async":
        return result.metric("p99_s", check.name, "flow")
    comp = result.components()
    if check.kind == "backlog":
        return _backlog_curve(result, comp, result.system.component(check.name))
    util = comp[comp["metric"] == check.metric]
    worst = util.loc[util.groupby("point")["mean"].idxmax()]
    return worst.merge(result.points[["point"]], on="point").assign(stable=True).sort_values(
        "users").reset_index(drop=True)


def _backlog_curve(result, comp: pd.DataFrame, queue) -> pd.DataFrame:
    """The busiest consumer's offered load (the model's: exact, no CI); inf where the async
    flow had no steady state in some replication although the model saw none coming.

    The offered load, not only the engine's stability flag, decides: a topic with retention
    sheds the oldest messages, so its consumers count as "stable" while the backlog grows for
    ``retention_s`` and most messages wait that long or are lost."""
    names = consumer_names(queue)
    mine = comp[comp["component"].isin(names)]
    per_point = {}
    for metric in ("offered_load", "utilization"):
        rows = mine[mine["metric"] == metric]
        per_point[metric] = rows.groupby("point")["mean"].max()
    load = per_point["offered_load"].where(per_point["offered_load"].notna(),
                                           per_point["utilization"])
    points = result.points[["point", "users"]].sort_values("users")
    value = points["point"].map(load).to_numpy(dtype=float)
    lat = result.latency()
    flag = lat[(lat["flow"] == async_flow_name(queue)) & (lat["metric"] == "stable")]
    stable = points["point"].map(flag.set_index("point")["mean"]).fillna(1.0).to_numpy() >= 1
    value = np.where(stable | (value >= BACKLOG_LOAD), value, np.inf)
    return pd.DataFrame({"users": points["users"].to_numpy(dtype=float), "mean": value,
                         "ci_low": value, "ci_high": value, "stable": True})


def _crossing(users, values, limit, beyond: float = 0.5) -> float:
    """Users where a piecewise-linear curve first fails ``value <= limit`` (inf if never).

    A NaN value fails (it cannot be judged, so it never meets). When the first failing
    point has no finite value (unstable), the crossing is somewhere in the interval before
    it: ``beyond`` places it (0 = its start, 1 = its end, 0.5 = the middle, for an estimate;
    0 and 1 bound a confidence interval honestly)."""
    for i, v in enumerate(values):
        if not v <= limit:
            if i == 0:
                return 0.0
            v0 = values[i - 1]
            if not np.isfinite(v):
                return float(users[i - 1] + beyond * (users[i] - users[i - 1]))
            return float(users[i - 1] + (limit - v0) / (v - v0) * (users[i] - users[i - 1]))
    return math.inf


def _has_ci(result) -> bool:
    """Every simulated point has at least two replications (an interval needs two)."""
    pts = result.points
    reps = pts.loc[pts["simulated"].astype(bool), "replications"]
    return bool(reps.empty or reps.min() >= 2)


def saturation_from_sweep(result, budget: Budget) -> Saturation:
    """Judge every point of a sweep on every check of ``budget`` and find where it breaks.

    The table's ``meets`` and ``gate_users`` come from the same values (the chosen bound),
    so a report's checks and its headline cannot disagree. Over several checks each end of
    the CI is the lowest of theirs: the budget breaks when any check does."""
    has_ci = _has_ci(result)
    on_upper = budget.bound == "upper" and has_ci  # the gate's crossing is then conservative
    confidence = float(getattr(result, "confidence", 0.95))
    checks = budget.checks(result.system)
    if not any(c.kind != "backlog" or not budget.allow_backlog for c in checks):
        raise ModelError(f"{budget}: no limit applies to this system (async_p99_s needs a "
                         "MessageQueue)")
    rows, found, accepted = [], [], []
    for check in checks:
        c = _curve(result, check)
        stable = c["stable"].to_numpy(dtype=bool)
        mean = np.where(stable, c["mean"].to_numpy(dtype=float), np.inf)
        low = np.where(stable, c["ci_low"].fillna(c["mean"]).to_numpy(dtype=float), np.inf)
        high = np.where(stable, c["ci_high"].fillna(c["mean"]).to_numpy(dtype=float), np.inf)
        users = c["users"].to_numpy(dtype=float)
        judged = budget.judged(mean, high if has_ci else np.nan)
        at = _crossing(users, mean, check.limit)
        if check.kind == "backlog" and budget.allow_backlog:
            if math.isfinite(at):
                accepted.append((check.label, at))
            continue
        gate = _crossing(users, judged, check.limit, beyond=0.0 if on_upper else 0.5)
        found.append((gate, at, _crossing(users, high, check.limit, beyond=0.0),
                      _crossing(users, low, check.limit, beyond=1.0), check.label))
        # a finite estimate from runs too short for it (engine.stability) is not trusted
        adequate = (c["adequate"].to_numpy(dtype=bool) if "adequate" in c
                    else np.ones(users.size, dtype=bool))
        rows.append(pd.DataFrame({"label": check.label, "metric": check.metric,
                                  "flow": check.name, "limit": check.limit, "users": users,
                                  "mean": mean, "ci_low": low, "ci_high": high,
                                  "meets": judged <= check.limit, "adequate": adequate}))
    users_all = np.sort(result.points["users"].to_numpy(dtype=float))
    gate, at, lo, hi, breaks_on = min(found, key=lambda f: (f[0], f[1]))
    at, lo, hi = (min(f[1] for f in found), min(f[2] for f in found),
                  min(f[3] for f in found))
    beyond = math.isinf(hi) and (math.isfinite(at) or math.isfinite(gate))
    if beyond:
        hi = float(users_all[-1])
    if math.isinf(at) and math.isinf(lo):
        lo = float(users_all[-1])  # known to hold up to the last point
    where = users_all[-1] if math.isinf(gate) else users_all[users_all >= gate].min(
        initial=users_all[-1])
    point = int(result.points.loc[result.points["users"] == where, "point"].iloc[0])
    util_top, latency_top = bottlenecks(result, point)
    return Saturation(at, lo, hi, breaks_on, util_top, latency_top, pd.concat(
        rows, ignore_index=True), gate, budget.bound, has_ci, beyond, float(users_all[0]),
        float(users_all[-1]), confidence, tuple(accepted))


def bottlenecks(result, point: int) -> tuple[str, str]:
    """(highest utilization, largest share of mean latency) among components at ``point``."""
    comp = result.components()
    comp = comp[comp["point"] == point]
    util = comp[comp["metric"] == "utilization"].set_index("component")["mean"]
    offered = comp[comp["metric"] == "offered_load"].set_index("component")["mean"]
    util = util.where(util.notna(), offered)
    visits = result.system.visits()  # a host's row has no visits of its own: no share
    resp = comp[comp["metric"] == "mean_response_s"].set_index("component")["mean"]
    share = pd.Series({k: visits.get(k, np.nan) * resp.get(k, np.nan) for k in util.index})
    by_latency = share.idxmax() if share.notna().any() else util.idxmax()
    return str(util.idxmax()), str(by_latency)


# ---------------------------------------------------------------------- adaptive search

SEARCH_STATUS = ("bracketed", "broken_at_lowest", "holds_at_highest")


@dataclass(frozen=True)
class SaturationSearch:
    """The result of ``find_saturation``: a bracket, its evaluations and what it cost.

    ``status`` says how the search ended: "bracketed" (``users_low`` meets the budget,
    ``users_high`` breaks it); "broken_at_lowest" (even ``users_high``, the lowest load
    tried, breaks it: ``users`` = ``users_low`` = 0); "holds_at_highest" (``max_points``
    ran out before a load broke it: ``users_low`` is the highest tried, ``users`` and
    ``users_high`` are inf).
    """

    users: float
    users_low: float  # highest users simulated that meets the budget
    users_high: float  # lowest users simulated that breaks it
    twin_guess: float  # NaN when the twin cannot judge the budget
    bottleneck: str
    evaluations: pd.DataFrame  # users, check, mean/CI, verdict, replications, requests
    simulated_requests: int
    wall_s: float
    status: str = "bracketed"
    reason: str = ""  # why a search that did not bracket stopped

    def __str__(self) -> str:
        n = len(self.evaluations)
        cost = (f"{n} point{'' if n == 1 else 's'}, {self.simulated_requests:,} simulated "
                f"requests, {self.wall_s:.1f} s")
        twin = ("the twin could not judge the budget" if math.isnan(self.twin_guess)
                else f"twin's first guess {self.twin_guess:,.0f}")
        if self.status == "broken_at_lowest":
            low = self.users_high
            return (f"The budget is broken at the lowest load tried, {low:,.0f} "
                    f"user{'' if low == 1 else 's'} ({self.reason}; {twin}); bottleneck "
                    f"{self.bottleneck}; {cost}")
        if self.status == "holds_at_highest":
            return (f"The budget holds at the highest load tried, {self.users_low:,.0f} "
                    f"users ({self.reason}; {twin}); {cost}")
        return (f"Saturation between {self.users_low:,.0f} and {self.users_high:,.0f} users "
                f"({twin}); bottleneck {self.bottleneck}; {cost}")


def find_saturation(system: System, workload, budget: Budget, *, duration_s: float,
                    replications: int = 5, max_replications: int = 20, rel_tol: float = 0.02,
                    seed: int = 0, max_points: int = 20, min_users: float | None = None,
                    max_extension: float | None = None, **sweep_kwargs) -> SaturationSearch:
    """Bracket the saturating user count to ``rel_tol`` with as few simulations as it takes.

    The twin's answer gives the first bracket (+-20%), widened until a simulation confirms
    each end; then bisection. At each midpoint replications are added while the CI of the
    budget metric straddles the limit; a point the CI cannot decide within
    ``max_replications`` ends the search (the answer is as precise as the noise allows).
    When the twin cannot judge the budget (a closed workload's percentiles), the bracket
    starts around ``workload.users`` instead.

    Every search ends: at most ``max_points`` loads are simulated, and none below
    ``min_users`` (default 1 user for integer users, a thousandth of the first guess
    otherwise). A budget broken even there, or never broken within ``max_points``, is
    reported by ``status`` (see ``SaturationSearch``), not searched for forever.

    A point breaks the budget when an estimate (the mean over replications) is over its
    limit; the intervals decide only whether the point is settled. A point whose runs are too
    short for their tail (``adequate``) is first run longer, up to ``max_extension`` x
    ``duration_s`` (default ``sweep.MAX_EXTENSION``, 8; 1 = never), and the next points start
    at the length it needed (loads near it relax about as slowly): the evaluations say what
    each point got.

    Adding replications reuses the runs already made (a temporary result store when none is
    given); the runs go where ``sweep`` sends them (``executor``, ``cluster``, ``processes``:
    the shared local pool by default).
    """
    with ExitStack() as stack:
        if sweep_kwargs.get("store", "results") is None:
            sweep_kwargs["store"] = stack.enter_context(tempfile.TemporaryDirectory())
        from capsim.experiment.sweep import MAX_EXTENSION

        extension = MAX_EXTENSION if max_extension is None else check_number(
            "find_saturation", "max_extension", max_extension, minimum=1.0, strict=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RunLengthWarning)  # said once, below
            found = _search(system, workload, budget, duration_s, replications,
                            max_replications, rel_tol, seed, max_points, min_users,
                            extension, sweep_kwargs)
    evals = found.evaluations
    if "adequate" in evals and not evals["adequate"].all():
        users = ", ".join(f"{u:,.6g}" for u in evals.loc[~evals["adequate"], "users"])
        warnings.warn(RunLengthWarning(
            f"find_saturation: at {users} users the runs were still too short for their tail "
            f"estimates at {extension:g}x duration_s; those verdicts rest on estimates "
            "biased low (adequate=False in evaluations)"), stacklevel=2)
    return found


def _search(system, workload, budget, duration_s, replications, max_replications, rel_tol,
            seed, max_points, min_users, extension, sweep_kwargs) -> SaturationSearch:
    from capsim.experiment.sweep import sweep

    started = time.perf_counter()
    evaluations: list[dict] = []
    requests = 0
    integer = isinstance(workload.users, int)
    lengths = [duration_s]  # the run length the last point needed: the next starts there

    def verdict(users: float) -> bool:
        """True when ``users`` breaks the budget."""
        nonlocal requests
        reps, length, requests_here = replications, lengths[-1], 0
        while True:
            res = sweep(system, [workload.with_users(users)], reps, seed,
                        duration_s=length, progress=False, **sweep_kwargs)
            rows = res.saturation(budget).table
            short = bool((~rows["adequate"] & np.isfinite(rows["mean"])).any())
            if short and length < duration_s * extension:
                # runs too short for their tail: a longer run, not more of them
                requests_here += res.simulated_requests
                length *= 2.0
                continue
            # the search estimates where the budget breaks: a point breaks when an estimate
            # is over its limit, and is decided when no interval straddles it (the gate's
            # upper bound would, with few replications, "break" at any load)
            over = ~(rows["mean"] <= rows["limit"])
            decided, broken = True, bool(over.any())
            for _, r in rows.iterrows():
                if np.isfinite(r["mean"]) and r["ci_low"] <= r["limit"] <= r["ci_high"]:
                    decided = False
            if decided or reps >= max_replications:
                break
            reps = min(max_replications, reps * 2)
        requests_here += res.simulated_requests  # earlier replications reused, not rerun
        requests += requests_here
        lengths.append(length)  # nearby loads relax as slowly: skip the lengths too short
        failing = rows[over]
        first = failing.iloc[0] if broken else rows.iloc[0]
        evaluations.append({"users": users, "check": first["label"], "metric": first["metric"],
                            "mean": first["mean"], "ci_low": first["ci_low"],
                            "ci_high": first["ci_high"], "limit": first["limit"],
                            "breaks": broken, "decided": decided, "replications": reps,
                            "duration_s": length, "adequate": not short,
                            "requests": requests_here})
        return broken

    def spent() -> bool:
        return len(evaluations) >= max_points

    def done(users, lo, hi, status="bracketed", reason="") -> SaturationSearch:
        at = hi if math.isfinite(hi) else lo
        bottleneck = solve(system, workload.with_users(at)).bottleneck
        return SaturationSearch(users, lo, hi, guess, bottleneck, pd.DataFrame(evaluations),
                                requests, time.perf_counter() - started, status, reason)

    try:
        guess = twin_saturation(system, workload, budget)
    except ModelError:
        guess = math.nan  # the twin cannot judge: start from the workload, by simulation
    if math.isinf(guess):
        raise ModelError("find_saturation: the twin finds no load that breaks the budget")
    start = float(workload.users) if math.isnan(guess) else guess
    floor = float(min_users) if min_users is not None else (1.0 if integer else start / 1e3)
    floor = float(round_users(integer, floor))

    def load(users: float):
        return round_users(integer, max(users, floor))

    lo = load(0.8 * start)
    hi = max(load(1.2 * start), load(1.5 * lo))
    if integer and hi <= lo:
        hi = lo + 1
    hi_breaks = False  # known once a lower end has broken: no need to simulate it again
    while verdict(lo):
        hi, hi_breaks = lo, True
        if lo <= floor:
            return done(0.0, 0.0, hi, "broken_at_lowest",
                        f"min_users={floor:g}, the lowest load the search may try")
        if spent():
            return done(0.0, 0.0, hi, "broken_at_lowest",
                        f"max_points: the search stopped after {len(evaluations)} points")
        lo = load(lo * 0.7)
    while not hi_breaks and not verdict(hi):
        lo = hi
        if spent():
            return done(math.inf, lo, math.inf, "holds_at_highest",
                        f"max_points: the search stopped after {len(evaluations)} points")
        hi = max(load(hi * 1.3), hi + 1) if integer else hi * 1.3
    while (hi - lo) > rel_tol * hi and not spent():
        mid = load(0.5 * (lo + hi))
        if not lo < mid < hi:
            break  # integer users: nothing left between the ends
        broken = verdict(mid)
        if evaluations[-1]["decided"]:
            lo, hi = (lo, mid) if broken else (mid, hi)
            continue
        # the CI still straddles the limit: the answer is within noise of mid; probe
        # rel_tol either side and keep whichever ends the simulation can decide
        for probe in (load(mid * (1 - rel_tol)), load(mid * (1 + rel_tol))):
            if lo < probe < hi and not spent():
                broken = verdict(probe)
                if evaluations[-1]["decided"]:
                    lo, hi = (lo, probe) if broken else (probe, hi)
        break
    return done(0.5 * (lo + hi), lo, hi)
