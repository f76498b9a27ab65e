"""The SimPy adapter: it works with the installed SimPy, that SimPy is one the package declares,
and no other engine module uses SimPy's private names."""

import re
import tomllib
from heapq import heappush
from pathlib import Path

import numpy as np
import pytest
import simpy
import yaml
from packaging.specifiers import SpecifierSet

import capsim as cs
from capsim.engine import clock
from capsim.engine.network import Network
from capsim.engine.sources import OpenSource, Recorder, _RoutePicker
from capsim.engine.streams import Draws

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "capsim" / "engine"
D = cs.Deterministic


def _declared_simpy() -> tuple[str, str]:
    """The simpy requirement of pyproject.toml and of environment.yml (specifiers only)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    conda = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    pip = next(d for d in deps if re.match(r"simpy\b", d))
    env = next(d for d in conda if isinstance(d, str) and re.match(r"simpy\b", d))
    return pip.removeprefix("simpy").strip(), env.removeprefix("simpy").strip()


def test_the_installed_simpy_is_in_the_declared_range():
    pip, env = _declared_simpy()
    assert pip == env == clock.SUPPORTED == ">=4.1,<5"
    assert simpy.__version__ in SpecifierSet(clock.SUPPORTED)


class _Event(clock.BareEvent):
    __slots__ = ("callbacks",)

    def __init__(self, callback) -> None:
        self.callbacks = (callback,)


def test_bare_events_fire_at_their_time_in_the_order_they_were_scheduled():
    env, log = simpy.Environment(), []

    def event(name: str) -> _Event:
        return _Event(lambda _ev: log.append((name, clock.now(env))))

    heap, ids = clock.bind(env)
    clock.schedule(env, event("late"), 3.0)
    clock.schedule(env, event("first"), 1.0)
    heappush(heap, (clock.now(env) + 1.0, clock.NORMAL, next(ids), event("tie")))  # the hot path
    env.timeout(2.0).callbacks.append(lambda _: log.append(("simpy", env.now)))
    scheduled = clock.events_scheduled(env)
    env.run()
    assert log == [("first", 1.0), ("tie", 1.0), ("simpy", 2.0), ("late", 3.0)]
    assert clock.now(env) == env.now == 3.0
    assert scheduled == 4 and clock.events_scheduled(env) == scheduled + 1  # it takes an id


def test_a_simpy_without_the_internals_fails_at_import_with_a_clear_message(monkeypatch):
    class Changed(simpy.Environment):
        def __init__(self, initial_time=0):
            super().__init__(initial_time)
            del self._queue  # as if a release renamed it

    monkeypatch.setattr(clock.simpy, "Environment", Changed)
    with pytest.raises(clock.SimPyChanged, match=r"AttributeError.*supports simpy>=4\.1,<5"):
        clock._check()
    assert issubclass(clock.SimPyChanged, ImportError)


def test_only_the_adapter_names_simpys_private_attributes():
    private = re.compile(r"\b_(queue|now|eid)\b|\._ok\b|^\s*_ok\s*=", re.M)
    offenders = [f"{p.name}: {m.group(0).strip()}" for p in sorted(ENGINE.glob("*.py"))
                 if p.name != "clock.py" for m in private.finditer(p.read_text())]
    assert offenders == []


def test_a_user_process_hands_its_server_to_a_built_in_request_at_the_right_time():
    # the server is held by a user process over [0.5, 5.5]; built-in requests arrive every
    # 1 s from t=1 and are served in 1 s: the first starts when the process lets go
    system = cs.System([cs.Service("s", 1, D(1.0))], [cs.Flow("f", 1.0, [cs.Call("s")])])
    env = simpy.Environment()
    net = Network(system, env, seed=1)
    recorder = Recorder()
    table, _ = net.programs(recorder.finish)
    rng = np.random.default_rng(0)
    OpenSource(env, table, _RoutePicker([1.0], rng), Draws(D(1.0), rng))

    def batch_job(env):
        yield env.timeout(0.5)
        with net["s"].request() as req:
            yield req
            yield env.timeout(5.0)

    env.process(batch_job(env))
    env.run(until=9.2)
    arrival_s, finish_s, route, _, _ = recorder.arrays()
    assert arrival_s.tolist() == [1.0, 2.0, 3.0] and route.tolist() == [0, 0, 0]
    assert finish_s.tolist() == [6.5, 7.5, 8.5]
