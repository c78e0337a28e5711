"""The README's code tour runs as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_tour_runs(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python tour"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert namespace["run"].metrics["test_acc"] > 0.5
    assert (tmp_path / "cnn-int8.npz").exists()


def test_readme_names_the_two_commands_and_ci_runs_the_test_one():
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    test_cmd = 'pip install torch==2.13.0 -e ".[dev]" && pytest && tests/zoo-leg'
    assert test_cmd in text and test_cmd in ci
    assert "compress study" in text
