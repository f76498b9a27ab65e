"""A load test to run, planned by simulating it first: the k6 script, the Locust file, and
what each of their thresholds should show.

The case study load-tests "at 2x the current peak on a regular cadence", and ships only if p99
stays within the budget. :func:`plan_load_test` turns a scenario into that test: a ramp to
today's peak and a hold there, a ramp to ``headroom`` x peak and a hold there (more levels if
asked), each flow at its share of the traffic. The same levels are simulated, so every
threshold of the script comes with what the model expects it to show: the estimate, its
confidence interval, and a verdict that says when the model cannot tell.

The scripts (:meth:`LoadTestPlan.k6_script`, :meth:`LoadTestPlan.locustfile`):

* **k6**: an open population is one ``ramping-arrival-rate`` scenario per flow (requests per
  minute, so that a slow flow keeps its rate), a closed one a ``ramping-vus`` scenario whose
  users pick a flow by weight and think between requests, as the model's users do. Every
  request is tagged with its ``flow`` and the ``stage`` it was sent in (``peak_1x``,
  ``headroom_2x``, or ``ramp``), so the thresholds judge each hold on its own requests, never
  diluted by the ramps: ``'http_req_duration{stage:headroom_2x}': ['p(99)<200']``.
* **Locust**: one ``HttpUser`` class per population with a ``@task`` per flow weighted as the
  flows are, and a ``LoadTestShape`` with the same stages. Locust users are closed loops: an
  open population becomes users that each send at most ``constant_throughput(r)`` requests per
  second, enough of them for the level's rate (one Locust user stands for many real users; the
  file says how many). Locust has no thresholds: the shape resets the statistics as the last
  hold begins, and on quitting the file checks that hold's p99 against the budget and sets the
  exit code to 1 when it breaks.

Both read the target from ``BASE_URL`` (k6: ``-e BASE_URL=...``; Locust: ``--host``) and send
``GET /<flow>``; edit the request functions to match the real endpoints.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from capsim.errors import check_number, fail
from capsim.model import Budget
from capsim.model.workload import ClosedWorkload, OpenWorkload, Share, shares
from capsim.units import format_duration

__all__ = ["EXPECT_COLUMNS", "STAGE_COLUMNS", "LoadTestPlan", "plan_load_test"]

STAGE_COLUMNS = ["stage", "factor", "users", "requests_per_s", "ramp_from_s", "start_s",
                 "end_s"]
EXPECT_COLUMNS = ["stage", "flow", "metric", "threshold", "limit", "mean", "ci_low", "ci_high",
                  "expect", "why"]
_PERCENTILES = {"p99_s": "p(99)", "p95_s": "p(95)"}
_K6_STATS = ["avg", "min", "med", "max", "p(90)", "p(95)", "p(99)"]
LOCUST_USER_RATE_PER_S = 1.0  # the fewest requests per s one Locust user of an open load sends


@dataclass(frozen=True)
class LoadTestPlan:
    """The planned test: its stages, the flows' shares, and what the simulation expects.

    ``stages``: one row per hold (:data:`STAGE_COLUMNS`; times in seconds from the start, the
    ramp to a hold runs from ``ramp_from_s`` to ``start_s``; ``requests_per_s`` is the offered
    rate of open populations, or the simulated throughput where there are closed users).
    ``expectations``: one row per threshold (:data:`EXPECT_COLUMNS`); ``expect`` is
    ``"pass"``, ``"fail"`` or ``"unsure"`` (the interval straddles the limit, or the runs were
    too short to judge a tail).
    """

    scenario: str
    budget: Budget
    peak_users: float
    headroom: float
    stages: pd.DataFrame
    expectations: pd.DataFrame
    parts: tuple[tuple[Share, ...], ...] = field(repr=False)  # the populations at each stage
    ramp_s: float = 60.0
    ramp_down_s: float = 30.0
    replications: int = 0
    duration_s: float = 0.0

    @property
    def total_s(self) -> float:
        return float(self.stages["end_s"].iloc[-1] + self.ramp_down_s)

    def thresholds(self) -> dict[str, list[str]]:
        """The k6 ``thresholds`` option: one entry per row of ``expectations``."""
        out: dict[str, list[str]] = {}
        for row in self.expectations.itertuples():
            metric, expr = row.threshold.split(" ", 1)
            out.setdefault(metric, []).append(expr)
        return out

    def summary(self) -> str:
        """The plan in words and tables: the stages, then each threshold beside what the
        simulation expects of it."""
        st = self.stages.copy()
        st["from"] = st["start_s"].map(format_duration)
        st["to"] = st["end_s"].map(format_duration)
        lines = [f"Load test for {self.scenario}: peak {self.peak_users:,.0f} users, "
                 f"headroom {self.headroom:g}x, {format_duration(self.total_s)} in all; "
                 f"expectations from {self.replications} simulated runs of "
                 f"{format_duration(self.duration_s)} per stage.",
                 st[["stage", "users", "requests_per_s", "from", "to"]].round(1)
                 .to_string(index=False), ""]
        ex = self.expectations
        width = max(len(t) for t in ex["threshold"])
        for row in ex.itertuples():
            if math.isnan(row.mean):
                shown = "no finite value"
            elif row.metric == "error_rate":
                shown = (f"{row.mean:.2%} [{row.ci_low:.2%}, {row.ci_high:.2%}]"
                         if not math.isnan(row.ci_low) else f"{row.mean:.2%}")
            else:
                shown = (f"{row.mean * 1e3:.0f} ms [{row.ci_low * 1e3:.0f}, "
                         f"{row.ci_high * 1e3:.0f}]" if not math.isnan(row.ci_low)
                         else f"{row.mean * 1e3:.0f} ms")
            lines.append(f"{row.threshold:<{width}}  simulated {shown:<24} "
                         f"expect {row.expect.upper()}{f' ({row.why})' if row.why else ''}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    # -- the scripts ----------------------------------------------------------------------------
    def k6_script(self, base_url: str = "http://127.0.0.1:8080") -> str:
        """A k6 script (JavaScript) that runs the plan; ``k6 run -e BASE_URL=... plan.js``."""
        scenarios: dict[str, dict] = {}
        flows: dict[str, str] = {}  # function name -> flow
        for i, share in enumerate(self.parts[0]):
            if isinstance(share.workload, OpenWorkload):
                for j, flow in enumerate(share.flows):
                    fn = _js_name(flow, "flow")
                    flows[fn] = flow
                    rates = [self._rate(k, i) * share_p for k, share_p in
                             ((k, self.parts[k][i].probabilities[j])
                              for k in range(len(self.parts)))]
                    key = _js_name(f"{share.name}_{flow}" if len(self.parts[0]) > 1 else flow,
                                   "scenario")
                    scenarios[key] = self._arrival_scenario(fn, rates)
            else:
                fn = _js_name(f"users_{share.name}", "users")
                scenarios[fn] = self._vus_scenario(fn, i)
        lines = [
            f"// k6 load test planned by capsim for {self.scenario}: peak "
            f"{self.peak_users:,.0f} users,",
            f"// headroom {self.headroom:g}x, budget {self.budget}. Each threshold's "
            "simulated expectation",
            "// is in the plan capsim printed. Run: k6 run -e BASE_URL=http://host:port "
            "plan.js",
            "import http from 'k6/http';",
            "import exec from 'k6/execution';",
            "import { sleep } from 'k6';",
            "",
            f"const BASE_URL = __ENV.BASE_URL || {json.dumps(base_url)};",
            "// the holds: [stage, start s, end s]; requests sent outside them are tagged ramp",
            f"const HOLDS = {json.dumps(self._holds())};",
            "",
            "function stage() {",
            "  const t = exec.instance.currentTestRunDuration / 1000;",
            "  for (const [name, start, end] of HOLDS) {",
            "    if (t >= start && t < end) return name;",
            "  }",
            "  return 'ramp';",
            "}",
            "",
            "function send(flow) {",
            "  // edit: the real request of each flow",
            "  http.get(`${BASE_URL}/${flow}`, { tags: { flow: flow, stage: stage() } });",
            "}",
            "",
            "export const options = " + json.dumps({
                "scenarios": scenarios,
                "thresholds": self.thresholds(),
                "summaryTrendStats": _K6_STATS,
            }, indent=2) + ";",
            "",
        ]
        for fn, flow in flows.items():
            lines += [f"export function {fn}() {{", f"  send({json.dumps(flow)});", "}", ""]
        for i, share in enumerate(self.parts[0]):
            if isinstance(share.workload, ClosedWorkload):
                fn = _js_name(f"users_{share.name}", "users")
                cum = np.cumsum(share.probabilities)
                picks = [[float(round(c, 6)), f] for c, f in zip(cum, share.flows, strict=True)]
                picks[-1][0] = 1.0
                lines += [
                    f"// a user of {share.name}: a flow by weight, then think "
                    f"({share.workload.think_time!r})",
                    f"const PICKS_{i} = {json.dumps(picks)};",
                    f"export function {fn}() {{",
                    "  const u = Math.random();",
                    f"  send(PICKS_{i}.find(([p]) => u < p)[1]);",
                    f"  sleep({_js_think(share.workload.think_time)});",
                    "}", ""]
        return "\n".join(lines)

    def locustfile(self) -> str:
        """A Locust file (Python) that runs the same stages; ``locust -f locustfile.py
        --headless --host http://host:port``."""
        rates = self._locust_user_rates()
        classes, shape_users = [], []
        for i, share in enumerate(self.parts[0]):
            cls = "".join(part.capitalize() for part in _py_name(share.name).split("_")) + "Users"
            weights = _int_weights(share.probabilities)
            tasks = []
            for flow, w in zip(share.flows, weights, strict=True):
                tasks += [f"    @task({w})", f"    def {_py_name(flow)}(self):",
                          "        # edit: the real request of this flow",
                          f"        self.client.get({json.dumps('/' + flow)}, "
                          f"name={json.dumps(flow)})", ""]
            if isinstance(share.workload, OpenWorkload):
                per = rates[i]
                wait = f"constant_throughput({per:.6g})"
                stands = per / share.workload.requests_per_user_s
                note = (f"    # an open load: each Locust user sends at most {per:.6g} "
                        f"requests/s;\n    # one stands for {stands:.4g} of the scenario's users")
                counts = [math.ceil(self._rate(k, i) / per - 1e-9)
                          for k in range(len(self.parts))]
            else:
                wait = _py_think(share.workload.think_time)
                note = "    # a closed load: Locust users are the scenario's users"
                counts = [int(self.parts[k][i].workload.users) for k in range(len(self.parts))]
            shape_users.append(counts)
            classes += [f"class {cls}(HttpUser):", note, f"    wait_time = {wait}",
                        f"    weight = {max(1, counts[0])}", "", *tasks, ""]
        st = self.stages
        stages = [[float(r.ramp_from_s), float(r.start_s), float(r.end_s), int(sum(u[k] for u
                   in shape_users))] for k, r in enumerate(st.itertuples())]
        limits = {row.flow: row.limit for row in self.expectations.itertuples()
                  if row.stage == st["stage"].iloc[-1] and row.metric == "p99_s"}
        last = st["stage"].iloc[-1]
        header = [
            f'"""Locust load test planned by capsim for {self.scenario}: peak '
            f'{self.peak_users:,.0f} users, headroom {self.headroom:g}x.',
            "",
            "Run: locust -f locustfile.py --headless --host http://host:port",
            f"The statistics are reset as the last hold ({last}) begins; on quitting, its p99 is",
            "checked against the budget and the exit code is 1 if it breaks.",
            '"""',
            "",
            "from locust import HttpUser, LoadTestShape, constant_throughput, events, task",
            "from locust import between, constant  # noqa: F401 (think times)",
            "",
            "# [ramp from s, hold start s, hold end s, Locust users]",
            f"STAGES = {json.dumps(stages)}",
            f"LAST_HOLD = {json.dumps(last)}",
            f"P99_LIMITS_MS = {json.dumps({k: round(v * 1e3, 3) for k, v in limits.items()})}",
            "",
            "",
        ]
        footer = [
            "class Stages(LoadTestShape):",
            "    reset_done = False",
            "",
            "    def tick(self):",
            "        t = self.get_run_time()",
            "        before = 0",
            "        for ramp_from, start, end, users in STAGES:",
            "            spawn_rate = max(1.0, abs(users - before) / max(start - ramp_from, 1e-9))",
            "            if t < start:  # ramping towards this hold",
            "                done = max(0.0, (t - ramp_from) / max(start - ramp_from, 1e-9))",
            "                return max(1, round(before + (users - before) * done)), spawn_rate",
            "            if t < end:",
            "                if start == STAGES[-1][1] and not self.reset_done:",
            "                    self.reset_done = True",
            "                    self.runner.stats.reset_all()  # judge the last hold alone",
            "                return users, spawn_rate",
            "            before = users",
            "        return None  # the last hold is over: stop",
            "",
            "",
            "@events.quitting.add_listener",
            "def check_budget(environment, **kwargs):",
            "    stats = environment.stats",
            "    broken = []",
            "    for name, limit in P99_LIMITS_MS.items():",
            "        entry = stats.total if name == 'all' else stats.get(name, 'GET')",
            "        if entry.num_requests == 0:",
            "            broken.append(f'{name}: no requests in {LAST_HOLD}')",
            "            continue",
            "        p99 = entry.get_response_time_percentile(0.99)",
            "        if p99 > limit:",
            "            broken.append(f'{name}: p99 {p99:.0f} ms > {limit:g} ms')",
            "    for line in broken:",
            "        print(f'budget broken in {LAST_HOLD}: {line}')",
            "    if broken:",
            "        environment.process_exit_code = 1",
            "",
        ]
        return "\n".join(header + classes + [""] + footer)

    def compare(self, k6_summary: str | Path) -> pd.DataFrame:
        """Each threshold beside what a real k6 run of the plan measured.

        ``k6_summary``: the JSON of ``k6 run --summary-export`` or of ``handleSummary``. Adds
        ``measured`` (the statistic k6 judged: p(99) in seconds, or the failed share),
        ``k6_passed`` (k6's own verdict) and ``as_expected`` (True / False where the plan
        expected pass or fail, NaN where it was unsure).
        """
        path = Path(k6_summary)
        try:
            metrics = json.loads(path.read_text(encoding="utf-8"))["metrics"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise fail("LoadTestPlan.compare", "k6_summary", "must be the JSON of k6 "
                       "--summary-export or handleSummary", f"{path} ({exc})") from None
        rows = []
        for row in self.expectations.itertuples():
            metric, expr = row.threshold.split(" ", 1)
            m = metrics.get(metric)
            if m is None:
                raise fail("LoadTestPlan.compare", "k6_summary", f"must hold the plan's "
                           f"metric {metric} (was it written by a run of this plan?)", str(path))
            values = m.get("values", m)
            stat = expr.split("<", 1)[0]
            if stat == "rate":
                measured = float(values.get("rate", values.get("value", math.nan)))
            else:
                measured = float(values.get(stat, math.nan)) / 1e3
            verdict = m.get("thresholds", {}).get(expr)
            # --summary-export marks a crossed threshold true; handleSummary says {"ok": ...}
            passed = (bool(verdict["ok"]) if isinstance(verdict, dict)
                      else not bool(verdict) if verdict is not None else math.nan)
            expected = {"pass": True, "fail": False}.get(row.expect)
            judged = expected is not None and isinstance(passed, bool)
            rows.append({"threshold": row.threshold, "expect": row.expect,
                         "simulated": row.mean, "ci_low": row.ci_low, "ci_high": row.ci_high,
                         "measured": measured, "k6_passed": passed,
                         "as_expected": passed == expected if judged else math.nan})
        return pd.DataFrame(rows)

    def write(self, k6: str | Path | None = None, locust: str | Path | None = None,
              base_url: str = "http://127.0.0.1:8080") -> dict[str, Path]:
        """Write the k6 script and/or the Locust file; returns the paths written."""
        out = {}
        if k6 is not None:
            out["k6"] = Path(k6)
            out["k6"].write_text(self.k6_script(base_url), encoding="utf-8")
        if locust is not None:
            out["locust"] = Path(locust)
            out["locust"].write_text(self.locustfile(), encoding="utf-8")
        return out

    # -- pieces ---------------------------------------------------------------------------------
    def _rate(self, stage: int, part: int) -> float:
        w = self.parts[stage][part].workload
        return float(w.users * w.requests_per_user_s) if isinstance(w, OpenWorkload) else 0.0

    def _holds(self) -> list[list]:
        return [[r.stage, float(r.start_s), float(r.end_s)] for r in self.stages.itertuples()]

    def _stages_js(self, targets: list[float]) -> list[dict]:
        out = []
        for target, r in zip(targets, self.stages.itertuples(), strict=True):
            out.append({"target": target, "duration": _k6_duration(r.start_s - r.ramp_from_s)})
            out.append({"target": target, "duration": _k6_duration(r.end_s - r.start_s)})
        out.append({"target": 0, "duration": _k6_duration(self.ramp_down_s)})
        return out

    def _arrival_scenario(self, fn: str, rates: list[float]) -> dict:
        per_min = [max(0, round(r * 60)) for r in rates]
        # enough VUs for the top rate at a generous response time (Little's law), and room
        slowest = max(self.budget.p99_s or 0.0, 1.0)
        pre = max(2, math.ceil(max(rates) * slowest * 2))
        return {"executor": "ramping-arrival-rate", "exec": fn, "startRate": 0,
                "timeUnit": "1m", "preAllocatedVUs": pre, "maxVUs": max(10, 10 * pre),
                "stages": self._stages_js(per_min)}

    def _vus_scenario(self, fn: str, part: int) -> dict:
        users = [int(self.parts[k][part].workload.users) for k in range(len(self.parts))]
        return {"executor": "ramping-vus", "exec": fn, "startVUs": 0,
                "stages": self._stages_js(users), "gracefulRampDown": "10s"}

    def _locust_user_rates(self) -> list[float]:
        """Requests/s per Locust user of each open population: the scenario's own rate per
        user, raised so that the peak needs at most a few hundred Locust users."""
        out = []
        for i, share in enumerate(self.parts[0]):
            w = share.workload
            if isinstance(w, OpenWorkload):
                out.append(max(w.requests_per_user_s, LOCUST_USER_RATE_PER_S,
                               self._rate(0, i) / 500))
            else:
                out.append(math.nan)
        return out


def plan_load_test(system, workload, budget: Budget, *, peak_users: float | None = None,
                   headroom: float = 2.0, levels: tuple[float, ...] | None = None,
                   ramp_s: float = 60.0, hold_s: float = 300.0, ramp_down_s: float = 30.0,
                   replications: int = 5, duration_s: float | None = None,
                   warmup_s: float | None = None, seed: int = 0, scenario: str = "system",
                   progress: bool = False, store=None) -> LoadTestPlan:
    """Plan a stepped load test at ``levels`` x ``peak_users`` (default: 1x and
    ``headroom``x), simulating each level to say what its thresholds should show.

    Each level is simulated ``replications`` times for ``duration_s`` (default: the hold).
    The thresholds are the budget's p99 / p95 limits (on all requests and on each flow) and
    its error rate, judged on each hold's own requests.
    """
    from capsim.experiment.growth import growth
    from capsim.experiment.sweep import sweep

    owner = "plan_load_test"
    if not isinstance(budget, Budget):
        raise fail(owner, "budget", "must be a capsim.Budget", budget)
    peak = check_number(owner, "peak_users", float(peak_users if peak_users is not None
                                                   else workload.users))
    headroom = check_number(owner, "headroom", headroom)
    if headroom < 1.0:
        raise fail(owner, "headroom", "must be >= 1 (a factor of the peak, e.g. 2)", headroom)
    factors = tuple(levels) if levels is not None else ((1.0, headroom) if headroom > 1.0
                                                         else (1.0,))
    for f in factors:
        check_number(owner, "levels", f)
    if list(factors) != sorted(set(factors)):
        raise fail(owner, "levels", "must grow (each a factor of the peak)", factors)
    ramp_s = check_number(owner, "ramp_s", ramp_s)
    hold_s = check_number(owner, "hold_s", hold_s)
    ramp_down_s = check_number(owner, "ramp_down_s", ramp_down_s, strict=False)
    if not [m for _, m, _ in budget.limits() if m in _PERCENTILES or m == "error_rate"]:
        raise fail(owner, "budget", "needs a latency or error-rate limit for the thresholds "
                   "(p99_s, p95_s or error_rate)", str(budget))
    integer = isinstance(workload.users, int)
    users = [max(1, round(f * peak)) if integer else f * peak for f in factors]
    loads = [workload.with_users(u) for u in users]
    parts = tuple(shares(system, w) for w in loads)
    for share in parts[0]:
        if not isinstance(share.workload, OpenWorkload | ClosedWorkload):
            raise fail(owner, "workload", "must be open or closed populations",
                       type(share.workload).__name__)
        if isinstance(share.workload, OpenWorkload) and share.workload.profile is not None:
            raise fail(owner, "workload", "must have no profile: the plan holds each level "
                       "flat (drop the profile; the stages are the plan's own)",
                       share.workload.profile)
    names = [_stage_name(f, f == factors[-1] and f > 1.0) for f in factors]
    rows, t = [], 0.0
    for name, f, u, stage_parts in zip(names, factors, users, parts, strict=True):
        rate = sum(s.workload.users * s.workload.requests_per_user_s for s in stage_parts
                   if isinstance(s.workload, OpenWorkload))
        rows.append({"stage": name, "factor": f, "users": u, "requests_per_s": rate,
                     "ramp_from_s": t, "start_s": t + ramp_s, "end_s": t + ramp_s + hold_s})
        t += ramp_s + hold_s
    stages = pd.DataFrame(rows, columns=STAGE_COLUMNS)

    run_s = float(duration_s if duration_s is not None else hold_s)
    result = sweep(system, growth(workload, users=users), replications, seed,
                   duration_s=run_s, warmup_s=warmup_s, progress=progress, store=store)
    if any(isinstance(s.workload, ClosedWorkload) for s in parts[0]):
        # closed users send what their think time and the response times let them: the rate
        # a stage runs at is the simulated throughput, not a number the plan sets
        x = result.metric("throughput_per_s")
        stages["requests_per_s"] = [
            float(x["mean"].iloc[int(np.argmin(np.abs(x["users"] - u)))]) for u in users]
    flows = sorted({f for share in parts[0] for f in share.flows})
    expectations = _expectations(result, budget, stages, flows)
    return LoadTestPlan(scenario, budget, peak, headroom, stages, expectations, parts, ramp_s,
                        ramp_down_s, replications, run_s)


def _expectations(result, budget: Budget, stages: pd.DataFrame, flows: list[str]):
    rows = []
    for stage in stages.itertuples():
        for _, metric, limit in budget.limits():
            if metric not in _PERCENTILES and metric != "error_rate":
                continue  # a mean limit has no k6 threshold of its own in this plan
            targets = ["all", *flows] if metric in _PERCENTILES and len(flows) > 1 else ["all"]
            for flow in targets:
                curve = result.metric(metric, flow)
                row = curve.iloc[int(np.argmin(np.abs(curve["users"] - stage.users)))]
                rows.append({"stage": stage.stage, "flow": flow, "metric": metric,
                             "threshold": _threshold(metric, limit, stage.stage, flow),
                             "limit": limit, **_verdict(row, limit, metric)})
    return pd.DataFrame(rows, columns=EXPECT_COLUMNS)


def _verdict(row, limit: float, metric: str) -> dict:
    mean, lo, hi = float(row["mean"]), float(row["ci_low"]), float(row["ci_high"])
    if not bool(row["stable"]):
        return {"mean": math.nan, "ci_low": math.nan, "ci_high": math.nan, "expect": "fail",
                "why": "saturated: the queue grows for as long as the load lasts"}
    if metric != "error_rate" and not bool(row.get("adequate", True)):
        return {"mean": mean, "ci_low": lo, "ci_high": hi, "expect": "unsure",
                "why": "the simulated runs are too short for this tail; run longer"}
    if math.isnan(hi):
        hi = lo = mean
    if hi <= limit:
        return {"mean": mean, "ci_low": lo, "ci_high": hi, "expect": "pass", "why": ""}
    if lo > limit:
        return {"mean": mean, "ci_low": lo, "ci_high": hi, "expect": "fail", "why": ""}
    return {"mean": mean, "ci_low": lo, "ci_high": hi, "expect": "unsure",
            "why": "the interval straddles the limit"}


def _threshold(metric: str, limit: float, stage: str, flow: str) -> str:
    tags = f"stage:{stage}" + ("" if flow == "all" else f",flow:{flow}")
    if metric == "error_rate":
        return f"http_req_failed{{{tags}}} rate<{limit:g}"
    return f"http_req_duration{{{tags}}} {_PERCENTILES[metric]}<{limit * 1e3:g}"


def _stage_name(factor: float, headroom: bool) -> str:
    return f"{'headroom' if headroom else 'peak'}_{factor:g}x".replace(".", "_")


def _k6_duration(seconds: float) -> str:
    seconds = float(seconds)
    return f"{seconds:.0f}s" if abs(seconds - round(seconds)) < 1e-9 else f"{seconds * 1e3:.0f}ms"


def _js_name(text: str, fallback: str) -> str:
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in str(text))
    return name if name and not name[0].isdigit() else f"{fallback}_{name}"


