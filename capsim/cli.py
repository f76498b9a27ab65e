"""The ``capsim`` command (also ``python -m capsim``): run, sweep, saturation, compare, review,
loadtest, demo, schema.

Exit codes: 0 success (and, for ``review``, the budget holds; for ``demo``, the case study's
verdicts are the ones it tells), 1 the budget fails (``demo``: a verdict changed), 2 a bad
scenario file or argument. ``--json`` prints machine-readable output on stdout.

Parsing needs nothing heavy: numpy, pandas, scipy and matplotlib are imported by the
subcommands, so ``capsim --help`` stays quick.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import replace
from pathlib import Path

EPILOG = {
    "run": "example: capsim run data/scenarios/ecommerce_monolith.yaml --users 15000",
    "sweep": "example: capsim sweep data/scenarios/ecommerce_monolith.yaml --users 5000..25000",
    "saturation": "example: capsim saturation data/scenarios/ecommerce_monolith.yaml "
                  "--budget p99=200ms",
    "review": "example: capsim review data/scenarios/ecommerce_scaled.yaml --budget p99=200ms "
              "--peak-users 10000 --headroom 2x --out reports/review",
    "compare": "example: capsim compare data/scenarios/ecommerce_monolith.yaml --component "
               "postgres --vertical db.r6g.4xlarge --database "
               "db.r6g.2xlarge+r2,db.r6g.xlarge+r1x2 (or --component app --vertical "
               "m7i.8xlarge --horizontal m7i.2xlargex4)",
    "loadtest": "example: capsim loadtest data/scenarios/ecommerce_scaled.yaml --peak-users 10000 "
                "--headroom 2x --budget p99=200ms --k6 plan.js --locust locustfile.py",
    "demo": "example: capsim demo --out reports  (the case study before and after)",
    "testbed": "example: capsim testbed --quick --out reports/testbed  (a real shop on "
               "PostgreSQL, Redis and gunicorn, load-tested with k6, predicted by capsim)",
    "schema": "example: capsim schema > capsim-scenario.schema.json",
}
DURATION_HELP = {"compare": "simulated seconds of every run, the scenarios' and the saturation "
                            "search's (default: sized by page requests, about 20,000 per "
                            "scenario run and 5,000 per search run)"}
# the case study's review: the verdict each scenario should get, and how the demo runs it
CASE_STUDY = (("ecommerce_monolith", False), ("ecommerce_scaled", True))
DEMO_RUNS = {"headroom": 2.0, "points": 8, "replications": 3, "duration_s": 120.0}

_UNITS = {"ms": 1e-3, "us": 1e-6, "s": 1.0, "%": 0.01, "": 1.0}
_ALIASES = {"p99": "p99_s", "p95": "p95_s", "mean": "mean_s", "errors": "error_rate",
            "error_rate": "error_rate", "utilization": "utilization", "p99_s": "p99_s",
            "p95_s": "p95_s", "mean_s": "mean_s", "async_p99": "async_p99_s",
            "async_p99_s": "async_p99_s"}
_BACKLOG = {"allow": True, "ok": True, "yes": True, "true": True, "fail": False, "no": False,
            "false": False}


class UsageError(ValueError):
    """A bad argument: exit code 2 with the message."""


def parse_budget(text: str, bound: str | None = None):
    """``p99=200ms,errors=1%`` -> Budget(p99_s=0.2, error_rate=0.01).

    Also ``async_p99=5s`` (each message queue's publish-to-processed p99) and
    ``backlog=allow`` (accept a consumer group that cannot keep up); ``bound`` is the
    ``--bound`` flag ("upper" or "mean")."""
    from capsim.model import Budget

    limits: dict = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        flag = re.fullmatch(r"(backlog|allow_backlog)\s*=\s*([a-z]+)", part)
        if flag and flag.group(2) in _BACKLOG:
            limits["allow_backlog"] = _BACKLOG[flag.group(2)]
            continue
        m = re.fullmatch(r"([a-z_0-9]+)\s*[=<]=?\s*([0-9.eE+-]+)\s*(ms|us|s|%)?", part)
        if not m or m.group(1) not in _ALIASES:
            raise UsageError(f"--budget: cannot read {part!r}; write e.g. p99=200ms, "
                             f"mean=50ms, errors=1%, utilization=80%, async_p99=5s, "
                             f"backlog=allow")
        limits[_ALIASES[m.group(1)]] = float(m.group(2)) * _UNITS[m.group(3) or ""]
    if not set(limits) - {"allow_backlog"}:
        raise UsageError("--budget: give at least one limit, e.g. p99=200ms")
    return Budget(**limits, **({"bound": bound} if bound else {}))


def parse_users(text: str) -> list[float]:
    """``5000..25000`` (10 points), ``5000..25000:5000`` (step) or ``1000,2000,4000``."""
    import numpy as np

    m = re.fullmatch(r"([0-9.]+)\.\.([0-9.]+)(?::([0-9.]+))?", text.strip())
    if m:
        lo, hi = float(m.group(1)), float(m.group(2))
        if hi <= lo:
            raise UsageError(f"--users: the range must grow, got {text!r}")
        values = (np.arange(lo, hi + 1e-9, float(m.group(3))) if m.group(3)
                  else np.linspace(lo, hi, 10))
        return values.tolist()
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"--users: write A..B, A..B:STEP or a list, got {text!r}") from None


def _parse_factor(text: str) -> float:
    try:
        return float(text.rstrip("xX"))
    except ValueError:
        raise UsageError(f"--headroom: write e.g. 2x, got {text!r}") from None


def parse_seconds(text: str, flag: str) -> float:
    """``90``, ``90s``, ``5m``, ``1h``, ``500ms`` -> seconds."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|m|min|h)?\s*", str(text))
    if not m:
        raise UsageError(f"{flag}: write e.g. 300s, 5m or 1h, got {text!r}")
    value = float(m.group(1)) * {"ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0,
                                  None: 1.0}[m.group(2)]
    if value <= 0:
        raise UsageError(f"{flag}: must be longer than 0, got {text!r}")
    return value


