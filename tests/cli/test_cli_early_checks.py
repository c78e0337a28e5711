"""Names and widths are checked before the data loads (issue 26: an unknown --model was reported after loading)."""

import pytest

from compress.cli import main


@pytest.mark.parametrize("argv,message", [
    (["--model", "nosuch"], "unknown model 'nosuch'"),
    (["--model", "cnn", "--width", "-1"], "--width must be a positive finite number"),
    (["--model", "/nope/m.py:Net"], "model file /nope/m.py does not exist"),
    (["--model", "timm:"], "name the architecture"),
])
def test_train_refuses_before_loading_data(tmp_path, capsys, argv, message):
    code = main(["train", *argv, "--data", str(tmp_path / "missing.csv"), "--epochs", "1", "--out",
                 str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "missing.csv" not in err and len(err.strip().splitlines()) == 1
    assert message in err
    assert not (tmp_path / "r").exists()
