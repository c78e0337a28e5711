"""The dispatcher and the small commands: models, scale, profile."""

import json
import subprocess
import sys

import pytest

from compress.cli import main


def test_models_lists_registry(capsys):
    assert main(["models", "--json"]) == 0
    names = json.loads(capsys.readouterr().out)
    assert {"mobilenet_v1", "mobilenet_v2", "cnn", "mlp"} <= set(names)


def test_scale_fit_and_match(capsys):
    assert main(["scale", "mobilenet_v1", "--max-params", "100k", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["param_count"] <= 100_000 and out["name"] == "mobilenet_v1"
    assert main(["scale", "mlp", "--match", "cnn", "--match-width", "0.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert abs(out["param_count"] - 294_615) / 294_615 <= 0.05


def test_user_errors_are_one_line_exit_2(capsys):
    assert main(["scale", "mlp", "--max-params", "5k"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("compress scale: error: impossible budget") and "Traceback" not in err
    assert main(["scale", "resnet", "--max-params", "5k"]) == 2
    assert "unknown model 'resnet'" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["scale", "mlp", "--max-params", "lots"],
                                  ["scale", "mlp", "--max-params", "10k", "--input", "1x4y"]])
def test_bad_argument_values_exit_2(args):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2


def test_non_square_input_is_a_user_error(capsys):
    assert main(["scale", "mlp", "--max-params", "10k", "--input", "1x28x32"]) == 2
    assert "square" in capsys.readouterr().err


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "compress.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "models" in out.stdout