def _failover(text: str | None):
    """``10s,20s`` or ``10s,20s,wait`` -> Failover(detect_s=10, promote_s=20, writes=...)."""
    if text is None:
        return None
    from capsim.model import Failover

    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("fail", "wait")):
        raise UsageError(f"--failover: write DETECT,PROMOTE[,wait], e.g. 10s,20s, got "
                         f"{text!r}")
    writes = parts[2] if len(parts) == 3 else "fail"
    return Failover(parse_seconds(parts[0], "--failover"),
                    parse_seconds(parts[1], "--failover"), writes)


def _load(args):
    from capsim.scenario import load_scenario

    return load_scenario(args.scenario)


def _budget(args, scenario):
    """``--budget`` (or the scenario's), judged on ``--bound`` when given."""
    bound = getattr(args, "bound", None)
    if getattr(args, "budget", None):
        return parse_budget(args.budget, bound)
    if scenario.budget is None:
        raise UsageError("--budget: the scenario has no budget; give one, e.g. p99=200ms")
    return replace(scenario.budget, bound=bound) if bound else scenario.budget


def _users(workload, users):
    return int(round(users)) if isinstance(workload.users, int) else users


def cmd_run(args) -> int:
    import capsim as cs

    sc = _load(args)
    load = sc.workload if args.users is None else sc.workload.with_users(
        _users(sc.workload, args.users))
    run = cs.simulate(sc.system, load, args.duration or sc.run.duration_s,
                      sc.run.warmup_s or 0.0, sc.run.seed)
    if args.json:
        print(json.dumps({"stable": run.stable, "latency": _records(run.latency()),
                          "components": _records(run.components())}, indent=2))
    else:
        print(run.summary())
        print(run.latency().round(4).to_string(index=False))
        print(run.components().round(4).to_string(index=False))
    return 0


