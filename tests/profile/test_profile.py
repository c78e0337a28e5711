"""compress.profile: counts checked against hand-computed figures on toy nets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as module_hooks

from compress.profile import HANDLES, OpCount, compare, profile, register_handle


def test_conv_with_and_without_bias():
    # 3->8, 3x3, padding 1 on 10x10: 8*10*10 = 800 outputs, each 3*3*3 = 27 multiply-adds
    p = profile(nn.Conv2d(3, 8, 3, padding=1), (3, 10, 10))
    assert p.macs == 800 * 27
    assert p.flops == 2 * 800 * 27 + 800  # plus one bias add per output
    assert p.param_count == 8 * 27 + 8
    q = profile(nn.Conv2d(3, 8, 3, padding=1, bias=False), (3, 10, 10))
    assert (q.macs, q.flops, q.param_count) == (800 * 27, 2 * 800 * 27, 8 * 27)


def test_grouped_depthwise_and_strided_conv():
    assert profile(nn.Conv2d(8, 16, 3, padding=1, groups=4, bias=False), (8, 6, 6)).macs == 16 * 36 * 2 * 9
    assert profile(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), (8, 6, 6)).macs == 8 * 36 * 9
    assert profile(nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8), (8, 6, 6)).macs == 8 * 9 * 9
    # transposed: every input element meets out/groups * k*k weights
    assert profile(nn.ConvTranspose2d(4, 6, 2, stride=2, bias=False), (4, 3, 3)).macs == 4 * 9 * 6 * 4


def test_linear_batch_and_leading_dims():
    net = nn.Sequential(nn.Flatten(), nn.Linear(20, 5))
    p = profile(net, (1, 4, 5))
    assert (p.macs, p.flops, p.param_count) == (100, 2 * 100 + 5, 105)
    assert profile(net, (3, 1, 4, 5)).macs == 300  # batch 3
    assert profile(nn.Linear(5, 7, bias=False), (2, 3, 5)).macs == 2 * 3 * 7 * 5  # applied over leading dims


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 3, 3, 3))
        self.proj = nn.Parameter(torch.randn(6, 8))
        self.head = nn.Parameter(torch.randn(3, 6))

    def forward(self, x):  # x: 1x3x8x8
        a = F.conv2d(x, self.w, padding=1)  # 1x4x8x8: 256 outputs x 27
        b = torch.cat([a, a], 1)  # 1x8x8x8, no arithmetic
        c = b + b  # 512 adds
        d = self.proj @ c.flatten(2)  # (6,8) @ (1,8,64) -> 1x6x64: 384 outputs x 8
        e = torch.bmm(d, d.transpose(1, 2))  # 1x6x6: 36 outputs x 64
        return F.linear(e.mean(-1), self.head)  # 1x3: 3 outputs x 6


def test_functional_ops_are_counted():
    p = profile(Functional(), (3, 8, 8))
    assert p.macs == 256 * 27 + 384 * 8 + 36 * 64 + 3 * 6
    assert p.flops_by_kind["elementwise"] == 512
    assert p.flops_by_kind["reduction"] == 36  # mean over 36 elements
    assert p.param_count == 108 + 48 + 18
    assert p.unsupported == {}
    ops = [layer.type for layer in p.layers]
    assert ops[:3] == ["convolution", "cat", "add"] and "bmm" in ops
    assert sum(layer.macs for layer in p.layers) == p.macs


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(10, 10)

    def forward(self, x):
        return self.fc(self.fc(x.flatten(1)))


def test_shared_module_counts_macs_per_call_params_once():
    p = profile(Shared(), (10, 1, 1))
    assert p.macs == 2 * 100
    assert p.param_count == 110
    assert [(layer.name, layer.param_count, layer.macs) for layer in p.layers] == [("fc", 110, 100), ("fc#2", 0, 100)]


def test_tied_weights_param_once_state_dict_per_key():
    a, b = nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False)
    b.weight = a.weight
    p = profile(nn.Sequential(nn.Flatten(), a, b), (4, 1, 1))
    assert p.param_count == 16 and p.state_dict_count == 32 and p.macs == 32


@torch.library.custom_op("proftest::mystery", mutates_args=())
def _mystery(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@_mystery.register_fake
def _(x):
    return torch.empty_like(x)


class WithCustomOp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return torch.ops.proftest.mystery(self.fc(x.flatten(1)))


def test_unsupported_op_is_reported_not_zeroed():
    p = profile(WithCustomOp(), (4, 1, 1))
    assert p.unsupported == {"proftest.mystery": 1}
    assert p.macs == 16
    assert "NOT COUNTED (no handle): proftest.mystery x1 in (root)" in p.table()
    counted = profile(WithCustomOp(), (4, 1, 1),
                      handles={torch.ops.proftest.mystery: lambda a, k, out: OpCount("elementwise", 0, out.numel())})
    assert counted.unsupported == {} and counted.flops_by_kind["elementwise"] == 4


def test_register_handle_rejects_duplicates():
    with pytest.raises(ValueError, match="already has"):
        register_handle(torch.ops.aten.convolution)(lambda a, k, o: OpCount("matmul"))
    assert torch.ops.aten.convolution in HANDLES


def bn_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


def test_parameter_conventions_with_batchnorm():
    net = bn_net()
    net[0].weight.requires_grad_(False)
    p = profile(net, (3, 10, 10))
    assert p.param_count == 216 + 16 + 36
    assert (p.trainable_param_count, p.frozen_param_count) == (16 + 36, 216)
    assert p.norm_param_count == 16
    assert p.buffer_count == 8 + 8 + 1  # running mean, running var, num_batches_tracked
    assert p.state_dict_count == p.param_count + p.buffer_count
    # BatchNorm is not in MACs; it is reported on its own (2 FLOPs per element, folded scale and shift)
    assert p.macs == 8 * 64 * 27 + 32
    assert p.norm_flops == 2 * 8 * 64


def test_activation_bytes_written_and_peak():
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    p = profile(nn.Sequential(conv, nn.ReLU()), (1, 4, 4))
    assert p.activation_bytes == 2 * 128  # conv output and relu output, 2*4*4 floats each
    assert p.peak_activation_bytes == 256  # both alive while relu runs
    q = profile(nn.Sequential(conv, nn.ReLU(inplace=True)), (1, 4, 4))
    assert (q.activation_bytes, q.peak_activation_bytes) == (128, 128)


def test_model_left_untouched():
    net = bn_net()
    net.train()
    net[1].eval()  # mixed flags must come back as they were
    net[5].bias.requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    global_hooks = (dict(module_hooks._global_forward_hooks), dict(module_hooks._global_forward_pre_hooks))
    for execute in ("meta", "real"):
        profile(net, (3, 10, 10), execute=execute)
    assert (module_hooks._global_forward_hooks, module_hooks._global_forward_pre_hooks) == global_hooks
    assert [m.training for m in net.modules()] == [True, True, False, True, True, True, True]
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
    after = net.state_dict()
    assert list(after) == list(before) and all(torch.equal(before[k], after[k]) for k in before)
    assert [p.requires_grad for p in net.parameters()] == [True, True, True, True, False]
    assert torch.equal(torch.get_rng_state(), rng)
    compare(net, (3, 10, 10), counters=("thop", "flop_counter"))
    assert list(net.state_dict()) == list(before) and all(not m._forward_hooks for m in net.modules())


def test_meta_and_real_runs_record_the_same():
    # the meta shortcuts (conv output size, eval batch norm, activations) must agree with the real kernels
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Hardtanh(0, 6),
                        nn.Conv2d(8, 8, 3, stride=2, padding=2, dilation=2, groups=4), nn.ReLU(inplace=True),
                        nn.Conv2d(8, 8, (1, 3), stride=(1, 2), padding=(0, 1)), nn.SiLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(8 * 2, 5), nn.ReLU())
    meta, real = (profile(net, (2, 3, 11, 13), execute=e, serialize=False) for e in ("meta", "real"))
    assert real.layers[-2].output_shape == (2, 5)
    assert meta.executed_on == "meta" and real.executed_on == "cpu"
    assert meta.records == real.records
    assert (meta.activation_bytes, meta.peak_activation_bytes) == (real.activation_bytes, real.peak_activation_bytes)
    # torch.matmul chooses mm or bmm by requires_grad: the meta copies keep it, so the ops are the same
    functional = Functional()
    assert profile(functional, (3, 8, 8)).records == profile(functional, (3, 8, 8), execute="real").records


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        x = x.flatten(1)
        return self.fc(x) if x.sum() >= 0 else -x


def test_falls_back_to_real_run_when_meta_cannot():
    p = profile(DataDependent(), (3, 1, 1))
    assert p.executed_on == "cpu" and p.macs == 6
    with pytest.raises(Exception):
        profile(DataDependent(), (3, 1, 1), execute="meta")


def test_file_sizes_equal_bytes_really_written(tmp_path):
    net = bn_net()
    p = profile(net, (3, 10, 10))
    for tag, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in net.state_dict().items()}
        folder = tmp_path / tag
        folder.mkdir()
        # torch.save names its zip records after the file's stem; a buffer gets "archive"
        torch.save(state, folder / "archive.pt")
        np.savez(folder / "weights.npz", **{k: v.numpy() for k, v in state.items()})
        assert p.file_size_bytes[f"pt_{tag}"] == (folder / "archive.pt").stat().st_size
        assert p.file_size_bytes[f"npz_{tag}"] == (folder / "weights.npz").stat().st_size
    assert p.file_size_bytes["pt_fp16"] < p.file_size_bytes["pt_fp32"]
    assert profile(net, (3, 10, 10), serialize=False).file_size_bytes == {}


def test_table_and_dict_come_from_the_same_records():
    p = profile(bn_net(), (3, 10, 10))
    assert sum(layer.macs for layer in p.layers) == p.macs
    assert abs(sum(layer.share for layer in p.layers) - 1) < 1e-9
    assert p.by_operator() == {"convolution": 8 * 64 * 27, "addmm": 32}
    assert p.by_module()[""] == p.macs and p.by_module()["0"] == 8 * 64 * 27
    d = json.loads(json.dumps(p.to_dict()))
    assert d["macs"] == p.macs and len(d["layers"]) == 6 and d["layers"][0]["output_shape"] == [1, 8, 8, 8]
    text = str(p)
    assert "BatchNorm2d" in text and f"{p.macs:,}" in text


@pytest.mark.parametrize("shape", [(48, 48), (1, 2, 3, 4, 5), (1, 0, 48), (1, -4, 4), (1.0, 4, 4), (True, 4, 4)])
def test_bad_input_shape(shape):
    with pytest.raises(ValueError, match="input_shape"):
        profile(nn.Flatten(), shape)


def test_bad_model_and_options():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got type"):
        profile(nn.Linear, (1, 2, 3))
    with pytest.raises(TypeError, match="input_shape"):
        profile(nn.Flatten(), 3)
    with pytest.raises(ValueError, match="execute"):
        profile(nn.Flatten(), (1, 2, 3), execute="gpu")
    with pytest.raises(ValueError, match=r"cannot run at input_shape \(1, 1, 8, 8\)"):
        profile(nn.Conv2d(3, 4, 3), (1, 8, 8))  # 3 channels expected
    with pytest.raises(ValueError, match="counter"):
        compare(nn.Flatten(), (1, 2, 3), counters=("ptflops",))


def test_compare_explains_each_difference_from_the_data():
    pytest.importorskip("fvcore")
    pytest.importorskip("thop")
    net = bn_net()
    c = compare(net, (3, 10, 10))
    ours = c.ours
    bn_elements, pool_inputs = 8 * 64, 8 * 64
    by = {r.name: r for r in c.counters}
    assert all(r.available for r in c.counters)
    # fvcore: its surplus is exactly BatchNorm (2 per element) plus adaptive pooling (1 per input element)
    assert by["fvcore"].difference == 2 * bn_elements + pool_inputs
    assert any("BatchNorm2d" in r and f"+{2 * bn_elements:,}" in r for r in by["fvcore"].reasons)
    # FlopCounterMode reports FLOPs: exactly twice our MACs
    assert by["flop_counter"].total == 2 * ours.macs and by["flop_counter"].difference == 0
    # thop: hooks on modules; its BatchNorm rule is reported with the per-element figure it implies
    assert any("BatchNorm2d" in r for r in by["thop"].reasons)
    assert "fvcore" in str(c) and json.dumps(c.to_dict())


def test_compare_reports_functional_ops_and_skipped_ops():
    pytest.importorskip("fvcore")
    c = compare(Functional(), (3, 8, 8), counters=("fvcore", "flop_counter", "thop"))
    fv, fc, th = c.counters
    assert fv.available and fv.difference == 0
    assert any("add" in r and "elementwise: 512" in r for r in fv.reasons)
    assert fc.difference == 0 and len(fc.reasons) == 1  # the unit line only: every op agrees
    if th.available:  # thop's module hooks never see F.conv2d run by the root's forward
        assert th.difference == -256 * 27
        assert any("outside leaf modules" in r and "convolution x1" in r for r in th.reasons)


def test_mobilenet_v1_224_exact_macs():
    models = pytest.importorskip("compress.models")
    p = profile(models.create("mobilenet_v1", in_chans=3, num_classes=1000, input_size=224), (3, 224, 224),
                serialize=False)
    # conv 567,716,352 + fc 1,024,000 (checked against fvcore's conv and linear entries); paper: 569M, 4.2M
    assert p.macs == 568_740_352
    assert p.param_count == 4_231_976 and p.param_count - p.norm_param_count == 4_210_088
    assert p.unsupported == {}


def test_cli_profile_table_and_json(capsys):
    pytest.importorskip("compress.models")
    from compress.cli import main

    assert main(["profile", "mobilenet_v1", "--width", "0.5", "--input", "1x48x48", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["input_shape"] == [1, 1, 48, 48] and d["model"]["build_args"]["width_mult"] == 0.5 and d["model"]["build_args"]["in_chans"] == 1
    assert d["macs"] == sum(layer["macs"] for layer in d["layers"]) and d["unsupported"] == {}
    assert main(["profile", "cnn", "--input", "3x32x32", "--num-classes", "10"]) == 0
    out = capsys.readouterr().out
    assert "MACs" in out and "1x3x32x32" in out and "x10" in out


def test_cli_profile_rejects_bad_input(capsys):
    pytest.importorskip("compress.models")
    from compress.cli import main

    assert main(["profile", "mobilenet_v1", "--input", "3x48x48", "--in-chans", "1"]) == 2
    assert "--in-chans 1 disagrees" in capsys.readouterr().err
    assert main(["profile", "mobilenet_v1", "--input", "48x48"]) == 2
    assert "--input 48x48" in capsys.readouterr().err


def _registered_models():
    try:
        from compress.models import list_models
    except ImportError:
        return []
    return list_models()


@pytest.mark.parametrize("name", _registered_models())
def test_every_registered_model_counts_like_flop_counter(name):
    from torch.utils.flop_counter import FlopCounterMode

    from compress.models import create

    model = create(name, width_mult=0.5).eval()
    p = profile(model, (1, 48, 48), serialize=False)
    assert p.unsupported == {} and p.macs > 0
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 1, 48, 48))
    assert 2 * p.macs == counter.get_total_flops()  # an independent count of the same ops, in FLOPs


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_model_meta_and_real_agree_and_files_match_cpu():
    cpu = bn_net()
    gpu = bn_net().cuda()
    gpu.load_state_dict(cpu.state_dict())
    meta = profile(gpu, (2, 3, 10, 10))
    real = profile(gpu, (2, 3, 10, 10), execute="real")
    assert meta.executed_on == "meta" and real.executed_on.startswith("cuda")
    assert (meta.macs, meta.flops, meta.unsupported) == (real.macs, real.flops, {})
    assert [layer.output_shape for layer in meta.layers] == [layer.output_shape for layer in real.layers]
    assert meta.file_size_bytes == profile(cpu, (2, 3, 10, 10)).file_size_bytes
    assert all(t.is_cuda for t in gpu.state_dict().values())
