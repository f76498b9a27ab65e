"""The capacity review: the report an architect reads before a launch, and a CI gate.

One sweep of user growth around the expected peak answers it all: where the budget breaks
(with a CI), what breaks it, whether today's peak and the planned headroom (2x peak) hold, and
how much more capacity the bottleneck needs. ``capsim.experiment.review.capacity_review`` runs
it; this module renders the finished ``Review``: Markdown and a self-contained HTML page
(figures embedded), and a JSON summary for machines. It runs nothing: the sweep, saturation
point and checks arrive computed.

One verdict: the checks table and the headline both come from ``Saturation`` (its table's
``meets``, judged on the budget's bound), so the report cannot contradict itself. Message
queues are part of it: a consumer group that cannot keep up fails the review even when the
request latency is fine.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from capsim.report.saturation import hockey_stick, utilization_vs_users

if TYPE_CHECKING:
    from capsim.experiment.saturation import Saturation
    from capsim.experiment.sweep import SweepResult
    from capsim.model import Budget

__all__ = ["Review"]


@dataclass(frozen=True)
class Review:
    """A finished capacity review: the sweep, its saturation point, the checks and the
    recommendation (``capsim.experiment.review.capacity_review`` makes one)."""

    scenario: str
    budget: Budget
    peak_users: float
    headroom: float
    result: SweepResult = field(repr=False)
    saturation: Saturation
    checks: pd.DataFrame = field(repr=False)
    recommendation: str

    @property
    def passed(self) -> bool:
        return bool(self.checks["passed"].all())

    def summary(self) -> dict:
        """The machine-readable verdict (``capsim review --json``)."""
        sat = self.saturation
        return {
            "scenario": self.scenario, "passed": self.passed, "budget": str(self.budget),
            "peak_users": self.peak_users, "headroom": self.headroom,
            "saturation_users": _num(sat.users), "saturation_ci": [_num(sat.users_low),
                                                                   _num(sat.users_high)],
            "breaks_on": sat.breaks_on, "bottleneck": sat.bottleneck,
            "bound": self.budget.bound, "judged_on": sat.judged_on, "has_ci": sat.has_ci,
            "holds_up_to_users": _num(sat.gate_users),
            "saturation_high_beyond_grid": sat.high_beyond_grid,
            "accepted_backlogs": [{"backlog": label, "from_users": _num(at)}
                                  for label, at in sat.accepted_backlogs],
            "checks": [{k: _num(v) if isinstance(v, float) else v for k, v in row.items()}
                       for row in self.checks.to_dict("records")],
            "recommendation": self.recommendation,
            "simulated_requests": self.result.simulated_requests,
        }

    def figures(self) -> dict[str, plt.Figure]:
        fig1, ax1 = plt.subplots(figsize=(8, 4.5))
        hockey_stick(self.result, self.budget, self.saturation, ax=ax1)
        for x, label in ((self.peak_users, "peak"),
                         (self.peak_users * self.headroom, f"{self.headroom:g}x peak")):
            ax1.axvline(x, color="grey", ls=":", lw=1)
            ax1.annotate(label, (x, 1), xycoords=("data", "axes fraction"), rotation=90,
                         va="top", ha="right", fontsize=8, color="grey")
        fig1.tight_layout()
        fig2, ax2 = plt.subplots(figsize=(8, 4.5))
        utilization_vs_users(self.result, ax=ax2)
        fig2.tight_layout()
        return {"latency": fig1, "utilization": fig2}

    def _notes(self) -> list[str]:
        """What a reader needs to read the checks: what a backlog check's value is, and which
        estimates came from runs too short for them."""
        notes = []
        table = self.saturation.table
        if (table["metric"] == "backlog").any():
            notes += ["A backlog check's value is its busiest consumer's offered load: at 1 "
                      "(100% of its capacity) or more the queue's backlog grows for as long as "
                      "the load lasts.", ""]
        short = table[~table["adequate"] & np.isfinite(table["mean"])] \
            if "adequate" in table else table.iloc[:0]
        if not short.empty:
            at = ", ".join(f"{u:,.0f}" for u in sorted(set(short["users"])))
            notes += [f"Runs at {at} users were too short for their tail estimates (a queue "
                      "near saturation relaxes slowly; see RunLengthWarning): those values "
                      "are biased low. Rerun with a longer --duration, or "
                      "replications='auto' in Python, before relying on them.", ""]
        return notes

    def markdown(self, images: dict[str, str]) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        lines = [f"# Capacity review: {self.scenario} — {verdict}", "",
                 f"Budget {self.budget}; peak {self.peak_users:,.0f} users; "
                 f"headroom {self.headroom:g}x peak; judged on "
                 f"{self.saturation.judged_on}.", "", f"**{self.saturation}**", "",
                 "## Checks", "", _md_table(self.checks), "", *self._notes(),
                 "## Recommendation", "", self.recommendation, "",
                 "## Latency against users", "", f"![latency]({images['latency']})", "",
                 "## Which component hits the wall", "",
                 f"![utilization]({images['utilization']})", "",
                 f"_{self.result.simulated_requests:,} simulated requests; "
                 f"{int(self.result.points['replications'].max())} replications per point._"]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """report.md + PNG figures, and report.html with the figures embedded."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        figs = self.figures()
        paths, embedded = {}, {}
        for name, fig in figs.items():
            path = out / f"{name}.png"
            fig.savefig(path, dpi=110, bbox_inches="tight")
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
            embedded[name] = "data:image/png;base64," + base64.b64encode(
                buf.getvalue()).decode()
            plt.close(fig)
            paths[name] = path
        md = self.markdown({k: f"{k}.png" for k in figs})
        paths["markdown"] = out / "report.md"
        paths["markdown"].write_text(md)
        paths["html"] = out / "report.html"
        paths["html"].write_text(_html(self, embedded))
        return paths


def _num(x):
    if isinstance(x, (float, np.floating)):
        return None if not math.isfinite(float(x)) else float(x)
    return x


def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "**no**"
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return "—"
        if not math.isfinite(v):
            return str(v)
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.4g}"
    return str(v)


def _md_table(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _html(review: Review, images: dict[str, str]) -> str:
    verdict = "PASS" if review.passed else "FAIL"
    color = "#1a7f37" if review.passed else "#cf222e"
    table = review.checks.assign(passed=review.checks["passed"].map({True: "yes", False: "no"}))
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Capacity review: {html.escape(review.scenario)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3rem .6rem}}
.verdict{{color:{color};font-weight:bold}}</style></head><body>
<h1>Capacity review: {html.escape(review.scenario)} — <span class="verdict">{verdict}</span></h1>
<p>Budget {html.escape(str(review.budget))}; peak {review.peak_users:,.0f} users; headroom
{review.headroom:g}x peak; judged on {html.escape(review.saturation.judged_on)}.</p>
<p><b>{html.escape(str(review.saturation))}</b></p>
<h2>Checks</h2>{table.to_html(index=False, float_format=lambda v: _fmt(v))}
{"".join(f"<p>{html.escape(note)}</p>" for note in review._notes() if note)}
<h2>Recommendation</h2><p>{html.escape(review.recommendation)}</p>
<h2>Latency against users</h2><img alt="latency" src="{images['latency']}" width="100%">
<h2>Which component hits the wall</h2>
<img alt="utilization" src="{images['utilization']}" width="100%">
<p><i>{review.result.simulated_requests:,} simulated requests.</i></p></body></html>
"""
