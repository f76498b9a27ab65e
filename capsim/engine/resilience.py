"""Circuit breakers, retry budgets and backoff on calls with a timeout or retries: the state
machines behind ``model.CircuitBreaker``, ``model.RetryBudget`` and ``model.Backoff``.

A call step that has any of them is a :class:`ResilientCall`, a ``TimedCall`` that asks its
breaker before each attempt, tells it each outcome, asks its budget before each retry and may
wait before it. Call steps without them stay plain ``TimedCall`` s: they pay nothing.

The order at a failed attempt (a timeout or a rejection): the breaker records the failure
(it may open); no retries left -> the call fails; the budget refuses -> the call fails
(``retries_denied``); a backoff -> the caller waits; then the retry asks the breaker, and an
open one (or a half-open one with its trials out) fails the call at once (``fast_fails``).
"""

from __future__ import annotations

from collections import deque
from heapq import heappush
from typing import TYPE_CHECKING

from capsim.engine.clock import NORMAL, BareEvent, bind
from capsim.engine.customer import Customer
from capsim.engine.steps import Deadline, TimedCall
from capsim.engine.streams import BATCH, stream

if TYPE_CHECKING:
    from capsim.engine.network import Network
    from capsim.model.resilience import Backoff, CircuitBreaker, RetryBudget

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
BREAKER_COLUMNS = ("call", "time_s", "from_state", "state")
EPS = 1e-9  # a budget's allowance is a float product: 0.29 x 100 is not quite 29


class _Timer(BareEvent):
    """The end of a breaker's open time (an event of its own)."""

    __slots__ = ("callbacks", "t_now")

    def __init__(self, callback, due: float) -> None:
        self.callbacks = (callback,)
        self.t_now = due


class Breaker:
    """One call step's circuit breaker. ``log`` holds every change as (time, from, to)."""

    def __init__(self, spec: CircuitBreaker, env) -> None:
        self.spec = spec
        self._heap, self._ids = bind(env)
        self.state = CLOSED
        self.outcomes: deque[tuple[float, bool]] = deque()  # closed: (time, failed)
        self.failed = 0  # failures among ``outcomes``
        self.trials = self.passed = 0  # half-open: trials let through, trials succeeded
        # attempts with a ticket below this were let through in an earlier state: their
        # outcomes do not count (tickets only grow, and each change takes one)
        self.epoch = 0
        self.log: list[tuple[float, str, str]] = []

    def admit(self) -> bool:
        """May an attempt go to the callee now?"""
        state = self.state
        if state is CLOSED:
            return True
        if state is HALF_OPEN and self.trials < self.spec.half_open_calls:
            self.trials += 1
            return True
        return False

    def record(self, ticket: int, failed: bool, now: float) -> None:
        """The outcome of the attempt with ``ticket``, known at ``now``."""
        if ticket < self.epoch:
            return
        spec = self.spec
        if self.state is CLOSED:
            window = self.outcomes
            window.append((now, failed))
            self.failed += failed
            edge = now - spec.window_s
            while window[0][0] <= edge:
                self.failed -= window.popleft()[1]
            n = len(window)
            if n >= spec.min_calls and self.failed / n >= spec.failure_ratio:
                self._open(now)
        elif self.state is HALF_OPEN:
            if failed:
                self._open(now)
            else:
                self.passed += 1
                if self.passed >= spec.half_open_calls:
                    self._move(CLOSED, now)
                    self.outcomes.clear()
                    self.failed = 0

    def _move(self, state: str, now: float) -> None:
        self.log.append((now, self.state, state))
        self.state = state
        self.epoch = next(TimedCall.tickets)

    def _open(self, now: float) -> None:
        self._move(OPEN, now)
        due = now + self.spec.open_s
        heappush(self._heap, (due, NORMAL, next(self._ids), _Timer(self._half_open, due)))

    def _half_open(self, timer: _Timer) -> None:
        self.trials = self.passed = 0
        self._move(HALF_OPEN, timer.t_now)


class Budget:
    """One call step's retry budget: the calls and the retries of the last ``window_s``."""

    def __init__(self, spec: RetryBudget) -> None:
        self.spec = spec
        self.calls: deque[float] = deque()
        self.retries: deque[float] = deque()

    def called(self, now: float) -> None:
        calls = self.calls
        calls.append(now)
        edge = now - self.spec.window_s
        while calls[0] <= edge:
            calls.popleft()

    def allow(self, now: float) -> bool:
        """May a retry go now? If so it counts against the budget."""
        spec = self.spec
        edge = now - spec.window_s
        calls, retries = self.calls, self.retries
        while calls and calls[0] <= edge:
            calls.popleft()
        while retries and retries[0] <= edge:
            retries.popleft()
        if len(retries) + 1 <= spec.ratio * len(calls) + spec.floor + EPS:
            retries.append(now)
            return True
        return False


