"""System: components plus the flows that use them, checked as a whole."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from capsim.errors import ModelError, check_name, fail
from capsim.model.components import Component
from capsim.model.flows import Flow, Route


@dataclass(frozen=True)
class System:
    """An immutable model: ``System([web, db], flows=[browse, checkout])``.

    Variants for what-if questions are copies: ``system.evolve("db", servers=8)``.
    """

    components: tuple[Component, ...]
    flows: tuple[Flow, ...]
    name: str = "system"

    def __post_init__(self) -> None:
        check_name("System", "name", self.name)
        components = _as_tuple("components", self.components, Component)
        flows = _as_tuple("flows", self.flows, Flow)
        object.__setattr__(self, "components", components)
        object.__setattr__(self, "flows", flows)
        _unique("components", [c.name for c in components])
        _unique("flows", [f.name for f in flows])
        known = {c.name for c in components}
        for flow in flows:
            for name in flow.components():
                if name not in known:
                    hint = difflib.get_close_matches(name, known, n=1)
                    did_you = f" (did you mean {hint[0]!r}?)" if hint else ""
                    raise ModelError(
                        f"Flow({flow.name!r}).steps: unknown component {name!r}{did_you}; "
                        f"known: {', '.join(sorted(known))}"
                    )
        total = math.fsum(f.weight for f in flows)
        if abs(total - 1.0) > 1e-6:
            shares = ", ".join(f"{f.name}={f.weight:g}" for f in flows)
            raise ModelError(f"System.flows: weights must sum to 1, got {total:g} ({shares})")

    def component(self, name: str) -> Component:
        for c in self.components:
            if c.name == name:
                return c
        hint = difflib.get_close_matches(name, [c.name for c in self.components], n=1)
        did_you = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ModelError(f"System.components: no component named {name!r}{did_you}")

    def routes(self) -> tuple[Route, ...]:
        """All routes of all flows, with probability = flow weight x route probability."""
        return tuple(
            replace(r, probability=f.weight * r.probability) for f in self.flows for r in f.routes()
        )

    def visits(self) -> dict[str, float]:
        """Mean visits to each component per request (the visit ratios of queueing theory)."""
        v = {c.name: 0.0 for c in self.components}
        for route in self.routes():
            for call in route.calls:
                v[call.component] += route.probability
        return v

    def offered_load(self, arrival_rate_per_s: float) -> dict[str, float]:
        """lambda_k x E[S_k] / servers_k per component at a given request rate.

        At 1 or more the component has no steady state (its queue grows without bound).
        """
        visits = self.visits()
        return {
            c.name: arrival_rate_per_s * visits[c.name] / c.capacity_per_s
            for c in self.components
        }

    def evolve(self, component: str, **changes) -> System:
        """A copy with one component changed: ``system.evolve("db", servers=8)``."""
        old = self.component(component)
        new = replace(old, **changes)
        return replace(self, components=tuple(new if c is old else c for c in self.components))


def _as_tuple(field: str, items: Iterable, kind: type) -> tuple:
    if isinstance(items, kind):
        items = (items,)
    try:
        items = tuple(items)
    except TypeError as exc:
        raise fail("System", field, f"must be a list of {kind.__name__}", items) from exc
    if not items:
        raise fail("System", field, f"must hold at least one {kind.__name__}", list(items))
    for i, item in enumerate(items):
        if not isinstance(item, kind):
            raise fail("System", f"{field}[{i}]", f"must be a {kind.__name__}", item)
    return items


def _unique(field: str, names: list[str]) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise ModelError(f"System.{field}: duplicate name {name!r}")
        seen.add(name)
