"""The cheapest plan (instance type x count, per tier) that meets a budget at a target load.

``cheapest(system, budget, users, options)`` looks at plans in order of cost and takes the
first one that survives three filters, each cheaper than the next:

1. **A bound, per tier** (instant): enough memory (``min_memory_gib``), every station of the
   tier below 100% busy at ``peak_factor`` x the target, and, with ``n_plus_one``, below 100%
   with one box down at the target (a single box fails this at once).
2. **The analytic twin, per plan** (milliseconds; ``twin_view`` pools balanced boxes): the
   budget at the target, at ``peak_factor`` x the target and, with ``n_plus_one``, with one box
   of each tier down in turn. ``screen_slack`` lets the twin miss by a few percent, since it is
   an approximation and the simulation decides.
3. **Simulation, per plan** (seconds): the same scenarios, each ``replications`` times, a box
   down simulated as in ``compare`` (an ``Outage``, or a database's failover). The plan meets
   the budget when every limit holds on the bound ``budget.bound`` names (the upper confidence
   bound over replications by default, or the mean).

Plans are enumerated lazily by total cost, so the search stops at the first one that passes;
``max_simulated`` bounds how many plans reach step 3.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import pandas as pd

from capsim.errors import ModelError, check_int, check_number
from capsim.experiment.runner import Runner
from capsim.experiment.store import ResultStore
from capsim.model import Budget, OpenWorkload, System
from capsim.scaling.compare import meets_budget, run_scenarios, scenario_jobs, twin_meets
from capsim.scaling.options import Option, apply, deploy, one_down

__all__ = ["CheapestResult", "cheapest"]


@dataclass(frozen=True)
class CheapestResult:
    """The plan found (None if none passed), the deployed system, and how it was found.

    ``screened``: every option of every tier and the bound's verdict. ``candidates``: every
    plan examined, in cost order, with the twin's and the simulation's verdicts. ``checks``:
    the simulated scenarios of the plan found (mean over replications).
    """

    plan: dict[str, Option] | None
    system: System | None
    workload: OpenWorkload
    budget: Budget
    peak_factor: float
    n_plus_one: bool
    screened: pd.DataFrame
    candidates: pd.DataFrame
    checks: pd.DataFrame
    wall_s: float

    @property
    def cost_per_hour_usd(self) -> float:
        return math.inf if self.plan is None else sum(o.cost_per_hour_usd
                                                      for o in self.plan.values())

    def table(self) -> pd.DataFrame:
        """The plans examined, cheapest first."""
        return self.candidates.copy()

    def describe(self) -> str:
        """The plan in words: ``app: 4 x m7i.2xlarge; postgres: ...``."""
        if self.plan is None:
            return "no plan"
        return "; ".join(f"{tier}: {opt.label}" for tier, opt in self.plan.items())

    def __str__(self) -> str:
        conditions = [f"{self.workload.users:,.0f} users"]
        if self.peak_factor > 1:
            conditions.append(f"{self.peak_factor:g}x peak")
        if self.n_plus_one:
            conditions.append("one box down (N+1)")
        from capsim.report.scaling import budget_text

        head = (f"Cheapest plan meeting {budget_text(self.budget)} at "
                + ", ".join(conditions))
        simulated = int((self.candidates["stage"] == "simulation").sum()) \
            if len(self.candidates) else 0
        cost = (f"{len(self.candidates)} plans examined, {simulated} simulated, "
                f"{self.wall_s:.1f} s")
        if self.plan is None:
            return f"{head}: none found ({cost})"
        return f"{head}: {self.describe()} at ${self.cost_per_hour_usd:.2f}/h ({cost})"


def _bound(system: System, tier: str, opt: Option, target: OpenWorkload, peak_factor: float,
           n_plus_one: bool, min_memory: float | None) -> str:
    """'' when ``opt`` passes the per-tier bound, else why not."""
    if min_memory is not None and opt.instance.memory_gib < min_memory:
        return f"memory {opt.instance.memory_gib:g} < {min_memory:g} GiB"
    rate = target.arrival_rate_per_s
    if _tier_capacity_per_s(apply(system, tier, opt), tier) <= max(peak_factor, 1.0) * rate:
        return f"over 100% busy at {max(peak_factor, 1.0):g}x the target"
    if n_plus_one:
        degraded = one_down(system, tier, opt).degraded
        if degraded is None:
            return "N+1: one box down leaves traffic nothing serves"
        if _tier_capacity_per_s(degraded, tier) <= rate:
            return "N+1: over 100% busy with one box down"
    return ""


def _tier_capacity_per_s(system: System, tier: str) -> float:
    """Requests per second at which the busiest station of ``tier`` is 100% busy; a database
    split into services (``one_down``) counts all of its parts (``tier/...``), a host its
    cores (every component on it together)."""
    loads = system.offered_load(1.0)
    worst = max((loads[st.name] for st in system.stations()
                 if st.component == tier or st.component.startswith(f"{tier}/")), default=0.0)
    if any(h.name == tier for h in system.hosts):
        worst = max(worst, loads[tier])
    return math.inf if worst <= 0 else 1.0 / worst


def _by_cost(tiers: list[list[Option]]):
    """Every combination of one option per tier, cheapest total first (lazily)."""
    costs = [[o.cost_per_hour_usd for o in opts] for opts in tiers]
    start = (0,) * len(tiers)
    heap = [(sum(c[0] for c in costs), start)]
    seen = {start}
    while heap:
        cost, idx = heapq.heappop(heap)
        yield cost, tuple(opts[i] for opts, i in zip(tiers, idx, strict=True))
        for k in range(len(tiers)):
            if idx[k] + 1 < len(tiers[k]):
                nxt = idx[:k] + (idx[k] + 1,) + idx[k + 1:]
                if nxt not in seen:
                    seen.add(nxt)
                    heapq.heappush(heap, (sum(c[i] for c, i in zip(costs, nxt, strict=True)),
                                          nxt))


def cheapest(system: System, budget: Budget, users, options: Mapping[str, Sequence[Option]],
             *, workload: OpenWorkload | None = None, peak_factor: float = 2.0,
             n_plus_one: bool = False, min_memory_gib: Mapping[str, float] | None = None,
             replications: int = 2, requests: int = 20_000, seed: int = 0,
             screen_slack: float = 0.05, max_simulated: int = 6, max_screened: int = 500,
             processes: int | None = None, executor: Executor | None = None,
             cluster: str | None = None, store: ResultStore | str | None = None,
             progress: bool = False) -> CheapestResult:
    """The cheapest plan for the reference model ``system`` (see ``capsim.scaling.options``)
    that meets ``budget`` at ``users`` (a number, with ``workload`` giving the traffic per
    user, or an OpenWorkload), at ``peak_factor`` x that (1 to skip), and with one box of any
    tier down if ``n_plus_one``. ``options`` maps each tier to its candidate options; tiers not
    named keep what ``system`` gives them. At most ``max_screened`` plans go to the twin and
    ``max_simulated`` to simulation; the search ends with no plan when either runs out.
    Simulations run as in ``compare`` (``executor``, ``cluster``, ``processes``, ``store``).
    """
    started = time.perf_counter()
    if isinstance(users, OpenWorkload):
        target = users
    elif workload is None:
        raise ModelError("cheapest: give users as an OpenWorkload, or workload=... for the "
                         "traffic per user")
    else:
        target = workload.with_users(check_number("cheapest", "users", users))
    check_number("cheapest", "peak_factor", peak_factor)
    check_int("cheapest", "replications", replications, minimum=1)
    check_int("cheapest", "max_simulated", max_simulated, minimum=1)
    if not options:
        raise ModelError("cheapest.options: give at least one tier and its options")
    memory = dict(min_memory_gib or {})
    tiers = list(options)
    hosts = {h.name for h in system.hosts}
    for tier in tiers:
        if tier not in hosts:  # a box (vertical: a bigger host) or a component
            system.component(tier)  # fails early on a typo
    peak = target.with_users(peak_factor * target.users)

    screened_rows, feasible = [], []
    for tier in tiers:
        keep = []
        for opt in options[tier]:
            why = _bound(system, tier, opt, target, peak_factor, n_plus_one, memory.get(tier))
            screened_rows.append({"tier": tier, "option": opt.label,
                                  "cost_per_hour_usd": opt.cost_per_hour_usd,
                                  "passes": not why, "reason": why})
            if not why:
                keep.append(opt)
        feasible.append(sorted(keep, key=lambda o: o.cost_per_hour_usd))
    screened = pd.DataFrame(screened_rows)

    candidates, checks = [], pd.DataFrame()
    found: dict[str, Option] | None = None
    simulated = 0
    with Runner(executor=executor, cluster=cluster, processes=processes, store=store,
                progress=progress, desc="cheapest") as runner:
        for examined, (cost, combo) in enumerate(
                _by_cost(feasible) if all(feasible) else iter(())):
            if examined >= max_screened or simulated >= max_simulated:
                break
            plan = dict(zip(tiers, combo, strict=True))
            scenarios = _scenarios(system, plan, target, peak, peak_factor, n_plus_one)
            row = {"plan": "; ".join(f"{t}: {o.label}" for t, o in plan.items()),
                   "cost_per_hour_usd": cost, "stage": "twin", "meets": False}
            passed = True
            for name, (_, twin_system, load) in scenarios.items():
                ok, value = twin_meets(twin_system, load, budget, screen_slack)
                row[f"twin_{name}"] = value
                if not ok:
                    passed = False
                    break
            if passed:
                row["stage"] = "simulation"
                simulated += 1
                jobs = [j for name, (sim_system, _, load) in scenarios.items()
                        for j in scenario_jobs((name,), sim_system, load, requests, seed,
                                               replications)]
                runs = run_scenarios(jobs, runner, ["scenario", "replication"])
                mean = runs.drop(columns="replication").groupby(
                    "scenario", sort=False).mean(numeric_only=True)
                verdicts = {name: meets_budget(runs[runs["scenario"] == name], budget)
                            for name in scenarios}
                for name in scenarios:
                    row[f"sim_{name}"] = float(mean.loc[name, "p99_s"])
                row["meets"] = all(verdicts.values())
                if row["meets"]:
                    found = plan
                    checks = mean.assign(meets=pd.Series(verdicts)).reset_index()
            candidates.append(row)
            if found is not None:
                break
    return CheapestResult(
        plan=found, system=None if found is None else deploy(system, found), workload=target,
        budget=budget, peak_factor=peak_factor, n_plus_one=n_plus_one, screened=screened,
        candidates=pd.DataFrame(candidates), checks=checks,
        wall_s=time.perf_counter() - started)


def _scenarios(system: System, plan: dict[str, Option], target: OpenWorkload,
               peak: OpenWorkload, peak_factor: float, n_plus_one: bool) -> dict:
    """name -> (system to simulate, system for the twin, workload)."""
    deployed = deploy(system, plan)
    out = {"target": (deployed, deployed, target)}
    if peak_factor > 1:
        out["peak"] = (deployed, deployed, peak)
    if n_plus_one:
        for tier, opt in plan.items():
            others = deploy(system, {t: o for t, o in plan.items() if t != tier})
            failure = one_down(others, tier, opt)
            out[f"one_down:{tier}"] = (failure.system, failure.degraded, target)
    return out
