"""compress.train.stack: K models as one, each member's forward and gradients exactly its own."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compress import models
from compress.train.stack import (StackedLinear, member_losses, split_outputs, stack_inputs, stack_models,
                                  stack_state, unstack_state)

FAMILIES = ["mobilenet_v1", "mobilenet_v2", "cnn", "mlp", "fer_hw8_torch", "fer_hw8_keras", "fer_hw3_dnn"]


def _members(name, k=3, **kw):
    out = []
    for seed in range(k):
        torch.manual_seed(seed)
        out.append(models.create(name, width_mult=0.25, num_classes=3, input_size=16, **kw).train())
    return out


@pytest.mark.parametrize("name", FAMILIES)
def test_members_forward_and_gradients_match_their_own(name):
    k = 3
    ms = _members(name, k)
    stacked = stack_models(ms).train()
    torch.manual_seed(5)
    xs = [torch.randn(8, 1, 16, 16) for _ in range(k)]
    ys = torch.randint(0, 3, (k, 8))
    for m in [stacked, *ms]:           # dropout masks come from one RNG: compare without them
        for mod in m.modules():
            if isinstance(mod, nn.Dropout):
                mod.p = 0.0
    out = stacked(stack_inputs(xs))
    member_losses(out, ys).sum().backward()
    grads = unstack_state({n: p.grad for n, p in stacked.named_parameters()}, k)
    outs = split_outputs(out, k)
    for m, model in enumerate(ms):
        alone = model(xs[m])
        assert torch.allclose(alone, outs[m], atol=1e-5, rtol=1e-4)
        F.cross_entropy(alone, ys[m]).backward()
        for n, p in model.named_parameters():
            assert torch.allclose(p.grad, grads[m][n], atol=1e-5, rtol=1e-3), n
    # BatchNorm statistics moved per member
    states = unstack_state(stacked.state_dict(), k)
    for m, model in enumerate(ms):
        for n, v in model.state_dict().items():
            assert torch.allclose(v.float(), states[m][n].float(), atol=1e-5), n


def test_state_round_trip_and_linear_layout():
    ms = _members("mlp", 2)
    states = [m.state_dict() for m in ms]
    back = unstack_state(stack_state(states), 2)
    for a, b in zip(states, back):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    lin = StackedLinear(2, 4, 3)
    assert lin.weight.shape == (6, 4) and lin.bias.shape == (6,)


def test_unstackable_models_are_refused():
    with pytest.raises(ValueError, match="no models"):
        stack_models([])
    with pytest.raises(ValueError, match="another architecture"):
        stack_models([models.create("cnn", width_mult=0.25), models.create("cnn", width_mult=0.5)])
    with pytest.raises(ValueError, match="LayerNorm"):
        stack_models([nn.Sequential(nn.Flatten(), nn.LayerNorm(4))] * 2)

    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x).softmax(0)

    with pytest.raises(ValueError, match="not known to act per channel"):
        stack_models([Custom(), Custom()])
