"""How a caller protects itself and its callee from a slow or failing call: a circuit
breaker, backoff between retries, and a retry budget (``Call(..., breaker=..., backoff=...,
retry_budget=...)``).

These are specs (frozen, validated, no SimPy); ``capsim.engine.resilience`` runs them. Plain
retries turn a short overload into a lasting one (a retry storm: every timed-out attempt is
sent again while the abandoned one still queues, so the callee gets several times its load
and never catches up); each of these caps that amplification in its own way.
"""

from __future__ import annotations

from dataclasses import dataclass

from capsim.errors import check_int, check_number, fail

JITTERS = ("full", "equal", "none")
BREAKER_STATES = ("closed", "open", "half_open")


@dataclass(frozen=True)
class CircuitBreaker:
    """Stop calling a callee that keeps failing, and try it again later (Hystrix,
    resilience4j).

    *Closed* (normal): the outcome of every attempt the caller waited for is counted over a
    sliding window of the last ``window_s`` (a failure is a timeout or a rejection: a full
    queue, a refused write). When the window holds at least ``min_calls`` outcomes and the
    failed share is ``>= failure_ratio``, the breaker *opens*.

    *Open*: every call fails at once (``fast_fails``), the callee gets nothing; a call refused
    by an open breaker fails outright, its remaining retries unused (resilience4j: retrying
    into an open breaker fails again at once). After ``open_s`` it goes *half-open*.

    *Half-open*: ``half_open_calls`` trial attempts go through, the rest fail fast. If every
    trial succeeds the breaker closes (with an empty window); the first that fails opens it
    again for another ``open_s``.

    Each call step has its own breaker (the caller -> callee edge, as ``RunResult.calls()``
    names it), as a client keeps one per backend it calls. An attempt's outcome counts only
    in the state it was let through in: the late answer of an attempt from before an
    opening does not close or reopen it.
    """

    failure_ratio: float = 0.5
    window_s: float = 10.0
    min_calls: int = 20
    open_s: float = 5.0
    half_open_calls: int = 3

    def __post_init__(self) -> None:
        ratio = check_number("CircuitBreaker", "failure_ratio", self.failure_ratio)
        if ratio > 1:
            raise fail("CircuitBreaker", "failure_ratio", "must be in (0, 1] (a share of the "
                       "attempts)", self.failure_ratio)
        check_number("CircuitBreaker", "window_s", self.window_s)
        check_int("CircuitBreaker", "min_calls", self.min_calls, minimum=1)
        check_number("CircuitBreaker", "open_s", self.open_s)
        check_int("CircuitBreaker", "half_open_calls", self.half_open_calls, minimum=1)


@dataclass(frozen=True)
class Backoff:
    """Wait before each retry instead of retrying at once: before retry ``k`` (1 for the
    first) the cap is ``min(max_s, base_s * multiplier ** (k - 1))``, and the wait is, by
    ``jitter``, uniform in ``[0, cap]`` (``"full"``, AWS's advice: retries of many callers
    spread out), ``cap / 2`` plus uniform in ``[0, cap / 2]`` (``"equal"``), or the cap itself
    (``"none"``).

    The caller is a synchronous client: it keeps its worker (the request holds whatever
    workers it holds) while it waits, so backoff trades the callee's load for the caller's
    threads and the request's latency.
    """

    base_s: float = 0.1
    multiplier: float = 2.0
    max_s: float = 5.0
    jitter: str = "full"

    def __post_init__(self) -> None:
        check_number("Backoff", "base_s", self.base_s)
        check_number("Backoff", "multiplier", self.multiplier, minimum=1.0, strict=False)
        check_number("Backoff", "max_s", self.max_s)
        if self.jitter not in JITTERS:
            raise fail("Backoff", "jitter", f"must be one of {', '.join(JITTERS)}", self.jitter)

    def cap_s(self, retry: int) -> float:
        """The longest wait before retry ``retry`` (1 for the first)."""
        return min(self.max_s, self.base_s * self.multiplier ** (retry - 1))


@dataclass(frozen=True)
class RetryBudget:
    """Retry only while retries are a small share of the calls (gRPC retry throttling,
    Finagle's RetryBudget): a retry is allowed when, counting it, the retries of the last
    ``window_s`` stay within ``ratio x calls`` of that window plus ``min_retries_per_s x
    window_s`` (a floor, so a quiet caller can still retry). A retry refused by the budget
    fails its call (``retries_denied``). The budget is decided when an attempt fails (before
    any backoff), and it belongs to the call step, as a breaker does.

    In a storm the callee then gets at most ``1 + ratio`` attempts per call (plus the floor)
    instead of ``1 + retries``.
    """

    ratio: float = 0.1
    window_s: float = 10.0
    min_retries_per_s: float = 1.0

    def __post_init__(self) -> None:
        check_number("RetryBudget", "ratio", self.ratio, strict=False)
        check_number("RetryBudget", "window_s", self.window_s)
        check_number("RetryBudget", "min_retries_per_s", self.min_retries_per_s, strict=False)

    @property
    def floor(self) -> float:
        """Retries allowed in any window whatever the calls."""
        return self.min_retries_per_s * self.window_s


__all__ = ["BREAKER_STATES", "JITTERS", "Backoff", "CircuitBreaker", "RetryBudget"]
