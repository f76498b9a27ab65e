"""Execute every notebook in notebooks/ and write it as HTML to reports/notebooks/.

The second half of ``make run`` (the first is ``capsim demo``). It lives outside the package so
that capsim itself needs no notebook tooling: nbformat, nbclient and nbconvert are needed only
here. ``python scripts/render_notebooks.py [NAME ...]`` renders the notebooks whose file names
start with one of the NAMEs (all of them by default); exits 1 when one fails to execute.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CELL_TIMEOUT_S = 900


def render(path: Path, out_dir: Path) -> Path:
    """Execute one notebook in its own folder (relative data paths resolve) and write HTML."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    html, _ = HTMLExporter().from_notebook_node(nb)
    target = out_dir / f"{path.stem}.html"
    target.write_text(html)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook name prefixes (default: all)")
    parser.add_argument("--out", type=Path, default=Path("reports") / "notebooks",
                        help="HTML folder (reports/notebooks)")
    args = parser.parse_args(argv)
    paths = [p for p in sorted(NOTEBOOKS.glob("*.ipynb"))
             if not args.names or p.name.startswith(tuple(args.names))]
    if not paths:
        print(f"render_notebooks: no notebook matches {args.names}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    print("Rendering the notebooks")
    failed = []
    for path in paths:
        started = time.perf_counter()
        try:
            target = render(path, args.out)
        except CellExecutionError as exc:
            failed.append(path.name)
            print(f"  {path.name}: FAILED\n{exc}", file=sys.stderr)
            continue
        print(f"  {path.name} -> {target} ({time.perf_counter() - started:.0f} s)")
    print(f"\n  {args.out}/  ({len(paths) - len(failed)} notebooks as HTML)")
    if failed:
        print(f"render_notebooks: {len(failed)} failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
