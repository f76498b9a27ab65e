"""Database failover while a run goes on: which box of a shard is primary, which serve reads,
and what a primary's failure costs (refused or delayed writes, writes lost with it).

``model.Failover`` says what should happen; a :class:`ShardFailover` per shard does it. An
outage of a primary (``dynamics.schedule_outage``) calls :meth:`ShardFailover.box_failed`; the
shard refuses or holds writes until a replica is promoted, then points its writes and its
read balancers at the new roles. Writes reach it through :class:`FailoverWrite` (pick the
shard, send to its current primary) and report their commit through
:class:`FailoverCommitted` (the commit is shipped to the replicas after a lag; the unshipped
ones are what a failure loses).
"""

from __future__ import annotations

import math
from heapq import heappop, heappush
from typing import TYPE_CHECKING

from capsim.engine.balancer import Balancer
from capsim.engine.customer import Customer
from capsim.engine.station import Station
from capsim.engine.streams import Choices, Draws, stream
from capsim.model import Database
from capsim.model import lowering as low

if TYPE_CHECKING:
    from capsim.engine.network import Network

FAILOVER_COLUMNS = ("database", "shard", "failed", "failed_at_s", "detected_at_s",
                    "promoted", "promoted_at_s", "rejoined_at_s", "write_errors",
                    "writes_waited", "lost_writes")


class ShardFailover:
    """One shard's roles and failures. ``failures`` holds one record per primary failure, in
    the order of ``FAILOVER_COLUMNS`` (a list, filled in as the failover goes on)."""

    def __init__(self, net: Network, comp: Database, shard: int, names: list[str]) -> None:
        self.net, self.comp, self.shard = net, comp, shard
        self.spec = comp.failover
        self.stations = [net.stations[n] for n in names]
        self.primary: Station = self.stations[0]
        self.readers: list[Station] = self.stations[1:]
        self.down = False  # no primary takes writes
        self.parked: list[Customer] = []  # writes waiting for the new primary ("wait")
        self.unshipped: list[float] = []  # heap: when each commit reaches the replicas
        lag = comp.replication_lag
        self.ship = None if lag is None else Draws(lag, stream(net.root,
                                                               f"ship:{comp.name}/{shard}"))
        self.read_nodes: list = []  # DatabaseRead steps whose shard balancer follows the roles
        self.failures: list[list] = []
        self.errors = self.lost = 0
        self.changes = 0
        self._promoting: Station | None = None  # the replica chosen at detection

    # -- the request path ----------------------------------------------------------------
    def refuse(self, cust: Customer) -> None:
        """A write the shard cannot take now: an error, or held for the new primary."""
        record = self.failures[-1]
        if self.spec.writes == "wait":
            record[9] += 1
            self.parked.append(cust)
            return
        record[8] += 1
        self.errors += 1
        self.net.dropped(cust)

    def committed(self, cust: Customer, station: Station) -> bool:
        """A write finished at ``station``. True if it committed at the shard's primary; a
        write that was in service at a primary when it failed is refused instead (its box
        died under it) and False is returned."""
        if station is not self.primary or self.down:
            if not self.down and self.spec.writes == "wait":  # promoted meanwhile: redo it
                self.failures[-1][9] += 1
                self._send(cust, self.primary)
            else:
                self.refuse(cust)
            return False
        ship = self.ship
        if ship is not None:
            now = cust.t_now
            heap = self.unshipped
            while heap and heap[0] <= now:
                heappop(heap)
            heappush(heap, now + (ship.buf or ship.refill()).pop())
        return True

    # -- the failure ---------------------------------------------------------------------
    def box_failed(self, station: Station, now: float) -> None:
        """``station`` (a box of this shard) fails at ``now``."""
        station.set_servers(0)
        if station is not self.primary or self.down:
            return  # a replica: the read balancers skip it while it is down
        heap = self.unshipped
        while heap and heap[0] <= now:
            heappop(heap)
        lost = len(heap)  # committed, not yet on any replica: gone with the box
        heap.clear()
        self.lost += lost
        self.down = True
        self.failures.append([self.comp.name, self.shard, station.name, now, math.nan, "",
                              math.nan, math.nan, 0, 0, lost])
        queued = [c for c in station.queue
                  if type(c) is Customer and getattr(c, "wshard", None) is station]
        for cust in queued:  # writes waiting at the failed box: its connections are gone
            station.queue.remove(cust)
            station._integrate(now)
            station.n -= 1
            cust.t_now = now
            self.refuse(cust)
        env = self.net.env
        env.timeout(self.spec.detect_s).callbacks.append(self._detected)

    def _detected(self, _event) -> None:
        record = self.failures[-1]
        record[4] = self.net.env.now
        candidates = [st for st in self.readers if st.servers > 0 and st is not self.primary]
        if not candidates:  # nothing to promote: writes wait for the failed box to come back
            return
        self._promoting = candidates[0]
        self.net.env.timeout(self.spec.promote_s).callbacks.append(self._promoted)

    def _promoted(self, _event) -> None:
        now = self.net.env.now
        new = self._promoting
        record = self.failures[-1]
        record[5], record[6] = new.name, now
        self.primary = new
        self.readers = [st for st in self.readers if st is not new] or [new]
        self._retarget()
        self.down = False
        parked, self.parked = self.parked, []
        for cust in parked:
            cust.t_now = now
            self._send(cust, new)

    def box_back(self, station: Station, servers: int, now: float) -> None:
        """``station`` is repaired at ``now``: a former primary rejoins as a replica; the
        primary itself (nothing could be promoted) takes the writes it held."""
        station.set_servers(servers)
        if station is self.primary:
            if self.down:
                self.failures[-1][7] = now
                self.down = False
                parked, self.parked = self.parked, []
                for cust in parked:
                    cust.t_now = now
                    self._send(cust, station)
            return
        if station not in self.readers:
            self.readers = [st for st in self.readers if st is not self.primary] + [station]
            self._retarget()
            for record in self.failures:
                if record[2] == station.name and math.isnan(record[7]):
                    record[7] = now

    @staticmethod
    def _send(cust: Customer, primary: Station) -> None:
        cust.wshard = primary
        primary.arrive(cust)

    def _retarget(self) -> None:
        """Point every read step's balancer for this shard at the current readers."""
        self.changes += 1
        for k, node in enumerate(self.read_nodes):
            node.readers[self.shard] = Balancer(
                list(self.readers), self.comp.read_policy,
                stream(self.net.root, f"failover-read:{self.comp.name}/{self.shard}/"
                                      f"{k}/{self.changes}"))


