"""Sizes refused before anything is allocated (issue 27, N14): one batch of inputs over ``MAX_INPUT_BYTES``, and
calibration passes that take large images a few at a time."""

from __future__ import annotations

import pytest
import torch

from compress import models
from compress.bench import measure
from compress.bench.latency import MAX_INPUT_BYTES, check_input_bytes
from compress.cli import main
from compress.int8.calibrate import CALIBRATION_BATCH_VALUES, calibration_batch_size
from compress.int8.prepare import CALIBRATION_MAX_VALUES, RANDOM_CALIBRATION_IMAGES, calibration_batch


def test_the_input_limit_is_on_one_float32_batch():
    check_input_bytes((1, 48, 48), 256)
    check_input_bytes((1, 2**14, 2**14), 1)             # exactly 1 GiB
    with pytest.raises(ValueError, match=r"batch size 2 x input 1x16384x16384: .* over the limit of 1 GiB"):
        check_input_bytes((1, 2**14, 2**14), 2)
    assert MAX_INPUT_BYTES == 2**30


@pytest.mark.parametrize("batch_sizes,shape", [([10**9], (1, 48, 48)), ([1, 32], (1, 10**5, 10**5))])
def test_measure_refuses_before_building_anything(batch_sizes, shape):
    model = models.create("mlp", hidden=(8,), input_size=8)
    with pytest.raises(ValueError, match="over the limit"):
        measure(model, shape, batch_sizes=batch_sizes, warmup=0, repeats=1)


@pytest.mark.parametrize("args,words", [(["--batch-sizes", "1000000000"], "batch size 1000000000 x input 1x48x48"),
                                        (["--input", "1x100000x100000"], "input 1x100000x100000"),
                                        (["--input", "3x4096x4096"], "batch size 32 x input 3x4096x4096")])
def test_cli_bench_refuses_in_one_line(capsys, args, words):
    assert main(["bench", "cnn", "--runtimes", "eager", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and words in err, err


def test_calibration_takes_large_images_a_few_at_a_time():
    assert calibration_batch_size((1, 48, 48)) == 64                  # unchanged for the usual sizes
    assert calibration_batch_size((3, 32, 32)) == 64
    assert calibration_batch_size((1, 512, 512)) == 1
    assert calibration_batch_size((3, 4096, 4096)) == 1
    assert calibration_batch_size((1, 128, 128)) == CALIBRATION_BATCH_VALUES // (128 * 128)
    images, note = calibration_batch(None, (1, 48, 48))
    assert len(images) == RANDOM_CALIBRATION_IMAGES and "64 N(0, 1)" in note
    images, note = calibration_batch(None, (3, 2048, 2048))
    assert len(images) == CALIBRATION_MAX_VALUES // (3 * 2048 * 2048) == 1 and "1 N(0, 1)" in note
    given = torch.zeros(40, 1, 1024, 1024)
    images, note = calibration_batch(given, (1, 1024, 1024))
    assert len(images) == 16 and "16 calibration images" in note


def test_a_plan_artifact_is_labelled_as_one_and_runs_in_float(tmp_path):
    """Issue 27, N19: bench called a per-layer plan artifact "(fp16)" (the codec of the tensors it skips)."""
    import torch

    from compress import bench, models
    from compress.export import save
    from compress.quant.plan import LayerPlan, Plan

    torch.manual_seed(0)
    model = models.create("mlp", hidden=(32,), input_size=8)
    weights = [n for n, p in model.named_parameters() if p.dim() == 2]
    plan = Plan([LayerPlan(n, "int8", 0.0) for n in weights])
    path = save(model, tmp_path / "p.npz", plan=plan)
    (record,) = bench.measure(path, (1, 8, 8), batch_sizes=(1,), repeats=2, warmup=0)
    assert "per-layer plan" in " ".join(record.notes) and "fp16" not in " ".join(record.notes)
    with pytest.raises(ValueError, match="per-layer plan"):
        bench.measure(path, (1, 8, 8), runtime="onnxruntime_int8", batch_sizes=(1,), repeats=2, warmup=0)
