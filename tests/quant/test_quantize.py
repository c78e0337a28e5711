"""Codec round trips with their error bounds, bit packing, BatchNorm folding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from compress import models as M
from compress import quant as Q
from compress.quant.linear import dequantize_linear, quantize_linear
from compress.blocks import ConvNormAct, DepthwiseSeparableConv, InvertedResidual, MLPBlock


def _w(*shape, seed=0, scale=0.1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * scale


# ------------------------------------------------------------------ codec parsing
@pytest.mark.parametrize("text,name,bits,per_channel", [
    ("fp32", "fp32", 8, True), ("fp16", "fp16", 8, True), ("int8", "int8", 8, True),
    ("int8-tensor", "int8", 8, False), ("kmeans1", "kmeans", 1, True), ("KMEANS8", "kmeans", 8, True)])
def test_codec_parse(text, name, bits, per_channel):
    c = Q.Codec.parse(text)
    assert (c.name, c.bits, c.per_channel) == (name, bits, per_channel)
    assert Q.Codec.parse(c.label) == c
    assert Q.Codec.from_json(c.to_json()) == c


@pytest.mark.parametrize("text", ["int4", "kmeans", "kmeans9", "kmeans0", "fp8", ""])
def test_codec_parse_rejects(text):
    with pytest.raises(ValueError, match="codec"):
        Q.Codec.parse(text)


def test_codec_rejects_bad_fields():
    with pytest.raises(ValueError):
        Q.Codec(name="kmeans", bits=9)
    with pytest.raises(ValueError):
        Q.Codec(scale_dtype="bfloat16")
    with pytest.raises(ValueError, match="unknown fields"):
        Q.Codec.from_json({"name": "fp16", "evil": 1})
    assert Q.Codec("fp32").keep_dtype == "float32"


# ------------------------------------------------------------------ fp16
def test_fp16_round_trip_bound():
    w = _w(1000, scale=3.0)
    back = Q.to_fp16(w).float()
    # round to nearest: relative error <= 2**-11 for normal numbers
    assert torch.all((w - back).abs() <= w.abs() * 2 ** -11 + 2 ** -25)
    assert torch.equal(Q.to_fp16(back).float(), back)  # idempotent


def test_fp16_overflow_raises():
    with pytest.raises(ValueError, match="float16 range"):
        Q.to_fp16(torch.tensor([1e6, 1.0]))


# ------------------------------------------------------------------ int8
@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("scale_dtype", [torch.float32, torch.float16])
def test_int8_round_trip_bound(per_channel, scale_dtype):
    w = _w(16, 8, 3, 3) * torch.logspace(-3, 1, 16).reshape(16, 1, 1, 1)
    q, s = quantize_linear(w, per_channel=per_channel, scale_dtype=scale_dtype)
    assert q.dtype == torch.int8 and s.dtype == scale_dtype
    assert s.shape == ((16,) if per_channel else (1,))
    assert int(q.abs().max()) <= 127
    back = dequantize_linear(q, s)
    s32 = s.float().reshape(-1, 1, 1, 1) if per_channel else s.float()
    assert torch.all((w - back).abs() <= s32 / 2 * (1 + 1e-6))
    # each channel (or the tensor) uses the full range: the largest |q| is 127 or 126 (scale rounded up),
    # except where an fp16 scale is subnormal (< 2**-14) and rounding up costs more than one step
    amax = q.reshape(16, -1).abs().amax(1) if per_channel else q.abs().max().reshape(1)
    normal = s.float() >= (2 ** -14 if scale_dtype == torch.float16 else 0)
    assert torch.all(amax[normal] >= 126)
    # exact: the dequantized values divided by the stored scale give back the stored integers
    assert torch.equal(torch.round(back / s32).to(torch.int8), q)


def test_int8_zero_channel():
    w = _w(4, 10)
    w[2] = 0
    q, s = quantize_linear(w)
    assert s[2] == 1 and torch.all(q[2] == 0)
    assert torch.all(dequantize_linear(q, s)[2] == 0)


def test_int8_scale_rounds_up():
    w = torch.tensor([[0.1234567], [-3.3333333]])
    q, s = quantize_linear(w, scale_dtype=torch.float16)
    assert torch.all(s.float() * 127 >= w.abs().squeeze(1))


# ------------------------------------------------------------------ k-means
@pytest.mark.parametrize("bits", range(1, 9))
def test_kmeans_round_trip_bound(bits):
    w = _w(64, 32, seed=bits)
    idx, cb = Q.quantize_kmeans(w, bits)
    assert idx.dtype == torch.uint8 and idx.shape == w.shape and cb.shape == (2 ** bits,)
    assert int(idx.max()) < 2 ** bits
    back = Q.dequantize_kmeans(idx, cb)
    # every weight maps to its nearest stored centroid
    dist = (w.reshape(-1, 1) - cb.float().reshape(1, -1)).abs().min(1).values
    assert torch.allclose((w - back).abs().reshape(-1), dist, atol=1e-7)
    # Lloyd never does worse than its linear-grid start (small slack for the fp16 codebook)
    grid = torch.linspace(w.min().item(), w.max().item(), 2 ** bits).to(torch.float16).float()
    grid_mse = ((w.reshape(-1, 1) - grid.reshape(1, -1)).abs().min(1).values ** 2).mean()
    mse = ((w - back) ** 2).mean()
    assert mse <= grid_mse * 1.01 + 1e-12
    # the bound: no value is farther than half the widest gap, or beyond the outer centroids' clusters
    assert (w - back).abs().max() <= (w.max() - w.min()) / 2 + 1e-6


def test_kmeans_deterministic_and_exact_on_few_values():
    w = torch.tensor([0.5, -1.0, 2.0, 0.5, 2.0, -1.0] * 50).reshape(30, 10)
    idx, cb = Q.quantize_kmeans(w, 2, codebook_dtype=torch.float32)
    assert torch.equal(Q.dequantize_kmeans(idx, cb), w)  # 3 distinct values, 4 centroids: lossless
    idx2, cb2 = Q.quantize_kmeans(w, 2, codebook_dtype=torch.float32)
    assert torch.equal(idx, idx2) and torch.equal(cb, cb2)


# ------------------------------------------------------------------ bit packing
@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 1001])
def test_pack_unpack_exact(bits, count):
    rng = np.random.default_rng(bits * 1000 + count)
    v = rng.integers(0, 2 ** bits, size=count).astype(np.uint8)
    p = Q.pack_bits(v, bits)
    assert p.dtype == np.uint8 and p.size == math.ceil(count * bits / 8)
    assert np.array_equal(Q.unpack_bits(p, bits, count), v)


def test_pack_layout_lsb_first():
    assert Q.pack_bits(np.array([1, 0, 1, 1, 0, 0, 0, 1]), 1).tolist() == [0b10001101]
    assert Q.pack_bits(np.array([3, 1]), 2).tolist() == [0b0111]
    assert Q.pack_bits(np.array([0xA, 0x5, 0xF]), 4).tolist() == [0x5A, 0x0F]


def test_pack_rejects():
    with pytest.raises(ValueError, match="values must be"):
        Q.pack_bits(np.array([4]), 2)
    with pytest.raises(ValueError, match="bytes"):
        Q.unpack_bits(np.zeros(3, np.uint8), 4, 8)
    with pytest.raises(ValueError):
        Q.pack_bits(np.array([1]), 9)


# ------------------------------------------------------------------ state dicts
def test_which_tensors_are_quantized():
    c = Q.Codec.parse("int8")
    assert Q.quantizable(_w(64, 64), c)
    assert not Q.quantizable(_w(64), c)              # bias / BN vector
    assert not Q.quantizable(_w(8, 1, 3, 3), c)      # 72 < min_numel
    assert not Q.quantizable(_w(64, 64), Q.Codec.parse("fp16"))
    # k-means only where indices + codebook beat keeping the tensor in fp16
    assert not Q.quantizable(_w(16, 32), Q.Codec.parse("kmeans8"))  # 512 + 512 bytes >= 1024
    assert Q.quantizable(_w(16, 32), Q.Codec.parse("kmeans4"))


@pytest.mark.parametrize("codec", ["fp32", "fp16", "int8", "int8-tensor", "kmeans3"])
def test_state_dict_round_trip(codec):
    sd = {"a.weight": _w(32, 16, 3, 3), "a.bias": _w(32), "bn.num_batches_tracked": torch.tensor(5),
          "idx": torch.arange(4)}
    enc = Q.encode_state_dict(sd, codec)
    assert "bn.num_batches_tracked" not in enc
    dec = Q.decode_state_dict(enc)
    assert dec["a.weight"].dtype == torch.float32 and dec["a.weight"].shape == sd["a.weight"].shape
    assert torch.equal(dec["idx"], sd["idx"])
    if codec == "fp32":
        assert torch.equal(dec["a.weight"], sd["a.weight"])
    # decoding is a fixed point: encoding the decoded tensors again gives the same values
    assert all(torch.equal(Q.decode_state_dict(Q.encode_state_dict(dec, codec))[k], dec[k]) for k in dec)


# ------------------------------------------------------------------ BatchNorm folding
def _randomize_bn(model):
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))
    return model.eval()


def _check_fold(model, x, expected_folds):
    model = _randomize_bn(model)
    folded = M.fold_batchnorm(model)
    assert M.count_batchnorm(model) - M.count_batchnorm(folded) == expected_folds
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), atol=1e-5, rtol=1e-4)
    return folded


def test_fold_plain_sequential():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 5),
                          nn.BatchNorm1d(5))
    folded = _check_fold(model, torch.randn(3, 1, 8, 8), 3)
    assert not M.count_batchnorm(folded) and M.count_batchnorm(model)
    assert not any("running" in k or "num_batches" in k for k in folded.state_dict())
    assert folded[0].bias is not None and isinstance(folded[1], nn.Identity)


def test_fold_compress_blocks():
    torch.manual_seed(0)
    model = nn.Sequential(ConvNormAct(1, 8, 3, stride=2), DepthwiseSeparableConv(8, 16),
                          InvertedResidual(16, 16, expansion=2, se_ratio=0.25),
                          ConvNormAct(16, 8, 1, order="act_norm"),  # BN after the activation: not folded
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), MLPBlock(8, 6), nn.Linear(6, 3))
    folded = _check_fold(model, torch.randn(2, 1, 12, 12), 1 + 2 + 3 + 1)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules()) == 1


def test_fold_untraceable_falls_back_to_sequential():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace this
                return self.body(x)
            return self.body(-x)

    _check_fold(Branchy(), torch.randn(2, 1, 6, 6), 1)


def test_fold_skips_shared_output():
    class TwoUsers(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y  # the conv output is used twice: folding would change it

    _check_fold(TwoUsers(), torch.randn(2, 1, 6, 6), 0)


# ------------------------------------------------------------------ whole models
@pytest.mark.parametrize("codec,fold", [("fp16", False), ("fp16", True), ("int8", True), ("kmeans4", True)])
def test_quantize_model(codec, fold):
    torch.manual_seed(0)
    model = _randomize_bn(nn.Sequential(ConvNormAct(1, 16, 3), DepthwiseSeparableConv(16, 32),
                                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 7)))
    qm = Q.quantize(model, Q.CodecConfig(codec, fold_bn=fold)).model
    assert not qm.training and (M.count_batchnorm(qm) > 0) != fold and M.count_batchnorm(model)
    x = torch.randn(4, 1, 10, 10)
    with torch.no_grad():
        ref, out = model(x), qm(x)
    assert out.dtype == torch.float32
    assert (out - ref).abs().max() < (0.05 if codec != "kmeans4" else 0.5) * ref.abs().max()
    assert torch.equal(Q.quantize(model, Q.CodecConfig(codec, fold_bn=fold)).model(x), out)  # deterministic


# ---------------------------------------------------------------------------------------------- the one verb
def test_quantize_dispatches_on_the_config_type():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))
    q = Q.quantize(model, Q.CodecConfig.parse("kmeans4"))
    assert q.plan is None and q.config.label == "kmeans4" and "kmeans4" in q.table()
    assert q.to_dict()["method"] == "CodecConfig" and q.storage is q.config
    names = [n for n, p in model.named_parameters() if p.ndim > 1]
    plan = Q.Plan([Q.LayerPlan(n, "int4") for n in names])
    p = Q.quantize(model, Q.PlanConfig(plan))
    assert p.plan is plan and p.storage.plan is plan and "int4" in p.table()
    x = torch.randn(3, 64)
    assert not torch.equal(p.model(x), model(x))                       # a copy went through the codecs
    with pytest.raises(TypeError, match="no quantizer for dict; registered: CodecConfig, PlanConfig, DeepConfig"):
        Q.quantize(model, {"codec": "int8"})
    with pytest.raises(TypeError, match="nn.Module"):
        Q.quantize("model", Q.CodecConfig())
    with pytest.raises(ValueError, match="already registered"):
        Q.register_quantizer(Q.CodecConfig)(lambda m, c: None)


@pytest.mark.parametrize("text, label, fold", [("int8+fold", "int8+fold", True), ("fp16", "fp16", False),
                                               (" KMEANS3+fold ", "kmeans3+fold", True)])
def test_codec_config_names(text, label, fold):
    config = Q.CodecConfig.parse(text)
    assert config.label == label and config.fold_bn is fold and Q.CodecConfig.parse(config) is config
    for bad in ("int8+prune", "fp16+", "int9"):
        with pytest.raises(ValueError):
            Q.CodecConfig.parse(bad)


def test_deep_compression_through_the_verb(tmp_path):
    from compress import data, models
    from compress.export import artifact
    from compress.train import TrainConfig, fit

    bundle = data.load("synthetic:n=160,classes=3,size=16", seed=0)
    torch.manual_seed(0)
    run = fit(models.create("cnn", channels=(8, 16), num_classes=3, input_size=16), bundle,
              TrainConfig(epochs=2, augment=False, device="cpu"), progress=False)

    def file_bytes(model, plan):
        return len(artifact.serialize(model, plan=plan))

    budget = len(artifact.serialize(run.model, codec="int8", fold_bn=True)) // 2
    config = Q.DeepConfig(prune_epochs=0.5, finetune_epochs=0.5, codecs=("int4", "kmeans2"))
    q = Q.quantize(run.model, config, data=bundle, normalizer=run.normalizer, max_bytes=budget, file_bytes=file_bytes)
    assert q.config is config and q.plan is not None and q.size_bytes <= budget and q.log
    path = artifact.save(q.model, tmp_path / "deep.npz", config=q.storage)
    assert path.stat().st_size == q.size_bytes
    x = run.normalizer(bundle.val.x[:4])
    with torch.no_grad():
        assert torch.equal(artifact.load(path)(x), q.model(x))
    assert q.to_dict()["method"] == "DeepConfig" and "bytes" in q.table()
    with pytest.raises(TypeError, match="DataBundle"):
        Q.quantize(run.model, config, data=bundle.train, max_bytes=budget, file_bytes=file_bytes)
    with pytest.raises(ValueError, match="max_bytes"):
        Q.quantize(run.model, config, data=bundle, max_bytes=0, file_bytes=file_bytes)
    # the file written from the result's model is the file the method measured, and writing it again changes nothing
    again = artifact.save(q.model, tmp_path / "again.npz", config=q.storage)
    assert again.read_bytes() == path.read_bytes()
