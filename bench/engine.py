"""Engine benchmark: capsim against hand-written SimPy and Ciw on the same queueing networks.

Usage::

    .venv/bin/python bench/engine.py                       # 200,000 customers per run, 3 rounds
    .venv/bin/python bench/engine.py --customers 20000 --only simpy,ciw --rounds 1
    .venv/bin/python bench/engine.py --json results/bench.json

All simulators run in this one process, interleaved: for each workload, every round runs each
simulator once (the starting simulator rotates from round to round), and the table reports the
best wall time over the rounds. Every simulator simulates the same horizon,
``customers / arrival rate`` seconds, from an empty system, and counts only the customers that
completed inside it. The timed region is what a user would run to get a mean sojourn time:
building the model, simulating, and reducing the per-customer records to a mean.

Each simulator's mean sojourn time is compared with queueing theory (Erlang C for M/M/c; open
Jackson network = sum over stations of visits x M/M/c sojourn), from ``capsim.analytic``,
which tests/test_analytic.py checks against textbook values. Speed numbers belong here, never
in timed unit tests (design.md).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SIMULATORS = ("capsim", "simpy", "ciw")
SEED = 20240601


# --------------------------------------------------------------------------------------------
# Workloads: one plain description, which each simulator turns into its own model.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Station:
    name: str
    servers: int
    mean_service_s: float


@dataclass(frozen=True)
class Split:
    """A random choice between station sequences: ``((0.7, ("cache",)), (0.3, ("db",)))``."""

    options: tuple[tuple[float, tuple[str, ...]], ...]


@dataclass(frozen=True)
class Network:
    key: str
    title: str
    arrival_rate_per_s: float
    stations: tuple[Station, ...]
    steps: tuple[str | Split, ...]  # station names visited in order, or a Split

    def routes(self) -> list[tuple[float, tuple[str, ...]]]:
        """Every path a customer can take, with its probability."""
        paths: list[tuple[float, tuple[str, ...]]] = [(1.0, ())]
        for step in self.steps:
            if isinstance(step, Split):
                paths = [(p * q, path + sub) for p, path in paths for q, sub in step.options]
            else:
                paths = [(p, path + (step,)) for p, path in paths]
        return paths

    def visits(self) -> dict[str, float]:
        v = {s.name: 0.0 for s in self.stations}
        for p, path in self.routes():
            for name in path:
                v[name] += p
        return v

    def station(self, name: str) -> Station:
        return next(s for s in self.stations if s.name == name)


WORKLOADS: tuple[Network, ...] = (
    Network("mm1", "M/M/1 rho=0.8", 1.0, (Station("s1", 1, 0.8),), ("s1",)),
    Network("mm4", "M/M/4 rho=0.9", 1.0, (Station("s1", 4, 3.6),), ("s1",)),
    Network(
        "tandem3",
        "3 x M/M/1 tandem rho=0.8/0.7/0.6",
        1.0,
        (Station("s1", 1, 0.8), Station("s2", 1, 0.7), Station("s3", 1, 0.6)),
        ("s1", "s2", "s3"),
    ),
    Network(
        "web",
        "LB -> app(8) -> 70% cache / 30% db(2)",
        200.0,
        (
            Station("lb", 1, 0.003),  # rho 0.60
            Station("app", 8, 0.028),  # rho 0.70
            Station("cache", 1, 0.004),  # 140/s, rho 0.56
            Station("db", 2, 0.025),  # 60/s, rho 0.75
        ),
        ("lb", "app", Split(((0.7, ("cache",)), (0.3, ("db",))))),
    ),
)


# --------------------------------------------------------------------------------------------
# Theory
# --------------------------------------------------------------------------------------------


def theory_mean_sojourn(net: Network) -> tuple[float, str]:
    """Open Jackson network: sum over stations of visits x M/M/c mean sojourn (exact)."""
    from capsim.analytic import mmc

    total = 0.0
    for name, v in net.visits().items():
        if v > 0:
            s = net.station(name)
            total += v * mmc(net.arrival_rate_per_s * v, s.mean_service_s, s.servers).mean_response
    return total, "capsim.analytic.mmc"


# --------------------------------------------------------------------------------------------
# Simulators. Each returns (completed customers, mean sojourn time in seconds).
# --------------------------------------------------------------------------------------------


def run_capsim(net: Network, duration_s: float, seed: int) -> tuple[int, float]:
    import capsim as cs

    services = [
        cs.Service(s.name, servers=s.servers, service_time=cs.Exponential(mean=s.mean_service_s))
        for s in net.stations
    ]
    steps = []
    for step in net.steps:
        if isinstance(step, Split):
            steps.append(cs.Branch([(p, [cs.Call(n) for n in sub]) for p, sub in step.options]))
        else:
            steps.append(cs.Call(step))
    system = cs.System(services, flows=[cs.Flow("f", 1.0, steps)])
    load = cs.OpenWorkload(users=1, requests_per_user_s=net.arrival_rate_per_s)
    run = cs.simulate(system, load, duration_s=duration_s, warmup_s=0.0, seed=seed)
    lat = run.latency()
    count = int(lat["count"].sum())
    mean = float((lat["mean_s"] * lat["count"]).sum() / count) if count else math.nan
    return count, mean


def run_simpy(net: Network, duration_s: float, seed: int) -> tuple[int, float]:
    """What a competent SimPy user writes: a process per customer, a Resource per station."""
    import simpy

    env = simpy.Environment()
    rng = random.Random(seed)
    resources = {s.name: simpy.Resource(env, capacity=s.servers) for s in net.stations}
    # each route as a list of (resource, service rate) pairs, with cumulative probabilities
    routes = [
        (p, [(resources[n], 1.0 / net.station(n).mean_service_s) for n in path])
        for p, path in net.routes()
    ]
    cumulative, acc = [], 0.0
    for p, path in routes:
        acc += p
        cumulative.append((acc, path))
    sojourns: list[float] = []

    def customer(route):
        arrived = env.now
        for resource, rate in route:
            with resource.request() as req:
                yield req
                yield env.timeout(rng.expovariate(rate))
        sojourns.append(env.now - arrived)

    def pick_route():
        u = rng.random()
        for acc, route in cumulative:
            if u < acc:
                return route
        return cumulative[-1][1]

    def arrivals(rate):
        single = cumulative[0][1] if len(cumulative) == 1 else None
        while True:
            yield env.timeout(rng.expovariate(rate))
            env.process(customer(single or pick_route()))

    env.process(arrivals(net.arrival_rate_per_s))
    env.run(until=duration_s)
    n = len(sojourns)
    return n, (sum(sojourns) / n if n else math.nan)


def ciw_routing(net: Network):
    """Per-node Ciw routers (Direct / Probabilistic / Leave) from the network's routes."""
    import ciw

    index = {s.name: i + 1 for i, s in enumerate(net.stations)}  # Ciw nodes are 1-based
    visits = net.visits()
    nxt: dict[str, dict[int, float]] = {s.name: {} for s in net.stations}
    for p, path in net.routes():
        if len(set(path)) != len(path):
            raise ValueError(f"{net.key}: a route revisits a station; not a Jackson network")
        for a, b in zip(path, path[1:] + (None,), strict=True):
            dest = -1 if b is None else index[b]
            nxt[a][dest] = nxt[a].get(dest, 0.0) + p
    routers = []
    for s in net.stations:
        probs = {d: w / visits[s.name] for d, w in nxt[s.name].items()} if visits[s.name] else {}
        if not probs or probs == {-1: 1.0}:
            routers.append(ciw.routing.Leave())
        elif len(probs) == 1:
            routers.append(ciw.routing.Direct(to=next(iter(probs))))
        else:
            dests = [d for d in probs if d != -1]
            ps = [float(probs[d]) for d in dests]
            if sum(ps) > 1.0:  # Ciw rejects rounding noise above 1; exit takes the rest
                ps = [q / (sum(ps) + 1e-15) for q in ps]
            routers.append(ciw.routing.Probabilistic(destinations=dests, probs=ps))
    return ciw.routing.NetworkRouting(routers=routers)


