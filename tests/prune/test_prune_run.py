"""`compress prune RUN ... --out RUN2` and prune_run: a run folder that every other command reads; bad input."""

from __future__ import annotations

import json

import pytest
import torch

from compress.cli import main
from compress.train import load_run

DATA = "synthetic:n=120,classes=3,size=16"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("prune") / "run"
    assert main(["train", "--model", "mobilenet_v2", "--width", "0.25", "--data", DATA, "--epochs", "1",
                 "--no-augment", "--device", "cpu", "--out", str(out), "--quiet", "--bn-l1", "1e-4"]) == 0
    return out


def test_prune_writes_a_run_folder_of_the_smaller_model(run_dir, tmp_path, capsys):
    out = tmp_path / "pruned"
    assert main(["prune", str(run_dir), "--ratio", "0.5", "--importance", "bn", "--finetune-epochs", "1",
                 "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "param_count" in text and "acc" in text and f"run folder: {out}" in text
    src, run = load_run(run_dir), load_run(out)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(run.model) < 0.4 * n(src.model)
    info = json.loads((out / "config.json").read_text())
    assert info["prune"]["config"]["ratio"] == 0.5 and info["prune"]["after"]["param_count"] == n(run.model)
    assert info["model"]["card"]["build_args"]["widths"]
    assert len(run.history) == 1 and (out / "curves.png").exists()
    # the other commands read it with no user code
    assert main(["evaluate", str(out)]) == 0
    assert main(["export", str(out), "--out", str(tmp_path / "m.npz")]) == 0
    assert main(["bench", str(tmp_path / "m.npz"), "--runtimes", "eager", "--batch-sizes", "1", "--warmup", "0",
                 "--repeats", "2"]) == 0
    assert "input 1x16x16" in capsys.readouterr().out


def test_prune_to_a_budget_without_finetuning(run_dir, tmp_path, capsys):
    out = tmp_path / "budget"
    assert main(["prune", str(run_dir), "--max-params", "20k", "--global", "--out", str(out)]) == 0
    run = load_run(out)
    assert sum(p.numel() for p in run.model.parameters()) <= 20_000
    assert run.history == [] and run.metrics["test_acc"] is not None


@pytest.mark.parametrize("argv,message", [
    (["--ratio", "1.5"], "ratio must be in (0, 1)"),
    (["--ratio", "0.5", "--max-params", "5k"], "not both"),
    ([], "give either ratio or a budget"),
    (["--max-params", "50"], "budget below the smallest reachable model"),
    (["--ratio", "0.5", "--steps", "0"], "steps must be"),
    (["--max-latency-ms", "0.000001"], "budget below the smallest reachable model"),
    (["--max-latency-ms", "-1"], "max_latency_ms must be a positive number"),
    (["--ratio", "0.5", "--ignore", "features.0,stem.99"], "'stem.99' is not a layer of this model"),
    (["--ratio", "0.5", "--layer-ratio", "head.9=0.3"], "'head.9' is not a layer of this model"),
    (["--ratio", "0.5", "--layer-ratio", "features.0=1.2"], "layer_ratios['features.0'] must be in [0, 1)"),
])
def test_bad_input_is_one_line(run_dir, tmp_path, capsys, argv, message):
    assert main(["prune", str(run_dir), *argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not (tmp_path / "x").exists()


def test_a_layer_ratio_must_be_path_and_ratio(run_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:       # argparse's usage error
        main(["prune", str(run_dir), "--ratio", "0.5", "--layer-ratio", "features.0", "--out", str(tmp_path / "x")])
    assert exit_.value.code == 2 and "must look like PATH=R" in capsys.readouterr().err


def test_ignored_layers_and_layer_ratios_from_the_cli(run_dir, tmp_path):
    out = tmp_path / "layers"
    src = load_run(run_dir).model
    first = next(n for n, m in src.named_modules() if isinstance(m, torch.nn.Conv2d))
    assert main(["prune", str(run_dir), "--ratio", "0.5", "--ignore", first, "--layer-ratio", "classifier=0",
                 "--out", str(out), "--quiet"]) == 0
    pruned = dict(load_run(out).model.named_modules())
    assert pruned[first].out_channels == dict(src.named_modules())[first].out_channels
    assert json.loads((out / "config.json").read_text())["prune"]["config"]["ignored_layers"] == [first]


def test_missing_run_and_existing_out(run_dir, tmp_path, capsys):
    assert main(["prune", str(tmp_path / "nope"), "--ratio", "0.5", "--out", str(tmp_path / "y")]) == 2
    assert main(["prune", str(run_dir), "--ratio", "0.5", "--out", str(run_dir)]) == 2
    assert "input" in capsys.readouterr().err   # its own source: refused as an input (even with --overwrite)
    (tmp_path / "y").mkdir()
    assert main(["prune", str(run_dir), "--ratio", "0.5", "--out", str(tmp_path / "y")]) == 2
    assert "exists" in capsys.readouterr().err


def test_bn_l1_shrinks_batchnorm_scales(run_dir):
    from compress import models
    from compress.prune import BatchNormL1
    from compress.train import TrainConfig, fit

    def scales(regularizer):
        torch.manual_seed(0)
        model = models.create("cnn", channels=[8, 8], input_size=16, num_classes=3)
        fit(model, DATA, TrainConfig(epochs=3, batch_size=16, lr=0.05, augment=False, device="cpu",
                                    bn_recalibrate=0),
            regularizer=regularizer, progress=False)
        return sum(m.weight.abs().sum().item() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))

    assert scales(BatchNormL1(0.1)) < 0.8 * scales(None)
    for bad in (-1, float("nan"), "0.1"):
        with pytest.raises(ValueError, match="bn_l1"):
            BatchNormL1(bad)
    # `compress train --bn-l1 1e-4` (the run_dir fixture) records it beside the training settings
    info = json.loads((run_dir / "config.json").read_text())
    assert info["regularizer"] == {"name": "bn_l1", "weight": 1e-4} and "bn_l1" not in info["train"]
