"""Component cost benchmark: what each web component costs the engine, per request.

Usage::

    .venv/bin/python bench/components.py              # 100,000 requests per run, 3 rounds
    .venv/bin/python bench/components.py --quick      # a tiny smoke run (a second or two)
    .venv/bin/python bench/components.py --only base,cache_lru,web --requests 50000

Every variant is the base model (one 16-worker service, 10 ms exponential service, at
1,000 requests/s: rho 0.625) with one thing added or changed: a Delay hop, the service split
into 4 instances behind each balancing policy, processor sharing instead of FCFS (the 16
workers become cores that every request in service shares), priorities by flow, 32 threads on
a 16-core Host, a Database read with its own demand, repeated four times (``visits=4``,
written out, and a geometric count), a Cache read (fixed hit ratio, or
an LRU over Zipf keys), a CDN read, a Database read (one primary, or 2 shards x 2 replicas), a
Database write with replication lag, a Publish to a MessageQueue (its consumers' work
included), a second service called after the first, the same call held by the first
service's worker, a Branch. ``web`` is a web-like model that uses them all at once.

For each variant the table gives requests/s (requests that arrive from outside and finish,
best of ``--rounds``; a published message is part of its request's cost), microseconds per
request, and the marginal cost: microseconds per request above the base model. Variants run
interleaved, round by round (the starting variant rotates), over the same simulated horizon
(``requests / 1000`` s); the timed region is ``simulate`` (the run and its RunResult).
Speed numbers live here, never in timed unit tests (design.md).
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import capsim as cs

E = cs.Exponential
RATE = 1000.0  # requests/s
SEED = 20240601


def web(**kw) -> cs.Service:
    """The base model's service: 16 workers, 10 ms (rho 0.625 at RATE)."""
    return cs.Service("web", kw.pop("servers", 16), E(0.01), **kw)


def instances(policy: str) -> tuple[list, list]:
    return [web(servers=4, instances=4, balancing=policy)], [cs.Call("web")]


NET = cs.Delay("net", E(0.002))
CDN = cs.CDN("cdn", hit_ratio=0.9, edge_latency=E(0.005))
REDIS = cs.Cache("redis", servers=4, service_time=E(0.0005), hit_ratio=0.9)
LRU = cs.Cache("lru", servers=4, service_time=E(0.0005), keys=10_000, zipf_s=0.9,
               capacity_keys=1_000)
PG = cs.Database("pg", servers=16, service_time=E(0.005))
PG_SHARDED = cs.Database("pgs", servers=8, service_time=E(0.005), read_replicas=2, shards=2,
                         replication_lag=E(0.01))
ORDERS = cs.MessageQueue("orders", partitions=8,
                         consumer=cs.Service("worker", servers=8, service_time=E(0.005)))
DB = cs.Service("db", 16, E(0.005))


@dataclass(frozen=True)
class Variant:
    key: str
    title: str
    build: Callable[[], cs.System]


def plus(components: list, steps: list) -> Callable[[], cs.System]:
    """The base model with ``components`` added and ``steps`` after its call."""
    return lambda: cs.System([web(), *components], [cs.Flow("f", 1.0, [cs.Call("web"),
                                                                         *steps])])


def replaced(make: Callable[[], tuple[list, list]]) -> Callable[[], cs.System]:
    def build() -> cs.System:
        components, steps = make()
        return cs.System(components, [cs.Flow("f", 1.0, steps)])
    return build


def web_model() -> cs.System:
    """A web-like model with every component: CDN for static assets, an LB hop, 4 instances
    behind least connections whose workers hold their cache and database calls, an LRU cache
    in front of a sharded, replicated database, and orders published to a queue."""
    app = cs.Service("web", servers=4, service_time=E(0.01), instances=4,
                     balancing="least_connections")
    return cs.System(
        [NET, CDN, app, LRU, PG_SHARDED, ORDERS],
        [cs.Flow("static", 0.3, [cs.Read("cdn", on_miss=[cs.Call("web")])]),
         cs.Flow("browse", 0.6, [cs.Call("net"), cs.Call("web", calls=[
             cs.Read("lru", on_miss=[cs.Read("pgs")])])]),
         cs.Flow("checkout", 0.1, [cs.Call("net"), cs.Call("web", calls=[
             cs.Write("pgs"), cs.Read("pgs")]), cs.Publish("orders")])])


