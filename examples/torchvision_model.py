"""A torchvision model through compress: train, prune, store without its code, time it.

    pip install -e ".[zoo]"     # torchvision and timm (compress imports them only for such names)
    python examples/torchvision_model.py --out /tmp/tv [--model torchvision:resnet18] [--tiny]

The same names work on the command line: ``compress train --model torchvision:resnet18 --data default``.
torchvision models get a one-channel stem for one-channel data, as timm's ``in_chans`` does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    from compress import bench, data, export, models, prune, train

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--model", default="torchvision:mobilenet_v3_small")
    p.add_argument("--tiny", action="store_true", help="a fifth of an epoch: checks the path, not the accuracy")
    args = p.parse_args(argv)
    out = Path(args.out)
    bundle = data.load("default")
    model = models.create(args.model, num_classes=bundle.num_classes, in_chans=bundle.in_chans,
                          input_size=bundle.input_size)
    epochs = 0.2 if args.tiny else 5
    run = train.fit(model, bundle, train.TrainConfig(epochs=epochs), out=out / "run", overwrite=True,
                    progress=False)
    result = prune.prune(run.model, prune.PruneConfig(ratio=0.3, global_ranking=True), data=bundle,
                         normalizer=run.normalizer)
    print(result.table())
    path = export.save(result.model, out / "model.npz", codec="fp16", input_shape=run.card.input_shape,
                       normalizer=run.normalizer, class_names=list(bundle.class_names))
    print(f"wrote {path} ({path.stat().st_size:,} bytes): reloads without torchvision's code")
    print(bench.measure(export.load(path), run.card.input_shape, batch_sizes=(1,), threads=1,
                        repeats=5 if args.tiny else 50).table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
