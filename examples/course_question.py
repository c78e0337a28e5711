"""The course question: the most accurate classifier whose file is at most 225,000 bytes.

    python examples/course_question.py --out /tmp/course           # about 15 minutes on a 2-core CPU
    python examples/course_question.py --out /tmp/course --tiny    # a small model and budget (what .ci/run runs)

Trains the 3.2M-parameter MobileNetV1 on the embedded digits (FER2013 CSVs work the same: pass --data fer2013.csv),
then lets ``compress.search`` combine pruning, distillation, codecs, Deep Compression and the installed runtimes
under the byte budget. The winner is chosen on the validation split; its test accuracy is printed beside the dense
model's, and the search folder holds every candidate, the Pareto front and a report.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    from compress import data, models, train
    from compress.budget import Budget
    from compress.search import SearchBudgetError, SearchConfig, search

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--data", default="default", help="a data source (compress.data.load), e.g. fer2013.csv")
    p.add_argument("--max-bytes", type=int, default=225_000)
    p.add_argument("--tiny", action="store_true", help="a 0.25-width model, a fifth of an epoch, a 30 kB budget")
    args = p.parse_args(argv)
    out = Path(args.out)
    bundle = data.load(args.data)
    width, epochs, max_bytes = (0.25, 0.2, 30_000) if args.tiny else (1.0, 8, args.max_bytes)
    model = models.create("mobilenet_v1", width_mult=width, num_classes=bundle.num_classes,
                          in_chans=bundle.in_chans, input_size=bundle.input_size)
    run = train.fit(model, bundle, train.TrainConfig(epochs=epochs), out=out / "run", overwrite=True,
                    progress=False)
    print(f"trained {run.card.name}: {sum(p.numel() for p in run.model.parameters()):,} parameters, "
          f"val {100 * run.metrics['val_acc']:.2f}%")
    # tiny: one pruned structure, two codecs, no Deep Compression or single-method baselines (the full search is
    # the default SearchConfig)
    config = SearchConfig(importances=("l1",), scopes=("global",), storage=("int8+fold",),
                          codecs=("int8+fold", "kmeans4+fold"), finetune_epochs=0.2, deep=False, baselines=False,
                          runtimes=("eager",), latency_repeats=5) if args.tiny else None
    try:
        result = search(out / "run", Budget(max_bytes=max_bytes), config, out=out / "search", overwrite=True,
                        log=lambda line: print(line, file=sys.stderr))
    except SearchBudgetError as exc:
        print(exc)
        return 2
    best, dense = result.best, result.dense
    print(f"{best.id}: {best.size_bytes:,} bytes (limit {max_bytes:,}), test {100 * best.test_acc:.2f}% "
          f"(dense fp32 {dense.size_bytes:,} bytes, {100 * dense.test_acc:.2f}%); report {result.files['report']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
