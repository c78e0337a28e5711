"""Fixtures shared by the int8 runtime tests (tests/bench)."""

from __future__ import annotations

import pytest
import torch

from compress import models



@pytest.fixture()
def net(randomize_batchnorm):
    """A small FER MobileNet (width 0.25, 3 classes, 16x16) with trained-like BatchNorm statistics, in eval mode."""
    torch.manual_seed(0)
    return randomize_batchnorm(models.create("fer_hw8_torch", width_mult=0.25, num_classes=3, input_size=16)).eval()