class FailoverWrite:
    """Pick the shard (by weight) and send the write to its current primary, or refuse it
    while the shard has none."""

    __slots__ = ("shards", "states")

    def __init__(self, net: Network, comp: Database, where: str) -> None:
        self.states = net.failovers[comp.name]
        self.shards = Choices(comp.weights, stream(net.root, f"shard:{where}"))

    def __call__(self, cust: Customer) -> None:
        states = self.states
        if len(states) > 1:
            c = self.shards
            state = states[(c.buf or c.refill()).pop()]
        else:
            state = states[0]
        if state.down:
            cust.wshard = None
            state.refuse(cust)
            return
        cust.wshard = state.primary
        state.primary.arrive(cust)


class FailoverCommitted:
    """The write left its primary: it commits (and read-your-writes timing starts) unless
    its box failed under it."""

    __slots__ = ("owner",)

    def __init__(self, net: Network, comp: Database) -> None:
        self.owner = {st: state for state in net.failovers[comp.name] for st in state.stations}

    def __call__(self, cust: Customer) -> None:
        station = cust.wshard
        cust.wshard = None
        if not self.owner[station].committed(cust, station):
            return
        cust.key = cust.t_now
        i = cust.idx + 1
        cust.idx = i
        cust.route[i](cust)


def make_failovers(net: Network) -> dict[str, list[ShardFailover]]:
    """The shard states of every database with a ``failover``."""
    return {c.name: [ShardFailover(net, c, s, names)
                     for s, names in enumerate(low.database_names(c))]
            for c in net.system.components
            if isinstance(c, Database) and c.failover is not None}


def failover_records(net: Network) -> tuple[tuple, ...]:
    """Every failure of the run, as tuples in the order of ``FAILOVER_COLUMNS``."""
    return tuple(tuple(r) for states in net.failovers.values() for st in states
                 for r in st.failures)


__all__ = ["FAILOVER_COLUMNS", "FailoverCommitted", "FailoverWrite", "ShardFailover",
           "failover_records", "make_failovers"]
