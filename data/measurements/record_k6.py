"""Re-record the k6 fixtures in data/measurements/k6/ with the real k6 against a StubServer.

    .venv/bin/python data/measurements/record_k6.py [--assemble-only]

The system is the one notebook 08 models: 8 workers, LogNormal(mean 20 ms, cv 1) service times,
a queue of at most 48 (capacity 8 / 0.020 s = 400 requests/s; a full queue answers a fast 503).
Each run gets its own fresh server on 127.0.0.1 (so its counts are its own), stopped
afterwards; what the server saw is written to
``stub_truth.json`` next to the fixtures. The numbers are whatever the run measured: k6 and the
Python server share this machine's cores, so expect some client overhead near saturation.
See data/measurements/k6/README.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import capsim as cs
from capsim.testbed import load
from capsim.testbed.stub import StubServer

HERE = Path(__file__).resolve().parent
OUT = HERE / "k6"
TREND_STATS = "avg,min,med,max,p(90),p(95),p(99)"
STREAM_TAGS = "status,expected_response,scenario"  # --system-tags: keep the NDJSON small

CLOSED = """import http from 'k6/http';
import { sleep } from 'k6';
export default function () { http.get(`${__ENV.URL}/work`); sleep(0.1); }
"""
HANDLE_SUMMARY = """
export function handleSummary(data) { return { [__ENV.HS_FILE]: JSON.stringify(data) }; }
"""
ARRIVAL = """import http from 'k6/http';
export const options = { scenarios: { open: {
  executor: 'constant-arrival-rate', rate: %(rate)d, timeUnit: '1s', duration: '%(duration)s',
  preAllocatedVUs: %(vus)d, maxVUs: %(vus)d, gracefulStop: '2s' } } };
export default function () { http.get(`${__ENV.URL}/work`); }
"""
STEPPED_VUS = """import http from 'k6/http';
import { sleep } from 'k6';
export const options = { scenarios: { steps: {
  executor: 'ramping-vus', startVUs: 2, gracefulRampDown: '1s', stages: [
    { target: 2, duration: '8s' }, { target: 5, duration: '0s' }, { target: 5, duration: '8s' },
    { target: 10, duration: '0s' }, { target: 10, duration: '8s' }] } } };
export default function () { http.get(`${__ENV.URL}/work`); sleep(0.1); }
"""
STEPPED_RATE = """import http from 'k6/http';
export const options = { scenarios: { steps: {
  executor: 'ramping-arrival-rate', startRate: 40, timeUnit: '1s', preAllocatedVUs: 30,
  maxVUs: 30, gracefulStop: '2s', stages: [
    { target: 40, duration: '8s' }, { target: 80, duration: '0s' }, { target: 80, duration: '8s' },
    { target: 160, duration: '0s' }, { target: 160, duration: '8s' }] } } };
