"""Scenario files: every bundled one loads and validates; broken ones name the field."""

from pathlib import Path

import jsonschema
import pytest
import yaml

import capsim as cs
from capsim.analytic import solve
from capsim.scenario import ScenarioError, load_scenario
from capsim.scenario.schema import json_schema

SCENARIOS = sorted((Path(__file__).resolve().parents[1] / "data" / "scenarios").glob("*.yaml"))
BASE = """
components:
  - Service:
      name: app
      servers: 4
      service_time: {Exponential: {mean: 0.01}}
flows:
  - name: f
    steps: [{Call: app}]
workload: {OpenWorkload: {users: 10, requests_per_user_s: 1}}
"""
# every field the model grew for per-step demands, disciplines, hosts and mixed populations
FULL = """
hosts:
  - {name: box, cores: 4, speed: 1.5}
components:
  - Service:
      name: web
      servers: 8
      discipline: ps
      max_concurrency: 32
      service_time: {Exponential: {mean: 0.01}}
  - Service:
      name: api
      servers: 4
      discipline: priority
      service_time: {Exponential: {mean: 0.005}}
  - Database:
      name: db
      servers: 8
      host: box
      service_time: {Exponential: {mean: 0.008}}
  - Service: {name: jobs, servers: 2, host: box, service_time: {Exponential: {mean: 0.02}}}
flows:
  - name: listing
    weight: 0.6
    steps:
      - Call: web
      - Read: {component: db, service_time: {Exponential: {mean: 0.003}}}
      - Read: {component: db, visits: {Geometric: {mean: 10}}}
  - name: search
    weight: 0.3
    priority: 1
    steps:
      - Call: {component: api, visits: 2}
      - Read: {component: db, visits: {Poisson: {mean: 3}}}
  - name: checkout
    weight: 0.1
    priority: 0
    steps: [{Call: api}, {Write: {component: db, service_time: {Gamma: {mean: 0.035, cv: 0.5}}}}]
workload:
  MixedWorkload:
    names: [browsers, clients]
    populations:
      - ClosedWorkload: {users: 50, think_time: {Exponential: {mean: 5}}, flows: [listing]}
      - OpenWorkload: {users: 20, requests_per_user_s: 1, flows: [search, checkout]}
"""


def test_the_bundled_scenarios_are_there():
    names = {p.name for p in SCENARIOS}
    assert {"ecommerce_monolith.yaml", "ecommerce_scaled.yaml", "saas_api.yaml",
            "teaching_mm1.yaml"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_bundled_scenario_loads_validates_and_runs(path):
    scenario = load_scenario(path)
    jsonschema.validate(yaml.safe_load(path.read_text()), json_schema())
    run = cs.simulate(scenario.system, scenario.workload, 30, 5, seed=1)
    assert run.stable and run.latency()["count"].sum() > 0
    assert solve(scenario.system, scenario.workload).latency()["mean_s"].notna().all()


def test_yaml_mirrors_the_python_api():
    scenario = load_scenario(BASE)
    expected = cs.System([cs.Service("app", 4, cs.Exponential(0.01))],
                         [cs.Flow("f", 1.0, [cs.Call("app")])], name="<scenario>")
    assert scenario.system == expected
    assert scenario.workload == cs.OpenWorkload(10, 1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("servers: 4", "servers: 0"), r"components\[0\].servers \(line 5\): must be >= 1, got 0"),
        (("servers: 4", "servrs: 4"),
         r"components\[0\].servrs \(line 5\): is not a field of Service \(did you mean "
         r"'servers'\?\)"),
        (("Exponential", "Exponental"),
         r"components\[0\].service_time \(line 6\): unknown distribution \(did you mean "
         r"'Exponential'\?\)"),
        (("mean: 0.01", "mean: -1"), r"service_time.mean \(line 6\): must be > 0, got -1"),
        (("{Call: app}", "{Call: ap}"), r"unknown component 'ap' \(did you mean 'app'\?\)"),
        (("users: 10", "users: -10"), r"workload.users \(line 10\): must be > 0, got -10"),
        (("flows:", "flws:"), r"flws \(line 7\): is not a scenario section \(did you mean "
                              r"'flows'\?\)"),
        (("{Call: app}", "{Publish: app}"), r"Publish\('app'\) is not something a Service does"),
    ],
)
def test_broken_scenarios_name_the_field_the_value_and_the_line(change, message):
    with pytest.raises(ScenarioError, match=message):
        load_scenario(BASE.replace(*change))


