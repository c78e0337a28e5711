"""benchmarks/bench_zoo.py on two small torchvision models: the row structure, the table and the summary."""

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.torchvision

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_zoo.py"


@pytest.fixture(scope="module")
def bench(request):
    pytest.importorskip("torchvision")
    pytest.importorskip("torch_pruning")
    spec = importlib.util.spec_from_file_location("bench_zoo", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # spawned workers import the module by name: its folder goes on sys.path, which they inherit
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(BENCH.parent))
    mp.setitem(sys.modules, "bench_zoo", module)
    request.addfinalizer(mp.undo)
    return module


def test_rows_on_two_small_models(bench):
    rows = bench.run(["resnet18", "mobilenet_v3_small"], repeats=1, timeout_s=300, size=32)
    assert [r["model"] for r in rows] == ["resnet18", "mobilenet_v3_small"]
    for r in rows:
        assert not r.get("skipped") and not r.get("error"), r
        assert r["size"] == 32 and r["transformer"] is False
        assert r["params_before"] > 0
        for side in bench.SIDES:
            if r[f"{side}_ok"]:
                assert 0 < r[f"{side}_params"] < r["params_before"]
                assert r[f"{side}_macs"] > 0 and r[f"{side}_shape_ok"] is True
                assert len(r[f"{side}_times_s"]) == 1 and r[f"{side}_s"] > 0
            else:      # today's compress may fail a model: the failure is one line naming the exception
                assert isinstance(r[f"{side}_error"], str) and "\n" not in r[f"{side}_error"]
    resnet = rows[0]
    assert resnet["compress_ok"] and resnet["tp_ok"]
    assert resnet["params_ratio"] == pytest.approx(resnet["compress_params"] / resnet["tp_params"])
    lines = bench.table(rows).splitlines()
    assert len(lines) == 4 and lines[2].startswith("| resnet18 | 32 |")
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    text = bench.summary(rows)
    assert "2 measured, 0 skipped" in text and "models timed on both sides" in text


def test_skips_above_max_params_without_a_process(bench):
    rows = bench.run(["resnet18"], repeats=1, max_params=1_000)
    assert rows[0]["skipped"] and rows[0]["params_before"] == 11_181_642
    assert "1 skipped" in bench.summary(rows) and bench.table(rows).count("\n") == 1