def run_ciw(net: Network, duration_s: float, seed: int) -> tuple[int, float]:
    import ciw

    ciw.seed(seed)  # Ciw samples from the global `random` module; this is its only seed
    first = index_of_entry(net)
    network = ciw.create_network(
        arrival_distributions=[
            ciw.dists.Exponential(rate=net.arrival_rate_per_s) if i == first else None
            for i in range(len(net.stations))
        ],
        service_distributions=[ciw.dists.Exponential(rate=1.0 / s.mean_service_s)
                               for s in net.stations],
        number_of_servers=[s.servers for s in net.stations],
        routing=ciw_routing(net),
    )
    sim = ciw.Simulation(network)
    sim.simulate_until_max_time(duration_s)
    done = sim.nodes[-1].all_individuals  # the exit node holds everyone who completed
    total = 0.0
    for ind in done:
        recs = ind.data_records
        total += recs[-1].exit_date - recs[0].arrival_date
    n = len(done)
    return n, (total / n if n else math.nan)


def index_of_entry(net: Network) -> int:
    """Position of the station every route starts at (all these workloads have one entry)."""
    entries = {path[0] for _, path in net.routes()}
    if len(entries) != 1:
        raise ValueError(f"{net.key}: routes start at several stations {sorted(entries)}")
    return [s.name for s in net.stations].index(entries.pop())


