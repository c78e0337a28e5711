"""compress.onnx: verified, atomically written ONNX files."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compress import onnx as O

SHAPE = (1, 16, 16)


def small_net() -> nn.Module:
    """conv-BN-ReLU, pool, linear; BN statistics made non-trivial so that a wrong fold or export changes outputs."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 7))
    with torch.no_grad():
        bn = model[1]
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
    return model.eval()


class TracesDifferently(nn.Module):
    """Adds one to its output only while being traced: the exported graph disagrees with eager PyTorch."""

    def forward(self, x):
        return x + 1 if torch.jit.is_tracing() else x


@pytest.mark.parametrize("fold_bn", [True, False])
def test_export_onnx_matches_pytorch(tmp_path, fold_bn):
    ort = pytest.importorskip("onnxruntime")
    model = small_net()
    path = O.export_onnx(model, tmp_path / "m.onnx", SHAPE, fold_bn=fold_bn)
    assert path.is_file() and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # atomic: no leftovers
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(5, *SHAPE)  # dynamic batch
    got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    with torch.inference_mode():
        want = model(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    ops = {node.op_type for node in __import__("onnx").load(str(path)).graph.node}
    assert "BatchNormalization" not in ops or not fold_bn
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the model itself is untouched


def test_export_onnx_refuses_a_file_that_disagrees(tmp_path):
    pytest.importorskip("onnxruntime")
    with pytest.raises(O.OnnxMismatchError, match="differs from PyTorch"):
        O.export_onnx(nn.Sequential(small_net(), TracesDifferently()), tmp_path / "m.onnx", SHAPE)
    assert list(tmp_path.iterdir()) == []
