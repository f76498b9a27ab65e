"""The testbed's report: capsim's prediction of the real shop beside what k6 measured.

Given finished tables (``capsim.testbed.run.TestbedResult``: ``table()``, ``predicted``,
``measured``), it draws p99 against throughput per stage (predicted line with its confidence
band, measured points, both capacities marked) and the capacities side by side, and writes an
HTML page with the figure and the comparison table.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["comparison_table", "demand_figure", "testbed_figure", "write_testbed_report"]

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _ms(v: float) -> str:
    return "unstable" if not math.isfinite(v) else f"{v * 1e3:,.0f} ms"


def _pct(v: float) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:+.0%}"


def comparison_table(table: pd.DataFrame) -> pd.DataFrame:
    """The issue's table, rounded for a reader: capacities in req/s, p99 in ms, errors in %."""
    rows = []
    for _, r in table.iterrows():
        measured = f"{r.measured_capacity_rps:,.0f}"
        if not r.capacity_reached:
            measured = "≥ " + measured
        rows.append({
            "stage": r["name"],
            "predicted capacity (req/s)": f"{r.predicted_capacity_rps:,.0f}",
            "measured capacity (req/s)": measured,
            "capacity error": _pct(r.capacity_error),
            "p99 at 50 %: predicted": _ms(r.predicted_p99_s_at_50pct),
            "measured": _ms(r.measured_p99_s_at_50pct),
            "error": _pct(r.p99_error_at_50pct),
            "p99 at 80 %: predicted": _ms(r.predicted_p99_s_at_80pct),
            "measured ": _ms(r.measured_p99_s_at_80pct),
            "error ": _pct(r.p99_error_at_80pct),
            "p99 at 80 % of its own capacity: error": _pct(r.p99_error_at_own_80pct),
        })
    return pd.DataFrame(rows)


def testbed_figure(table: pd.DataFrame, predicted: pd.DataFrame, measured: pd.DataFrame):
    """p99 against throughput per stage (left) and predicted vs measured capacity (right)."""
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 2]})
    for i, (_, row) in enumerate(table.iterrows()):
        color = COLORS[i % len(COLORS)]
        stage = row["name"]
        p = predicted[(predicted["stage"] == stage) & np.isfinite(predicted["p99_s"])]
        ax.plot(p["offered_per_s"], p["p99_s"] * 1e3, "-", color=color, lw=2,
                label=f"{stage}: predicted")
        ax.fill_between(p["offered_per_s"], p["p99_s_low"] * 1e3, p["p99_s_high"] * 1e3,
                        color=color, alpha=0.12, lw=0)
        m = measured[measured["stage"] == stage]
        ax.plot(m["throughput_per_s"], m["p99_s"] * 1e3, "o", color=color, ms=6, mfc="white",
                mew=2, label=f"{stage}: measured (k6)")
        ax.axvline(row.predicted_capacity_rps, color=color, ls="--", lw=1)
        ax.axvline(row.measured_capacity_rps, color=color, ls=":", lw=1.5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("throughput (requests/s; predicted: offered)")
    ax.set_ylabel("p99 latency (ms)")
    ax.set_title("p99 against load: predicted (line, 95 % CI band), measured by k6 (circles)\n"
                 "capacity: predicted dashed, measured dotted")
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    ax.grid(True, which="both", alpha=0.25)

    x = np.arange(len(table))
    bx.bar(x - 0.2, table["predicted_capacity_rps"], 0.4, color="#999999", label="predicted")
    bx.bar(x + 0.2, table["measured_capacity_rps"], 0.4,
           color=[COLORS[i % len(COLORS)] for i in range(len(table))], label="measured")
    for i, (_, row) in enumerate(table.iterrows()):
        top = max(row.predicted_capacity_rps, row.measured_capacity_rps)
        mark = "" if row.capacity_reached else " (≥)"
        bx.text(i, top * 1.02, f"{row.capacity_error:+.0%}{mark}", ha="center", fontsize=9)
    bx.set_xticks(x, table["name"], rotation=15)
    bx.set_ylabel("saturation throughput (requests/s)")
    bx.set_title("capacity per stage (label: prediction's error)")
    bx.legend(fontsize=8)
    fig.tight_layout()
    return fig


def demand_figure(frame: pd.DataFrame, cores: dict[str, int] | None = None):
    """CPU per request of the mix, by tier, per stage (``capsim.calibrate.testbed.
    demand_frame``): stacked bars, with the capacity the cores allow printed on top."""
    import matplotlib.pyplot as plt

    mix = (frame.assign(weighted=frame["demand_ms"] * frame["share"])
           .groupby(["stage", "tier"], sort=False)["weighted"].sum().unstack("tier"))
    stages = list(dict.fromkeys(frame["stage"]))
    mix = mix.loc[stages]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bottom = np.zeros(len(mix))
    colors = {"postgres": "#1f77b4", "web": "#2ca02c", "redis": "#d62728", "k6": "#bbbbbb"}
    for tier in [t for t in ("postgres", "web", "redis", "k6") if t in mix]:
        ax.bar(stages, mix[tier], bottom=bottom, color=colors[tier], label=tier)
        bottom += mix[tier].to_numpy()
    shop = mix[[t for t in ("postgres", "web", "redis") if t in mix]].sum(axis=1)
    for i, stage in enumerate(stages):
        n = (cores or {}).get(stage, 1)
        ax.text(i, bottom[i] * 1.02, f"{n} core(s): ≤ {n / shop[stage] * 1e3:,.0f} req/s",
                ha="center", fontsize=8)
    ax.set_ylabel("CPU per request of the mix (ms)")
    ax.set_title("Where a request's CPU goes, as calibrated (k6's own on its core or shared)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def write_testbed_report(table: pd.DataFrame, predicted: pd.DataFrame,
                         measured: pd.DataFrame, versions: dict, out_dir: str | Path,
                         notes: list[str] | None = None) -> dict[str, Path]:
    """``testbed.png`` and ``report.html`` (the figure embedded) in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig = testbed_figure(table, predicted, measured)
    png = out / "testbed.png"
    fig.savefig(png, dpi=110, bbox_inches="tight")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    image = base64.b64encode(buf.getvalue()).decode()
    shown = comparison_table(table)
    tools = ", ".join(f"{k} {v}" for k, v in versions.items() if v is not None)
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>capsim testbed: predicted vs measured</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}
table{{border-collapse:collapse}}td,th{{padding:3px 8px;border-bottom:1px solid #ddd}}</style>
</head><body>
<h1>The real shop, predicted by capsim and measured by k6</h1>
<p>Each stage was calibrated at low load (each endpoint alone, two arrival rates), predicted
(saturation throughput; simulated p99 against offered load), then measured with a k6 step
test. p99 is compared at 50 % and 80 % of the measured capacity. "≥": no step saturated the
shop, so the measured capacity is a lower bound.</p>
<img src="data:image/png;base64,{image}" style="width:100%">
<h2>Prediction against measurement</h2>
{shown.to_html(index=False)}
{"".join(f"<p>{html.escape(n)}</p>" for n in notes or [])}
<p><i>{html.escape(tools)}</i></p>
</body></html>"""
    page_path = out / "report.html"
    page_path.write_text(page)
    return {"png": png, "html": page_path}
