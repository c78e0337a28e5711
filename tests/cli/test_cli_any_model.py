"""Any model through the CLI: a user's model file and torchvision's zoo, train -> prune -> export -> bench ->
evaluate -> explain, and one-line errors (exit 2) for bad model sources."""

from __future__ import annotations

import json
import textwrap

import pytest

from compress.cli import main

DATA = "synthetic:n=240,classes=3,size=16"

USER_MODEL = textwrap.dedent('''
    import torch
    from torch import nn

    class TinyResNet(nn.Module):
        def __init__(self, width=8, num_classes=10, in_chans=1):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(in_chans, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                      nn.ReLU())
            self.dw = nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False)
            self.bn = nn.BatchNorm2d(width)
            self.side = nn.Conv2d(width, width, 1)
            self.head = nn.Linear(2 * width, num_classes)

        def forward(self, x):
            x = self.stem(x)
            x = torch.cat([x + self.bn(self.dw(x)), torch.relu(self.side(x))], 1)
            return self.head(x.mean((2, 3)))

    class RGBOnly(nn.Module):
        def __init__(self, num_classes=10):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4, num_classes)

        def forward(self, x):
            return self.fc(self.conv(x).mean((2, 3)))

    def broken(width=8):
        raise RuntimeError("cannot build")
''')


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("user") / "mymodel.py"
    path.write_text(USER_MODEL)
    return path


