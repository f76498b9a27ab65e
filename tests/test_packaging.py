"""The install story stays true, and the package keeps its layers.

* environment.yml lists exactly what pyproject.toml asks for;
* layers, read from the source (every import of every module, function-local ones too):
  only the engine imports SimPy; the model and the analytic twin stand below everything that
  runs them (engine, experiment, scaling, report, monitor); reports draw results without
  importing the experiments that make them; the vocabulary modules import no capsim module;
* notebooks tell a story with the library and keep no helper that belongs in it;
* ``import capsim`` stays lean (the heavy libraries load when first used).
"""

import ast
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "capsim"
NOTEBOOKS = ROOT / "notebooks"


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


# -- layers ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Import:
    """One import statement: ``module`` (dotted) imports ``target`` (dotted, resolved)."""

    module: str
    target: str
    line: int
    type_only: bool  # inside ``if TYPE_CHECKING:``: never runs
    local: bool = False  # inside a function: runs only when it is called

    def __str__(self) -> str:
        guard = " (TYPE_CHECKING)" if self.type_only else ""
        return f"{self.module}:{self.line} imports {self.target}{guard}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    """Whether ``capsim.x.y`` is a module or package of the source tree."""
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path) -> list[Import]:
    """Every import in ``path``, at any depth (functions, try blocks), resolved to dotted
    names: ``from capsim.model import lowering`` is ``capsim.model.lowering``, ``from capsim
    import Budget`` is ``capsim`` (the package, and everything its ``__init__`` loads)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: list[Import] = []

    def visit(node: ast.AST, type_only: bool, local: bool = False) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True, local)
            for child in node.orelse:
                visit(child, type_only, local)
            return
        if isinstance(node, ast.Import):
            out.extend(Import(module, a.name, node.lineno, type_only, local)
                       for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                target = sub if base.startswith("capsim") and _is_module(sub) else base
                out.append(Import(module, target, node.lineno, type_only, local))
        inner = local or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for child in ast.iter_child_nodes(node):
            visit(child, type_only, inner)

    visit(ast.parse(path.read_text(), filename=str(path)), False)
    return out


def _modules(under: str = "") -> list[Path]:
    return sorted((PACKAGE / under).rglob("*.py"))


def _in(target: str, packages) -> bool:
    return any(target == p or target.startswith(f"{p}.") for p in packages)


def _offenders(layer: str, forbidden, *, type_only_ok: bool) -> list[str]:
    return [str(imp) for path in _modules(layer) for imp in imports_of(path)
            if _in(imp.target, forbidden) and not (type_only_ok and imp.type_only)]


def _explain(rule: str, offenders: list[str]) -> str:
    return f"{rule}; {len(offenders)} offender(s):\n  " + "\n  ".join(offenders)


def test_imports_are_read_from_the_source():
    # the reader itself: function-local, relative and TYPE_CHECKING-guarded imports count
    found = {(i.module, i.target, i.type_only) for i in imports_of(PACKAGE / "report"
                                                                   / "timeseries.py")}
    assert ("capsim.report.timeseries", "capsim.engine", True) in found
    tree = {i.target for p in _modules() for i in imports_of(p)}
    assert "capsim.model.lowering" in tree and "simpy" in tree


def test_matplotlib_loads_in_report_modules_or_inside_drawing_functions():
    offenders = [str(imp) for path in _modules() if "report" not in path.parts
                 for imp in imports_of(path)
                 if _in(imp.target, ["matplotlib"]) and not (imp.local or imp.type_only)]
    assert not offenders, _explain("matplotlib at module level outside capsim.report",
                                   offenders)


@pytest.mark.parametrize("path, method", [
    ("scaling/compare.py", "plot"), ("scaling/autoscale.py", "plot"),
    ("scaling/options.py", "plot_effective_capacity"), ("calibrate/usl.py", "plot")])
def test_the_figure_methods_delegate_to_report(path, method):
    tree = ast.parse((PACKAGE / path).read_text())
    (fn,) = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == method]
    drawn_by = {n.module for n in ast.walk(fn) if isinstance(n, ast.ImportFrom)}
    assert drawn_by and all(m.startswith("capsim.report.") for m in drawn_by), path


def test_only_the_engine_imports_simpy():
    offenders = [str(imp) for path in _modules() for imp in imports_of(path)
                 if _in(imp.target, ["simpy"]) and not _in(_module_name(path),
                                                           ["capsim.engine"])]
    assert not offenders, _explain("only capsim.engine may import simpy", offenders)


