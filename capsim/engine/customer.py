"""Customer: one request in flight, which is also the SimPy event of its current service.

A request carries the current time (``t_now``) through the steps it walks: every step runs
because the request's own event fired (a service ended) or because the request was just made,
so the time of that event is the time of the step, and the hot path reads one slot instead of
SimPy's clock. Whoever schedules a request's event sets ``t_now`` to the event's time; whoever
hands a request on from another event's callback (a deadline, a queue's retention, a
finished attempt) sets it to that event's time.
"""

from __future__ import annotations

from capsim.engine.clock import BareEvent


class Customer(BareEvent):
    """One request in flight. It doubles as the SimPy event of its current service, so a
    service costs one heap entry; nothing keeps it once its request has finished."""

    __slots__ = ("callbacks", "route", "idx", "t0", "t_arr", "t_now", "rid", "id", "user",
                 "scale", "draws", "held", "key", "parent", "attempt", "prio", "loops", "wshard")

    def __init__(self, route: tuple, rid: int, t0: float, ident: int) -> None:
        self.route = route  # callables, one per step, the last one records the finish
        self.idx = 0
        self.t0 = t0
        self.t_arr = t0
        self.t_now = t0  # the time of the step it is at (of its next event, once scheduled)
        self.rid = rid  # index of the flow (its program) in the run's flow table
        self.id = ident
        self.scale = 1.0  # multiplies the next service time (a full scan is many lookups)
        self.draws = None  # the next service's own draws (a step's service_time), or None:
        # the station that starts that service uses them and sets this back to None
        self.held = None  # stations holding a worker for this request (synchronous calls)
        self.user = None  # the closed-workload user this request belongs to
        self.key = None  # when this request last wrote to a database (read-your-writes)
        self.parent = None  # (call step, caller, attempt) when this is one attempt of a call
        self.attempt = 0  # the caller's current attempt number while it waits on a call
        # set only where used (unset slots cost nothing per request; read with getattr):
        # ``prio``, its flow's priority at priority stations (lower first; LOWEST if unset),
        # ``loops``, repeats left of the repeated steps it is in (innermost last), and
    # ``wshard``, the primary a write to a database with failover was sent to


LOWEST = 1 << 30  # the priority of a flow that has none: after every flow that has one
