"""What ``make run`` does: review the bundled case study, and render every notebook to HTML.

Before: the monolith on one PostgreSQL (data/scenarios/ecommerce_monolith.yaml); after: the
layered architecture (ecommerce_scaled.yaml). Both are reviewed against the case study's
budget (p99 200 ms, holding at 2x today's peak); then the notebook suite executes into
reports/notebooks/. Finished simulation runs are kept in results/, so a second run is fast.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORTS = Path("reports")


def review_case_study() -> list[tuple[str, bool, Path]]:
    from capsim.report.review import capacity_review
    from capsim.scenario import load_scenario

    out = []
    for name in ("ecommerce_monolith", "ecommerce_scaled"):
        sc = load_scenario(ROOT / "data" / "scenarios" / f"{name}.yaml")
        review = capacity_review(sc.system, sc.workload, sc.budget, headroom=2.0, points=8,
                                 replications=3, duration_s=120, seed=sc.run.seed,
                                 scenario=sc.name, store="results")
        paths = review.write(REPORTS / "review" / name)
        print(f"\n{sc.name}: {'PASS' if review.passed else 'FAIL'} — {review.saturation}")
        print(f"  {review.recommendation}")
        out.append((sc.name, review.passed, paths["html"]))
    return out


def render_notebooks() -> list[Path]:
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    out_dir = REPORTS / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        started = time.perf_counter()
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        html, _ = HTMLExporter().from_notebook_node(nb)
        target = out_dir / f"{path.stem}.html"
        target.write_text(html)
        written.append(target)
        print(f"  {path.name} -> {target} ({time.perf_counter() - started:.0f} s)")
    return written


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")
    print("Capacity review of the case study (before and after)")
    reviews = review_case_study()
    print("\nRendering the notebooks")
    pages = render_notebooks()
    print("\nWhere to look:")
    for name, passed, html in reviews:
        print(f"  {html}  ({name}: {'PASS' if passed else 'FAIL'})")
    print(f"  {REPORTS / 'notebooks'}/  ({len(pages)} notebooks as HTML)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
