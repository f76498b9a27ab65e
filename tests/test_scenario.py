"""Scenario files: every bundled one loads and validates; broken ones name the field."""

from pathlib import Path

import jsonschema
import pytest
import yaml

import capsim as cs
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
