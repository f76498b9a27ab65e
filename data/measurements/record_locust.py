"""Re-record the Locust fixtures in ``data/measurements/locust/`` with the real Locust.

    .venv/bin/python data/measurements/record_locust.py            # rewrites the files there
    .venv/bin/python data/measurements/record_locust.py OUT_DIR    # or somewhere else

The files are what Locust writes, byte for byte, so that :func:`capsim.calibrate.
read_locust_history` is checked on the real format rather than on a copy of our idea of it.
Locust runs headless against a :class:`capsim.testbed.StubServer` on 127.0.0.1, the system
notebook 08 models (8 workers, LogNormal(20 ms, cv 1) service time, a queue of 48, a fast 503
when it is full: capacity 8 / 0.020 = 400 requests/s), through a stepped load shape, twice:
``--csv=PREFIX`` (default mode) and ``--csv=PREFIX --csv-full-history``. The stub's own count of
what it served and refused is written next to each run (``*_stub.json``): the truth the files
are checked against. About 6 minutes; nothing else heavy should run meanwhile (the load
generator shares the machine, and a busy CPU shows in the response times).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import capsim as cs
from capsim.testbed.stub import StubServer

STEPS = (5, 10, 20, 40, 60, 80, 120)  # users
STEP_S = 25  # seconds per step
SPAWN_RATE = 100  # users/s: a step is reached in 0.4 s (faster floods the stub's accept backlog)
WORKERS, QUEUE, SERVICE_TIME = 8, 48, cs.LogNormal(0.020, 1.0)
MODES = {"default": [], "full-history": ["--csv-full-history"]}
KEEP = ("_stats_history.csv", "_stats.csv")  # the _failures / _exceptions files are dropped

LOCUSTFILE = '''\
from locust import FastHttpUser, LoadTestShape, between, task

STEPS = {steps!r}
STEP_S = {step_s}


class Visitor(FastHttpUser):
    """A closed loop: one request, then 0.05-0.15 s of think time (0.1 s on average)."""

    wait_time = between(0.05, 0.15)

    @task(3)
    def items(self):
        self.client.get("/items")

    @task(1)
    def search(self):
        self.client.get("/search")


class Steps(LoadTestShape):
    def tick(self):
        k = int(self.get_run_time() // STEP_S)
        return (STEPS[k], {spawn_rate}) if k < len(STEPS) else None
'''


def locust_version() -> str:
    out = subprocess.run([sys.executable, "-m", "locust", "--version"], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    return out.split()[1]  # "locust 2.47.0 from ..."


def record(mode: str, out_dir: Path, version: str, steps: tuple[int, ...] = STEPS,
           step_s: float = STEP_S) -> dict:
    """One headless Locust run against a fresh stub; keeps the files named in KEEP."""
    stem = f"locust-{version}_{mode}"
    with tempfile.TemporaryDirectory() as tmp, \
            StubServer(workers=WORKERS, service_time=SERVICE_TIME, queue_capacity=QUEUE) as stub:
        work = Path(tmp)
        (work / "locustfile.py").write_text(
            LOCUSTFILE.format(steps=list(steps), step_s=step_s, spawn_rate=SPAWN_RATE))
        command = ["locust", "-f", "locustfile.py", "--headless", "--host", stub.url,
                   "--csv", stem, *MODES[mode], "--only-summary", "--loglevel", "WARNING"]
        start = time.time()
        # cwd is the empty temp dir, so no locust.conf / pyproject.toml of ours is read
        run = subprocess.run([sys.executable, "-m", *command], cwd=work, capture_output=True,
                             text=True, timeout=len(steps) * step_s + 120)
        took = time.time() - start
        if run.returncode not in (0, 1):  # 1: some requests failed (the 503s), as intended
            raise RuntimeError(f"locust exited {run.returncode}:\n{run.stderr[-3000:]}")
        for suffix in KEEP:
            (out_dir / f"{stem}{suffix}").write_bytes((work / f"{stem}{suffix}").read_bytes())
        times = np.asarray(stub.service_times_s)
        truth = {
            "tool": f"locust {version}",
            "command": " ".join(command),
            "system": f"StubServer(workers={WORKERS}, service_time=LogNormal(0.020, 1.0), "
                      f"queue_capacity={QUEUE}) on 127.0.0.1",
            "steps_users": list(steps),
            "step_s": step_s,
            "served": stub.served,
            "rejected": stub.rejected,
            "service_time_mean_s": round(float(times.mean()), 6),
            "service_time_cv": round(float(times.std() / times.mean()), 4),
            "wall_s": round(took, 1),
        }
    (out_dir / f"{stem}_stub.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth


def main(argv: list[str]) -> None:
    out_dir = Path(argv[0]) if argv else Path(__file__).resolve().parent / "locust"
    out_dir.mkdir(parents=True, exist_ok=True)
    version = locust_version()
    for mode in MODES:
        truth = record(mode, out_dir, version)
        print(f"{mode}: {truth['served']} served, {truth['rejected']} rejected, "
              f"service time mean {truth['service_time_mean_s'] * 1e3:.2f} ms "
              f"cv {truth['service_time_cv']:.2f}, {truth['wall_s']} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
