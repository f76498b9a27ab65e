"""SimPy's private scheduling API, behind one module.

Built-in requests are not SimPy processes (see ``station.py``): each is its own event, pushed
straight on the environment's heap, since ``env.schedule`` costs a Python call and a
``simpy.Event`` an allocation per service. That goes through names SimPy keeps private
(``Environment._queue``, ``_now``, ``_eid`` and the ``_ok`` flag of what it pops), which may
change in any release. Only this module names them, and it checks at import that they still
work as the engine assumes: a SimPy that changed them fails here, with a message, rather than
mid-run or with wrong numbers.

Hot loops call :func:`bind` once per run and keep its parts in attributes or locals: they push
``(time, NORMAL, next(ids), event)`` with ``heapq.heappush``, and know the time from the event
that is firing (``Customer.t_now``). Everything else calls :func:`schedule`, :func:`now` and
:func:`events_scheduled`.
"""

from __future__ import annotations

from collections.abc import Iterator
from heapq import heappush
from typing import NamedTuple

import simpy
from simpy.events import NORMAL

SUPPORTED = ">=4.1,<5"  # the SimPy releases this module is written for (pyproject.toml agrees)


class BareEvent:
    """Base of the engine's own events: all SimPy's loop needs of what it pops is
    ``callbacks`` (a subclass slot, a tuple of callables given the event) and ``_ok``."""

    __slots__ = ()
    _ok = True


class Hot(NamedTuple):
    """An environment's scheduling state, for hot loops to bind once per run."""

    heap: list  # the event heap: push (time, NORMAL, next(ids), event)
    ids: Iterator[int]  # event ids, the tie-break at equal times (first scheduled runs first)


def bind(env: simpy.Environment) -> Hot:
    """The parts of ``env`` a hot loop keeps (they stay valid for the environment's life)."""
    return Hot(env._queue, env._eid)


def schedule(env: simpy.Environment, event: BareEvent, delay: float) -> None:
    """``env.schedule(event, NORMAL, delay)`` without the call overhead of a simpy.Event."""
    heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), event))


def now(env: simpy.Environment) -> float:
    """``env.now`` without the property."""
    return env._now


def events_scheduled(env: simpy.Environment) -> int:
    """How many events the environment has scheduled so far (consumes one event id)."""
    return next(env._eid)


class SimPyChanged(ImportError):
    """The installed SimPy no longer has the internals the engine's hot path relies on."""


def _check() -> None:
    """Schedule one bare event through every path above and step SimPy's own loop over it."""
    fired: list = []

    class Probe(BareEvent):
        __slots__ = ("callbacks",)

    try:
        env = simpy.Environment(1.0)
        heap, ids = bind(env)
        first, second = Probe(), Probe()
        first.callbacks = second.callbacks = (fired.append,)
        schedule(env, first, 2.0)
        heappush(heap, (now(env) + 2.0, NORMAL, next(ids), second))
        env.step()
        env.step()
        ok = (fired == [first, second] and now(env) == env.now == 3.0
              and isinstance(events_scheduled(env), int) and not heap)
        problem = "scheduled events did not fire in order at the right time"
    except (AttributeError, TypeError, ValueError, KeyError, IndexError) as exc:
        ok, problem = False, f"{type(exc).__name__}: {exc}"
    if not ok:
        raise SimPyChanged(
            f"capsim.engine.clock: SimPy {getattr(simpy, '__version__', '?')} changed the "
            f"internals capsim schedules its events with ({problem}); capsim supports simpy"
            f"{SUPPORTED}: install one of those (pip install 'simpy{SUPPORTED}')")


_check()

__all__ = ["NORMAL", "SUPPORTED", "BareEvent", "Hot", "SimPyChanged", "bind",
           "events_scheduled", "now", "schedule"]
