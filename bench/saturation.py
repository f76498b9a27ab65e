"""Saturation benchmark: adaptive ``find_saturation`` against a grid ``sweep`` at equal precision.

Usage::

    .venv/bin/python bench/saturation.py              # 20-point grid, 5 replications x 120 s
    .venv/bin/python bench/saturation.py --quick      # a tiny smoke run (seconds)
    .venv/bin/python bench/saturation.py --systems mm4 --processes 4

Two systems:

* ``example``: the case study's monolith (``capsim.examples.ecommerce_monolith``) against a
  p99 budget of 200 ms. The analytic twin is an approximation here (log-normal app tier, a
  percentile convolved across stations), so no exact answer is known.
* ``mm4``: one M/M/4 station (10 ms exponential service) against a p99 budget of 100 ms. The
  M/M/c sojourn-time quantile is exact (``capsim.analytic.mmc_response_quantile``), so the
  users at which p99 reaches the budget are found with brentq: the exact answer.

**Equal precision.** Both methods answer "between which two user counts does the budget
break". The grid puts ``--points`` (20) equally spaced points on the twin's guess +-30%, so
its bracket (last point that meets the budget, first that breaks it) is one spacing wide:
0.6 x guess / 19, about 3.2% of the guess. The adaptive search first gets that same width as
its stopping rule (``rel_tol`` = spacing / guess: bisection stops once
``hi - lo <= rel_tol x hi``). But when a midpoint's CI straddles the budget even at
``max_replications`` (the answer is within noise of it), the search probes ``rel_tol`` either
side of it and stops, with a bracket up to 2 x ``rel_tol`` wide. So it also runs at half that
``rel_tol``, and the column "as precise as the grid" says which rows actually ended with a
bracket no wider than the grid's. Every point of every method starts with the same
replications and run length; the search may add replications (up to ``max_replications``) at
a point whose CI straddles the limit, and the last row per system forbids that, so each of its
points costs exactly what a grid point costs. The grid also reports the CI of its
interpolated crossing, which can be narrower than its bracket; the bracket is what all the
methods share.

Both methods read the budget on the mean (``bound="mean"``), as the search places its
bracket; a release gate (``capsim review``) reads it on the upper confidence bound instead.

**Cost.** Simulated requests are counted over the runs each method actually made. Every
method gets a fresh on-disk result store, so a replication the search re-requests when it
doubles the replications at a point is read back, not simulated (and counted) twice. Wall
time includes the store; all methods share one warmed-up process pool. Speed numbers live
here, never in timed unit tests (design.md).
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import tempfile
import time
from concurrent.futures import Executor
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
from scipy import optimize

import capsim as cs
from capsim.analytic import mmc_response_quantile
from capsim.examples import ecommerce_monolith
from capsim.experiment import ResultStore, twin_saturation
from capsim.experiment.runner import shared_pool

SEED = 20240601
SPREAD = 0.3  # the grid covers the twin's guess +-30%


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    system: cs.System
    workload: cs.OpenWorkload
    budget: cs.Budget
    exact_users: float | None  # known in closed form, else None


MM4_SERVICE_S, MM4_SERVERS, MM4_BUDGET_S, RATE = 0.010, 4, 0.100, 0.02


def mm4_exact_users() -> float:
    """Users (at RATE requests/s each) where the exact M/M/4 p99 sojourn equals the budget."""
    capacity = MM4_SERVERS / MM4_SERVICE_S

    def excess(lam: float) -> float:
        return mmc_response_quantile(0.99, lam, MM4_SERVICE_S, MM4_SERVERS) - MM4_BUDGET_S

    lam = optimize.brentq(excess, 1e-6 * capacity, capacity * (1 - 1e-9), xtol=1e-10)
    return lam / RATE


def cases() -> list[Case]:
    system, load = ecommerce_monolith()
    station = cs.Service("server", MM4_SERVERS, cs.Exponential(MM4_SERVICE_S))
    mm4 = cs.System([station], [cs.Flow("request", 1.0, [cs.Call("server")])], name="mm4")
    return [
        Case("example", "e-commerce monolith, p99 <= 200 ms", system, load,
             cs.Budget(p99_s=0.200, bound="mean"), None),
        Case("mm4", "M/M/4 (10 ms), p99 <= 100 ms", mm4,
             cs.OpenWorkload(users=1_000, requests_per_user_s=RATE),
             cs.Budget(p99_s=0.100, bound="mean"), mm4_exact_users()),
    ]


def _where(pool: Executor | None) -> dict:
    """Sweep keywords: the shared pool, or this process (processes=1) when there is none."""
    return {"processes": 1} if pool is None else {"executor": pool}


def _warm_up(pool: Executor, processes: int) -> None:
    """Start the workers and import capsim in them, so no method pays for it."""
    tiny = cs.System([cs.Service("s", 1, cs.Exponential(0.01))],
                     [cs.Flow("f", 1.0, [cs.Call("s")])])
    cs.sweep(tiny, [cs.OpenWorkload(1, 10.0)] * processes, 1, duration_s=1.0, warmup_s=0.0,
             executor=pool, store=None, progress=False)


def run_grid(case: Case, users: np.ndarray, args, pool) -> dict:
    with tempfile.TemporaryDirectory(prefix="capsim-bench-") as tmp:
        started = time.perf_counter()
        sw = cs.sweep(case.system, cs.growth(case.workload, users=users.tolist()),
                      args.replications, args.seed, duration_s=args.duration,
                      store=ResultStore(tmp), progress=False, **_where(pool))
        sat = sw.saturation(case.budget)
        wall = time.perf_counter() - started
    table = sat.table[sat.table["metric"] == sat.breaks_on].sort_values("users")
    broken = table.loc[~table["meets"].to_numpy(dtype=bool), "users"]
    hi = float(broken.iloc[0]) if len(broken) else math.inf
    below = table.loc[table["users"] < hi, "users"]
    lo = float(below.iloc[-1]) if len(below) else 0.0
    simulated = sw.points[sw.points["simulated"]]
    return {"method": f"grid ({len(users)} points)", "points": len(users),
            "runs": int(simulated["replications"].sum()), "requests": sw.simulated_requests,
            "wall_s": wall, "users": sat.users, "lo": lo, "hi": hi,
            "ci": (sat.users_low, sat.users_high)}


def run_search(case: Case, rel_tol: float, max_reps: int, label: str, args, pool) -> dict:
    with tempfile.TemporaryDirectory(prefix="capsim-bench-") as tmp:
        started = time.perf_counter()
        found = cs.find_saturation(case.system, case.workload, case.budget,
                                   duration_s=args.duration, replications=args.replications,
                                   max_replications=max_reps, rel_tol=rel_tol, seed=args.seed,
                                   max_extension=args.max_extension, store=ResultStore(tmp),
                                   **_where(pool))
        wall = time.perf_counter() - started
    ev = found.evaluations
    runs = int(ev.loc[ev["requests"] > 0, "replications"].sum())
    return {"method": label, "points": len(ev), "runs": runs,
            "requests": found.simulated_requests, "wall_s": wall, "users": found.users,
            "lo": found.users_low, "hi": found.users_high, "ci": None}


def bench_case(case: Case, args, pool) -> list[dict]:
    guess = twin_saturation(case.system, case.workload, case.budget)
    users = np.linspace((1 - SPREAD) * guess, (1 + SPREAD) * guess, args.points)
    spacing = float(users[1] - users[0])
    tol = spacing / guess
    reps, most = args.replications, args.max_replications
    rows = [
        run_grid(case, users, args, pool),
        run_search(case, tol, most, f"adaptive, rel_tol {tol:.1%}, reps {reps}..{most}",
                   args, pool),
        run_search(case, tol / 2, most,
                   f"adaptive, rel_tol {tol / 2:.1%}, reps {reps}..{most}", args, pool),
        run_search(case, tol / 2, reps, f"adaptive, rel_tol {tol / 2:.1%}, reps {reps}",
                   args, pool),
    ]
    for r in rows:
        r.update(system=case.key, guess=guess, spacing=spacing, exact=case.exact_users)
    return rows


def _users(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:,.0f}"


def markdown_table(rows: list[dict]) -> str:
    head = ("| system | method | points | runs | simulated requests | wall s | saturation users "
            "| bracket | bracket width | as precise as the grid | 95% CI | exact users |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in rows:
        width = r["hi"] - r["lo"]
        ci = "-" if r["ci"] is None else f"{_users(r['ci'][0])}-{_users(r['ci'][1])}"
        if r["exact"] is None:
            exact = "-"
        else:
            inside = r["lo"] <= r["exact"] <= r["hi"]
            exact = f"{r['exact']:,.0f} ({'in' if inside else 'outside'} bracket)"
        lines.append(
            f"| {r['system']} | {r['method']} | {r['points']} | {r['runs']} "
            f"| {r['requests']:,} | {r['wall_s']:.1f} | {_users(r['users'])} "
            f"| {_users(r['lo'])}-{_users(r['hi'])} "
            f"| {_users(width)} ({width / r['guess']:.1%}) "
            f"| {'yes' if width <= r['spacing'] * (1 + 1e-9) else 'no'} | {ci} | {exact} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny smoke run: 6 points, 2 replications x 4 s, 1 process")
    parser.add_argument("--points", type=int, default=20, help="grid points (default 20)")
    parser.add_argument("--replications", type=int, default=5,
                        help="replications per point, both methods (default 5)")
    parser.add_argument("--max-replications", type=int, default=20,
                        help="most replications the adaptive search spends on one point")
    parser.add_argument("--duration", type=float, default=120.0,
                        help="simulated seconds per run, both methods (default 120)")
    parser.add_argument("--processes", type=int, default=2, help="worker processes")
    parser.add_argument("--systems", default="example,mm4", help="comma-separated: example,mm4")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--max-extension", type=float, default=8.0,
                        help="how much longer the search may run a point too short for its "
                             "p99 (default 8; 1 = never, as the grid)")
    args = parser.parse_args(argv)
    if args.quick:
        args.points, args.replications, args.max_replications = 6, 2, 4
        args.duration, args.processes, args.max_extension = 4.0, 1, 1.0
    if args.points < 3 or args.replications < 2 or args.max_replications < args.replications:
        parser.error("need --points >= 3, --replications >= 2, "
                     "--max-replications >= --replications")
    by_key = {c.key: c for c in cases()}
    keys = [k.strip() for k in args.systems.split(",") if k.strip()]
    if bad := [k for k in keys if k not in by_key]:
        parser.error(f"unknown system(s) {bad}; choose from {list(by_key)}")

    print(f"# capsim saturation bench: grid of {args.points} points on the twin's guess "
          f"+-{SPREAD:.0%} vs find_saturation with rel_tol = grid spacing / guess; "
          f"{args.replications} replications x {args.duration:g} s per point, "
          f"{args.processes} process(es); Python {platform.python_version()}, "
          f"capsim {cs.__version__}", file=sys.stderr)
    rows = []
    serial = args.processes <= 1
    with nullcontext(None if serial else shared_pool(args.processes)) as pool:
        if pool is not None:
            _warm_up(pool, args.processes)
        for key in keys:
            rows += bench_case(by_key[key], args, pool)
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