def test_a_model_file_through_every_command(tmp_path, model_file, capsys):
    run, pruned = tmp_path / "run", tmp_path / "pruned"
    name = f"{model_file}:TinyResNet"
    assert main(["profile", name, "--model-args", "width=12", "--input", "1x16x16", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["build_args"]["width"] == 12
    assert main(["train", "--model", name, "--model-args", "width=12", "--data", DATA, "--epochs", "1",
                 "--no-augment", "--out", str(run), "--quiet"]) == 0
    card = json.loads((run / "config.json").read_text())["model"]["card"]["build_args"]
    assert card["name"] == f"{model_file.resolve()}:TinyResNet" and card["width"] == 12
    assert main(["prune", str(run), "--ratio", "0.5", "--out", str(pruned)]) == 0
    widths = json.loads((pruned / "config.json").read_text())["model"]["card"]["build_args"]["widths"]
    assert widths["stem.0"] == [1, 6]
    assert main(["evaluate", str(pruned), "--json"]) == 0
    assert json.loads(_last_json(capsys))["n"] > 0
    assert main(["export", str(pruned), "--out", str(tmp_path / "m.npz")]) == 0
    assert main(["bench", str(pruned), "--runtimes", "eager", "--batch-sizes", "1", "--warmup", "0",
                 "--repeats", "2"]) == 0
    assert main(["explain", str(pruned), "--out", str(tmp_path / "explain")]) == 0
    assert (tmp_path / "explain" / "explain.md").exists()


def _last_json(capsys):
    out = capsys.readouterr().out
    return out[out.index("{"):]


def test_a_sweep_over_a_model_file_scaled_by_its_width_argument(tmp_path, model_file):
    out = tmp_path / "sweep"
    assert main(["sweep", "--families", f"{model_file}:TinyResNet", "--model-args", "width=16", "--width-arg",
                 "width", "--policies", "width", "--budgets", "500,1500", "--seeds", "2", "--epochs", "1",
                 "--data", DATA, "--resolution", "1", "--no-latency", "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())["records"]
    assert len(rows) == 4 and all(r["param_count"] <= r["budget"] for r in rows)


@pytest.mark.parametrize("model, message", [
    ("{f}:Nope", "has no class or function 'Nope'"),
    ("{f}:broken", "building it raised RuntimeError: cannot build"),
    ("{d}/missing.py:Net", "does not exist"),
    ("{d}/data.py:Net", "data.py: not valid Python"),
    ("nonsense_model", "unknown model 'nonsense_model'"),
])
def test_bad_model_sources_exit_2_with_one_line(tmp_path, model_file, capsys, model, message):
    (model_file.parent / "data.py").write_text("1,2,3\n4,5,\x00\n")
    status = main(["train", "--model", model.format(f=model_file, d=model_file.parent), "--data", DATA,
                   "--epochs", "1", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert status == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_a_forward_that_fails_on_the_input_shape_exits_2(tmp_path, model_file, capsys):
    status = main(["profile", f"{model_file}:RGBOnly", "--input", "1x16x16"])
    err = capsys.readouterr().err
    assert status == 2 and "'RGBOnly' of" in err and "forward fails on a 1x16x16 input" in err
    status = main(["profile", f"{model_file}:TinyResNet", "--model-args", "in_chans=1"])
    assert status == 2 and "in_chans is an option of compress itself" in capsys.readouterr().err


@pytest.mark.torchvision
def test_torchvision_model_train_prune_export(tmp_path, capsys):
    pytest.importorskip("torchvision")
    run, pruned = tmp_path / "run", tmp_path / "pruned"
    assert main(["train", "--model", "torchvision:mobilenet_v3_small", "--data", DATA, "--input-size", "32",
                 "--epochs", "1", "--no-augment", "--out", str(run), "--quiet"]) == 0
    assert main(["prune", str(run), "--ratio", "0.5", "--out", str(pruned)]) == 0
    assert main(["evaluate", str(pruned)]) == 0
    assert main(["export", str(pruned), "--out", str(tmp_path / "m.npz")]) == 0
    assert main(["bench", str(pruned), "--runtimes", "eager", "--batch-sizes", "1", "--warmup", "0",
                 "--repeats", "2"]) == 0


def test_a_model_file_without_a_width_argument_is_scaled_by_pruning(tmp_path, model_file):
    out = tmp_path / "sweep"
    assert main(["sweep", "--families", f"{model_file}:TinyResNet", "--model-args", "width=16", "--methods",
                 "prune", "--policies", "width", "--budgets", "800", "--seeds", "1", "--epochs", "2", "--data", DATA,
                 "--resolution", "1", "--no-latency", "--out", str(out)]) == 0
    rows = json.loads((out / "pruning.json").read_text())["records"]
    pruned = [r for r in rows if r["method"] == "prune"]
    assert pruned and all(r["param_count"] <= 800 for r in pruned)


REFERENCE = textwrap.dedent('''
    import sys
    import numpy as np
    import torch
    from compress.export import describe, read
    from compress.quant import CodecConfig, quantize
    from compress.train import load_run

    run, artifact, out = sys.argv[1:]
    info = describe(artifact)
    x = torch.rand(5, *info.input_shape, generator=torch.Generator().manual_seed(0))
    model = load_run(run).model
    fold = "+fold" if read(artifact)[0]["bn_folded"] else ""
    reference = quantize(model, CodecConfig.parse(info.codec + fold)).model.eval()
    with torch.no_grad():
        np.save(out, reference(x).numpy())
''')

RELOAD = textwrap.dedent('''
    import sys
    import numpy as np
    import torch
    from compress.export import describe, load

    artifact, reference = sys.argv[1:]
    info = describe(artifact)
    assert info.architecture == "program", info.architecture
    x = torch.rand(5, *info.input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = load(artifact)(x).numpy()
    assert not any("compress_user_model" in m for m in sys.modules), "the model's code was imported"
    np.testing.assert_allclose(got, np.load(reference), rtol=1e-4, atol=1e-5)
    print("reloaded", info.name, got.shape)
''')


def _code_free_round_trip(tmp_path, model_args: list[str], data: str, budget: str, capsys) -> None:
    """train -> prune -> export under a byte budget -> reload in a fresh process without the model's code ->
    bench -> evaluate the artifact, all from the CLI."""
    import os
    import subprocess
    import sys

    run, pruned, artifact = tmp_path / "run", tmp_path / "pruned", tmp_path / "m.npz"
    assert main(["train", *model_args, "--data", data, "--epochs", "1", "--no-augment", "--out", str(run),
                 "--quiet"]) == 0
    assert main(["prune", str(run), "--ratio", "0.5", "--out", str(pruned)]) == 0
    assert main(["export", str(pruned), "--max-bytes", budget, "--candidates", "int8+fold,fp16", "--deep", "off", "--out",
                 str(artifact), "--quiet"]) == 0
    assert artifact.stat().st_size <= int(budget.rstrip("k")) * (1000 if budget.endswith("k") else 1)
    reference = tmp_path / "reference.npy"
    env = {**os.environ, "PYTHONPATH": ""}
    for script, args in ((REFERENCE, [str(pruned), str(artifact), str(reference)]),
                         (RELOAD, [str(artifact), str(reference)])):
        if script is RELOAD:   # the defining code is gone: the artifact must not need it
            for f in tmp_path.parent.glob("user*/mymodel.py"):
                f.rename(f.with_suffix(".gone"))
        done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    assert main(["bench", str(artifact), "--runtimes", "eager", "--batch-sizes", "1", "--warmup", "0",
                 "--repeats", "2"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(artifact), "--data", data, "--json"]) == 0
    assert json.loads(_last_json(capsys))["n"] > 0


def test_a_model_file_reloads_without_its_code(tmp_path_factory, capsys):
    folder = tmp_path_factory.mktemp("user")
    (folder / "mymodel.py").write_text(USER_MODEL)
    try:
        _code_free_round_trip(tmp_path_factory.mktemp("work"),
                              ["--model", f"{folder / 'mymodel.py'}:TinyResNet", "--model-args", "width=16"],
                              DATA, "20k", capsys)
    finally:
        for f in folder.glob("*.gone"):
            f.rename(f.with_suffix(".py"))


@pytest.mark.torchvision
def test_torchvision_mobilenet_v3_small_reloads_without_torchvision(tmp_path, capsys):
    pytest.importorskip("torchvision")
    _code_free_round_trip(tmp_path, ["--model", "torchvision:mobilenet_v3_small", "--input-size", "32"], DATA,
                          "1500k", capsys)
