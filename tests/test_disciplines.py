"""Disciplines, driven directly and deterministically: processor sharing finishes jobs at the
times the theory gives, priorities order a queued burst, full queues drop, outages hold
admissions back, holding keeps a slot but not the CPU, and user processes are refused where
they are not supported."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

import capsim as cs
from capsim.engine.customer import LOWEST, Customer
from capsim.engine.disciplines import (
    HostCPU,
    HostedStation,
    PriorityStation,
    PSStation,
    make_station,
)
from capsim.engine.station import Station
from capsim.engine.streams import Draws
from capsim.model.lowering import StationSpec

D, E = cs.Deterministic, cs.Exponential


def fixed(*works: float) -> Draws:
    """Draws that hand out ``works`` in order."""
    draws = Draws(D(1.0), np.random.default_rng(0))
    draws.buf = list(reversed(works))
    return draws


class Log:
    """Finish times and drops of customers, by id."""

    def __init__(self) -> None:
        self.done: dict[int, float] = {}
        self.dropped: list[int] = []

    def finish(self, cust: Customer) -> None:
        self.done[cust.id] = cust.t_now

    def drop(self, cust: Customer) -> None:
        self.dropped.append(cust.id)


def send(env: simpy.Environment, at: float, steps: tuple, ident: int, prio: int = LOWEST):
    """A customer walking ``steps`` from time ``at``."""
    def go(_event) -> None:
        cust = Customer(steps, 0, env.now, ident)
        cust.prio = prio
        steps[0](cust)
    env.timeout(at).callbacks.append(go)


def test_two_jobs_on_one_core_finish_at_the_processor_sharing_times():
    # A (work 2) alone from 0 to 0.5, then A and B (work 1) at half speed each: B has had 1
    # at 2.5, A is left 0.5 of work, alone again: done at 3.0
    env, log = simpy.Environment(), Log()
    st = PSStation(env, "ps", 1, None, fixed(2.0, 1.0), on_drop=log.drop)
    send(env, 0.0, (st.arrive, log.finish), 1)
    send(env, 0.5, (st.arrive, log.finish), 2)
    env.run()
    assert log.done == {2: pytest.approx(2.5, abs=1e-12), 1: pytest.approx(3.0, abs=1e-12)}
    area_n, area_busy, wait, sojourn, arrivals, started, completions, drops, present = (
        st.counters())
    assert (arrivals, started, completions, drops, present, wait) == (2, 2, 2, 0, 0, 0.0)
    assert area_busy == pytest.approx(3.0)  # the core worked 3 core-seconds, never idle
    assert sojourn == pytest.approx(3.0 + 2.0) and area_n == pytest.approx(3.0 + 2.0)


def test_three_jobs_on_two_cores_and_a_faster_host():
    # two cores, three jobs of work 1 at 0 on a speed-2 host: each gets 2 x 2/3 = 4/3 per s
    # until all three finish together at 0.75; a fourth, alone from then, takes 0.5
    env, log = simpy.Environment(), Log()
    cpu = HostCPU(env, "box", cores=2, speed=2.0)
    st = HostedStation(env, "svc", 10, cpu, fixed(1.0, 1.0, 1.0, 1.0))
    for i in range(3):
        send(env, 0.0, (st.arrive, log.finish), i)
    send(env, 0.75, (st.arrive, log.finish), 3)
    env.run()
    assert log.done == {i: pytest.approx(0.75, abs=1e-12) for i in range(3)} | {
        3: pytest.approx(1.25, abs=1e-12)}
    area_n, area_busy, *_, completions, _, present = cpu.counters()
    assert completions == 4 and present == 0
    assert area_busy == pytest.approx(2 * 0.75 + 1 * 0.5)  # min(jobs, cores) integrated
    assert area_n == pytest.approx(3 * 0.75 + 0.5)


def test_two_services_in_series_on_one_host_share_its_core():
    # two requests at 0, each a then b (work 1 each) on one core: both finish a at 2 (half
    # speed), then both run b at half speed: done at 4; the host's row sees 4 s busy
    env, log = simpy.Environment(), Log()
    cpu = HostCPU(env, "box", 1)
    a = HostedStation(env, "a", 4, cpu, fixed(1.0, 1.0))
    b = HostedStation(env, "b", 4, cpu, fixed(1.0, 1.0))
    for i in range(2):
        send(env, 0.0, (a.arrive, b.arrive, log.finish), i)
    env.run()
    assert log.done == {0: pytest.approx(4.0), 1: pytest.approx(4.0)}
    assert cpu.counters()[1] == pytest.approx(4.0) and cpu.completions == 4
    assert a.counters()[3] == pytest.approx(4.0) and b.counters()[3] == pytest.approx(4.0)


def test_priority_station_serves_a_queued_burst_lowest_priority_first_fifo_within():
    env, log = simpy.Environment(), Log()
    st = PriorityStation(env, "p", 1, fixed(*[1.0] * 7), on_drop=log.drop)
    order = []
    route = (st.arrive, lambda c: (order.append(c.id), log.finish(c)))
    send(env, 0.0, route, 0, prio=5)  # takes the server
    for ident, prio in [(1, 2), (2, 0), (3, LOWEST), (4, 1), (5, 0), (6, 2)]:
        send(env, 0.1, route, ident, prio)
    env.run()
    assert order == [0, 2, 5, 4, 1, 6, 3]
    assert log.done[3] == pytest.approx(7.0)
    assert st.counters()[6] == 7 and st.n == 0 and st.busy == 0


def test_priority_station_queue_capacity_counts_all_waiting_and_users_rank_lowest():
    env, log = simpy.Environment(), Log()
    st = PriorityStation(env, "p", 1, fixed(*[1.0] * 5), queue_capacity=2, on_drop=log.drop)
    order = []
    route = (st.arrive, lambda c: order.append(c.id))
    send(env, 0.0, route, 0, prio=0)
    got = {}

    def user(env):
        yield env.timeout(0.1)
        with st.request() as req:  # a user process: ranks LOWEST, after every flow
            yield req
            got["at"] = env.now
            yield env.timeout(1.0)

    env.process(user(env))
    send(env, 0.2, route, 1, prio=3)
    send(env, 0.3, route, 2, prio=1)  # the queue holds the user and 1: full, dropped
    env.run()
    assert log.dropped == [2]
    assert order == [0, 1] and got["at"] == pytest.approx(2.0)
    assert st.drops == 1 and st.completions == 3


def test_priority_station_retention_drops_the_oldest_of_each_level():
    env, log = simpy.Environment(), Log()
    st = PriorityStation(env, "p", 1, fixed(*[2.0] * 4), on_drop=log.drop, max_wait_s=1.5)
    route = (st.arrive, log.finish)
    send(env, 0.0, route, 0, prio=0)
    send(env, 0.1, route, 1, prio=1)  # waited 1.9 s at t=2: lost
    send(env, 1.0, route, 2, prio=0)  # waited 1.0 s: served next
    env.run()
    assert log.dropped == [1] and set(log.done) == {0, 2}


def test_a_full_ps_queue_drops():
    env, log = simpy.Environment(), Log()
    st = PSStation(env, "ps", 1, 1, fixed(1.0, 1.0, 1.0), queue_capacity=1, on_drop=log.drop)
    for i in range(3):
        send(env, 0.0, (st.arrive, log.finish), i)
    env.run()
    assert log.dropped == [2] and log.done == {0: 1.0, 1: 2.0}
    assert st.counters()[2] == pytest.approx(1.0)  # wait before admission


def test_an_outage_stops_admissions_until_servers_come_back():
    env, log = simpy.Environment(), Log()
    st = PSStation(env, "ps", 1, None, fixed(3.0, 1.0))
    send(env, 0.0, (st.arrive, log.finish), 0)  # in progress when the outage starts
    send(env, 2.0, (st.arrive, log.finish), 1)  # arrives during the outage: waits

    def outage(env):
        yield env.timeout(1.0)
        st.set_servers(0)
        yield env.timeout(4.0)
        st.set_servers(1)

    env.process(outage(env))
    env.run()
    assert log.done == {0: pytest.approx(3.0), 1: pytest.approx(6.0)}
    assert st.wait_sum == pytest.approx(3.0)


def test_more_cores_speed_up_the_work_in_progress():
    # two jobs of work 1 on one core: 0.25 each by 0.5, when a second core comes up; the
    # remaining 0.75 each then run at full speed: both done at 1.25
    env, log = simpy.Environment(), Log()
    st = PSStation(env, "ps", 1, None, fixed(1.0, 1.0))
    for i in range(2):
        send(env, 0.0, (st.arrive, log.finish), i)
    env.timeout(0.5).callbacks.append(lambda _e: st.set_servers(2))
    env.run()
    assert log.done == {0: pytest.approx(1.25), 1: pytest.approx(1.25)}
    assert st.busy == 0 and st.counters()[1] == pytest.approx(0.5 + 2 * 0.75)


def test_holding_keeps_the_slot_but_frees_the_cpu():
    # cap 1: A's work (1) ends at 1 and A holds its slot until it releases at 3; B, queued
    # since 0.5, is admitted at 3 and done at 4. The CPU worked 2 of those 4 s.
    env, log = simpy.Environment(), Log()
    st = PSStation(env, "ps", 1, 1, fixed(1.0, 1.0))

    def call_downstream(cust: Customer) -> None:
        def back(_event) -> None:
            cust.t_now = env.now
            st._release(cust, env.now)
            log.finish(cust)
        env.timeout(2.0).callbacks.append(back)

    send(env, 0.0, (st.arrive_holding, call_downstream), 0)
    send(env, 0.5, (st.arrive, log.finish), 1)
    env.run()
    assert log.done == {0: pytest.approx(3.0), 1: pytest.approx(4.0)}
    area_n, area_busy, wait, sojourn, *_ = st.counters()
    assert area_busy == pytest.approx(2.0) and wait == pytest.approx(2.5)
    assert sojourn == pytest.approx(3.0 + 3.5)


def test_user_processes_are_refused_at_shared_cpu_stations():
    env = simpy.Environment()
    ps = PSStation(env, "render", 2, None, fixed())
    hosted = HostedStation(env, "pg", 4, HostCPU(env, "box", 2), fixed())
    for st in (ps, hosted):
        with pytest.raises(cs.ModelError, match=f"{st.name}: .*not supported"):
            st.request()
        with pytest.raises(cs.ModelError, match=f"{st.name}: .*not supported"):
            st.release(None)


def test_make_station_dispatches_on_discipline_and_host():
    env = simpy.Environment()
    hosts = {"box": HostCPU(env, "box", 2)}
    draws = fixed()

    def build(**kw):
        spec = StationSpec("s", "s", 2, D(1.0), **kw)
        return make_station(env, spec, draws, None, Station, hosts)

    assert type(build()) is Station
    assert type(build(discipline="priority")) is PriorityStation
    ps = build(discipline="ps", max_concurrency=6)
    assert type(ps) is PSStation and ps.limit == 6 and ps.cpu.servers == 2
    hosted = build(host="box")
    assert type(hosted) is HostedStation and hosted.cpu is hosts["box"] and hosted.limit == 2


def test_simulate_reports_a_host_row_and_is_deterministic():
    system = cs.System(
        [cs.Service("web", 8, E(0.01), host="box", discipline="ps"),
         cs.Database("pg", servers=4, service_time=E(0.02), host="box"),
         cs.Service("ranker", 2, E(0.05), discipline="priority"),
         cs.Service("render", 2, E(0.02), discipline="ps", max_concurrency=4,
                    queue_capacity=3)],
        [cs.Flow("buy", 0.3, [cs.Call("web", calls=[cs.Read("pg")]), cs.Call("ranker")],
                 priority=0),
         cs.Flow("browse", 0.7, [cs.Call("web"), cs.Call("ranker"), cs.Call("render")],
                 priority=1)],
        hosts=[cs.Host("box", cores=2)])
    load = cs.OpenWorkload(1, 20.0)
    one = cs.simulate(system, load, 200.0, 10.0, seed=3)
    two = cs.simulate(system, load, 200.0, 10.0, seed=3)
    comp = one.components().set_index("component")
    assert comp.equals(two.components().set_index("component"))
    assert list(comp.index) == ["web", "pg", "ranker", "render", "box"]
    assert comp.loc["box", "servers"] == 2
    # box: 20/s x (0.01 + 0.3 x 0.02) = 0.32 core-seconds per second of 2 cores
    assert comp.loc["box", "utilization"] == pytest.approx(0.16, rel=0.15)
    assert (comp["utilization"] <= 1.0).all()
    assert one.latency().set_index("flow").loc["all", "count"] > 3000


@pytest.mark.parametrize("kw", [{"discipline": "ps", "max_concurrency": 1},
                                {"discipline": "priority"}, {"host": "box"}])
def test_a_closed_user_dropped_by_a_full_queue_while_holding_goes_back_to_thinking(kw):
    # the drop sends the user back to think at once; the holding visit must not then claim
    # the user's next event as the end of its service
    system = cs.System(
        [cs.Service("api", 1, E(0.05), queue_capacity=1, **kw), cs.Service("pg", 1, E(0.05))],
        [cs.Flow("f", 1.0, [cs.Call("api", calls=[cs.Call("pg")])])],
        hosts=[cs.Host("box")] if "host" in kw else ())
    run = cs.simulate(system, cs.ClosedWorkload(30, E(0.1)), 60.0, 5.0, seed=2)
    lat = run.latency().set_index("flow").loc["f"]
    assert lat["errors"] > 0 and lat["count"] > 100
    comp = run.components().set_index("component")
    assert comp.loc["api", "drops"] == lat["errors"]


def test_a_cache_on_a_host_takes_its_share_of_the_cores():
    """``Cache(host=...)``: Redis beside the app takes the same cores (utilization law: the
    box does 200/s x (2 ms of app + 1 ms of cache) = 0.6 of its core), in the simulation and
    the twin; without the host the box would carry the app's 0.4 alone."""
    system = cs.System(
        components=[cs.Service("web", servers=4, service_time=cs.Deterministic(0.002),
                               host="box"),
                    cs.Cache("redis", hit_ratio=1.0, service_time=cs.Deterministic(0.001),
                             host="box")],
        flows=[cs.Flow("page", steps=[cs.Call("web", calls=[cs.Read("redis")])])],
        hosts=[cs.Host("box", cores=1)])
    load = cs.OpenWorkload(200.0, 1.0)
    reps = cs.replicate(system, load, 4, 11, duration_s=40.0, warmup_s=5.0, processes=1)
    box = reps.components().query("component == 'box' and metric == 'utilization'").iloc[0]
    assert box.ci_low <= 0.6 <= box.ci_high or box["mean"] == pytest.approx(0.6, abs=0.01)
    twin = cs.analytic.solve(system, load).components().set_index("component")
    assert twin.loc["box", "utilization"] == pytest.approx(0.6, rel=1e-9)
