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


def test_readme_request_mix_example_runs():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = next(block for block in re.findall(r"```python\n(.*?)```", text, re.S)
                if "MixedWorkload" in block)
    code = code.replace("duration_s=600", "duration_s=60").replace("warmup_s=60", "warmup_s=6")
    namespace: dict = {"cs": __import__("capsim")}  # imported by the README's first example
    exec(compile(code, "README.md", "exec"), namespace)
    run = namespace["run"]
    assert run.stable
    assert list(run.latency(by="population")["flow"]) == ["browsers", "api"]
    assert "box" in set(run.components()["component"])  # the host's own row
