"""The stations of a System on a SimPy environment, and the steps that route requests to them.

Every step type of the model becomes a small callable here: a balancer that picks an instance,
a cache lookup that decides hit or miss from the cache's state, a database read that picks a
shard and a replica, a publish that hands a message to the consumers. Stations come from the
model's lowering, so they carry the same names as the analytic twin's.
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections import OrderedDict

import numpy as np
import simpy

from capsim.engine.program import Compiler
from capsim.engine.station import Customer, Station, schedule
from capsim.engine.streams import Choices, Draws, seed_sequence, stream
from capsim.errors import ModelError
from capsim.model import CDN, Cache, Database, MessageQueue, Service, System
from capsim.model import lowering as low
from capsim.model.popularity import zipf_probabilities


class Network:
    """Stations and step programs for ``system`` on ``env``.

    ``simulate`` uses it; a user can too, to drive the same stations from their own SimPy
    processes: ``net = Network(system, env, seed=1)``, then ``net["db"].request()``.
    """

    def __init__(self, system: System, env: simpy.Environment,
                 seed: int | np.random.SeedSequence = 0, *, on_drop=None, trace=None) -> None:
        self.system, self.env = system, env
        self.root = seed_sequence(seed)
        self.on_drop = on_drop
        self.timed_calls: dict[str, _TimedCall] = {}
        station_cls = Station if trace is None else trace
        self.stations: dict[str, Station] = {}
        self.specs = {spec.name: spec for spec in system.stations()}
        for spec in self.specs.values():
            draws = Draws(spec.service_time, stream(self.root, f"service:{spec.name}"))
            servers = math.inf if spec.servers is None else spec.servers
            self.stations[spec.name] = station_cls(env, spec.name, servers, draws,
                                                   spec.queue_capacity, self.dropped,
                                                   spec.max_wait_s)
        self.components = {c.name: c for c in system.components}
        self.caches = {c.name: CacheState(c, env, stream(self.root, f"keys:{c.name}"))
                       for c in system.components if isinstance(c, (Cache, CDN))}
        self.databases = {c.name: DbStats(c, stream(self.root, f"lag:{c.name}"))
                          for c in system.components if isinstance(c, Database)}
        for outage in system.outages:
            self._schedule_outage(outage)
        # instances an autoscaler is stopping: balancers send them nothing new, and they
        # finish what they were given (in service or queued) before they stop
        self.draining: set[Station] = set()
        self.scalers = [_Scaler(self, a) for a in system.autoscalers]

    def __getitem__(self, name: str) -> Station:
        if name not in self.stations:
            hint = difflib.get_close_matches(name, self.stations, n=1)
            did_you = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ModelError(f"Network: no component or station named {name!r}{did_you}; "
                             f"stations: {', '.join(self.stations)}")
        return self.stations[name]

    def dropped(self, cust: Customer) -> None:
        """A request (or one attempt of a call) was turned away: free the workers it held,
        then let the call it belongs to retry, or record the failure."""
        held = cust.held
        while held:
            st, t_arr = held.pop()
            cust.t_arr = t_arr
            st._release(cust)
        if cust.parent is not None:
            cust.parent[0].attempt_failed(cust)
        elif self.on_drop is not None:
            self.on_drop(cust)

    def of(self, component: str) -> list[Station]:
        """The stations a component is made of."""
        return [self.stations[s.name] for s in self.specs.values() if s.component == component]

    # -- programs -----------------------------------------------------------------------------
    def programs(self, finish, async_finish=None) -> tuple[list[tuple], list[tuple]]:
        """Flow programs (ending with ``finish``) and the async programs of message queues
        (ending with ``async_finish``: a consumed message is not a user going back to think)."""
        async_finish = async_finish or finish
        compiler = Compiler(self, lambda key: stream(self.root, key))
        flows = [compiler.compile(flow, finish) for flow in self.system.flows]
        self.async_programs = {}
        self.async_index = {}
        for i, c in enumerate(q for q in self.system.components if isinstance(q, MessageQueue)):
            consumers = [self.stations[n] for n in low.consumer_names(c)]
            pick = _Pick(consumers, "random", stream(self.root, f"partition:{c.name}"),
                         weights=c.partition_share())
            self.async_programs[c.name] = (pick, async_finish)
            self.async_index[c.name] = len(self.system.flows) + i
        return flows, list(self.async_programs.values())

    def timed_call(self, step, where: str, compiler, after_index: int):
        """A call the caller watches: each attempt runs the call as a child request."""
        plain = type(step)(step.component, step.calls)
        node = _TimedCall(self, step, after_index)
        node.sub = compiler.compile_steps([plain], _AttemptDone(), f"{where}/attempt")
        self.timed_calls[f"{where.removeprefix('flow:')} -> {step.component}"] = node
        return node

    def call(self, step, where: str, holding: bool):
        comp = self.components[step.component]
        stations = self.of(comp.name)
        policy = comp.balancing if isinstance(comp, Service) else "round_robin"
        if len(stations) == 1 and not holding:
            return stations[0].arrive
        return _Pick(stations, policy, stream(self.root, f"balance:{where}"), hold=holding,
                     closed=self.draining)

    def read(self, step, where: str):
        """(visit step, decision step or None) for a Read."""
        comp = self.components[step.component]
        if isinstance(comp, Database):
            return _DbRead(self, comp, step.index, where), None
        return self.stations[comp.name].arrive, _Lookup(self.caches[comp.name])

    def write(self, step, where: str):
        comp = self.components[step.component]
        if isinstance(comp, Database):
            primaries = [self.stations[shard[0]] for shard in low.database_names(comp)]
            # the write counts as done (and replication lag starts) when the primary commits it
            return [_Pick(primaries, "random", stream(self.root, f"shard:{where}"),
                          weights=comp.weights), _Wrote(self.env)]
        return [self.stations[comp.name].arrive, _Invalidate(self.caches[comp.name])]

    def publish(self, step, where: str):
        comp = self.components[step.component]
        out = [_Publish(self, comp.name)]
        if comp.publish_latency is not None:
            out.append(self.stations[low.broker_name(comp)].arrive)
        return out

    # -- outages ------------------------------------------------------------------------------
    def _schedule_outage(self, outage) -> None:
        comp = self.components.get(outage.component)
        if comp is None:  # one station of a component
            targets = [self.stations[outage.component]]
        elif outage.instance is not None:
            targets = [self.stations[low.instance_names(comp)[outage.instance]]]
        elif isinstance(comp, MessageQueue):
            targets = [self.stations[n] for n in low.consumer_names(comp)]
        else:
            targets = self.of(comp.name)
        saved = [st.servers for st in targets]

        def down(_event) -> None:
            for st in targets:
                st.set_servers(0)

        def up(_event) -> None:
            for st, servers in zip(targets, saved, strict=True):
                st.set_servers(servers)

        self.env.timeout(outage.start_s).callbacks.append(down)
        self.env.timeout(outage.start_s + outage.duration_s).callbacks.append(up)


class _Pick:
    """Choose one of several stations (instances, replicas, consumers) and send the request.

    Policies: round_robin, random (optionally weighted), least_connections (fewest present),
    power_of_two (the less loaded of two distinct random picks). Stations in an outage, or
    in ``closed`` (being scaled in), are skipped while any other is up, as a load balancer's
    health check or deregistration would.
    """

    __slots__ = ("stations", "policy", "choices", "others", "hold", "count", "spill", "single",
                 "closed")

    def __init__(self, stations: list[Station], policy: str, rng, weights=None,
                 hold: bool = False, closed: set[Station] | frozenset = frozenset()) -> None:
        self.stations, self.policy, self.hold, self.closed = stations, policy, hold, closed
        n = len(stations)
        self.choices = Choices(weights if weights is not None else np.ones(n), rng)
        # power_of_two's second pick: one of the n - 1 others, from a stream of its own
        self.others = (Choices(np.ones(n - 1), rng.spawn(1)[0])
                       if policy == "power_of_two" and n > 1 else None)
        self.count = self.spill = 0
        self.single = n == 1

    def choose(self) -> Station:
        stations = self.stations
        if self.single:
            return stations[0]
        policy = self.policy
        if policy == "round_robin":
            self.count += 1
            st = stations[self.count % len(stations)]
        elif policy == "least_connections":
            # ties (all idle) go round robin, not always to the first instance
            self.count += 1
            k = self.count % len(stations)
            st = min(stations[k:] + stations[:k], key=_load)
        else:
            c = self.choices
            a = (c.buf or c.refill()).pop()
            st = stations[a]
            if policy == "power_of_two":
                # drawn among the n - 1 others and shifted past the first: never the same one
                c = self.others
                b = (c.buf or c.refill()).pop()
                if b >= a:
                    b += 1
                other = stations[b]
                if other.n < st.n:
                    st = other
        closed = self.closed
        if st.servers == 0 or st in closed:
            up = [s for s in stations if s.servers > 0 and s not in closed]
            if up:  # spread the failed one's share evenly over the live ones
                self.spill += 1
                k = self.spill % len(up)
                if policy in ("round_robin", "random"):
                    st = up[k]
                else:  # load-aware policies: the least loaded, ties in turn
                    st = min(up[k:] + up[:k], key=_load)
        return st

    def __call__(self, cust: Customer) -> None:
        st = self.choose()
        if self.hold:
            drops = st.drops
            st.arrive_holding(cust)
            if st.drops == drops:  # admitted (a turned-away request holds nothing here)
                if cust.held is None:
                    cust.held = []
                cust.held.append((st, cust.t_arr))
        else:
            st.arrive(cust)


def _load(st: Station) -> float:
    return st.n / st.servers if st.servers else math.inf


class Release:
    """End of a synchronous call: give back the worker the caller held, then go on."""

    __slots__ = ()

    def __call__(self, cust: Customer) -> None:
        st, t_arr = cust.held.pop()
        cust.t_arr = t_arr
        st._release(cust)
        i = cust.idx + 1
        cust.idx = i
        cust.route[i](cust)


class _Scaler:
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


class _Timer:
    """The deadline of one attempt (an event of its own, like Customer)."""

    __slots__ = ("callbacks", "_value")
    _ok = True

    def __init__(self, callback, value) -> None:
        self.callbacks = (callback,)
        self._value = value


class _TimedCall:
    """A call with a timeout and retries. The caller waits; each attempt is a child request
    running the call. A late attempt is abandoned but keeps using capacity downstream, as
    real abandoned requests do.

    Every attempt gets a unique ticket; the caller keeps the ticket it waits for, so a late
    answer (or a deadline) from an earlier attempt, or from an earlier call, is ignored.
    """

    tickets = itertools.count(1)

    def __init__(self, net: Network, step, after: int) -> None:
        self.net, self.env = net, net.env
        self.timeout = step.timeout_s
        self.retries = step.retries
        self.after = after
        self.sub: tuple = ()
        self.calls = self.attempts = self.timeouts = self.failures = 0

    def __call__(self, cust: Customer) -> None:
        self.calls += 1
        self._try(cust, 1)

    def _try(self, caller: Customer, tries: int) -> None:
        self.attempts += 1
        ticket = next(self.tickets)
        caller.attempt = ticket
        child = Customer(self.sub, caller.rid, self.env._now, caller.id)
        child.parent = (self, caller, ticket, tries)
        if self.timeout is not None:
            schedule(self.env, _Timer(self._expired, (caller, ticket, tries)), self.timeout)
        child.route[0](child)

    def succeeded(self, child: Customer) -> None:
        _, caller, ticket, _ = child.parent
        if caller.attempt != ticket:
            return  # an abandoned attempt finished late: nobody is waiting for it
        caller.attempt = 0
        i = self.after
        caller.idx = i
        caller.route[i](caller)

    def _expired(self, timer: _Timer) -> None:
        caller, ticket, tries = timer._value
        if caller.attempt == ticket:
            self.timeouts += 1
            self._retry_or_fail(caller, tries)

    def attempt_failed(self, child: Customer) -> None:
        _, caller, ticket, tries = child.parent
        if caller.attempt == ticket:
            self._retry_or_fail(caller, tries)

    def _retry_or_fail(self, caller: Customer, tries: int) -> None:
        if tries <= self.retries:
            self._try(caller, tries + 1)
        else:
            caller.attempt = 0
            self.failures += 1
            self.net.dropped(caller)

    def counters(self) -> tuple[float, ...]:
        return (self.calls, self.attempts, self.timeouts, self.failures)


class _AttemptDone:
    """The last step of an attempt: tell the call it belongs to."""

    __slots__ = ()

    def __call__(self, child: Customer) -> None:
        child.parent[0].succeeded(child)


class CacheState:
    """Hits and misses of one cache or CDN: a fixed ratio, or an LRU over Zipf keys with TTL."""

    def __init__(self, comp, env, rng) -> None:
        self.env = env
        self.hits = self.misses = self.stale = 0
        self.stale_age = 0.0
        self.ratio = comp.hit_ratio
        self.ttl = getattr(comp, "ttl_s", None)
        self.invalidate_on_write = getattr(comp, "invalidate_on_write", True)
        self.lru: OrderedDict[int, float] | None = None
        self.updated: dict[int, float] = {}  # key -> last write at the origin
        self.rng = rng
        self.buf: list[float] = []
        if self.ratio is None:
            keys = comp.keys
            self.cdf = np.cumsum(zipf_probabilities(keys, comp.zipf_s))
            self.capacity = comp.capacity_keys
            self.lru = OrderedDict()
            if comp.warm:
                for k in range(min(self.capacity, keys) - 1, -1, -1):
                    self.lru[k] = 0.0

    def _key(self) -> int:
        buf = self.buf
        if not buf:
            u = self.rng.random(4096)
            buf.extend(np.searchsorted(self.cdf, u, side="right")[::-1].tolist())
        return buf.pop()

    def lookup(self) -> bool:
        """True on a hit. An LRU is updated as a cache-aside read would leave it."""
        if self.lru is None:
            buf = self.buf
            if not buf:
                buf.extend(self.rng.random(4096).tolist())
            hit = buf.pop() < self.ratio
        else:
            now = self.env._now
            k = self._key()
            lru = self.lru
            born = lru.get(k)
            hit = born is not None and (self.ttl is None or now - born < self.ttl)
            if hit:
                lru.move_to_end(k)
                changed = self.updated.get(k)
                if changed is not None and changed > born:
                    self.stale += 1
                    self.stale_age += now - changed
            else:
                lru[k] = now
                lru.move_to_end(k)
                if len(lru) > self.capacity:
                    lru.popitem(last=False)
        if hit:
            self.hits += 1
        else:
            self.misses += 1
        return hit

    def write(self) -> None:
        """A key's data changed at the origin: drop the cached copy, or let it go stale."""
        if self.lru is None:
            return
        k = self._key()
        self.updated[k] = self.env._now
        if self.invalidate_on_write:
            self.lru.pop(k, None)

    def counters(self) -> tuple[float, ...]:
        return (self.hits, self.misses, self.stale, self.stale_age)


