import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tiny models run fastest on one intra-op thread (two threads on two shared cores cost 10-50x here).
    Session-wide, so module-scoped fixtures that train or build models get it too."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _randomize_batchnorm(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


@pytest.fixture(scope="session")
def randomize_batchnorm():
    """``randomize_batchnorm(model)``: the model with non-trivial BatchNorm running statistics (as after training,
    so folding and fp16 matter), in eval mode."""
    return _randomize_batchnorm
