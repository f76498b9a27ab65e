"""Flows: what one request of a kind does, step by step."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

from capsim.errors import ModelError, check_name, check_number, fail


@dataclass(frozen=True)
class Call:
    """Visit ``component`` once and wait for it (a synchronous call)."""

    component: str

    def __post_init__(self) -> None:
        check_name("Call", "component", self.component)


@dataclass(frozen=True)
class Branch:
    """Take one of several step lists at random: ``Branch([(0.7, [Call("cache")]), (0.3, [...])])``.

    Probabilities must sum to 1; an empty step list means "do nothing" on that branch.
    """

    options: tuple[tuple[float, tuple[Step, ...]], ...]

    def __post_init__(self) -> None:
        options = []
        for i, option in enumerate(self.options):
            try:
                p, steps = option
            except (TypeError, ValueError) as exc:
                raise fail("Branch", f"options[{i}]", "must be a (probability, steps) pair",
                           option) from exc
            p = check_number("Branch", f"options[{i}].probability", p, strict=False)
            options.append((p, _as_steps("Branch", f"options[{i}].steps", steps, allow_empty=True)))
        if not options:
            raise fail("Branch", "options", "must hold at least one option", self.options)
        total = math.fsum(p for p, _ in options)
        if abs(total - 1.0) > 1e-9:
            raise fail("Branch", "options", "probabilities must sum to 1", round(total, 12))
        object.__setattr__(self, "options", tuple(options))


Step = Union[Call, Branch]  # noqa: UP007 - used at runtime in isinstance checks


def _as_steps(owner: str, field: str, steps, *, allow_empty: bool = False) -> tuple[Step, ...]:
    if isinstance(steps, (Call, Branch)):
        steps = (steps,)
    try:
        steps = tuple(steps)
    except TypeError as exc:
        raise fail(owner, field, "must be a list of steps", steps) from exc
    if not steps and not allow_empty:
        raise fail(owner, field, "must hold at least one step", list(steps))
    for i, step in enumerate(steps):
        if not isinstance(step, (Call, Branch)):
            raise fail(owner, f"{field}[{i}]", "must be a step such as Call('web')", step)
    return steps


@dataclass(frozen=True)
class Route:
    """One concrete path through a flow, with the probability that a request takes it."""

    flow: str
    probability: float
    calls: tuple[Call, ...]


@dataclass(frozen=True)
class Flow:
    """A kind of request: its share of traffic (``weight``) and the ``steps`` it takes."""

    name: str
    weight: float = 1.0
    steps: tuple[Step, ...] = ()

    def __post_init__(self) -> None:
        check_name("Flow", "name", self.name)
        owner = f"Flow({self.name!r})"
        check_number(owner, "weight", self.weight)
        object.__setattr__(self, "steps", _as_steps(owner, "steps", self.steps))

    def routes(self) -> tuple[Route, ...]:
        """Every path a request can take (branches expanded), with its probability.

        Branch choices do not depend on the system's state, so the engine draws a whole
        route when a request arrives and the analytic twin reads visit ratios from the
        same list: both see exactly the same routing.
        """
        paths: list[tuple[float, tuple[Call, ...]]] = [(1.0, ())]
        for step in self.steps:
            paths = _extend(paths, step)
        merged: dict[tuple[Call, ...], float] = {}
        for p, calls in paths:
            if p > 0:
                merged[calls] = merged.get(calls, 0.0) + p
        if not any(calls for calls in merged):
            raise ModelError(f"Flow({self.name!r}).steps: every route is empty; call something")
        return tuple(Route(self.name, p, calls) for calls, p in merged.items())

    def components(self) -> tuple[str, ...]:
        """Names of every component any route of this flow may call, in first-call order."""
        seen: dict[str, None] = {}
        for step in _walk(self.steps):
            seen.setdefault(step.component, None)
        return tuple(seen)


def _extend(paths, step):
    if isinstance(step, Call):
        return [(p, calls + (step,)) for p, calls in paths]
    out = []
    for q, steps in step.options:
        sub = [(1.0, ())]
        for s in steps:
            sub = _extend(sub, s)
        out.extend((p * q * r, calls + more) for p, calls in paths for r, more in sub)
    return out


def _walk(steps):
    for step in steps:
        if isinstance(step, Call):
            yield step
        else:
            for _, sub in step.options:
                yield from _walk(sub)
