"""compress.prune.surgery.copy_module: the same copy as copy.deepcopy (values, sharing, attributes, independence)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from compress.prune.surgery import copy_module


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 4, 3)
        self.b = self.a                               # the same module twice
        self.norm = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 3)
        self.tail = nn.Linear(3, 4)
        self.tail.weight = nn.Parameter(self.head.weight.detach().t().contiguous())
        self.twin = nn.Linear(4, 3)
        self.twin.weight = self.head.weight           # a tied parameter
        self.register_buffer("scale", torch.ones(4))
        self.names = ["a", "b"]                       # a mutable attribute
        self.shape = (1, 2, 3)
        self.register_forward_hook(lambda m, i, o: None)


class Custom(nn.Linear):
    def __deepcopy__(self, memo):                     # a class's own copy is respected
        new = nn.Linear.__new__(Custom)
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        new.copied_by = "custom"
        return new


def test_copy_module_is_deepcopy():
    torch.manual_seed(0)
    model = nn.Sequential(Shared(), Custom(4, 2))
    ours, ref = copy_module(model, {}), copy.deepcopy(model)
    assert type(ours) is type(ref) and [type(m) for m in ours.modules()] == [type(m) for m in ref.modules()]
    assert ours.state_dict().keys() == ref.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), ref.state_dict().values()))
    s = ours[0]
    assert s.b is s.a and s.twin.weight is s.head.weight                     # sharing kept
    assert s.names == ["a", "b"] and s.names is not model[0].names           # attributes copied, not shared
    assert s.shape == (1, 2, 3) and len(s._forward_hooks) == 1
    assert ours[1].copied_by == "custom"
    original = {id(t) for t in (*model.parameters(), *model.buffers())}
    assert not original & {id(t) for t in (*ours.parameters(), *ours.buffers())}
    with torch.no_grad():
        s.a.weight.add_(1.0)
    assert not torch.equal(s.a.weight, model[0].a.weight)                    # independent storage


def test_copy_module_shares_what_the_memo_says():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 4))
    keep = model[0].weight
    ours = copy_module(model, {id(keep): keep})
    assert ours[0].weight is keep and ours[1].weight is not model[1].weight
