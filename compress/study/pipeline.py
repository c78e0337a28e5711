"""The default study in one call: sweep, look inside the best model, write the report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from compress.study.executors import Executor
from compress.study.config import SweepConfig

__all__ = ["STUDY_ABLATIONS", "STUDY_TARGET", "run_study", "default_folder"]

STUDY_ABLATIONS = ("augment", "normalize")   # the study adds the seed reports' HW3 ablation to the sweep
# ... and an interval target: after its 5 seeds, a point whose 95% interval is wider than +-3 accuracy points gets
# more seeds, up to 20 (SweepConfig.target_halfwidth, max_seeds). A plain sweep keeps its seeds fixed unless asked.
STUDY_TARGET = {"target_halfwidth": 3.0, "max_seeds": 20}


def default_folder(data: str, root: str) -> Path:
    """``root/<data name>``: ``sweeps/default`` for the embedded data, ``sweeps/fer2013`` for ``fer2013.csv``."""
    return Path(root) / (Path(data).stem if data != "default" else "default")


def run_study(config: SweepConfig, out: str | os.PathLike, report: str | os.PathLike, *,
              executor: Executor | None = None, overwrite: bool = False, explain: bool = True,
              progress: Callable[[str], None] | None = print, loggers: str | Sequence[str] | None = None,
              log_dir: str | os.PathLike = ".") -> Path:
    """Run (or resume) the sweep ``config`` in ``out``, explain the best model (seed 0 of the most accurate
    family at the largest budget) and write the report into ``report``; returns the report's README path.
    ``loggers``, ``log_dir``: the sweep's tracking (:func:`~compress.study.sweep.run_sweep`)."""
    from compress.study.report import write_report
    from compress.study.results import best_record
    from compress.study.sweep import run_sweep

    out = Path(out)
    results = run_sweep(config, out, executor=executor, overwrite=overwrite, progress=progress, loggers=loggers,
                        log_dir=log_dir)
    explain_md = None
    record = best_record(results) if explain else None
    if record is not None:
        explain_md = _explain(out, record)
    return write_report(out, report, title=f"compress study: {config.data}", explain_md=explain_md)


def _explain(out: Path, record: dict) -> Path:
    from compress.explain import ExplainConfig, FilterConfig, explain_model
    from compress.train.runs import load_run

    run = load_run(out / record["run_dir"])
    target = out / "explain"
    # 8 filters x 60 steps keep the study's explain step to seconds; `compress explain` does more.
    config = ExplainConfig(filters=8, filter=FilterConfig(steps=60))
    explain_model(run.model, run.data(), target, config=config, normalizer=run.normalizer, title=record["run_id"])
    return target / "explain.md"
