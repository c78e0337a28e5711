"""The scripts in examples/ run at tiny sizes (what a reader copies must work)."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(name, tmp_path):
    done = subprocess.run([sys.executable, str(EXAMPLES / name), "--out", str(tmp_path / "out"), "--tiny"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def test_own_model(tmp_path):
    out = run("own_model.py", tmp_path)
    assert "reloaded without TinyNet" in out and (tmp_path / "out" / "tinynet.npz").is_file()


def test_course_question(tmp_path):
    out = run("course_question.py", tmp_path)
    assert "limit 30,000" in out and (tmp_path / "out" / "search" / "report.md").is_file()


@pytest.mark.torchvision
def test_torchvision_model(tmp_path):
    pytest.importorskip("torchvision")
    out = run("torchvision_model.py", tmp_path)
    assert "reloads without torchvision" in out
