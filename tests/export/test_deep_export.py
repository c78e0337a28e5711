"""Mixed-precision, sparse, entropy-coded artifacts: exact reload, byte breakdown, damaged plans; deep
compression of a run under a byte budget, from the library and the CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from compress.cli import main
from compress.export import artifact as A
from compress.quant.plan import LayerPlan, Plan, quantize_with_plan  # the PlanConfig transform

X = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def pruned():
    from compress import models
    from compress.models import fold_batchnorm

    torch.manual_seed(0)
    model = fold_batchnorm(models.create("mobilenet_v1", width_mult=0.25, num_classes=10, input_size=28).eval())
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim > 1 and p.numel() >= 1024:
                p.mul_(torch.rand(p.shape, generator=g) < 0.1)
    return model


def _plan(model):
    names = [n for n, p in model.named_parameters() if p.ndim > 1 and p.numel() >= 256]
    codecs = ["int8", "int4", "kmeans3", "fp16"]
    return Plan([LayerPlan(n, codecs[i % 4]) for i, n in enumerate(names)])


@pytest.mark.parametrize("fmt", ["npz", "pt"])
def test_plan_artifact_reloads_bitwise(tmp_path, pruned, fmt):
    plan = _plan(pruned)
    path = A.save(pruned, tmp_path / f"m.{fmt}", plan=plan)
    loaded = A.load(path)
    with torch.no_grad():
        assert torch.equal(loaded(X), quantize_with_plan(pruned, plan)(X))
    manifest, _ = A.read(path)
    assert Plan.from_json(manifest["plan"]).to_json() == plan.to_json()
    b = A.breakdown(path)
    assert b["indices_bytes"] > 0
    assert sum(b[k] for k in ("weights_bytes", "scales_bytes", "indices_bytes", "manifest_bytes",
                              "overhead_bytes")) == os.path.getsize(path)
    dense = A.save(pruned, tmp_path / f"d.{fmt}", codec="int8")
    assert os.path.getsize(path) < os.path.getsize(dense)


def test_damaged_plan_artifacts_raise_artifact_error(tmp_path, pruned):
    path = A.save(pruned, tmp_path / "m.npz", plan=_plan(pruned))
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    manifest = json.loads(arrays["manifest"].tobytes())
    # a tensor table whose stream claims more symbols than it holds, checksum recomputed
    row = next(r for r in manifest["tensors"] if r[1] == "coded")
    row[3]["values"]["count"] += 7
    body = {k: v for k, v in arrays.items() if k != "manifest"}
    manifest["checksum"] = A._checksum(manifest, body)
    bad = tmp_path / "bad.npz"
    np.savez(bad, manifest=np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8), **body)
    with pytest.raises(A.ArtifactError):
        A.load(bad)
    manifest["plan"] = {"layers": [["x", "int99", 0, 0, 0]]}
    manifest["checksum"] = A._checksum(manifest, body)
    np.savez(bad, manifest=np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8), **body)
    with pytest.raises(A.ArtifactError, match="plan"):
        A.read(bad)
    with pytest.raises(TypeError):
        A.serialize(pruned, plan={"layers": []})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from compress import data, models, train

    bundle = data.load("synthetic:n=240,classes=3,size=16")
    torch.manual_seed(0)
    model = models.create("mobilenet_v1", width_mult=0.25, num_classes=3, input_size=16)
    out = tmp_path_factory.mktemp("runs") / "mbv1"
    train.fit(model, bundle, train.TrainConfig(epochs=2, augment=False), out=out, progress=False)
    return out


def test_deep_export_fits_a_budget_no_whole_model_codec_reaches(run_dir, tmp_path):
    from compress.export import BudgetError, export_run
    from compress.quant.deep import DeepConfig

    budget = 30_000
    with pytest.raises(BudgetError):
        export_run(run_dir, tmp_path / "plain.npz", max_bytes=budget, deep="off")
    cfg = DeepConfig(prune_epochs=0.5, finetune_epochs=0.5, codecs=("int8", "int4", "kmeans2"))
    export = export_run(run_dir, tmp_path / "deep.npz", max_bytes=budget, deep="auto", deep_config=cfg,
                        candidates=["int8+fold", "kmeans2+fold"])
    assert export.result.best.candidate in ("mixed", "deep")
    assert os.path.getsize(tmp_path / "deep.npz") == export.breakdown["size_bytes"] <= budget
    assert export.plan is not None and "sensitivity" in export.summary()
    assert any(lp.sparsity > 0.3 for lp in export.plan.layers) or export.result.best.candidate == "mixed"
    assert export.entropy["stored_bytes"] <= export.entropy["packed_bytes"]
    A.load(tmp_path / "deep.npz")


def test_cli_export_deep_and_bad_options(run_dir, tmp_path, capsys):
    out = tmp_path / "m.npz"
    assert main(["export", str(run_dir), "--max-bytes", "30000", "--deep", "on", "--prune-epochs", "0.3",
                 "--sparsity", "0.9", "--finetune-epochs", "0.3", "--candidates", "int8+fold",
                 "--layer-codecs", "int4,kmeans2", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "deep" in text and "codec" in text and "sparse indices" in text and os.path.getsize(out) <= 30000
    assert main(["export", str(run_dir), "--max-bytes", "30000", "--sparsity", "1.5", "--out", str(out)]) == 2
    assert "sparsity" in capsys.readouterr().err
    assert main(["export", str(run_dir), "--max-bytes", "30000", "--layer-codecs", "int9", "--deep", "on",
                 "--out", str(out)]) == 2


@pytest.mark.slow
def test_train_to_budget_large_sparse_candidate(tmp_path):
    from compress import data
    from compress.export import family as F
    from compress.quant.deep import DeepConfig
    from compress.train import TrainConfig

    bundle = data.load("synthetic:n=160,classes=3,size=16")
    with pytest.raises(ValueError, match="growth"):
        F.parse_search_candidate("deep1x")
    assert F.parse_search_candidate("deep4x")[1] == 4
    cfg = DeepConfig(prune_epochs=0.3, finetune_epochs=0.3, codecs=("int4", "kmeans2"))
    search = F.train_to_budget("cnn", bundle, max_bytes=20_000, codecs=["int8+fold", "deep4x"], out=tmp_path,
                               config=TrainConfig(epochs=1, augment=False), deep_config=cfg)
    best, rows = search.best, search.rows
    deep = next(r for r in rows if r.candidate == "deep4x")
    plain = next(r for r in rows if r.candidate == "int8+fold")
    assert deep.param_count > 2 * plain.param_count and deep.fits and deep.size_bytes <= 20_000
    assert "plan" in A.read(tmp_path / "model.npz")[0] or best.candidate == "int8+fold"


def test_edited_coded_streams_load_or_raise_artifact_error(tmp_path, pruned):
    path = A.save(pruned, tmp_path / "m.npz", plan=_plan(pruned))
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    manifest = json.loads(arrays.pop("manifest").tobytes())
    rng = np.random.default_rng(0)
    outcomes = set()
    for trial in range(16):
        body = {k: v.copy() for k, v in arrays.items()}
        key = ["indices.uint8", "weights.uint8"][trial % 2]
        flat = body[key].view(np.uint8)
        flat[rng.integers(0, flat.size, 3)] ^= rng.integers(1, 256, 3).astype(np.uint8)
        edited = {**manifest, "checksum": A.checksum(manifest, body)}
        bad = tmp_path / f"bad{trial}.npz"
        np.savez(bad, manifest=np.frombuffer(json.dumps(edited).encode(), dtype=np.uint8), **body)
        try:
            model = A.load(bad)
            assert all(torch.isfinite(p).all() for p in model.state_dict().values() if p.is_floating_point())
            outcomes.add("loaded")
        except A.ArtifactError:
            outcomes.add("refused")
    assert "refused" in outcomes