def cmd_sweep(args) -> int:
    import capsim as cs

    sc = _load(args)
    users = [_users(sc.workload, u) for u in parse_users(args.users)]
    res = cs.sweep(sc.system, cs.growth(sc.workload, users=users), args.replications
                   or sc.run.replications, sc.run.seed, duration_s=args.duration
                   or sc.run.duration_s, warmup_s=sc.run.warmup_s, progress=not args.json,
                   store=args.store)
    p99 = res.metric("p99_s")
    if args.json:
        print(json.dumps({"p99": _records(p99)}, indent=2))
    else:
        print(p99[["users", "mean", "ci_low", "ci_high", "stable"]].to_string(index=False))
        budget = _budget(args, sc) if args.budget or sc.budget is not None else None
        if budget is not None:
            print(res.saturation(budget))
    return 0


def cmd_saturation(args) -> int:
    import capsim as cs

    sc = _load(args)
    budget = _budget(args, sc)
    found = cs.find_saturation(sc.system, sc.workload, budget, duration_s=args.duration
                               or sc.run.duration_s, replications=sc.run.replications,
                               seed=sc.run.seed, store=args.store)
    if args.json:
        print(json.dumps({"status": found.status, "users": _finite(found.users),
                          "users_low": _finite(found.users_low),
                          "users_high": _finite(found.users_high),
                          "twin_guess": _finite(found.twin_guess),
                          "bottleneck": found.bottleneck, "bound": budget.bound,
                          "simulated_requests": found.simulated_requests,
                          "summary": str(found)}, indent=2))
    else:
        print(found)
    return 0


def cmd_review(args) -> int:
    from capsim.experiment.review import capacity_review

    sc = _load(args)
    budget = _budget(args, sc)
    review = capacity_review(
        sc.system, sc.workload, budget, peak_users=args.peak_users,
        headroom=_parse_factor(args.headroom), points=args.points,
        replications=args.replications or sc.run.replications,
        duration_s=args.duration or sc.run.duration_s, warmup_s=sc.run.warmup_s,
        seed=sc.run.seed, scenario=sc.name, progress=not args.json, store=args.store)
    paths = review.write(args.out)
    if args.json:
        print(json.dumps({**review.summary(), "report": str(paths["html"])}, indent=2))
    else:
        print(f"{'PASS' if review.passed else 'FAIL'}: {review.saturation}")
        print(f"judged on {review.saturation.judged_on} (--bound {budget.bound})")
        print(review.checks.to_string(index=False))
        print(review.recommendation)
        print(f"report: {paths['html']} and {paths['markdown']}")
    return 0 if review.passed else 1


def cmd_loadtest(args) -> int:
    """Plan a load test at peak and headroom: a k6 script and/or a Locust file, each threshold
    printed beside what the simulation expects of it."""
    from capsim.experiment.loadtest import plan_load_test

    if args.k6 is None and args.locust is None:
        raise UsageError("give --k6 PLAN.js and/or --locust LOCUSTFILE.py to write")
    sc = _load(args)
    levels = None
    if args.levels:
        try:
            levels = tuple(float(v.strip().rstrip("xX")) for v in args.levels.split(","))
        except ValueError:
            raise UsageError(f"--levels: write factors of the peak, e.g. 0.5,1,2, got "
                             f"{args.levels!r}") from None
    hold = parse_seconds(args.hold, "--hold")
    plan = plan_load_test(
        sc.system, sc.workload, _budget(args, sc), peak_users=args.peak_users,
        headroom=_parse_factor(args.headroom), levels=levels,
        ramp_s=parse_seconds(args.ramp, "--ramp"), hold_s=hold,
        replications=args.replications or sc.run.replications,
        duration_s=args.duration or min(hold, sc.run.duration_s), warmup_s=sc.run.warmup_s,
        seed=sc.run.seed, scenario=sc.name, progress=not args.json)
    paths = plan.write(args.k6, args.locust, base_url=args.base_url)
    if args.json:
        print(json.dumps({"scenario": sc.name, "files": {k: str(v) for k, v in paths.items()},
                          "stages": _records(plan.stages),
                          "thresholds": _records(plan.expectations)}, indent=2))
    else:
        print(plan.summary())
        for tool, path in paths.items():
            print(f"{tool}: {path}")
    return 0


