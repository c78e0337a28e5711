"""Deep Compression's settings refuse what would be dropped later or crash torch (issue 27, N15)."""

import pytest

from compress.device import MAX_THREADS, check_threads, torch_threads
from compress.quant.deep import DeepConfig


@pytest.mark.parametrize("kw,match", [
    ({"codecs": ("int1", "fp8")}, "unknown layer codec 'int1'"),
    ({"codecs": ("int8", "kmeans9")}, "kmeans9"),
    ({"codecs": "int8"}, "non-empty list"),
    ({"codecs": ()}, "non-empty list"),
    ({"threads": -3}, "threads"),
    ({"threads": 100_000}, "threads"),
    ({"threads": 2.5}, "threads"),
])
def test_bad_settings_are_refused_naming_them(kw, match):
    with pytest.raises(ValueError, match=match):
        DeepConfig(**kw)


def test_good_codecs_stay():
    assert DeepConfig(codecs=["int8", "kmeans2"]).codecs == ("int8", "kmeans2")


@pytest.mark.parametrize("bad", [-1, MAX_THREADS + 1, True, "4", 1.0])
def test_thread_counts_are_checked_where_they_are_set(bad):
    with pytest.raises(ValueError, match="threads"):
        check_threads(bad)
    with pytest.raises(ValueError, match="threads"):
        with torch_threads(bad):
            pass


def test_the_cli_refuses_unknown_layer_codecs_before_any_work(tmp_path, capsys):
    from compress.cli import main

    out = tmp_path / "m.npz"
    assert main(["export", str(tmp_path / "norun"), "--max-bytes", "30000", "--deep", "on", "--layer-codecs",
                 "int1,fp8", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unknown layer codec 'int1'" in err and len(err.strip().splitlines()) == 1 and not out.exists()