export default function () { http.get(`${__ENV.URL}/work`); }
"""


def k6_binary() -> str:
    try:
        return load.k6_binary()
    except cs.ModelError as e:
        sys.exit(f"record_k6.py: {e}")


def k6_version(k6: str) -> str:
    try:
        return load.k6_version(k6)
    except cs.ModelError as e:
        sys.exit(f"record_k6.py: {e}")


def run(k6: str, name: str, script: str, args: list[str], work: Path, timeout_s: float,
        env: dict[str, str] | None = None) -> dict:
    """One k6 run against a fresh stub; returns what the stub saw."""
    (work / f"{name}.js").write_text(script)
    stub = StubServer(workers=8, service_time=cs.LogNormal(0.020, 1.0), queue_capacity=48,
                      seed=sum(map(ord, name)))
    with stub:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [k6, "run", "--quiet", "--no-usage-report", *args, str(work / f"{name}.js")],
            env={**os.environ, "URL": stub.url, **(env or {})}, cwd=work,
            capture_output=True, text=True, timeout=timeout_s)
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"record_k6.py: k6 failed on {name}:\n{proc.stderr[-2000:]}")
    times = stub.service_times_s
    truth = {"served": stub.served, "rejected": stub.rejected,
             "mean_service_s": sum(times) / len(times) if times else None,
             "wall_s": round(wall, 2)}
    print(f"{name}: {truth}", flush=True)
    return truth


# k6 >= 1.5's machine-readable summary, schema 1.0.0 (facts from k6's source: the schema's
# generated Go types and its end-to-end test; the JS runtime writes Go field names in snake_case):
# config {duration s, execution, script}, metadata {generated_at, k6_version},
# results {metrics: [{contains, name, type, values}]}, version. Counters keep only count, rates
# matches / rate / total, trends avg, max, med, min, p90, p95 (ms).
NEW_SUMMARY_SOURCE = "k6-{v}_handlesummary_arrival_500rps.json"
NEW_SUMMARY_FILE = "k6-{v}-numbers_assembled_new_summary_arrival_500rps.json"


def assemble_new_summary(v: str) -> Path:
    """Write the machine-readable-summary fixture from a real v1.1.0 handleSummary() JSON: the
    wheel's k6 cannot write that layout, so its numbers are put into the documented one."""
    src = OUT / NEW_SUMMARY_SOURCE.format(v=v)
    legacy = json.loads(src.read_text())
    values = {"counter": lambda m: {"count": m["count"]},
              "gauge": lambda m: {"max": m["max"], "min": m["min"], "value": m["value"]},
              "rate": lambda m: {"matches": int(m["passes"]), "rate": m["rate"],
                                 "total": int(m["passes"] + m["fails"])},
              "trend": lambda m: {k.replace("(", "").replace(")", ""): m[k] for k in
                                  ("avg", "max", "med", "min", "p(90)", "p(95)") if k in m}}
    metrics = [{"contains": m["contains"], "name": name, "type": m["type"],
                "values": values[m["type"]](m["values"])}
               for name, m in sorted(legacy["metrics"].items())]
    doc = {
        "capsim_note": (f"ASSEMBLED by data/measurements/record_k6.py, not written by a k6 "
                        f"binary: the numbers of the real k6 v{v} run in {src.name}, in the "
                        "layout of k6 >= 1.5's --new-machine-readable-summary (schema 1.0.0), "
                        f"which k6 v{v} cannot write. See data/measurements/k6/README.md."),
        "config": {"duration": legacy["state"]["testRunDurationMs"] / 1e3,
                   "execution": "local", "script": "arrival_500.js"},
        "metadata": {"generated_at": time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z",
                                                   time.gmtime(src.stat().st_mtime)),
                     "k6_version": v},
        "results": {"metrics": metrics},
        "version": "1.0.0",
    }
    dst = OUT / NEW_SUMMARY_FILE.format(v=v)
    dst.write_text(json.dumps(doc, indent=4) + "\n")
    return dst


def main() -> None:
    if "--assemble-only" in sys.argv:  # remake the assembled file from the recorded one
        print(assemble_new_summary(k6_version(k6_binary())))
        return
    k6 = k6_binary()
    v = k6_version(k6)
    OUT.mkdir(parents=True, exist_ok=True)
    tag = f"k6-{v}"
    truth: dict[str, dict] = {"k6_version": v, "system": {
        "workers": 8, "service_time": "LogNormal(mean=0.020 s, cv=1.0)", "queue_capacity": 48,
        "capacity_per_s": 400.0}, "runs": {}}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="capsim-k6-") as tmp:
        work = Path(tmp)
        for vus in (10, 25, 50, 100):
            files = [f"{tag}_summary_{vus:03d}vus.json"]
            args = ["--vus", str(vus), "--duration", "30s", f"--summary-trend-stats={TREND_STATS}",
                    f"--summary-export={OUT / files[0]}"]
            script, env = CLOSED, None
            if vus == 50:  # the same run also writes the handleSummary() JSON
                files.append(f"{tag}_handlesummary_050vus.json")
                script, env = CLOSED + HANDLE_SUMMARY, {"HS_FILE": str(OUT / files[1])}
            t = run(k6, f"closed_{vus:03d}", script, args, work, 120, env)
            truth["runs"][f"closed_{vus:03d}vus"] = {"files": files, **t}
        for rate, vus in ((300, 40), (500, 30)):
            files = [f"{tag}_summary_arrival_{rate}rps.json",
                     f"{tag}_handlesummary_arrival_{rate}rps.json"]
            args = [f"--summary-trend-stats={TREND_STATS}", f"--summary-export={OUT / files[0]}"]
            script = ARRIVAL % {"rate": rate, "duration": "20s", "vus": vus} + HANDLE_SUMMARY
            env = {"HS_FILE": str(OUT / files[1])}
            t = run(k6, f"arrival_{rate}", script, args, work, 120, env)
            truth["runs"][f"arrival_{rate}rps"] = {"files": files, "rate_per_s": rate,
                                                   "max_vus": vus, **t}
        for name, script in (("stepped_vus", STEPPED_VUS), ("stepped_rate", STEPPED_RATE)):
            files = [f"{tag}_stream_{name}.json.gz"]
            args = [f"--system-tags={STREAM_TAGS}", f"--out=json={OUT / files[0]}"]
            t = run(k6, name, script, args, work, 120)
            truth["runs"][name] = {"files": files, **t}
    assemble_new_summary(v)
    truth["recording_wall_s"] = round(time.perf_counter() - started, 1)
    (OUT / "stub_truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    print(f"done in {truth['recording_wall_s']} s; files in {OUT}")


if __name__ == "__main__":
    main()
