"""``compress study``: the default study in one command: sweep, look inside the best model, report."""

from __future__ import annotations

from compress.cli._common import library_constant
from compress.cli.sweep import add_sweep_options, config_from_args, executor_from_args, tracking

SUMMARY = "run the default study: sweep + explain the best model + report (the README's main job)"


def register(sub) -> None:
    p = sub.add_parser(
        "study", help=SUMMARY,
        description="Sweep mobilenet_v1, cnn and mlp at matched parameter budgets over seeds (with the "
                    "augmentation/normalization ablation; more seeds for the points whose interval is wider than "
                    "+-3 points), explain the most accurate model of the largest "
                    "budget, and write the report. Resumable: rerun the same command to continue.")
    add_sweep_options(p, ablate_default=library_constant("compress.study.pipeline:STUDY_ABLATIONS"),
                      target_default=library_constant("compress.study.pipeline:STUDY_TARGET"))
    p.add_argument("--out", default=None, help="sweep folder (default sweeps/<data name>)")
    p.add_argument("--report", default=None, help="report folder (default reports/<data name>)")
    p.add_argument("--no-explain", action="store_true", help="skip the confusion matrix / saliency section")
    p.set_defaults(run=run)


def run(args) -> int:
    import time
    from pathlib import Path

    from compress import _io
    from compress.study import STUDY_ABLATIONS, default_folder, run_study
    from compress.study.pipeline import STUDY_TARGET

    start = time.perf_counter()
    config = config_from_args(args, ablate_default=STUDY_ABLATIONS, target_default=STUDY_TARGET)
    executor = executor_from_args(args)
    out = args.out or default_folder(config.data, "sweeps")
    report = args.report or default_folder(config.data, "reports")
    _io.check_output_folder(out, inputs=[config.data])   # an existing sweep folder is resumed
    if Path(report).resolve() == Path(out).resolve():
        raise ValueError(f"--report {str(report)!r} is the sweep folder --out, an input of the report; "
                         "choose another folder")
    _io.check_output_folder(report, inputs=[config.data, out], what="--report")
    readme = run_study(config, out, report, executor=executor, overwrite=args.overwrite,
                       explain=not args.no_explain, **tracking(args))
    print(f"study finished in {time.perf_counter() - start:.0f} s: {readme}")
    return 0