def _py_name(text: str) -> str:
    return _js_name(text, "f")


def _int_weights(probabilities) -> list[int]:
    """Locust task weights: integers in the flows' proportions (to 0.1%)."""
    w = np.maximum(1, np.rint(np.asarray(probabilities) * 1000)).astype(int)
    g = np.gcd.reduce(w)
    return (w // g).tolist()


def _js_think(dist) -> str:
    from capsim.dists import Deterministic, Exponential

    if isinstance(dist, Deterministic):
        return f"{dist.mean:.6g}"
    if isinstance(dist, Exponential):
        return f"-Math.log(1 - Math.random()) * {dist.mean:.6g}"
    return f"{dist.mean:.6g} /* the mean of {dist!r} */"


def _py_think(dist) -> str:
    from capsim.dists import Deterministic

    if isinstance(dist, Deterministic):
        return f"constant({dist.mean:.6g})"
    # Locust's waits are constant or uniform: a uniform with the same mean and cv, where the
    # cv allows it (a uniform on [0, 2m] has cv 0.577), else the mean
    half = dist.mean * min(dist.cv, 3 ** -0.5) * 3 ** 0.5
    if half > 0:
        return f"between({dist.mean - half:.6g}, {dist.mean + half:.6g})"
    return f"constant({dist.mean:.6g})"