class DbStats:
    """Reads that follow a write in the same request, and how many a lagging replica served
    stale (read-your-writes violations)."""

    def __init__(self, comp: Database, rng) -> None:
        self.lag = (Draws(comp.replication_lag, rng)
                    if comp.replication_lag is not None and comp.read_replicas else None)
        self.after_write = self.stale = 0

    def counters(self) -> tuple[float, ...]:
        return (self.after_write, self.stale, 0.0, 0.0)


class _Lookup:
    """After the cache's own service: on a hit jump past the miss steps, else run them."""

    __slots__ = ("cache", "skip_to")

    def __init__(self, cache: CacheState) -> None:
        self.cache = cache
        self.skip_to = -1

    def __call__(self, cust: Customer) -> None:
        i = self.skip_to if self.cache.lookup() else cust.idx + 1
        cust.idx = i
        cust.route[i](cust)


class _Invalidate:
    __slots__ = ("cache",)

    def __init__(self, cache: CacheState) -> None:
        self.cache = cache

    def __call__(self, cust: Customer) -> None:
        self.cache.write()
        i = cust.idx + 1
        cust.idx = i
        cust.route[i](cust)


class _DbRead:
    """Pick the shard (by weight), then a replica (by policy; the primary if none)."""

    __slots__ = ("shards", "readers", "scale", "stats", "env")

    def __init__(self, net: Network, comp: Database, index: bool, where: str) -> None:
        self.stats = net.databases[comp.name]
        self.env = net.env
        names = low.database_names(comp)
        self.shards = Choices(comp.weights, stream(net.root, f"shard:{where}"))
        self.readers = [
            _Pick([net.stations[n] for n in (shard[1:] or shard[:1])], comp.read_policy,
                  stream(net.root, f"replica:{where}/{s}"))
            for s, shard in enumerate(names)]
        self.scale = 1.0 if index else comp.scan_factor()

    def __call__(self, cust: Customer) -> None:
        c = self.shards
        pick = self.readers[(c.buf or c.refill()).pop()] if len(self.readers) > 1 else \
            self.readers[0]
        cust.scale = self.scale
        wrote = cust.key
        if wrote is not None:
            stats = self.stats
            stats.after_write += 1
            lag = stats.lag
            if lag is not None and self.env._now - wrote < (lag.buf or lag.refill()).pop():
                stats.stale += 1
        pick.choose().arrive(cust)


class _Wrote:
    """Remember when this request's write committed (later reads may meet a lagging
    replica: the lag counts from the commit, not from when the write was sent)."""

    __slots__ = ("env",)

    def __init__(self, env) -> None:
        self.env = env

    def __call__(self, cust: Customer) -> None:
        cust.key = self.env._now
        i = cust.idx + 1
        cust.idx = i
        cust.route[i](cust)


class _Publish:
    """Hand a message to the queue's consumers; the publisher goes on at once."""

    __slots__ = ("net", "queue", "count")

    def __init__(self, net: Network, queue: str) -> None:
        self.net, self.queue = net, queue
        self.count = 0

    def __call__(self, cust: Customer) -> None:
        self.count += 1
        program = self.net.async_programs[self.queue]
        msg = Customer(program, self.net.async_index[self.queue], self.net.env._now, self.count)
        program[0](msg)
        i = cust.idx + 1
        cust.idx = i
        cust.route[i](cust)


__all__ = ["CacheState", "Network", "Release", "schedule"]
