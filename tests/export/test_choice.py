"""compress.export.choice: the most accurate artifact within a byte budget; export.family: the width x codec search."""

from __future__ import annotations

import json
import os

import pytest
import torch

from compress.export import artifact as A
from compress import models
from compress.export import choice as C
from compress.export import family as F
from compress.quant import CodecConfig

@pytest.fixture(scope="module")
def synthetic():
    from compress import data

    return data.load("synthetic:n=200,classes=3,size=16")


@pytest.fixture()
def cnn(synthetic, randomize_batchnorm):
    torch.manual_seed(0)
    return randomize_batchnorm(models.create("cnn", channels=[8, 16], num_classes=synthetic.num_classes,
                                             input_size=16))


def test_choose_artifact_writes_the_best_that_fits(tmp_path, synthetic, cnn):
    model = cnn
    sizes = {c: len(A.serialize(model, config=CodecConfig.parse(c))) for c in C.DEFAULT_CANDIDATES}
    budget = sizes["int8+fold"]  # exactly: a file of max_bytes bytes fits
    result = C.choose_artifact(model, synthetic, max_bytes=budget, path=tmp_path / "m.npz")
    assert [r.candidate for r in result.rows] == list(C.DEFAULT_CANDIDATES)
    assert {r.candidate: r.size_bytes for r in result.rows} == sizes  # measured on disk == serialized bytes
    fitting = [r for r in result.rows if r.fits]
    assert all(r.fits == (r.size_bytes <= budget) for r in result.rows) and not result.rows[1].fits
    assert result.best.val_acc == max(r.val_acc for r in fitting)
    assert os.path.getsize(tmp_path / "m.npz") == result.best.size_bytes <= budget
    assert result.rows[0].delta_points == 0.0 and "* " in result.table()
    A.load(tmp_path / "m.npz")   # the file written loads
    assert A.read(tmp_path / "m.npz")[0]["codec"]["name"] == CodecConfig.parse(result.best.candidate).codec.name
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]
    assert set(result.to_dict()) >= {"max_bytes", "fp32_acc", "path", "rows"}


def test_choose_artifact_without_data_takes_the_least_lossy(synthetic, cnn):
    model = cnn
    result = C.choose_artifact(model, None, max_bytes=10 ** 9, candidates=["fp16", CodecConfig("fp32")])
    assert result.best.candidate == "fp16" and result.best.val_acc is None and result.path is None


def test_choose_artifact_nothing_fits(tmp_path, synthetic, cnn):
    model = cnn
    with pytest.raises(C.BudgetError, match=r"smallest reachable is [\d,]+ bytes \(kmeans2\+fold\)") as info:
        C.choose_artifact(model, None, max_bytes=1000, path=tmp_path / "m.npz")
    assert len(info.value.result.rows) == len(C.DEFAULT_CANDIDATES)
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("bad", ["int8+prune", "int4", "fp16+"])
def test_bad_candidates(bad, cnn):
    with pytest.raises(ValueError):
        CodecConfig.parse(bad)
    with pytest.raises(ValueError):
        C.choose_artifact(cnn, None, max_bytes=10 ** 9, candidates=[bad])


def test_artifact_bytes_measures_a_budgets_artifact_format(cnn):
    measure = C.artifact_bytes("npz:int8+fold", compression="store")
    assert measure(cnn) == len(A.serialize(cnn, codec="int8", fold_bn=True, compression="store"))
    for bad in ("int8+fold", "zip:fp16", "npz:int9"):
        with pytest.raises(ValueError):
            C.artifact_bytes(bad)


def test_choose_artifact_takes_prepared_per_layer_results(tmp_path, synthetic, cnn):
    from compress.quant import LayerPlan, Plan, PlanConfig, quantize

    names = [n for n, p in cnn.named_parameters() if p.ndim > 1 and p.numel() >= 256]
    made = quantize(cnn, PlanConfig(Plan([LayerPlan(n, "int4") for n in names])))
    result = C.choose_artifact(cnn, synthetic, max_bytes=10 ** 9, candidates=["fp16"], prepared={"mixed": made},
                               path=tmp_path / "m.npz")
    assert [r.candidate for r in result.rows] == ["fp16", "mixed"]
    with pytest.raises(TypeError, match="Quantized"):
        C.choose_artifact(cnn, synthetic, max_bytes=10 ** 9, prepared={"mixed": (cnn, made.plan)})


def test_train_to_budget_search(tmp_path, synthetic):
    from compress.train import TrainConfig

    search = F.train_to_budget("cnn", synthetic, max_bytes=6000, codecs=["int8+fold"], out=tmp_path,
                               config=TrainConfig(epochs=1, augment=False), channels=[8, 16])
    best = search.best
    assert best is search.rows[0] and best.fits and best.size_bytes <= 6000
    assert "* int8+fold" in search.table() and search.to_dict()["best"] == "int8+fold"
    assert os.path.getsize(tmp_path / "model.npz") == best.size_bytes
    table = json.loads((tmp_path / "table.json").read_text())
    assert table["rows"][0]["candidate"] == "int8+fold" and (tmp_path / "table.csv").exists()
    assert A.load(tmp_path / "model.npz").card.build_args["width_mult"] == best.width_mult


def test_choose_artifact_tolerance_prefers_less_lossy(synthetic, cnn):
    model = cnn
    exact = C.choose_artifact(model, synthetic, max_bytes=10 ** 9)
    loose = C.choose_artifact(model, synthetic, max_bytes=10 ** 9, tolerance_points=100.0)
    assert loose.best.candidate == "fp32"
    assert exact.best.val_acc == max(r.val_acc for r in exact.rows)
    with pytest.raises(ValueError, match="tolerance"):
        C.choose_artifact(model, synthetic, max_bytes=10 ** 9, tolerance_points=-1)


def test_train_to_budget_unknown_family_fails_before_writing(tmp_path):
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        F.train_to_budget("resnet", "synthetic:n=60,classes=3,size=12", max_bytes=10_000, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_codec_refusing_the_weights_is_a_row_not_an_abort(tmp_path, synthetic, cnn):
    model = cnn
    with torch.no_grad():
        next(p for p in model.parameters() if p.ndim == 4 and p.numel() >= 256).view(-1)[0] = 1e4   # one outlier
    result = C.choose_artifact(model, synthetic, max_bytes=10**9, path=tmp_path / "m.npz",
                               candidates=["fp16", "kmeans3", "kmeans2"])
    refused = [r for r in result.rows if r.size_bytes is None]
    assert refused and all(not r.fits and r.note for r in refused)
    assert result.best.candidate == "fp16" and "refused" in result.table()
    with pytest.raises(ValueError):
        C.choose_artifact(model, synthetic, max_bytes=None, candidates=["kmeans2"])
