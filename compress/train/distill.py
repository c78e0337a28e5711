"""Knowledge distillation (Hinton et al. 2015): the teacher, and the loss against its soft targets."""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from compress.models.card import card_of
from compress.train.runs import Run, load_run

__all__ = ["resolve_teacher", "distillation_loss"]


def resolve_teacher(teacher, device):
    """``(model, normalizer or None, info)`` for a teacher given as a model, a Run or a run folder (or all None)."""
    if teacher is None:
        return None, None, None
    if isinstance(teacher, (str, os.PathLike)):
        teacher = load_run(teacher)
    if isinstance(teacher, Run):
        info = {"path": str(teacher.path) if teacher.path else None,
                "card": teacher.card.to_dict() if teacher.card is not None else None,
                "metrics": teacher.metrics}
        model, norm = teacher.model, teacher.normalizer
    elif isinstance(teacher, nn.Module):
        card = card_of(teacher)
        info = {"path": None, "card": card.to_dict() if card is not None else None, "metrics": None}
        model, norm = teacher, None   # a bare model: assumed to take the student's input
    else:
        raise TypeError(f"teacher must be a model, a Run or a run folder, got {type(teacher).__name__}")
    return model.to(device).eval(), norm, info   # used under no_grad only


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al. 2015: KL divergence of the soft targets at temperature T, times T^2 (which keeps the gradient's
    scale independent of T)."""
    T = temperature
    return F.kl_div(F.log_softmax(student_logits.float() / T, 1), F.log_softmax(teacher_logits.float() / T, 1),
                    reduction="batchmean", log_target=True) * (T * T)
