"""int8 calibration and the int8 check from streamed data (a TorchData over torch Datasets): the same activation
ranges and the same check as from the bundle in memory."""

from __future__ import annotations

import numpy as np
import pytest
from torch.utils.data import TensorDataset

from compress.data.torch_data import TorchData
from compress.export import artifact as A
from compress.export import int8 as E

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _scales(path) -> dict:
    return {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer
            if i.name.endswith("_scale")}


def test_int8_export_calibrates_and_checks_on_streamed_data(tiny_run, tmp_path):
    from compress.train import load_run

    run = load_run(tiny_run(images=300, epochs=2))
    bundle = run.data()
    path = A.save(run.model, tmp_path / "m.npz", codec="int8", fold_bn=True)
    from_memory = E.export_int8_artifact(path, tmp_path / "a.onnx", bundle, normalizer=run.normalizer)
    streamed = TorchData(*(TensorDataset(s.x, s.y) for s in (bundle.train, bundle.val, bundle.test)))
    result = E.export_int8_artifact(path, tmp_path / "b.onnx", streamed, normalizer=run.normalizer)
    assert result.check.passed and result.check.images == from_memory.check.images == len(bundle.test)
    assert result.check.agreement == pytest.approx(from_memory.check.agreement)
    assert result.export.calibration_images == from_memory.export.calibration_images
    a, b = _scales(tmp_path / "a.onnx"), _scales(tmp_path / "b.onnx")   # the same images drawn, seed 0
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    # without the run's normalizer: the stream's own statistics, from one pass
    own = E.export_int8_artifact(path, tmp_path / "c.onnx", TorchData(TensorDataset(bundle.train.x, bundle.train.y),
                                                                      test=TensorDataset(bundle.test.x,
                                                                                         bundle.test.y)))
    assert own.check.images == len(bundle.test)
    with pytest.raises(ValueError, match="no test or validation data"):
        E.export_int8_artifact(path, tmp_path / "d.onnx", TorchData(TensorDataset(bundle.train.x, bundle.train.y)),
                               normalizer=run.normalizer)
    assert not (tmp_path / "d.onnx").exists()
