"""Bundled example models, so a first run needs no input from the user.

The case study (shared/case-study.md) lives in ``data/scenarios/ecommerce_monolith.yaml``
(before) and ``ecommerce_scaled.yaml`` (after); ``case_study_stages`` walks from one to the
other one change at a time, so each change's share of the gain can be measured.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import capsim as cs
from capsim.model.flows import Branch, Call, Read

SCENARIOS = Path(__file__).resolve().parents[1] / "data" / "scenarios"


def scenario(name: str):
    """A bundled scenario by file stem, e.g. ``scenario("ecommerce_monolith")``."""
    from capsim.scenario import load_scenario

    return load_scenario(SCENARIOS / f"{name}.yaml")


def ecommerce_monolith() -> tuple[cs.System, cs.OpenWorkload]:
    """The case study's "before": a monolith on one PostgreSQL, and today's peak traffic."""
    sc = scenario("ecommerce_monolith")
    return sc.system, sc.workload


def case_study_stages() -> list[tuple[str, cs.System]]:
    """Before -> after in the order the case study's team made the changes, cumulatively:
    the missing index, Redis for product reads, replicas and shards, then services + Kafka +
    CDN (the after scenario as written)."""
    before = scenario("ecommerce_monolith").system
    after = scenario("ecommerce_scaled").system
    indexed = _map_steps(before, lambda s: replace(s, index=True)
                         if isinstance(s, Read) and not s.index else s)
    redis = after.component("redis")
    cached = replace(
        indexed, components=(*indexed.components, redis),
        flows=tuple(_map_flow(f, lambda s: Read("redis", on_miss=(s,))
                              if isinstance(s, Read) and s.component == "postgres" else s)
                    if f.name == "browse" else f for f in indexed.flows))
    db = after.component("postgres")
    replicated = replace(cached, components=tuple(db if c.name == "postgres" else c
                                                  for c in cached.components))
    return [("monolith", before), ("+ index", indexed), ("+ Redis", cached),
            ("+ replicas & shards", replicated), ("+ services, Kafka, CDN", after)]


def _map_steps(system: cs.System, fn) -> cs.System:
    return replace(system, flows=tuple(_map_flow(f, fn) for f in system.flows))


def _map_flow(flow: cs.Flow, fn) -> cs.Flow:
    return replace(flow, steps=tuple(_map_step(s, fn) for s in flow.steps))


def _map_step(step, fn):
    if isinstance(step, Branch):
        return Branch(tuple((p, tuple(_map_step(s, fn) for s in sub)) for p, sub in step.options))
    if isinstance(step, Call) and step.calls:
        step = replace(step, calls=tuple(_map_step(s, fn) for s in step.calls))
    return fn(step)