def cmd_testbed(args) -> int:
    """Run the testbed: every stage calibrated, predicted, then measured with k6."""
    from capsim.report.testbed import comparison_table, write_testbed_report
    from capsim.testbed.run import run_testbed

    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out: {str(args.out)!r} is a file, not a folder")
    say = None if args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        result = run_testbed(args.out, quick=args.quick, progress=say)
    except KeyboardInterrupt:
        print(f"capsim testbed: interrupted; every server was stopped; the stages finished so "
              f"far are in {args.out}/results.json", file=sys.stderr)
        return 130
    paths = write_testbed_report(result.table(), result.predicted, result.measured,
                                 result.versions, args.out)
    if args.json:
        print(json.dumps({**result.to_json(), "report": str(paths["html"])}, indent=2))
    else:
        print(comparison_table(result.table()).to_string(index=False))
        print(f"report: {paths['html']}")
    return 0


def cmd_demo(args) -> int:
    """Review the bundled case study, before (must fail its budget) and after (must hold)."""
    from capsim.examples import scenario
    from capsim.experiment.review import capacity_review

    runs = {**DEMO_RUNS, **{k: v for k, v in (("points", args.points),
                                                ("replications", args.replications),
                                                ("duration_s", args.duration)) if v}}
    if not args.json:
        print("Capacity review of the case study (before and after)")
    written, surprises = [], []
    for name, should_pass in CASE_STUDY:
        sc = scenario(name)
        review = capacity_review(sc.system, sc.workload, _budget(args, sc), **runs,
                                 seed=sc.run.seed, scenario=sc.name, progress=not args.json,
                                 store=args.store)
        paths = review.write(args.out / "review" / name)
        written.append({**review.summary(), "expected_pass": should_pass,
                        "report": str(paths["html"])})
        if review.passed != should_pass:
            surprises.append(f"{sc.name} {'passed' if review.passed else 'failed'}; the case "
                             f"study says it {'passes' if should_pass else 'fails'}")
        if not args.json:
            print(f"\n{sc.name}: {'PASS' if review.passed else 'FAIL'} — {review.saturation}")
            print(f"  {review.recommendation}")
    if args.json:
        print(json.dumps(written, indent=2))
    else:
        print("\nWhere to look:")
        for row in written:
            print(f"  {row['report']}  ({row['scenario']}: "
                  f"{'PASS' if row['passed'] else 'FAIL'})")
    for line in surprises:
        print(f"capsim demo: {line}", file=sys.stderr)
    return 1 if surprises else 0


COMPARE_SYNTAX = {
    "--vertical": ("INSTANCE", "m7i.4xlarge,r7i.8xlarge"),
    "--horizontal": ("INSTANCExCOUNT or COUNTxINSTANCE", "m7i.2xlargex3 or 3xm7i.2xlarge"),
    "--database": ("INSTANCE[+rREPLICAS][xSHARDS]",
                   "db.r6g.2xlarge+r2 (a primary and 2 read replicas) or db.r6g.xlarge+r1x2 "
                   "(2 shards, each a primary and 1 replica)"),
}


def _syntax_error(flag: str, part: str) -> UsageError:
    form, example = COMPARE_SYNTAX[flag]
    return UsageError(f"{flag}: cannot read {part!r}; write {form}, e.g. {example}")


def _instance(catalogue, name: str, flag: str, part: str):
    from capsim.errors import ModelError

    try:
        return catalogue[name]
    except ModelError as exc:
        raise UsageError(f"{flag} {part!r}: {exc}") from None


def _count_form(part: str, names: set[str]) -> tuple[str, int] | None:
    """``m7i.2xlargex3`` or ``3xm7i.2xlarge`` -> (name, count): the reading that names an
    instance of the catalogue (instance names hold x's: 2xlarge), else the first that parses."""
    readings = []
    tail = re.fullmatch(r"(.+)x(\d+)", part)
    if tail:
        readings.append((tail.group(1), int(tail.group(2))))
    head = re.fullmatch(r"(\d+)x(.+)", part)
    if head:
        readings.append((head.group(2), int(head.group(1))))
    known = [r for r in readings if r[0] in names]
    return (known or readings or [None])[0]


