"""The README's Python example runs as written."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_example() -> str:
    section = README.read_text().split("## Python (`viscnn.load`)", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README has no python block under its Python section"
    return match.group(1)


def test_the_readme_python_example_runs(capsys):
    namespace: dict = {}
    exec(compile(python_example(), str(README), "exec"), namespace)  # our own README, not user input
    mic, scores, circuit, renders = (namespace[k] for k in ("mic", "scores", "circuit", "renders"))
    assert scores.criterion == "taylor" and len(scores.top(3, kind="nodes")) == 3
    assert 0 < circuit.num_edges < circuit.upstream_edges
    assert tuple(renders.images.shape) == (2, 1, 28, 28)
    assert circuit.target.kind == "logit" and mic.loaded.class_names[circuit.target.class_index].lower() == "sandal"
    assert "upstream kernels kept" in capsys.readouterr().out
