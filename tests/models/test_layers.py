"""The one layer selection: conv and linear layers by weight size, type and filter_fn, in definition order."""

import pytest
from torch import nn

from compress.models.layers import weight_layers
from compress.prune.unstructured import prunable


def _model():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 64, 3), nn.Flatten(),
                         nn.Linear(64, 32), nn.Linear(32, 2))


def test_weight_layers_selects_by_size_type_and_filter():
    model = _model()
    assert [n for n, _ in weight_layers(model)] == ["0", "2", "4", "5"]           # BatchNorm has a weight too
    assert [n for n, _ in weight_layers(model, min_numel=1024)] == ["2", "4"]     # 64*4*9 = 2304, 64*32 = 2048
    assert [n for n, _ in weight_layers(model, types=(nn.Linear,))] == ["4", "5"]
    assert [n for n, _ in weight_layers(model, filter_fn=lambda m, name: name != "4")] == ["0", "2", "5"]
    assert prunable(model) == ["2.weight", "4.weight"]
    with pytest.raises(ValueError, match="min_numel"):
        weight_layers(model, min_numel=-1)


def test_a_bare_layer_is_selected_under_the_empty_name():
    layer = nn.Linear(40, 40)
    assert [n for n, _ in weight_layers(layer)] == [""] and prunable(layer) == ["weight"]
