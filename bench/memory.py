"""Memory benchmark: the peak RSS a long run adds on top of ``import capsim``.

Usage::

    .venv/bin/python bench/memory.py                          # 1,000,000 requests, M/M/1 rho 0.8
    .venv/bin/python bench/memory.py --requests 100000 --json out.json
    PYTHONPATH=/tmp/capsim_base .venv/bin/python bench/memory.py   # another checkout of capsim

Three child processes, so that no figure includes another's allocations, each reporting its
own peak resident set size (``resource.getrusage``):

* ``import``: ``import capsim`` only;
* ``warm``: that, and a 1,000-request run of the same model, so that every module a run
  loads on first use (numpy, SimPy, the engine) is loaded;
* ``run``: that, and the measured run: a one-Service System (one worker, exponential
  service) under an OpenWorkload at utilization ``--rho``, for ``requests / rate`` simulated
  seconds.

``run - warm`` is what the run itself needs at its peak: the per-request records the
RunResult keeps, and whatever the engine holds while it runs. ``run - import`` adds the
modules loaded on first use (when ``import capsim`` is lean they are not loaded by it).
Peak RSS is a property of the process, not of a timed region, so it is measured here and
never in unit tests.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
from pathlib import Path

RATE = 1.0  # arrivals per second: the simulated horizon is requests / RATE seconds
SEED = 20240601


def peak_rss_mb() -> float:
    """This process's peak resident set size (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


WARM_REQUESTS = 1_000


def simulate_mm1(requests: int, rho: float):
    """The M/M/1 run: what a sweep worker does for one point (its RunResult, no tables)."""
    import capsim as cs

    system = cs.System([cs.Service("s1", servers=1, service_time=cs.Exponential(mean=rho))],
                       flows=[cs.Flow("f", 1.0, [cs.Call("s1")])])
    load = cs.OpenWorkload(users=1, requests_per_user_s=RATE)
    return cs.simulate(system, load, duration_s=requests / RATE, seed=SEED)


def child(mode: str, requests: int, rho: float) -> dict:
    """What one child process measures: ``import``, ``warm`` or ``run`` (see above)."""
    import capsim as cs

    out: dict = {"mode": mode, "capsim": str(Path(cs.__file__).parent)}
    if mode in ("warm", "run"):
        simulate_mm1(WARM_REQUESTS, rho)
    if mode == "run":
        out["finished"] = int(simulate_mm1(requests, rho).arrival_s.size)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def measure(mode: str, requests: int, rho: float) -> dict:
    """Run ``child(mode, ...)`` in a fresh interpreter and return what it reported."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode,
           "--requests", str(requests), "--rho", str(rho)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"bench/memory.py: the {mode!r} child failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000,
                        help="requests expected to arrive in the run (default 1000000)")
    parser.add_argument("--rho", type=float, default=0.8, help="utilization (default 0.8)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    parser.add_argument("--child", choices=("import", "warm", "run"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.requests < 1 or not 0 < args.rho < 1:
        parser.error("--requests must be at least 1 and --rho in (0, 1)")
    if args.child:
        print(json.dumps(child(args.child, args.requests, args.rho)))
        return 0

    print(f"# capsim memory bench: M/M/1 rho {args.rho:g}, {args.requests:,} requests, "
          f"python {platform.python_version()}", file=sys.stderr, flush=True)
    figures = {mode: measure(mode, args.requests, args.rho) for mode in ("import", "warm", "run")}
    peak = {mode: f["peak_rss_mb"] for mode, f in figures.items()}
    finished = figures["run"]["finished"]
    added = peak["run"] - peak["warm"]
    print(f"# capsim from {figures['run']['capsim']}", file=sys.stderr, flush=True)
    print("| process | peak RSS (MB) |\n|---|---:|")
    print(f"| import capsim | {peak['import']:.1f} |")
    print(f"| + a {WARM_REQUESTS:,}-request run (modules loaded on first use) "
          f"| {peak['warm']:.1f} |")
    print(f"| + the {args.requests:,}-request run ({finished:,} finished) | {peak['run']:.1f} |")
    print(f"| **the run adds** (run - warm) | **{added:.1f}** |")
    print(f"| run - import | {peak['run'] - peak['import']:.1f} |")
    print(f"\n{added * 2**20 / max(finished, 1):.1f} bytes per finished request at the peak.")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"requests": args.requests, "rho": args.rho, "finished": finished,
                   "peak_rss_mb": peak, "added_mb": added}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