ABOVE_THE_MODEL = ["capsim", "capsim.engine", "capsim.experiment", "capsim.scaling",
                   "capsim.report", "capsim.monitor"]


@pytest.mark.parametrize("layer", ["model", "analytic"])
def test_the_model_and_the_twin_stand_below_what_runs_them(layer):
    forbidden = [p for p in ABOVE_THE_MODEL if p != "capsim"]
    offenders = _offenders(layer, forbidden, type_only_ok=False)
    # ``import capsim`` / ``from capsim import X`` loads every layer through capsim/__init__
    offenders += [str(imp) for path in _modules(layer) for imp in imports_of(path)
                  if imp.target == "capsim"]
    assert not offenders, _explain(
        f"capsim.{layer} may import neither the package root nor {', '.join(forbidden)} "
        "(type-only imports included: the layer must make sense without them)", offenders)


def test_reports_do_not_import_the_experiments():
    offenders = _offenders("report", ["capsim.experiment"], type_only_ok=True)
    assert not offenders, _explain(
        "capsim.report draws results it is given: it may not import capsim.experiment "
        "(an `if TYPE_CHECKING:` import for annotations is fine)", offenders)


@pytest.mark.parametrize("vocabulary", ["schema", "units"])
def test_the_vocabulary_imports_nothing_of_capsim(vocabulary):
    path = PACKAGE / f"{vocabulary}.py"
    offenders = [str(i) for i in imports_of(path) if _in(i.target, ["capsim"])]
    assert not offenders, _explain(f"capsim.{vocabulary} is imported by every layer, the "
                                   "model's lowering included: it imports no capsim module",
                                   offenders)


# -- notebooks ---------------------------------------------------------------------------------
def _public_classes() -> set[str]:
    """Capitalised names of ``capsim.__all__``: the library's own types (read, not imported)."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__"
                                                for t in node.targets):
            return {n for n in ast.literal_eval(node.value) if n[:1].isupper()}
    raise AssertionError("capsim/__init__.py has no __all__")


def _names_a_capsim_type(annotation: ast.expr | None, classes: set[str]) -> bool:
    return (isinstance(annotation, ast.Attribute) and isinstance(annotation.value, ast.Name)
            and annotation.value.id in ("cs", "capsim") and annotation.attr in classes)


def test_notebooks_keep_no_helper_that_belongs_in_the_library():
    """The rule: a notebook defines no class, and a function only to assemble the library's
    own objects for its story (its model, a workload, a run: the return annotation names a
    public capsim type, ``-> cs.System``). A function that computes plain data (a table, a
    number, a string, a plot decoration) is a helper, and belongs in capsim with a test.
    Inline lambdas (a tick format) are expressions, not helpers."""
    classes = _public_classes()
    offenders = []
    for path in sorted(NOTEBOOKS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ClassDef):
                offenders.append(f"{path.name}:{node.lineno} class {node.name}")
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and \
                    not _names_a_capsim_type(node.returns, classes):
                returns = ast.unparse(node.returns) if node.returns else "no annotation"
                offenders.append(f"{path.name}:{node.lineno} def {node.name} -> {returns}")
    assert not offenders, _explain("notebooks define no classes, and functions only to build "
                                   "capsim objects (-> cs.<public type>)", offenders)


def test_notebooks_share_the_librarys_process_pool():
    offenders = [f"{p.name}:{i}: {line.strip()}" for p in sorted(NOTEBOOKS.glob("*.py"))
                 for i, line in enumerate(p.read_text().splitlines(), 1)
                 if re.search(r"ProcessPoolExecutor|ThreadPoolExecutor|executor=", line)]
    assert not offenders, _explain("notebooks leave the process pool to the library (no "
                                   "executor of their own)", offenders)


# -- a lean import ------------------------------------------------------------------------------
HEAVY = ("scipy", "pandas", "matplotlib", "pyarrow", "nbclient")


def test_import_capsim_is_lean():
    code = ("import sys, capsim; capsim.Budget, capsim.System; heavy = " + repr(HEAVY)
            + "; print(' '.join(sorted(m for m in heavy if m in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, check=True)
    loaded = done.stdout.split()
    assert not loaded, f"`import capsim` loads {', '.join(loaded)}; load them when first used"
