"""The install story stays true: environment.yml lists exactly what pyproject.toml asks for."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _normalise(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_normalise(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted |= {_normalise(r) for r in extra}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    listed = {_normalise(d) for d in conda if not d.startswith(("python=", "pip"))}
    assert listed == wanted, (
        f"only in environment.yml: {sorted(listed - wanted)}; "
        f"only in pyproject.toml: {sorted(wanted - listed)}"
    )
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip
    assert "python=3.11" in conda


def test_required_layout_exists():
    for path in ["capsim", "notebooks", "data", "tests", "bench", "environment.yml",
                 "pyproject.toml", "Makefile", "README.md", ".ci/run"]:
        assert (ROOT / path).exists(), path
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_only_the_engine_imports_simpy():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "capsim").rglob("*.py")
        if "engine" not in p.parts and re.search(r"^\s*(import|from)\s+simpy", p.read_text(), re.M)
    ]
    assert offenders == []
