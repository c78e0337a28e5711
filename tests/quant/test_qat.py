"""Trained quantization: straight-through fake quantization and centroid training through a WeightTransform."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compress.quant.qat import WeightTransform, fake_quant_linear


def test_ste_passes_gradients_through_rounding():
    w = torch.randn(8, 16, requires_grad=True)
    out = fake_quant_linear(w, 4)
    out.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))
    assert torch.unique(out.detach()[0]).numel() <= 15


def test_centroid_gradients_are_summed_and_masks_hold():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))
    mask = torch.rand(32, 64) < 0.3
    t = WeightTransform(model, masks={"0.weight": mask}, codecs={"0.weight": "kmeans2", "2.weight": "int4"})
    assert (model[0].weight[~mask] == 0).all()
    w = t.weights()
    (w["0.weight"] * 3).sum().backward()
    counts = torch.bincount(t.indices["0.weight"], minlength=4).float()
    assert torch.allclose(t.codebooks["0.weight"].grad, 3 * counts)
    ids = {id(p) for p in t.trainable()}
    assert id(model[0].weight) not in ids and id(t.codebooks["0.weight"]) in ids and id(model[2].weight) in ids
    with torch.no_grad():
        t.codebooks["0.weight"].add_(0.1)
    t.materialize()
    assert (model[0].weight[~mask] == 0).all()
    assert torch.unique(model[0].weight[mask]).numel() <= 4
    with pytest.raises(ValueError, match="lacks"):
        WeightTransform(model, codecs={"9.weight": "int4"})


def test_fine_tuning_through_the_training_loop_keeps_masks_and_centroids():
    from compress import data
    from compress.train import TrainConfig, fit

    bundle = data.synthetic(120, num_classes=3, size=8, seed=0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 3))
    mask = torch.rand(32, 64) < 0.5
    final = mask & (torch.arange(64) < 32)
    calls = []

    def prune_more(step, total):              # a schedule changes the masks while training goes on
        calls.append((step, total))
        if step == total // 2:
            t.set_masks({"1.weight": final})

    t = WeightTransform(model, masks={"1.weight": mask}, codecs={"3.weight": "kmeans2"}, on_step=prune_more)
    codebook = t.codebooks["3.weight"].detach().clone()
    run = fit(model, bundle, TrainConfig(epochs=2, batch_size=32, bn_recalibrate=0, device="cpu"),
              weight_transform=t, progress=False)
    total = calls[-1][1]
    assert calls == [(s, total) for s in range(1, total + 1)] and len(run.history) == 2
    assert (model[1].weight[~final] == 0).all() and (model[1].weight[final] != 0).all()
    assert not torch.equal(t.codebooks["3.weight"].detach(), codebook)             # the centroids trained
    assert set(model[3].weight.flatten().tolist()) <= set(t.codebooks["3.weight"].detach().half().float().tolist())
    with pytest.raises(ValueError, match="no mask"):
        t.set_masks({"3.weight": torch.ones(3, 32, dtype=torch.bool)})


@pytest.mark.parametrize("bad", [dict(prune_epochs=-1), dict(finetune_epochs=float("inf")), dict(prune_lr=0),
                                 dict(finetune_lr=-1e-3), dict(batch_size=1), dict(temperature=0), dict(alpha=1.5),
                                 dict(mask_every=0)])
def test_deep_compression_refuses_bad_fine_tuning_settings(bad):
    from compress.quant.deep import DeepConfig

    DeepConfig(prune_epochs=0.3, finetune_epochs=0.5, batch_size=64, temperature=2.0)   # fractions are fine
    with pytest.raises(ValueError, match="DeepConfig"):
        DeepConfig(**bad)
