"""The before/after table's bytes of a ``.pt`` state dict, counted without writing the tensors, are exactly what
``compress.budget.state_dict_bytes`` measures by really serializing them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compress import models
from compress.budget import state_dict_bytes
from compress.prune.measure import pt_state_dict_bytes


class Odd(nn.Module):
    """Shared weights, a float16 buffer, an int buffer, a non-contiguous view, a channels-last conv, scalars."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(7, 300)
        self.b = nn.Linear(300, 7)
        self.c = nn.Linear(7, 300)
        self.c.weight = self.a.weight                        # one tensor, two owners
        self.tied = self.a                                   # one module under two names
        self.conv = nn.Conv2d(3, 5, 3).to(memory_format=torch.channels_last)
        self.register_buffer("fp16", torch.ones(11, dtype=torch.float16))
        self.register_buffer("count", torch.tensor(70000))
        self.register_buffer("strided", torch.arange(40.0).view(5, 8)[:, ::2])
        self.scale = nn.Parameter(torch.tensor(1.5))


@pytest.mark.parametrize("file_format", ["pt-fp16", "pt-fp32"])
@pytest.mark.parametrize("make", [Odd, lambda: models.create("mobilenet_v2", width_mult=0.25),
                                  lambda: models.create("cnn"), lambda: nn.Sequential()])
def test_counted_bytes_are_the_written_ones(make, file_format):
    model = make()
    assert pt_state_dict_bytes(model, file_format) == state_dict_bytes(model, file_format)


def test_other_formats_and_meta_models_are_refused():
    with pytest.raises(ValueError, match="npz-fp16"):
        pt_state_dict_bytes(Odd(), "npz-fp16")
    with torch.device("meta"):
        model = nn.Linear(3, 4)
    with pytest.raises(ValueError, match="meta"):
        pt_state_dict_bytes(model)
