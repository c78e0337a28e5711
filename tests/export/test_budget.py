"""compress.export.budget: the most accurate artifact within a byte budget, and the width x codec search."""

from __future__ import annotations

import json
import os

import pytest
import torch

from compress.export import artifact as A
from compress.export import budget as B
from compress import models

@pytest.fixture(scope="module")
def synthetic():
    from compress import data

    return data.load("synthetic:n=200,classes=3,size=16")


@pytest.fixture()
def cnn(synthetic, randomize_batchnorm):
    torch.manual_seed(0)
    return randomize_batchnorm(models.create("cnn", channels=[8, 16], num_classes=synthetic.num_classes,
                                             input_size=16))


def test_fit_bytes_writes_the_best_that_fits(tmp_path, synthetic, cnn):
    model = cnn
    sizes = {c: len(A.serialize(model, codec=B.parse_candidate(c)[0], fold_bn=B.parse_candidate(c)[1]))
             for c in B.DEFAULT_CANDIDATES}
    budget = sizes["int8+fold"]  # exactly: a file of max_bytes bytes fits
    result = B.fit_bytes(model, synthetic, budget, path=tmp_path / "m.npz")
    assert [r.candidate for r in result.rows] == list(B.DEFAULT_CANDIDATES)
    assert {r.candidate: r.size_bytes for r in result.rows} == sizes  # measured on disk == serialized bytes
    fitting = [r for r in result.rows if r.fits]
    assert all(r.fits == (r.size_bytes <= budget) for r in result.rows) and not result.rows[1].fits
    assert result.best.val_acc == max(r.val_acc for r in fitting)
    assert os.path.getsize(tmp_path / "m.npz") == result.best.size_bytes <= budget
    assert result.rows[0].delta_points == 0.0 and "* " in result.table()
    A.load(tmp_path / "m.npz")   # the file written loads
    assert A.read(tmp_path / "m.npz")[0]["codec"]["name"] == B.parse_candidate(result.best.candidate)[0].name
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_fit_bytes_without_data_takes_the_least_lossy(synthetic, cnn):
    model = cnn
    result = B.fit_bytes(model, None, 10 ** 9, candidates=["fp16", "fp32"])
    assert result.best.candidate == "fp16" and result.best.val_acc is None and result.path is None


def test_fit_bytes_nothing_fits(tmp_path, synthetic, cnn):
    model = cnn
    with pytest.raises(B.BudgetError, match=r"smallest reachable is [\d,]+ bytes \(kmeans2\+fold\)") as info:
        B.fit_bytes(model, None, 1000, path=tmp_path / "m.npz")
    assert len(info.value.result.rows) == len(B.DEFAULT_CANDIDATES)
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("bad", ["int8+prune", "int4", "fp16+"])
def test_bad_candidates(bad):
    with pytest.raises(ValueError):
        B.parse_candidate(bad)


def test_fit_budget_search(tmp_path, synthetic):
    from compress.train import TrainConfig

    best, rows = B.fit_budget("cnn", 6000, synthetic, codecs=["int8+fold"], out=tmp_path,
                              config=TrainConfig(epochs=1, augment=False), channels=[8, 16])
    assert best is rows[0] and best.fits and best.size_bytes <= 6000
    assert os.path.getsize(tmp_path / "model.npz") == best.size_bytes
    table = json.loads((tmp_path / "table.json").read_text())
    assert table["rows"][0]["candidate"] == "int8+fold" and (tmp_path / "table.csv").exists()
    assert A.load(tmp_path / "model.npz").card.build_args["width_mult"] == best.width_mult


def test_fit_bytes_tolerance_prefers_less_lossy(synthetic, cnn):
    model = cnn
    exact = B.fit_bytes(model, synthetic, 10 ** 9)
    loose = B.fit_bytes(model, synthetic, 10 ** 9, tolerance_points=100.0)
    assert loose.best.candidate == "fp32"
    assert exact.best.val_acc == max(r.val_acc for r in exact.rows)
    with pytest.raises(ValueError, match="tolerance"):
        B.fit_bytes(model, synthetic, 10 ** 9, tolerance_points=-1)


def test_fit_budget_unknown_family_fails_before_writing(tmp_path):
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        B.fit_budget("resnet", 10_000, "synthetic:n=60,classes=3,size=12", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_codec_refusing_the_weights_is_a_row_not_an_abort(tmp_path, synthetic, cnn):
    model = cnn
    with torch.no_grad():
        next(p for p in model.parameters() if p.ndim == 4 and p.numel() >= 256).view(-1)[0] = 1e4   # one outlier
    result = B.fit_bytes(model, synthetic, 10**9, path=tmp_path / "m.npz",
                         candidates=["fp16", "kmeans3", "kmeans2"])
    refused = [r for r in result.rows if r.size_bytes is None]
    assert refused and all(not r.fits and r.note for r in refused)
    assert result.best.candidate == "fp16" and "refused" in result.table()
    with pytest.raises(ValueError):
        B.fit_bytes(model, synthetic, None, candidates=["kmeans2"])
