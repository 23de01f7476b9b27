"""``ScaledLoss``: a model whose loss, and so every gradient, is multiplied by a fixed factor.

Notebook 03 uses it to give the course's tiny GPT-2 the small gradients of a bigger job. Under
gradient accumulation over ``k`` micro-batches, each backward pass sees ``loss / k``: its
gradients are ``k`` times smaller, and in fp16 they underflow ``k`` times sooner. So
``ScaledLoss(model, 1 / 1024)`` backpropagates exactly what each micro-batch of a 1024-step
accumulation would::

    small = ScaledLoss(model, factor=2.0**-10)
    history = train(small, batches, steps=20, precision="fp16-emulated", scaler=None)

The wrapped model is trained in place (its parameters are ``model``'s).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
from torch import nn


class ScaledLoss(nn.Module):
    """``ScaledLoss(model, factor)(**batch).loss == model(**batch).loss * factor``."""

    def __init__(self, model: nn.Module, factor: float) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if isinstance(factor, bool) or not isinstance(factor, (int, float)):
            raise TypeError(f"factor must be a number, got {factor!r}")
        if not (factor > 0 and math.isfinite(factor)):
            raise ValueError(f"factor must be positive and finite, got {factor}")
        self.model = model
        self.factor = float(factor)

    def forward(self, **batch) -> SimpleNamespace:
        output = self.model(**batch)
        loss = output if isinstance(output, torch.Tensor) else getattr(output, "loss", None)
        if loss is None:
            raise ValueError(
                "the model returned no loss: a Hugging Face causal LM computes one only when "
                "the batch has 'labels' (for next-token prediction, labels = input_ids)"
            )
        return SimpleNamespace(loss=loss * self.factor)

    def extra_repr(self) -> str:
        return f"factor={self.factor:g}"


__all__ = ["ScaledLoss"]
