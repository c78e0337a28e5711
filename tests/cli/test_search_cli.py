"""compress search from the command line: a winner (exit 0), no winner (exit 2, the nearest listed), bad input."""

import pytest

from compress.cli import main

SMALL = ["--importances", "l1", "--scopes", "uniform", "--storage", "int8+fold", "--codecs", "int8+fold",
         "--finetune-epochs", "0.5", "--no-deep", "--runtime", "eager", "--quiet"]


@pytest.fixture(scope="module")
def run_dir(tiny_run):
    return tiny_run(images=300, epochs=2)     # the suite's small CNN (tests/conftest.py), ~5.6 kB in int8


def test_search_writes_the_winner(run_dir, tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["search", str(run_dir), "--max-bytes", "6k", "--out", str(out), *SMALL]) == 0
    text = capsys.readouterr().out
    assert "chosen:" in text and f"wrote {out / 'best.npz'}" in text and (out / "best.npz").is_file()
    assert (out / "pareto.png").is_file() and (out / "report.md").is_file()


def test_a_budget_no_candidate_meets_exits_2_with_the_nearest(run_dir, tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["search", str(run_dir), "--max-bytes", "300", "--out", str(out), *SMALL,
                 "--no-baselines"]) == 2
    text = capsys.readouterr().out
    assert "no candidate meets artifact <= 300 bytes; the nearest:" in text and "dense~fp32" not in text.split(
        "nearest:")[0]
    assert not (out / "best.npz").exists() and (out / "candidates.csv").is_file()


@pytest.mark.parametrize("extra,message", [
    (["--max-latency-ms", "0.000001"], "per-call overhead"),
    (["--runtime", "nope"], "runtime 'nope' is unknown"),
    (["--time-budget", "0.0001s"], "shorter than one candidate"),
    (["--time-budget", "soon"], "time budget 'soon'"),
    (["--codecs", "int1"], "int1"),
    (["--tolerance", "-1"], "tolerance_points"),
    (["--jobs", "2", "--executor", "ray"], "--jobs is for the local executor"),
])
def test_bad_input_is_one_line_and_exit_2(run_dir, tmp_path, capsys, extra, message):
    out = tmp_path / "s"
    args = ["search", str(run_dir), "--max-bytes", "6k", "--out", str(out), *SMALL, *extra]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (out / "candidates").exists()


def test_max_bytes_is_required(run_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["search", str(run_dir), "--out", str(tmp_path / "s")])
    assert info.value.code == 2 and "--max-bytes" in capsys.readouterr().err
