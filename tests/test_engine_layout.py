"""The engine's modules: no import cycle among them, and no scipy or pandas at import time
(a sweep worker that only simulates does not load them)."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "capsim" / "engine"
HEAVY = ("scipy", "pandas")


def _type_checking_blocks(tree: ast.Module) -> set[int]:
    """Line numbers inside ``if TYPE_CHECKING:`` blocks (imports for annotations only)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, child.end_lineno + 1))
    return lines


def _imports(path: Path, *, module_level_only: bool) -> set[str]:
    """Modules ``path`` imports when run (anywhere in it, or only at module level)."""
    tree = ast.parse(path.read_text())
    typing_only = _type_checking_blocks(tree)
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if getattr(node, "lineno", None) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_engine_modules_import_no_cycle():
    modules = {f"capsim.engine.{p.stem}": p for p in ENGINE.glob("*.py") if p.stem != "__init__"}
    graph = {m: {i for i in _imports(p, module_level_only=False) if i in modules and i != m}
             for m, p in modules.items()}
    assert "capsim.engine.network" not in graph["capsim.engine.program"]
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join(path + (module,))}"
        if module in done:
            return
        for target in graph[module]:
            visit(target, path + (module,))
        done.add(module)

    for module in graph:
        visit(module, ())


def test_no_engine_module_imports_scipy_or_pandas_at_module_level():
    offenders = [f"{p.name}: {name}" for p in sorted(ENGINE.glob("*.py"))
                 for name in _imports(p, module_level_only=True)
                 if name.split(".")[0] in HEAVY]
    assert offenders == []


SIMULATE_ONLY = """
import sys
import capsim
before = {m for m in HEAVY if m in sys.modules}
from capsim.dists import Exponential
from capsim.engine import simulate
from capsim.model import Call, Flow, OpenWorkload, Service, System
system = System([Service("s", 1, Exponential(1.0))], [Flow("f", 1.0, [Call("s")])])
run = simulate(system, OpenWorkload(1, 0.5), 100.0, seed=1)
run.stations  # the per-station figures of a stable run
print(" ".join(sorted(m for m in HEAVY if m in sys.modules and m not in before)))
"""


def test_simulating_loads_neither_scipy_nor_pandas_unless_capsim_itself_does():
    # the engine's share only: whatever ``import capsim`` loads (other packages) is its own
    code = f"HEAVY = {HEAVY!r}\n{SIMULATE_ONLY}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, check=True)
    assert done.stdout.split() == [], f"simulate loaded {done.stdout.strip()}"