def _database_form(part: str, names: set[str]) -> tuple[str, int, int] | None:
    """``db.r6g.xlarge+r1x2`` -> (name, replicas, shards), ``INSTANCE[+rREPLICAS][xSHARDS]``."""
    m = re.fullmatch(r"(?P<name>[^+]+?)(?:\+r(?P<r>\d+))?(?:x(?P<s>\d+))?", part)
    if not m:
        return None
    name, replicas, shards = m.group("name"), m.group("r"), m.group("s")
    if shards is not None and name not in names and f"{name}x{shards}" in names:
        name, shards = f"{name}x{shards}", None  # a name that ends in x and digits
    return name, int(replicas or 0), int(shards or 1)


def _options(spec: str | None, flag: str, catalogue) -> list:
    """The options of one of ``--vertical``, ``--horizontal`` or ``--database`` (comma
    separated; see ``COMPARE_SYNTAX``)."""
    from capsim.errors import ModelError
    from capsim.scaling import DatabaseOptions, Horizontal, Vertical

    if spec is None:
        return []
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise _syntax_error(flag, spec)
    names = {i.name for i in catalogue}
    out = []
    for part in parts:
        try:
            if flag == "--vertical":
                out.append(Vertical(_instance(catalogue, part, flag, part)))
            elif flag == "--horizontal":
                parsed = _count_form(part, names)
                if parsed is None:
                    raise _syntax_error(flag, part)
                out.append(Horizontal(_instance(catalogue, parsed[0], flag, part), parsed[1]))
            else:
                parsed = _database_form(part, names)
                if parsed is None:
                    raise _syntax_error(flag, part)
                name, replicas, shards = parsed
                out.append(DatabaseOptions(_instance(catalogue, name, flag, part),
                                           read_replicas=replicas, shards=shards))
        except ModelError as exc:  # e.g. a count of 0
            raise UsageError(f"{flag} {part!r}: {exc}") from None
    return out


def _compare_options(args, system, catalogue) -> tuple[list, list, list]:
    """(vertical, horizontal, database) options for ``args.component``, refusing a flag the
    component cannot take with the one it can."""
    from capsim.model import Database, Service

    flags = {"--vertical": args.vertical, "--horizontal": args.horizontal,
             "--database": args.database}
    if not any(flags.values()):
        raise UsageError("give --vertical, --horizontal and/or --database options to compare")
    name = args.component
    if any(h.name == name for h in system.hosts):
        for flag in ("--horizontal", "--database"):
            if flags[flag]:
                raise UsageError(f"{flag}: Host({name!r}) is one box: it scales up, with "
                                 f"--vertical (e.g. --vertical {COMPARE_SYNTAX['--vertical'][1]}"
                                 "); to scale out, model the tier as a Service with instances")
    else:
        comp = system.component(name)  # an unknown name fails here, with a hint
        if isinstance(comp, Database) and flags["--horizontal"]:
            example = COMPARE_SYNTAX["--database"][1]
            first = flags["--horizontal"].split(",")[0].strip()
            parsed = _count_form(first, {i.name for i in catalogue})
            if parsed and parsed[0] in {i.name for i in catalogue} and parsed[1] > 1:
                example = (f"{parsed[0]}+r{parsed[1] - 1} (its {parsed[1]} boxes as a primary "
                           f"and {parsed[1] - 1} read replica{'s' * (parsed[1] > 2)})")
            raise UsageError(f"--horizontal: {comp.label} is stateful: it scales out with read "
                             f"replicas (reads) and shards (writes), not copies behind a "
                             f"balancer; use --database INSTANCE[+rREPLICAS][xSHARDS], e.g. "
                             f"--database {example}")
        if isinstance(comp, Service) and flags["--database"]:
            raise UsageError(f"--database: {comp.label} is a Service: replicas and shards are "
                             f"for a Database; scale it out with --horizontal "
                             f"{COMPARE_SYNTAX['--horizontal'][0]}, e.g. "
                             f"{COMPARE_SYNTAX['--horizontal'][1]}")
    return tuple(_options(spec, flag, catalogue) for flag, spec in flags.items())