def test_yaml_mirrors_the_new_fields_of_the_python_api():
    scenario = load_scenario(FULL)
    jsonschema.validate(yaml.safe_load(FULL), json_schema())
    e = cs.Exponential
    expected = cs.System(
        [cs.Service("web", 8, e(0.01), discipline="ps", max_concurrency=32),
         cs.Service("api", 4, e(0.005), discipline="priority"),
         cs.Database("db", 8, e(0.008), host="box"),
         cs.Service("jobs", 2, e(0.02), host="box")],
        [cs.Flow("listing", 0.6, [cs.Call("web"), cs.Read("db", service_time=e(0.003)),
                                  cs.Read("db", visits=cs.Geometric(10))]),
         cs.Flow("search", 0.3, [cs.Call("api", visits=2), cs.Read("db", visits=cs.Poisson(3))],
                 priority=1),
         cs.Flow("checkout", 0.1, [cs.Call("api"),
                                   cs.Write("db", service_time=cs.Gamma(0.035, 0.5))],
                 priority=0)],
        name="<scenario>", hosts=[cs.Host("box", 4, 1.5)])
    assert scenario.system == expected
    assert scenario.workload == cs.MixedWorkload(
        [cs.ClosedWorkload(50, e(5.0), flows=("listing",)),
         cs.OpenWorkload(20, 1.0, flows=("search", "checkout"))], names=("browsers", "clients"))
    single = load_scenario(FULL.split("workload:")[0] + "workload: {OpenWorkload: "
                           "{users: 10, requests_per_user_s: 1, flows: [search]}}\n")
    assert single.workload == cs.OpenWorkload(10, 1.0, flows=("search",))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("weight: 0.6\n", "weight: 0.6\n    priority: 2\n"),
         r"flows\[0\].priority \(line 25\): set to 2, but none of the components it calls "
         r"serves by priority"),
        (("visits: 2}", "visits: -1}"),
         r"flows\[1\].steps\[0\].visits \(line 33\): must be >= 0, got -1"),
        (("visits: 2}", "visits: 2.5}"),
         r"flows\[1\].steps\[0\].visits \(line 33\): must be an integer >= 0, got 2.5"),
        (("{Geometric: {mean: 10}}", "{Geometrc: {mean: 10}}"),
         r"flows\[0\].steps\[2\].visits \(line 28\): unknown count distribution \(did you "
         r"mean 'Geometric'\?\); known: Poisson, Geometric, got 'Geometrc'"),
        (("{Poisson: {mean: 3}}", "{Poisson: {mean: -3}}"),
         r"flows\[1\].steps\[1\].visits.mean \(line 34\): must be >= 0, got -3"),
        (("cores: 4", "cores: 0"), r"hosts\[0\].cores \(line 3\): must be >= 1, got 0"),
        (("host: box\n      service_time: {Exponential: {mean: 0.008}}",
          "host: bx\n      service_time: {Exponential: {mean: 0.008}}"),
         r"components\[2\].host \(line 19\): unknown host 'bx' \(did you mean 'box'\?\); "
         r"hosts: box"),
        (("{name: jobs, servers: 2, host: box,", "{name: jobs, servers: 2, host: boxx,"),
         r"components\[3\].host \(line 21\): unknown host 'boxx' \(did you mean 'box'\?\)"),
        (("flows: [listing]", "flows: [lsting]"),
         r"workload.populations\[0\].flows\[0\] \(line 43\): unknown flow \(did you mean "
         r"'listing'\?\); the system's flows: listing, search, checkout, got 'lsting'"),
        (("flows: [search, checkout]", "flows: [search, chekout]"),
         r"workload.populations\[1\].flows\[1\] \(line 44\): unknown flow \(did you mean "
         r"'checkout'\?\)"),
        (("discipline: priority", "discipline: priorty"),
         r"components\[1\].discipline \(line 14\): unknown discipline \(did you mean "
         r"'priority'\?\); known: fcfs, ps, priority, got 'priorty'"),
        (("discipline: ps", "discipline: pss"),
         r"components\[0\].discipline \(line 8\): unknown discipline \(did you mean 'ps'\?\)"),
        (("max_concurrency: 32", "max_concurrency: 4"),
         r"components\[0\].max_concurrency \(line 9\): must be >= 8, got 4"),
        (("names: [browsers, clients]", "names: [browsers]"),
         r"workload.names \(line 41\): must hold 2 names \(one per population\)"),
        (("name: box,", "name: db,"), r"hosts \(line 2\): 'db' is also a component's name"),
    ],
)
def test_broken_new_fields_name_the_field_the_value_and_the_line(change, message):
    assert change[0] in FULL
    with pytest.raises(ScenarioError, match=message):
        load_scenario(FULL.replace(*change, 1))


def test_a_single_population_naming_an_unknown_flow_gets_a_hint():
    text = BASE.replace("requests_per_user_s: 1}", "requests_per_user_s: 1, flows: [ff]}")
    with pytest.raises(ScenarioError, match=r"workload.flows\[0\] \(line 10\): unknown flow "
                       r"\(did you mean 'f'\?\); the system's flows: f, got 'ff'"):
        load_scenario(text)


def test_loading_is_safe():
    evil = BASE + "\nname: !!python/object/apply:os.system ['echo pwned']\n"
    with pytest.raises(ScenarioError, match=r"name \(line 12\): the tag "
                       r"'tag:yaml.org,2002:python/object/apply:os.system' is not allowed"):
        load_scenario(evil)


def test_missing_file_and_sections():
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario("nope.yaml")
    with pytest.raises(ScenarioError, match="missing section 'workload'"):
        load_scenario(BASE.split("workload:")[0])
