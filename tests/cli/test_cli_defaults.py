"""Defaults live once, in the library: every CLI option that sets a library setting leaves the library's default in
force when omitted, and its --help states that default."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import re

import pytest

from compress.cli import build_parser, main
from compress.cli._common import field_actions, given, parse_key_value, show_default


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _owner(action):
    """The library object an option maps: the parser names it by reference ("module:name", read from the source
    without importing the library); here it is imported, so the test checks what the source reading gave."""
    owner = action.library_field[0]
    if isinstance(owner, str):
        module, _, name = owner.partition(":")
        owner = getattr(importlib.import_module(module), name)
    return owner


def _library_default(owner, name):
    # Read independently of compress.cli._common, so a bug there cannot hide a wrong default.
    if dataclasses.is_dataclass(owner):
        f = {f.name: f for f in dataclasses.fields(owner)}[name]
        return f.default_factory() if f.default is dataclasses.MISSING else f.default
    return inspect.signature(owner).parameters[name].default


COMMANDS = _subparsers()
MAPPED = [(cmd, action) for cmd, p in COMMANDS.items() for action in field_actions(p)]


def test_every_command_is_walked():
    assert {"train", "sweep", "study", "export", "explain", "bench", "scale", "profile", "fit-budget", "evaluate",
            "predict", "models", "report"} <= set(COMMANDS)


@pytest.mark.parametrize("cmd,action", MAPPED, ids=[f"{c}:{a.option_strings[0]}" for c, a in MAPPED])
def test_option_default_is_the_librarys(cmd, action):
    default = _library_default(_owner(action), action.library_field[1])
    name = action.library_field[1]
    # (a) argparse must not shadow the library default
    assert action.default is None or action.default == default, \
        f"compress {cmd} {action.option_strings[0]}: argparse default {action.default!r} shadows {default!r}"
    # (b) the help states the library default
    help_text = " ".join((action.help or "").split())
    stated = re.findall(r"\(default ([^)]*)\)", help_text)
    assert stated, f"compress {cmd} {action.option_strings[0]}: help names no default"
    text = stated[-1]
    if text.startswith(f"{name}="):          # switches: "(default augment=on)"
        text = text[len(name) + 1:]
    assert text.split(":")[0] == show_default(default), \
        f"compress {cmd} {action.option_strings[0]}: help says default {text!r}, library says {default!r}"


# The options that must map to a library setting: an option re-added with a hard-coded default fails here.
EXPECTED = {
    "train": {"epochs", "batch_size", "optimizer", "lr", "schedule", "weight_decay", "label_smoothing", "augment",
              "flip", "rotate_deg", "translate_frac", "scale_range", "erase_prob", "normalize", "seed", "device",
              "amp", "ema_decay", "patience", "bn_recalibrate", "threads", "teacher", "temperature", "alpha",
              "width_mult", "depth_mult", "dropout", "val_fraction"},
    "sweep": {"data", "families", "budgets", "seeds", "epochs", "batch_size", "lr", "ablate", "ablate_family",
              "ablate_budget", "latency"},
    "study": {"data", "families", "budgets", "seeds", "epochs", "batch_size", "lr", "ablate_family",
              "ablate_budget", "latency"},
    "explain": {"split", "layer", "activation_layer", "filters", "steps", "method", "per_class", "seed"},
    "export": {"max_bytes", "codec", "fold_bn", "candidates", "tolerance_points", "format", "out", "onnx"},
    "bench": {"device", "threads", "warmup", "repeats", "width_mult"},
    "scale": {"max_params", "max_macs", "max_bytes", "file_format", "max_latency_ms", "runtime", "batch_size",
              "threads", "policy", "min_channels", "tolerance", "num_classes"},
    "fit-budget": {"codecs", "lr", "seed", "teacher", "format"},
    "prune": {"ratio", "max_params", "max_macs", "max_bytes", "max_latency_ms", "importance", "global_ranking",
              "round_to", "min_width", "steps", "schedule", "finetune_epochs", "taylor_images", "seed"},
}


@pytest.mark.parametrize("cmd", sorted(EXPECTED))
def test_library_settings_are_mapped(cmd):
    mapped = {a.library_field[1] for a in field_actions(COMMANDS[cmd])}
    assert EXPECTED[cmd] <= mapped, f"compress {cmd}: not read from the library: {EXPECTED[cmd] - mapped}"


def test_no_hard_coded_default_beside_a_mapped_field():
    """An option whose dest is a field of a dataclass the command maps, but which add_field did not make."""
    for cmd, p in COMMANDS.items():
        owners = {_owner(a) for a in field_actions(p) if dataclasses.is_dataclass(_owner(a))}
        names = {f.name for o in owners for f in dataclasses.fields(o)}
        for a in p._actions:
            if a.option_strings and a.dest in names and getattr(a, "library_field", None) is None:
                assert a.default is None, f"compress {cmd} {a.option_strings[0]} hard-codes {a.default!r}"


def test_sweep_help_shows_sweepconfig_seeds(capsys):
    from compress.study import STUDY_ABLATIONS, SweepConfig

    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"seeds per point (default {SweepConfig.seeds})" in text
    with pytest.raises(SystemExit):
        main(["study", "--help"])
    assert f"(default {','.join(STUDY_ABLATIONS)})" in " ".join(capsys.readouterr().out.split())


def test_omitted_options_keep_library_defaults():
    from compress.cli.sweep import config_from_args
    from compress.study import STUDY_ABLATIONS, SweepConfig
    from compress.train import TrainConfig

    p = COMMANDS["train"]
    args = p.parse_args(["--model", "cnn", "--out", "x"])
    assert given(args, TrainConfig) == {}
    args = p.parse_args(["--model", "cnn", "--out", "x", "--epochs", "3", "--no-augment", "--flip", "off", "--scale", "0.8,1.2"])
    assert TrainConfig(**given(args, TrainConfig)) == TrainConfig(epochs=3, augment=False, flip=False,
                                                                   scale_range=(0.8, 1.2))
    assert config_from_args(COMMANDS["sweep"].parse_args([])) == SweepConfig()
    study = config_from_args(COMMANDS["study"].parse_args([]), ablate_default=STUDY_ABLATIONS)
    assert study.ablate == STUDY_ABLATIONS and study.seeds == SweepConfig.seeds
    args = COMMANDS["sweep"].parse_args(["--seeds", "1", "--set", "label_smoothing=0.1", "--no-latency"])
    config = config_from_args(args)
    assert (config.seeds, config.train, config.latency) == (1, {"label_smoothing": 0.1}, False)


def test_parse_key_value():
    assert parse_key_value("channels=[8,16]") == ("channels", [8, 16])
    assert parse_key_value("schedule=cosine") == ("schedule", "cosine")
    assert parse_key_value("x=") == ("x", "")
    for bad in ("novalue", "=3"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_key_value(bad)


def test_key_value_options_share_the_parser():
    for cmd, flag in (("train", "--model-opt"), ("train", "--set"), ("sweep", "--set"), ("study", "--set"),
                      ("fit-budget", "--model-opt")):
        action = next(a for a in COMMANDS[cmd]._actions if flag in a.option_strings)
        assert action.type is parse_key_value, f"compress {cmd} {flag}"


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
def test_help_runs(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        main([cmd, "--help"])
    assert exc.value.code == 0 and capsys.readouterr().out
