"""``compress export``, ``fit-budget`` and ``search`` print one warning line when the validation split is too small
for the tolerance asked for (compress.evidence.SplitTooSmallWarning), and none when no tolerance is asked for."""

from __future__ import annotations

import json

import pytest

from compress.cli import main
from compress.evidence import split_warning
from compress.train import load_run


@pytest.fixture(scope="module")
def run_dir(tiny_run):
    return tiny_run(images=200, epochs=1)


def warning_lines(err: str, command: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(f"compress {command}: warning:")]


def test_export_prints_the_warning_once(run_dir, tmp_path, capsys):
    n = len(load_run(run_dir).data().val)
    out = tmp_path / "m.npz"
    assert main(["export", str(run_dir), "--max-bytes", "6k", "--tolerance", "0.5", "--out", str(out),
                 "--json"]) == 0
    captured = capsys.readouterr()
    assert warning_lines(captured.err, "export") == [f"compress export: warning: {split_warning(n, 0.5)}"]
    assert "SplitTooSmallWarning" not in captured.err
    summary = json.loads(captured.out)
    assert summary["warning"] == split_warning(n, 0.5) and summary["val_n"] == n
    assert main(["export", str(run_dir), "--max-bytes", "6k", "--out", str(out), "--overwrite"]) == 0
    captured = capsys.readouterr()
    assert not warning_lines(captured.err, "export") and "vs fp32 [95% interval]" in captured.out


def test_fit_budget_prints_the_warning_once(tmp_path, capsys):
    data = "synthetic:n=200,classes=3,size=16"
    assert main(["fit-budget", "--family", "cnn", "--max-bytes", "6000", "--data", data, "--epochs", "1",
                 "--codecs", "int8+fold", "--model-opt", "channels=[8,16]", "--tolerance", "2", "--out",
                 str(tmp_path / "fb"), "--quiet"]) == 0
    captured = capsys.readouterr()
    lines = warning_lines(captured.err, "fit-budget")
    assert len(lines) == 1 and "cannot resolve a 2-point tolerance" in lines[0] and "300 images" in lines[0]
    assert "* int8+fold" in captured.out and "val acc [95%]" in captured.out
    table = json.loads((tmp_path / "fb" / "table.json").read_text())
    assert table["tolerance_points"] == 2 and "correct" not in table["rows"][0]


def test_search_prints_the_warning_once(run_dir, tmp_path, capsys):
    # a time budget shorter than one candidate stops the search right after its checks: the warning comes first
    status = main(["search", str(run_dir), "--max-bytes", "6k", "--tolerance", "0.5", "--time-budget", "0.001",
                   "--out", str(tmp_path / "s"), "--quiet"])
    captured = capsys.readouterr()
    assert status == 2 and "shorter than one candidate" in captured.err
    lines = warning_lines(captured.err, "search")
    assert len(lines) == 1 and "cannot resolve a 0.5-point tolerance" in lines[0]
