"""The command line starts without torch: ``compress --help``, every subcommand's ``--help`` (but the two whose help
lists a registry the library fills as it is imported) and argument errors import neither torch nor the library.
The library settings the options show are read from the source (compress.cli._source); test_cli_defaults.py checks
each against the imported library."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from compress.cli import _source
from compress.cli._common import library_constant, library_default

# `compress bench --help` lists the registered runtimes and `compress prune --help` the registered importances:
# both registries are filled as the library is imported.
LISTS_A_REGISTRY = {"bench", "prune"}
COMMANDS = ["bench", "evaluate", "explain", "export", "fit-budget", "models", "predict", "profile", "prune", "report",
            "scale", "search", "study", "sweep", "train"]


def _imports(argv: list[str]) -> dict:
    """Run ``compress ARGV`` in a fresh interpreter: its exit status and whether torch / the library got imported."""
    code = textwrap.dedent(f"""
        import json, sys
        from compress.cli import main
        try:
            status = main({argv!r})
        except SystemExit as exc:
            status = exc.code
        library = sorted(m for m in sys.modules if m.startswith("compress.") and not m.startswith("compress.cli"))
        print(json.dumps({{"status": status, "torch": "torch" in sys.modules, "library": library}}), file=sys.stderr)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return json.loads(done.stderr.strip().splitlines()[-1])


def test_top_level_help_and_version_import_nothing():
    for argv in (["--help"], ["--version"], [], ["no-such-command"]):
        seen = _imports(argv)
        assert not seen["torch"] and not seen["library"], (argv, seen)
    assert _imports(["--help"])["status"] == 0 and _imports(["no-such-command"])["status"] == 2


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - LISTS_A_REGISTRY))
def test_subcommand_help_imports_no_torch(command):
    seen = _imports([command, "--help"])
    assert seen["status"] == 0
    assert not seen["torch"], f"compress {command} --help imported torch (via {seen['library']})"


def test_every_command_is_accounted_for():
    from compress.cli import build_parser

    sub = next(a for a in build_parser([])._actions if a.__class__.__name__ == "_SubParsersAction")
    assert sorted(sub.choices) == COMMANDS


@pytest.mark.parametrize("argv", [["train", "--out", "x", "--epochs", "many"], ["train", "--out", "x", "--lr", "inf"],
                                  ["train"], ["sweep", "--budgets", "5q"], ["export", "RUN", "--max-bytes", "-3"],
                                  ["search", "RUN", "--out", "x"], ["train", "--out", "x", "--log", "wandb"]])
def test_argument_errors_import_no_torch(argv):
    seen = _imports(argv)
    assert seen["status"] == 2 and not seen["torch"], (argv, seen)


def test_only_the_command_run_is_built():
    from compress.cli import build_parser

    parser = build_parser(["train"])
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert len(sub.choices["train"]._actions) > 30 and len(sub.choices["sweep"]._actions) == 0


# ------------------------------------------------------------------------------------------ reading the source
def test_defaults_read_from_the_source_equal_the_library():
    from compress.data.augment import AugmentConfig
    from compress.data.sources import load
    from compress.export.runs import export_run
    from compress.train.config import TrainConfig

    assert _source.default("compress.train.config:TrainConfig", "epochs") == TrainConfig().epochs
    assert _source.default("compress.data.augment:AugmentConfig", "erase_area") == AugmentConfig().erase_area
    assert _source.default("compress.data.sources:load", "val_fraction") == \
        load.__kwdefaults__["val_fraction"]
    # a default that is another dataclass's field: export_run(calibration=Int8Config.calibration)
    assert _source.default("compress.export.runs:export_run", "calibration") == \
        export_run.__kwdefaults__["calibration"]
    assert _source.constant("compress.export.choice:DEFAULT_CANDIDATES")[0] == "fp32"
    # re-exported through a package's __init__
    assert _source.constant("compress.prune:SCHEDULES") == _source.constant("compress.prune.schedule:SCHEDULES")


def test_what_the_source_cannot_say_is_imported():
    # ExplainConfig.filter is field(default_factory=FilterConfig): a call the source alone cannot evaluate
    with pytest.raises(_source.NotStatic):
        _source.default("compress.explain.section:ExplainConfig", "filter")
    from compress.explain.filters import FilterConfig

    assert library_default("compress.explain.section:ExplainConfig", "filter") == FilterConfig()
    # a class that is not a dataclass: its defaults are its __init__'s, left to the import
    with pytest.raises(_source.NotStatic, match="not a dataclass"):
        _source.default("compress.export.choice:BudgetError", "args")
    # the importance registry is a dict filled by decorators
    with pytest.raises(_source.NotStatic):
        _source.constant("compress.prune.importance:IMPORTANCES")
    assert "l1" in library_constant("compress.prune.importance:IMPORTANCES")


def test_typos_in_references_fail_loudly():
    with pytest.raises(KeyError, match="no field 'epoch'"):
        _source.default("compress.train.config:TrainConfig", "epoch")
    with pytest.raises(KeyError, match="no parameter 'val_frac'"):
        _source.default("compress.data.sources:load", "val_frac")
    with pytest.raises(TypeError, match="no default"):
        _source.default("compress.data.sources:load", "source")
    with pytest.raises(_source.NotStatic, match="defines no 'Nope'"):
        _source.default("compress.train.config:Nope", "epochs")