def cmd_compare(args) -> int:
    from capsim.scaling import compare, load_catalogue

    sc = _load(args)
    catalogue = load_catalogue(args.catalogue)
    vertical, horizontal, database = _compare_options(args, sc.system, catalogue)
    result = compare(sc.system, args.component, vertical, horizontal, options=database,
                     workload=sc.workload if args.users is None
                     else sc.workload.with_users(_users(sc.workload, args.users)),
                     budget=_budget(args, sc), peak_factor=_parse_factor(args.headroom),
                     duration_s=args.duration, simulate_saturation=args.saturation,
                     seed=sc.run.seed, catalogue_label=getattr(catalogue, "label", "")
                     or getattr(catalogue, "source", ""), progress=not args.json,
                     failover=_failover(args.failover))
    if args.json:
        print(json.dumps(_records(result.table().reset_index()), indent=2, default=str))
    else:
        print(result.summary_text())
        print(f"\n{result}; every column: --json")
    return 0


def cmd_schema(args) -> int:
    from capsim.scenario.schema import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def _finite(x):
    """JSON has no inf or NaN: null instead."""
    return float(x) if math.isfinite(x) else None


def _records(df) -> list[dict]:
    out = []
    for row in df.to_dict("records"):
        out.append({k: (None if isinstance(v, float) and not math.isfinite(v) else
                        v.item() if hasattr(v, "item") else v) for k, v in row.items()})
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="capsim", description="Capacity planning for web "
                                     "systems by simulation, with an analytic twin.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, func, help_text):
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG[name])
        p.set_defaults(func=func)
        if name not in ("schema", "demo", "testbed"):
            p.add_argument("scenario", type=Path, help="scenario file (YAML)")
        if name != "schema":
            p.add_argument("--json", action="store_true", help="machine-readable output")
        if name not in ("schema", "testbed"):
            p.add_argument("--duration", type=float, help=DURATION_HELP.get(
                name, "simulated seconds per run"))
        if name in ("sweep", "saturation", "review", "demo"):
            p.add_argument("--store", default="results",
                           help="result store directory (finished runs are reused)")
            p.add_argument("--bound", choices=("upper", "mean"),
                           help="judge the budget on the upper confidence bound (the "
                                "default) or on the mean")
        return p

    p = add("run", cmd_run, "Simulate the scenario once and print latency and components.")
    p.add_argument("--users", type=float, help="users instead of the scenario's")
    p = add("sweep", cmd_sweep, "Sweep users and print p99 with confidence intervals.")
    p.add_argument("--users", required=True, help="A..B, A..B:STEP or a list")
    p.add_argument("--replications", type=int)
    p.add_argument("--budget", help="e.g. p99=200ms,errors=1%%,async_p99=5s,backlog=allow")
    p = add("saturation", cmd_saturation, "Find the users at which the budget breaks.")
    p.add_argument("--budget", help="e.g. p99=200ms (default: the scenario's)")
    p = add("compare", cmd_compare, "Scaling options for one component (a Service, a Database "
            "or a Host): cost per month, users at the budget (simulated), p99, one box down; "
            "a ranked summary (--json: every column).")
    p.add_argument("--component", required=True,
                   help="the tier to scale: a Service, a Database or a Host of the scenario")
    p.add_argument("--vertical", help="one bigger box per option: INSTANCE,... e.g. "
                   f"{COMPARE_SYNTAX['--vertical'][1]} (a Service, a Database or a Host)")
    p.add_argument("--horizontal", help="boxes behind a balancer (a Service): "
                   f"{COMPARE_SYNTAX['--horizontal'][0]},... e.g. "
                   f"{COMPARE_SYNTAX['--horizontal'][1]}")
    p.add_argument("--database", help="a Database as primaries and read replicas: "
                   f"{COMPARE_SYNTAX['--database'][0]},... e.g. "
                   f"{COMPARE_SYNTAX['--database'][1]}; every box is INSTANCE, REPLICAS per "
                   "shard (default 0), SHARDS (default 1)")
    p.add_argument("--failover", help="replicated --database options fail over: "
                   "DETECT,PROMOTE[,wait] e.g. 10s,20s (writes refused meanwhile; ',wait': "
                   "held for the new primary); the primary then fails mid-run and the "
                   "summary says what it cost")
    p.add_argument("--users", type=float, help="target users (default: the scenario's)")
    p.add_argument("--budget", help="e.g. p99=200ms (default: the scenario's)")
    p.add_argument("--headroom", default="2x", help="peak factor to check (2x)")
    p.add_argument("--saturation", action=argparse.BooleanOptionalAction, default=True,
                   help="simulate each option's users at the budget (a saturation search, "
                        "most of the run time); --no-saturation: the analytic twin's "
                        "estimate, said so in the output")
    p.add_argument("--catalogue", help="instance catalogue CSV (default: "
                   "data/catalogues/aws-us-east-1.csv)")
    p = add("review", cmd_review, "Capacity review report; exits 1 when the budget fails.")
    p.add_argument("--budget", help="e.g. p99=200ms, or p99=200ms,async_p99=5s,backlog=allow "
                   "(default: the scenario's)")
    p.add_argument("--peak-users", type=float, help="today's peak (default: the scenario's)")
    p.add_argument("--headroom", default="2x", help="load factor that must hold (2x)")
    p.add_argument("--points", type=int, default=10, help="user counts in the sweep")
    p.add_argument("--replications", type=int)
    p.add_argument("--out", type=Path, default=Path("reports/review"), help="report folder")
    p = add("loadtest", cmd_loadtest, "Plan a load test at peak and headroom x peak: write a k6 "
            "script and/or a Locust file, with what the simulation expects of each threshold.")
    p.add_argument("--budget", help="the thresholds, e.g. p99=200ms,errors=1%% (default: the "
                   "scenario's)")
    p.add_argument("--peak-users", type=float, help="today's peak (default: the scenario's)")
    p.add_argument("--headroom", default="2x", help="the top load level (2x)")
    p.add_argument("--levels", help="load levels as factors of the peak, e.g. 0.5,1,1.5,2 "
                   "(default: 1 and the headroom)")
    p.add_argument("--ramp", default="60s", help="ramp before each hold (60s)")
    p.add_argument("--hold", default="5m", help="length of each hold (5m)")
    p.add_argument("--replications", type=int)
    p.add_argument("--k6", type=Path, help="write the k6 script here")
    p.add_argument("--locust", type=Path, help="write the Locust file here")
    p.add_argument("--base-url", default="http://127.0.0.1:8080",
                   help="the system under test, if BASE_URL / --host is not given at run time")
    p = add("demo", cmd_demo, "Review the bundled case study before and after (what `make "
            "run` shows); exits 1 if a verdict differs from the case study's.")
    p.add_argument("--points", type=int, help=f"user counts per sweep ({DEMO_RUNS['points']})")
    p.add_argument("--replications", type=int,
                   help=f"replications per point ({DEMO_RUNS['replications']})")
    p.add_argument("--out", type=Path, default=Path("reports"),
                   help="reports folder (the reviews go to OUT/review/<scenario>/)")
    p = add("testbed", cmd_testbed, "Predict a real shop, then measure it: PostgreSQL, Redis "
            "and gunicorn on 127.0.0.1, calibrated and load-tested with k6, per stage.")
    p.add_argument("--quick", action="store_true",
                   help="three stages, short runs (a few minutes): the smoke version")
    p.add_argument("--out", type=Path, default=Path("reports/testbed"),
                   help="folder for the report, the calibration and k6's files")
    add("schema", cmd_schema, "Print the JSON Schema of scenario files.")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # --help and bad arguments exit here, importing nothing
    import matplotlib

    matplotlib.use("Agg")
    from capsim.errors import ModelError

    try:
        return args.func(args)
    except (ModelError, UsageError) as exc:
        print(f"capsim {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
