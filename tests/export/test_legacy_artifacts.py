"""Artifacts written before the one-vocabulary move (issue 22) still load and decode to the same model, bit for
bit: the files in ``legacy/`` were written by commit d67a45a together with the logits they gave then."""

from pathlib import Path

import numpy as np
import pytest
import torch

from compress.export import load, read

LEGACY = Path(__file__).parent / "legacy"
FILES = sorted(p.name for p in LEGACY.iterdir() if p.suffix in (".npz", ".pt") and p.stem != "expected_logits")


def test_every_legacy_file_is_checked():
    assert len(FILES) == 6


@pytest.mark.parametrize("name", FILES)
def test_legacy_artifact_loads_to_the_same_logits(name):
    expected = np.load(LEGACY / "expected_logits.npz")
    model = load(LEGACY / name)
    with torch.no_grad():
        got = model(torch.from_numpy(expected["x"])).numpy()
    np.testing.assert_array_equal(got, expected[name.replace(".", "_")])


def test_legacy_plan_file_keeps_its_plan():
    manifest, _ = read(LEGACY / "cnn_deep_plan.npz")
    assert {row[1] for row in manifest["plan"]["layers"]} >= {"int4", "kmeans3", "int2"}
