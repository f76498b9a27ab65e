"""Flows: what one request of a kind does, step by step."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

from capsim.dists import Count, Distribution
from capsim.errors import ModelError, check_int, check_name, check_number, fail
from capsim.model.components import RateLimit, _check_rate_limit
from capsim.model.resilience import Backoff, CircuitBreaker, RetryBudget

Visits = Union[int, Count]  # noqa: UP007 - a repeat count: fixed, or drawn per request


def _check_demand(owner: str, step) -> None:
    """``service_time`` (this step's own demand, overriding the component's) and ``visits``
    (how many times the step repeats) are shared by Call, Read and Write."""
    if step.service_time is not None and not isinstance(step.service_time, Distribution) \
            or isinstance(step.service_time, Count):
        raise fail(owner, "service_time", "must be a distribution such as "
                   "Exponential(mean=0.003) (this step's demand on the component)",
                   step.service_time)
    if isinstance(step.visits, Count):
        return
    if isinstance(step.visits, Distribution):
        raise fail(owner, "visits", "must be an integer >= 0 or a count distribution such as "
                   "Geometric(mean=10) or Poisson(mean=3)", step.visits)
    check_int(owner, "visits", step.visits, minimum=0)


def _check_resilience(owner: str, call) -> None:
    """A call's breaker, backoff and retry budget: of their types, and the last two only
    with retries to act on."""
    for name, cls in (("breaker", CircuitBreaker), ("backoff", Backoff),
                      ("retry_budget", RetryBudget)):
        value = getattr(call, name)
        if value is not None and not isinstance(value, cls):
            raise fail(owner, name, f"must be a {cls.__name__} (or None)", value)
        if value is not None and name != "breaker" and call.retries < 1:
            raise fail(owner, name, "needs retries >= 1 (there is nothing to retry)", value)


@dataclass(frozen=True)
class Call:
    """Visit ``component`` once and wait for it (a synchronous call).

    ``calls`` are made *from* that component while it holds the request's worker (a service
    calling its downstream): a slow downstream then ties up the caller's workers too.

    ``timeout_s``: the caller gives up waiting after that long (the abandoned work goes on
    using capacity); ``retries``: how many more attempts after a timeout or a rejection
    (full queue) before the request fails. Retries multiply the load downstream
    (``RunResult.calls()`` shows by how much).

    ``service_time`` is this call's own demand on the component, overriding the component's
    (a product page and a search cost different amounts on the same pool); ``visits`` repeats
    the whole call, nested calls included, one after another: an int, or a count distribution
    drawn per request (``Geometric(mean=10)`` queries on a listing page). Each repeat queues
    on its own.

    ``breaker`` (a :class:`CircuitBreaker`) fails calls fast while the callee keeps failing;
    ``backoff`` (a :class:`Backoff`) waits before each retry instead of retrying at once (the
    default); ``retry_budget`` (a :class:`RetryBudget`) caps retries at a share of the calls.
    Both of the last two need ``retries >= 1``. See ``capsim.model.resilience``.
    """

    component: str
    calls: tuple[Step, ...] = ()
    timeout_s: float | None = None
    retries: int = 0
    service_time: Distribution | None = None
    visits: Visits = 1
    breaker: CircuitBreaker | None = None
    backoff: Backoff | None = None
    retry_budget: RetryBudget | None = None

    def __post_init__(self) -> None:
        owner = f"Call({self.component!r})"
        check_name(type(self).__name__, "component", self.component)
        object.__setattr__(self, "calls", _as_steps(owner, "calls", self.calls,
                                                    allow_empty=True))
        if self.timeout_s is not None:
            check_number(owner, "timeout_s", self.timeout_s)
        check_int(owner, "retries", self.retries, minimum=0)
        _check_demand(owner, self)
        _check_resilience(owner, self)

    @property
    def guarded(self) -> bool:
        """True when the caller watches this call (a timeout, retries or a breaker)."""
        return self.timeout_s is not None or self.retries > 0 or self.breaker is not None


@dataclass(frozen=True)
class Read:
    """Read from a Cache, CDN or Database. On a cache or CDN miss, ``on_miss`` runs next (the
    origin, usually a database ``Read``); ``index=False`` makes a database read a full scan.
    ``service_time`` and ``visits`` as on :class:`Call` (a search query costs more than a
    primary-key lookup on the same database)."""

    component: str
    on_miss: tuple[Step, ...] = ()
    index: bool = True
    service_time: Distribution | None = None
    visits: Visits = 1

    def __post_init__(self) -> None:
        check_name("Read", "component", self.component)
        owner = f"Read({self.component!r})"
        object.__setattr__(self, "on_miss", _as_steps(owner, "on_miss",
                                                      self.on_miss, allow_empty=True))
        _check_demand(owner, self)


@dataclass(frozen=True)
class Write:
    """Write to a Database (its shard's primary) or invalidate a key of a Cache;
    ``service_time`` and ``visits`` as on :class:`Call` (a checkout's transaction)."""

    component: str
    service_time: Distribution | None = None
    visits: Visits = 1

    def __post_init__(self) -> None:
        check_name("Write", "component", self.component)
        _check_demand(f"Write({self.component!r})", self)


@dataclass(frozen=True)
class Publish:
    """Publish to a MessageQueue: the request goes on after the broker's ack; the message is
    processed later by the queue's consumers (measured as the queue's own async flow)."""

    component: str

    def __post_init__(self) -> None:
        check_name("Publish", "component", self.component)


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


Step = Union[Call, Read, Write, Publish, Branch]  # noqa: UP007 - used in isinstance checks
STEP_TYPES = (Call, Read, Write, Publish, Branch)


def _as_steps(owner: str, field: str, steps, *, allow_empty: bool = False) -> tuple[Step, ...]:
    if isinstance(steps, STEP_TYPES):
        steps = (steps,)
    try:
        steps = tuple(steps)
    except TypeError as exc:
        raise fail(owner, field, "must be a list of steps", steps) from exc
    if not steps and not allow_empty:
        raise fail(owner, field, "must hold at least one step", list(steps))
    for i, step in enumerate(steps):
        if not isinstance(step, STEP_TYPES):
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
    """A kind of request: its share of traffic (``weight``) and the ``steps`` it takes.

    ``priority`` orders it at services with ``discipline="priority"`` (lower first,
    non-preemptive; flows without one come after every flow with one).

    ``rate_limit`` (a :class:`RateLimit`) admits this flow's requests at entry through a
    token bucket of its own; one that finds no token is rejected at once (429)."""

    name: str
    weight: float = 1.0
    steps: tuple[Step, ...] = ()
    priority: int | None = None
    rate_limit: RateLimit | None = None

    def __post_init__(self) -> None:
        check_name("Flow", "name", self.name)
        owner = f"Flow({self.name!r})"
        check_number(owner, "weight", self.weight)
        if self.priority is not None:
            check_int(owner, "priority", self.priority, minimum=0)
        _check_rate_limit(owner, self.rate_limit)
        object.__setattr__(self, "steps", _as_steps(owner, "steps", self.steps))
        if not any(True for _ in _walk(self.steps)):
            raise ModelError(f"{owner}.steps: calls no component on any branch")

    def components(self) -> tuple[str, ...]:
        """Names of every component any route of this flow may call, in first-call order."""
        seen: dict[str, None] = {}
        for step in _walk(self.steps):
            seen.setdefault(step.component, None)
        return tuple(seen)


def _walk(steps):
    """Every step that names a component, nested ones included."""
    for step in steps:
        if isinstance(step, Branch):
            for _, sub in step.options:
                yield from _walk(sub)
            continue
        yield step
        if isinstance(step, Call):
            yield from _walk(step.calls)
        elif isinstance(step, Read):
            yield from _walk(step.on_miss)
