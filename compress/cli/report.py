"""``compress report``: a Markdown report of a sweep, with figures, under reports/."""

from __future__ import annotations

SUMMARY = "write reports/<name>/README.md from a sweep's results"


def register(sub) -> None:
    p = sub.add_parser(
        "report", help=SUMMARY,
        description="Read SWEEP/results.json (never retrains) and write the figures and a Markdown report "
                    "answering: which family wins at equal parameters (95%% intervals; 'tie' when they "
                    "overlap or are under 1 point apart), where the curves cross, CNN vs MLP at matched "
                    "counts, the effect of augmentation and normalization, what fits 225,000 / 650,000 bytes.")
    p.add_argument("sweep", help="sweep folder (written by `compress sweep`)")
    p.add_argument("--out", help="report folder (default reports/<sweep folder name>)")
    p.add_argument("--title", help="report title")
    p.add_argument("--explain", metavar="EXPLAIN_MD", help="include a section written by `compress explain`")
    p.set_defaults(run=run)


def run(args) -> int:
    from pathlib import Path

    from compress import _io
    from compress.study import write_report

    out = args.out or Path("reports") / Path(args.sweep).resolve().name
    _io.check_output_folder(out, inputs=[args.sweep, *([args.explain] if args.explain else [])])   # regenerated
    readme = write_report(args.sweep, out, title=args.title, explain_md=args.explain)
    print(f"wrote {readme}")
    return 0