RUNNERS: dict[str, Callable[[Network, float, int], tuple[int, float]]] = {
    "capsim": run_capsim,
    "simpy": run_simpy,
    "ciw": run_ciw,
}


# --------------------------------------------------------------------------------------------
# Benchmark driver
# --------------------------------------------------------------------------------------------


def bench(workloads, simulators, customers: int, rounds: int, seed: int,
          log=lambda msg: print(msg, file=sys.stderr)) -> list[dict]:
    rows = []
    for net in workloads:
        duration = customers / net.arrival_rate_per_s
        theory, source = theory_mean_sojourn(net)
        times: dict[str, list[float]] = {name: [] for name in simulators}
        results: dict[str, tuple[int, float]] = {}
        for r in range(rounds):
            k = r % len(simulators)  # rotate who goes first, so no one always runs on a cold heap
            for name in simulators[k:] + simulators[:k]:
                gc.collect()
                t0 = time.perf_counter()
                completed, mean = RUNNERS[name](net, duration, seed)
                dt = time.perf_counter() - t0
                times[name].append(dt)
                results[name] = (completed, mean)
                log(f"  {net.key:8s} round {r + 1}/{rounds} {name:7s} {dt:7.2f}s "
                    f"{completed / dt:10,.0f} customers/s")
        best_rate = {n: results[n][0] / min(times[n]) for n in simulators}
        for name in simulators:
            completed, mean = results[name]
            rows.append({
                "workload": net.key,
                "title": net.title,
                "simulator": name,
                "customers_completed": completed,
                "duration_s": duration,
                "wall_s": times[name],
                "best_wall_s": min(times[name]),
                "median_wall_s": statistics.median(times[name]),
                "customers_per_s": best_rate[name],
                "ratio_vs_simpy": (best_rate[name] / best_rate["simpy"]
                                   if "simpy" in best_rate else None),
                "ratio_vs_ciw": (best_rate[name] / best_rate["ciw"]
                                 if "ciw" in best_rate else None),
                "mean_sojourn_s": mean,
                "theory_mean_sojourn_s": theory,
                "theory_source": source,
                "error_pct": 100.0 * (mean - theory) / theory,
            })
    return rows


def markdown_table(rows: list[dict]) -> str:
    def ratio(x):
        return "—" if x is None else f"{x:.2f}x"

    lines = [
        "| workload | simulator | customers/s | ratio vs SimPy | ratio vs Ciw "
        "| mean sojourn | theory | error % |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['workload']} | {r['simulator']} | {r['customers_per_s']:,.0f} "
            f"| {ratio(r['ratio_vs_simpy'])} | {ratio(r['ratio_vs_ciw'])} "
            f"| {r['mean_sojourn_s']:.5g} | {r['theory_mean_sojourn_s']:.5g} "
            f"| {r['error_pct']:+.2f} |"
        )
    return "\n".join(lines)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "machine": platform.machine()}
    for mod in ("capsim", "simpy", "ciw", "numpy"):
        try:
            out[mod] = getattr(__import__(mod), "__version__", "?")
        except ImportError:
            out[mod] = "missing"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000,
                        help="customers expected to arrive per run (default 200000)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds per workload; the best time is reported")
    parser.add_argument("--only", default=",".join(SIMULATORS),
                        help="comma-separated simulators to run (capsim,simpy,ciw)")
    parser.add_argument("--workloads", default=",".join(w.key for w in WORKLOADS),
                        help="comma-separated workloads (" +
                             ",".join(w.key for w in WORKLOADS) + ")")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the rows here")
    args = parser.parse_args(argv)

    if args.customers < 1 or args.rounds < 1:
        parser.error("--customers and --rounds must be at least 1")
    simulators = [s.strip().lower() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(simulators) - set(SIMULATORS))
    if unknown:
        parser.error(f"unknown simulator(s) {unknown}; choose from {list(SIMULATORS)}")
    simulators = [s for s in SIMULATORS if s in simulators]  # canonical order
    by_key = {w.key: w for w in WORKLOADS}
    keys = [k.strip() for k in args.workloads.split(",") if k.strip()]
    if bad := [k for k in keys if k not in by_key]:
        parser.error(f"unknown workload(s) {bad}; choose from {list(by_key)}")

    if not simulators:
        print("nothing to run", file=sys.stderr)
        return 2

    meta = versions()
    print(f"# capsim engine bench: {args.customers:,} customers/run, {args.rounds} round(s), "
          f"best time; " + ", ".join(f"{k} {v}" for k, v in meta.items()), file=sys.stderr)
    rows = bench([by_key[k] for k in keys], simulators, args.customers, args.rounds, args.seed)
    print(markdown_table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"customers": args.customers, "rounds": args.rounds, "seed": args.seed,
                   "simulators": simulators, "versions": meta, "rows": rows}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