VARIANTS: tuple[Variant, ...] = (
    Variant("base", "Service(16 workers)", plus([], [])),
    Variant("delay", "+ Delay hop", plus([NET], [cs.Call("net")])),
    Variant("rr", "4 instances, round_robin", replaced(lambda: instances("round_robin"))),
    Variant("random", "4 instances, random", replaced(lambda: instances("random"))),
    Variant("least_conn", "4 instances, least_connections",
            replaced(lambda: instances("least_connections"))),
    Variant("p2c", "4 instances, power_of_two", replaced(lambda: instances("power_of_two"))),
    Variant("ps", "processor sharing over the 16 cores",
            replaced(lambda: ([web(discipline="ps")], [cs.Call("web")]))),
    Variant("priority", "priority by flow (two flows, priorities 0 and 1)",
            lambda: cs.System([web(discipline="priority")], [
                cs.Flow("f", 0.5, [cs.Call("web")], priority=0),
                cs.Flow("g", 0.5, [cs.Call("web")], priority=1)])),
    Variant("host", "32 threads on a 16-core Host (shared by processor sharing)",
            lambda: cs.System([web(servers=32, host="box")], [cs.Flow("f", 1.0, [
                cs.Call("web")])], hosts=[cs.Host("box", cores=16)])),
    Variant("own_service", "+ Database read with its own service_time (1 ms)",
            plus([PG], [cs.Read("pg", service_time=E(0.001))])),
    Variant("visits", "+ the same read repeated: visits=4",
            plus([PG], [cs.Read("pg", service_time=E(0.001), visits=4)])),
    Variant("unrolled", "+ the same 4 reads written out",
            plus([PG], [cs.Read("pg", service_time=E(0.001))] * 4)),
    Variant("visits_geometric", "+ the read repeated Geometric(mean=4) times",
            plus([PG], [cs.Read("pg", service_time=E(0.001), visits=cs.Geometric(mean=4))])),
    Variant("cache", "+ Cache read, hit_ratio 0.9", plus([REDIS], [cs.Read("redis")])),
    Variant("cache_lru", "+ Cache read, LRU 1k of 10k Zipf keys", plus([LRU], [cs.Read("lru")])),
    Variant("cdn", "+ CDN read, hit_ratio 0.9", plus([CDN], [cs.Read("cdn")])),
    Variant("db", "+ Database read", plus([PG], [cs.Read("pg")])),
    Variant("db_sharded", "+ Database read, 2 shards x 2 replicas",
            plus([PG_SHARDED], [cs.Read("pgs")])),
    Variant("db_write", "+ Database write then read (lag tracked)",
            plus([PG_SHARDED], [cs.Write("pgs"), cs.Read("pgs")])),
    Variant("publish", "+ Publish to MessageQueue (consumer work incl.)",
            plus([ORDERS], [cs.Publish("orders")])),
    Variant("call", "+ second Service called after", plus([DB], [cs.Call("db")])),
    Variant("holding", "same call, holding the worker",
            lambda: cs.System([web(), DB], [cs.Flow("f", 1.0, [cs.Call("web", calls=[
                cs.Call("db")])])])),
    Variant("branch", "+ Branch 50/50 (second Service or nothing)",
            plus([DB], [cs.Branch([(0.5, [cs.Call("db")]), (0.5, [])])])),
    Variant("web", "web-like model: all of the above", web_model),
)


def measure(system: cs.System, duration_s: float, seed: int) -> tuple[int, float, int]:
    """(requests finished, wall seconds, simulation events) of one run."""
    load = cs.OpenWorkload(1, RATE)
    t0 = time.perf_counter()
    run = cs.simulate(system, load, duration_s, seed=seed)
    wall = time.perf_counter() - t0
    requests = int((run.route < len(system.flows)).sum())  # not the queues' messages
    return requests, wall, run.events


def bench(variants, requests: int, rounds: int, seed: int,
          log=lambda msg: print(msg, file=sys.stderr)) -> list[dict]:
    duration = requests / RATE
    systems = {v.key: v.build() for v in variants}
    best: dict[str, tuple[int, float, int]] = {}
    for r in range(rounds):
        k = r % len(variants)
        for v in variants[k:] + variants[:k]:
            gc.collect()
            done, wall, events = measure(systems[v.key], duration, seed)
            if v.key not in best or done / wall > best[v.key][0] / best[v.key][1]:
                best[v.key] = (done, wall, events)
            log(f"  round {r + 1}/{rounds} {v.key:11s} {wall:6.2f}s {done / wall:10,.0f} req/s")
    base_us = None
    if "base" in best:
        done, wall, _ = best["base"]
        base_us = 1e6 * wall / done
    rows = []
    for v in variants:
        done, wall, events = best[v.key]
        us = 1e6 * wall / done
        rows.append({"variant": v.key, "title": v.title, "requests": done,
                     "requests_per_s": done / wall, "us_per_request": us,
                     "marginal_us": None if base_us is None else us - base_us,
                     "events_per_request": events / done})
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = ["| variant | what | requests/s | us/request | marginal us | events/request |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        marginal = "—" if r["marginal_us"] is None else f"{r['marginal_us']:+.2f}"
        lines.append(f"| {r['variant']} | {r['title']} | {r['requests_per_s']:,.0f} "
                     f"| {r['us_per_request']:.2f} | {marginal} "
                     f"| {r['events_per_request']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000,
                        help="requests expected to arrive per run (default 100000)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds; each variant's best is reported")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2,000 requests, 1 round")
    parser.add_argument("--only", default=",".join(v.key for v in VARIANTS),
                        help="comma-separated variants (" + ",".join(v.key for v in VARIANTS)
                             + ")")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.rounds = 2_000, 1
    if args.requests < 1 or args.rounds < 1:
        parser.error("--requests and --rounds must be at least 1")
    by_key = {v.key: v for v in VARIANTS}
    keys = [k.strip() for k in args.only.split(",") if k.strip()]
    if bad := [k for k in keys if k not in by_key]:
        parser.error(f"unknown variant(s) {bad}; choose from {list(by_key)}")
    variants = [v for v in VARIANTS if v.key in keys]
    print(f"# capsim component bench: {args.requests:,} requests/run at {RATE:g}/s, "
          f"{args.rounds} round(s), best time; python {platform.python_version()}, "
          f"capsim {cs.__version__}", file=sys.stderr)
    print(markdown_table(bench(variants, args.requests, args.rounds, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