class Waits:
    """Backoff waits, jittered from the call's own stream (uniforms drawn in batches)."""

    def __init__(self, spec: Backoff, rng) -> None:
        self.spec, self.rng = spec, rng
        self.buf: list[float] = []

    def wait(self, retry: int) -> float:
        cap = self.spec.cap_s(retry)
        jitter = self.spec.jitter
        if jitter == "none":
            return cap
        buf = self.buf or self._refill()
        u = buf.pop()
        return u * cap if jitter == "full" else 0.5 * cap * (1.0 + u)

    def _refill(self) -> list[float]:
        self.buf.extend(self.rng.random(BATCH)[::-1].tolist())
        return self.buf


class ResilientCall(TimedCall):
    """A call with a timeout or retries and a breaker, a retry budget or backoff."""

    def __init__(self, net: Network, step, after: int, name: str) -> None:
        super().__init__(net, step, after)
        self.name = name
        self.breaker = None if step.breaker is None else Breaker(step.breaker, net.env)
        self.budget = None if step.retry_budget is None else Budget(step.retry_budget)
        self.waits = None if step.backoff is None else Waits(
            step.backoff, stream(net.root, f"backoff:{name}"))
        self.fast_fails = self.denied = self.retried = 0
        self.waited_s = 0.0

    def __call__(self, cust: Customer) -> None:
        self.calls += 1
        if self.budget is not None:
            self.budget.called(cust.t_now)
        self._send(cust, 1)

    def _send(self, caller: Customer, tries: int) -> None:
        """Attempt number ``tries``, if the breaker lets it through; else the call fails."""
        breaker = self.breaker
        if breaker is not None and not breaker.admit():
            self.fast_fails += 1
            self._fail(caller)
            return
        if tries > 1:
            self.retried += 1
        self._try(caller, tries)

    def _fail(self, caller: Customer) -> None:
        caller.attempt = 0
        self.failures += 1
        self.net.dropped(caller)

    def succeeded(self, child: Customer) -> None:
        if self.breaker is not None:
            _, caller, ticket, _ = child.parent
            if caller.attempt == ticket:
                self.breaker.record(ticket, False, child.t_now)
        super().succeeded(child)

    def _expired(self, timer: Deadline) -> None:
        caller, ticket, tries = timer.attempt
        if caller.attempt == ticket:
            caller.t_now = timer.t_now
            self.timeouts += 1
            if self.breaker is not None:
                self.breaker.record(ticket, True, timer.t_now)
            self._retry_or_fail(caller, tries)

    def attempt_failed(self, child: Customer) -> None:
        _, caller, ticket, tries = child.parent
        if caller.attempt == ticket:
            caller.t_now = child.t_now
            if self.breaker is not None:
                self.breaker.record(ticket, True, child.t_now)
            self._retry_or_fail(caller, tries)

    def _retry_or_fail(self, caller: Customer, tries: int) -> None:
        if tries > self.retries:
            self._fail(caller)
            return
        if self.budget is not None and not self.budget.allow(caller.t_now):
            self.denied += 1
            self._fail(caller)
            return
        if self.waits is None:
            self._send(caller, tries + 1)
            return
        # the caller waits (holding its workers): a late answer of the attempt it gave up on
        # finds it waiting on a ticket of its own and is ignored
        wait = self.waits.wait(tries)
        self.waited_s += wait
        ticket = next(self.tickets)
        caller.attempt = ticket
        due = caller.t_now + wait
        heappush(self._heap, (due, NORMAL, next(self._ids),
                              Deadline(self._waited, (caller, ticket, tries), due)))

    def _waited(self, timer: Deadline) -> None:
        caller, ticket, tries = timer.attempt
        if caller.attempt == ticket:
            caller.t_now = timer.t_now
            self._send(caller, tries + 1)

    def more_counters(self) -> tuple[float, ...]:
        return (self.fast_fails, self.denied, self.retried, self.waited_s)


def make_call(net: Network, step, after: int, name: str) -> TimedCall:
    """The call step for ``step``: a ResilientCall only when it has something to run."""
    if step.breaker is None and step.retry_budget is None and step.backoff is None:
        return TimedCall(net, step, after)
    return ResilientCall(net, step, after, name)


class CallExtras:
    """A call's second probe (``TimedCall.more_counters``), sampled with the others."""

    __slots__ = ("call",)

    def __init__(self, call: TimedCall) -> None:
        self.call = call

    def counters(self) -> tuple[float, ...]:
        return self.call.more_counters()


def call_probes(net: Network) -> list[CallExtras]:
    """The second probe of each call, in the order of ``net.timed_calls``."""
    return [CallExtras(c) for c in net.timed_calls.values()]


def breaker_records(net: Network) -> tuple[tuple, ...]:
    """Every breaker change of the run, in the order of ``BREAKER_COLUMNS``, by time."""
    rows = [(name, t, a, b) for name, c in net.timed_calls.items()
            if getattr(c, "breaker", None) is not None for t, a, b in c.breaker.log]
    return tuple(sorted(rows, key=lambda r: r[1]))


__all__ = ["BREAKER_COLUMNS", "Breaker", "Budget", "CallExtras", "ResilientCall", "Waits",
           "breaker_records", "call_probes", "make_call"]
