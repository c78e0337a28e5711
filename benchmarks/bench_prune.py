"""compress.prune against Torch-Pruning (DepGraph, ``torch_pruning.pruner.MetaPruner``) on the same models and ratios.

    pip install "compress[bench]"           # torch-pruning
    python benchmarks/bench_prune.py [--rounds 7] [--ratios 0.3,0.5] [--no-accuracy | --no-timing] [--epochs 6 --finetune 3]

Time: graph + importance + selection + surgery, the two sides interleaved in one process, one torch thread,
one warm-up call per side and model, median (IQR) of ``--rounds``. The first call of each side is timed apart,
in fresh interpreters (the libraries imported first). Both sides: L1 group-norm importance over coupled channels (DepGraph's
``GroupMagnitudeImportance(p=1)``), the same ratio in every layer, the classifier's outputs left alone. compress
returns a new model (its deep copy is inside the time); Torch-Pruning prunes in place (its copy is made outside).
Params and MACs of both results are counted by ``compress.profile`` (batch 1).

Accuracy: one model trained on the embedded digits, pruned by both at ``--ratios``' last value, each fine-tuned
with the same TrainConfig (same seed, same epochs) and evaluated on the test split.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from compress import models
from compress.profile import profile
from compress.prune import build_graph, importance, remove_channels, select


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out)
        self.down = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                     if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.down(x))


class UserResNet(nn.Module):
    """A ResNet-18-shaped network as a user writes it (functional relu, residual adds, flatten -> Linear)."""

    def __init__(self, widths=(32, 64, 128, 256), num_classes: int = 7):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        blocks, c = [], widths[0]
        for i, w in enumerate(widths):
            blocks += [BasicBlock(c, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)]
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1))


class Bottleneck(nn.Module):
    """ResNeXt's block (Xie et al. 2017): 1x1 -> grouped 3x3 -> 1x1, plus the shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, groups: int = 8, group_width: int = 4):
        super().__init__()
        mid = groups * group_width
        self.conv1, self.bn1 = nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3, self.bn3 = nn.Conv2d(mid, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
        self.down = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                     if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        return F.relu(self.bn3(self.conv3(y)) + self.down(x))


class UserResNeXt(nn.Module):
    """A small ResNeXt (8 groups, group widths 4-32), as a user writes it."""

    def __init__(self, widths=(64, 128, 256, 512), num_classes: int = 7):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        blocks, c = [], 32
        for i, w in enumerate(widths):
            gw = 4 * 2 ** i
            blocks += [Bottleneck(c, w, 1 if i == 0 else 2, group_width=gw), Bottleneck(w, w, 1, group_width=gw)]
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1))


def _models():
    yield "cnn", models.create("cnn"), (1, 48, 48)
    yield "mobilenet_v1", models.create("mobilenet_v1"), (1, 48, 48)
    yield "mobilenet_v2", models.create("mobilenet_v2", channel_divisor=1), (1, 48, 48)
    yield "fer_hw3_cnn", models.create("fer_hw3_cnn"), (1, 48, 48)
    yield "fer_hw8_torch", models.create("fer_hw8_torch"), (1, 48, 48)
    yield "user ResNet-18", UserResNet(), (1, 48, 48)
    yield "user ResNeXt (grouped convs)", UserResNeXt(), (1, 48, 48)


def ours(model: nn.Module, shape, ratio: float) -> nn.Module:
    graph = build_graph(model, shape)
    return remove_channels(graph, select(graph, importance(graph, "l1"), ratio))


def theirs(model: nn.Module, shape, ratio: float) -> nn.Module:
    import torch_pruning as tp

    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    pruner = tp.pruner.MetaPruner(model, torch.randn(1, *shape), importance=tp.importance.GroupMagnitudeImportance(p=1),
                                  pruning_ratio=ratio, ignored_layers=[last])
    pruner.step()
    return model


def _timed(fn, model, shape, ratio, copy_first: bool):
    m = copy.deepcopy(model) if copy_first else model
    t = time.perf_counter()
    out = fn(m, shape, ratio)
    return time.perf_counter() - t, out


def _fmt(times: list[float]) -> str:
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return f"{1000 * statistics.median(times):.1f} ({1000 * q[0]:.1f}-{1000 * q[2]:.1f})"


