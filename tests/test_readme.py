"""The README's fifteen-line example runs as written (with a shorter simulated time)."""

import re
from pathlib import Path


def test_readme_example_runs():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) <= 20
    code = code.replace("duration_s=600", "duration_s=30").replace("warmup_s=60", "warmup_s=3")
    code = code.replace("print(", "(")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["run"].stable
    assert set(namespace["run"].latency()["flow"]) == {"browse", "checkout", "all"}
