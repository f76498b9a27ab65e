"""What changes a network while it runs: outages, and autoscalers starting and stopping
instances. Both act through ``Station.set_servers`` at times of their own (SimPy timeouts), so
the request path does not know about them. Latency spikes on hops are scheduled the same way
(``schedule_spike``; the hop's spike gate reads their state).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from capsim.engine.station import Station
from capsim.model import MessageQueue
from capsim.model import lowering as low

if TYPE_CHECKING:
    from capsim.engine.network import Network


def schedule_outage(net: Network, outage) -> None:
    """Take the outage's stations down at its start and bring them back at its end (work in
    progress finishes; see ``Station.set_servers``)."""
    comp = net.components.get(outage.component)
    if _fails_over(net, comp, outage):
        return
    if comp is None:  # one station of a component
        targets = [net.stations[outage.component]]
    elif outage.instance is not None:
        targets = [net.stations[low.instance_names(comp)[outage.instance]]]
    elif isinstance(comp, MessageQueue):
        targets = [net.stations[n] for n in low.consumer_names(comp)]
    else:
        targets = net.of(comp.name)
    saved = [st.servers for st in targets]

    def down(_event) -> None:
        for st in targets:
            st.set_servers(0)

    def up(_event) -> None:
        for st, servers in zip(targets, saved, strict=True):
            st.set_servers(servers)

    net.env.timeout(outage.start_s).callbacks.append(down)
    net.env.timeout(outage.start_s + outage.duration_s).callbacks.append(up)


def schedule_spike(net: Network, spike, state) -> None:
    """Turn a hop's latency spike on at its start and off at its end (``state`` is the
    hop's ``engine.shedding.SpikeState``: requests entering meanwhile are spiked)."""
    net.env.timeout(spike.start_s).callbacks.append(lambda _event: state.begin(spike))
    net.env.timeout(spike.start_s + spike.duration_s).callbacks.append(
        lambda _event: state.end(spike))


def _fails_over(net: Network, comp, outage) -> bool:
    """An outage of a database with a failover (or of one of its boxes): the boxes fail and
    the shard's failover decides what happens (``engine.failover``). False otherwise."""
    if comp is not None:
        states = net.failovers.get(comp.name)
        if states is None:
            return False
        boxes = [(st, None) for st in states]  # each shard's primary at the outage's start
    else:
        boxes = [(st, net.stations[outage.component]) for states in net.failovers.values()
                 for st in states if net.stations.get(outage.component) in st.stations]
        if not boxes:
            return False
    failed: list = []

    def down(_event) -> None:
        for state, box in boxes:
            box = state.primary if box is None else box
            failed.append((state, box, state.comp.servers))
            state.box_failed(box, net.env.now)

    def up(_event) -> None:
        for state, box, servers in failed:
            state.box_back(box, servers, net.env.now)

    net.env.timeout(outage.start_s).callbacks.append(down)
    net.env.timeout(outage.start_s + outage.duration_s).callbacks.append(up)
    return True


class Scaler:
    """Target-tracking autoscaling of one Service's instances (see ``model.Autoscaler``).

    Scale-in drains: a stopped instance leaves the balancers at once but keeps its workers
    until it has finished every request it was given, queued ones included (a load balancer's
    connection draining), so no request is stranded in a stopped instance's queue.
    """

    def __init__(self, net: Network, spec) -> None:
        self.env, self.spec = net.env, spec
        self.pool = [net.stations[n] for n in low.instance_names(net.components[spec.component])]
        self.draining = net.draining
        self.servers = self.pool[0].servers
        for st in self.pool[spec.min_instances:]:
            st.servers = 0  # stopped until the scaler starts it
        self.running = spec.min_instances  # serving or booting
        self.last_change = -math.inf
        self.busy_seen = [(st.area_busy, 0.0) for st in self.pool]
        self.history: list[tuple[float, int, int]] = [(0.0, self.running, self.running)]
        self.env.timeout(spec.interval_s).callbacks.append(self.check)

    def serving(self) -> list[Station]:
        return [st for st in self.pool if st.servers > 0 and st not in self.draining]

    def check(self, _event) -> None:
        now = self.env.now
        spec = self.spec
        for st in self.pool:
            if st in self.draining and st.n == 0:
                self._stopped(st)
        util, n = 0.0, 0
        for k, st in enumerate(self.pool):
            st._integrate(now)
            area0, t0 = self.busy_seen[k]
            if st.servers > 0 and st not in self.draining and now > t0:
                util += (st.area_busy - area0) / (self.servers * (now - t0))
                n += 1
            self.busy_seen[k] = (st.area_busy, now)
        if n and now - self.last_change >= spec.cooldown_s:
            # scale out to meet the target; scale in only with 10% to spare (no flapping)
            grow = math.ceil(util / spec.target_utilization - 1e-9)
            shrink = math.ceil(util / (0.9 * spec.target_utilization) - 1e-9)
            clamp = lambda k: min(spec.max_instances, max(spec.min_instances, k))  # noqa: E731
            if clamp(grow) > self.running:
                self._start(clamp(grow) - self.running)
            elif clamp(shrink) < self.running and self.running == n:  # none booting
                self._stop(self.running - clamp(shrink))
        self.env.timeout(spec.interval_s).callbacks.append(self.check)

    def _start(self, count: int) -> None:
        stopped = [st for st in self.pool
                   if st.servers == 0 and st not in self.draining][:count]
        if not stopped:  # the whole pool is up or still draining: try again next time
            return
        self.running += len(stopped)
        self.last_change = self.env.now
        self.history.append((self.env.now, self.running, len(self.serving())))

        def boot(_event, stations=stopped) -> None:
            for st in stations:
                st.set_servers(self.servers)
            self.history.append((self.env.now, self.running, len(self.serving())))

        self.env.timeout(self.spec.provision_s).callbacks.append(boot)

    def _stop(self, count: int) -> None:
        """Take ``count`` instances out of the balancers; each stops once it is empty."""
        for st in self.serving()[-count:]:
            self.draining.add(st)
            if st.n == 0:
                self._stopped(st)
        self.running -= count
        self.last_change = self.env.now
        self.history.append((self.env.now, self.running, len(self.serving())))

    def _stopped(self, st: Station) -> None:
        """A draining instance is empty (seen at an evaluation, or at once): it stops."""
        self.draining.discard(st)
        st.set_servers(0)