_FIRST = """import sys, time
sys.path.insert(0, {here!r})
import torch
import torch_pruning
torch.set_num_threads(1)
from bench_prune import ours, theirs
from compress import models
model = models.create("fer_hw8_torch").eval()
t = time.perf_counter()
{side}(model, (1, 48, 48), 0.5)
print(time.perf_counter() - t)
"""


def first_call(side: str) -> float:
    """Seconds of ``side``'s first call in a fresh interpreter, libraries already imported (fer_hw8_torch, 0.5)."""
    code = _FIRST.format(here=str(Path(__file__).resolve().parent), side=side)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def timing(ratios, rounds: int) -> None:
    firsts = {side: [first_call(side) for _ in range(3)] for side in ("ours", "theirs")}
    print("first call in a fresh process (fer_hw8_torch at 0.5, imports done; median of 3 processes): "
          f"compress {statistics.median(firsts['ours']):.3f} s, "
          f"Torch-Pruning {statistics.median(firsts['theirs']):.3f} s\n")
    print("| model | ratio | params before | compress params | TP params | compress MACs | TP MACs "
          "| compress ms median (IQR) | TP ms median (IQR) | TP / compress |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, model, shape in _models():
        model.eval()
        for ratio in ratios:
            a, b = [], []
            for _ in range(rounds + 1):         # the first round of each is a warm-up
                ta, pa = _timed(ours, model, shape, ratio, False)
                tb, pb = _timed(theirs, model, shape, ratio, True)
                a.append(ta)
                b.append(tb)
            a, b = a[1:], b[1:]
            count = lambda m: profile(m, shape, execute="meta", serialize=False)  # noqa: E731
            ca, cb, c0 = count(pa), count(pb), count(model)
            print(f"| {name} | {ratio} | {c0.param_count:,} | {ca.param_count:,} | {cb.param_count:,} | "
                  f"{ca.macs:,} | {cb.macs:,} | {_fmt(a)} | {_fmt(b)} | "
                  f"{statistics.median(b) / statistics.median(a):.2f}x |", flush=True)


def accuracy(ratio: float, epochs: int, finetune: int) -> None:
    from compress import data
    from compress.train import TrainConfig, evaluate, fit

    bundle = data.load("default", seed=0)
    torch.manual_seed(0)
    model = models.create("mobilenet_v1", width_mult=0.5, num_classes=bundle.num_classes,
                          input_size=bundle.input_size)
    base = fit(model, bundle, TrainConfig(epochs=epochs, seed=0), progress=False)
    shape = model.card.input_shape
    split = bundle.split()
    before = evaluate(base.model, split, normalizer=base.normalizer)["acc"]
    print(f"\nmobilenet_v1 width 0.5 on {bundle.source}, trained {epochs} epochs: "
          f"{sum(p.numel() for p in base.model.parameters()):,} params, test acc {before:.4f}")
    print("| side | params | MACs | acc after pruning | acc after fine-tuning |")
    print("|---|---|---|---|---|")
    for label, fn in (("compress", ours), ("Torch-Pruning", theirs)):
        pruned = fn(copy.deepcopy(base.model).eval(), shape, ratio)
        raw = evaluate(pruned, split, normalizer=base.normalizer)["acc"]
        tuned = fit(pruned, bundle, TrainConfig(epochs=finetune, seed=0), progress=False)
        acc = evaluate(tuned.model, split, normalizer=base.normalizer)["acc"]
        c = profile(tuned.model, shape, execute="meta", serialize=False)
        print(f"| {label} | {c.param_count:,} | {c.macs:,} | {raw:.4f} | {acc:.4f} |", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--ratios", default="0.3,0.5")
    p.add_argument("--no-accuracy", action="store_true")
    p.add_argument("--no-timing", action="store_true")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--finetune", type=int, default=3)
    args = p.parse_args(argv)
    try:
        import torch_pruning  # noqa: F401
    except ImportError:
        print("needs torch-pruning: pip install \"compress[bench]\"", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    ratios = [float(r) for r in args.ratios.split(",")]
    if not args.no_timing:
        timing(ratios, args.rounds)
    if not args.no_accuracy:
        accuracy(ratios[-1], args.epochs, args.finetune)
    return 0


if __name__ == "__main__":
    sys.exit(main())
