"""``ScaledLoss``: a model whose loss, and so every gradient, is multiplied by a fixed factor.

Taught in notebook 03, section "1. The problem: fp16 flushes small gradients to zero".

Notebook 03 uses it to give the course's tiny GPT-2 the small gradients of a bigger job. Under
gradient accumulation over ``k`` micro-batches, each backward pass sees ``loss / k``: its
gradients are ``k`` times smaller, and in fp16 they underflow ``k`` times sooner. So
``ScaledLoss(model, 1 / 1024)`` backpropagates exactly what each micro-batch of a 1024-step
accumulation would::

    small = ScaledLoss(model, factor=2.0**-10)
    history = train(small, batches, steps=20, precision="fp16-emulated", scaler=None)

The wrapped model is trained in place (its parameters are ``model``'s).

``GradientAgreement(batch)`` is a ``train()`` callback for the same notebook (section 1, "Why
the loss climbs back"): at each step it compares the gradient the optimizer is about to use with
the fp32 gradient of the same batch at the same weights.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
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


class GradientAgreement:
    """A ``train()`` callback: before each update, the cosine between the gradient in ``.grad``
    (what the optimizer is about to use) and the fp32 gradient of ``batch`` at the same weights,
    computed on a copy of the model without autocast or emulation (``cosines``, one per step).

    ``substitute=True`` then replaces ``.grad`` by that fp32 gradient, set to zero wherever the
    received gradient is exactly zero: a run that loses the flushed values and nothing else.
    Use it with ``grad_accum_steps=1`` and the batch the run trains on (the reference is one
    batch). The reference pass runs under ``torch.random.fork_rng``: the run's random state is
    left as it was.
    """

    def __init__(self, batch: Mapping, substitute: bool = False) -> None:
        if not isinstance(batch, Mapping):
            raise TypeError(f"batch must be a dict of tensors, got {type(batch).__name__}")
        if not isinstance(substitute, bool):
            raise TypeError(f"substitute must be True or False, got {substitute!r}")
        self.batch = batch
        self.substitute = substitute
        self.cosines: list[float] = []

    def on_before_optimizer_step(self, state) -> None:
        params = [p for p in state.model.parameters() if p.requires_grad]
        reference = copy.deepcopy(state.model)
        ref_params = [p for p in reference.parameters() if p.requires_grad]
        device = params[0].device
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in self.batch.items()}
        with torch.random.fork_rng(devices=[]):
            output = reference(**batch)
            loss = output if isinstance(output, torch.Tensor) else output.loss
            loss.float().backward()
        received = torch.cat([_grad_of(p).flatten().float() for p in params])
        fp32 = torch.cat([_grad_of(p).flatten().float() for p in ref_params])
        cosine = torch.nn.functional.cosine_similarity(received, fp32, dim=0)
        self.cosines.append(cosine.item())
        if self.substitute:
            for p, q in zip(params, ref_params, strict=True):
                grad = _grad_of(p)
                p.grad = torch.where(grad != 0, _grad_of(q).to(grad.dtype), torch.zeros_like(grad))


def _grad_of(param: torch.nn.Parameter) -> torch.Tensor:
    return param.grad if param.grad is not None else torch.zeros_like(param)


DRIFT_COLOURS = ("black", "tab:blue", "tab:purple", "tab:green", "tab:orange")


def plot_gradient_drift(losses: Mapping[str, Sequence[float]], cosines: Sequence[float]):
    """Two panels, one point per step: left, the loss of each run (``{label: losses}``, in true
    units: ``ScaledLoss``'s factor divided out), coloured in the order of ``DRIFT_COLOURS``;
    right, ``cosines`` (a ``GradientAgreement``'s: the cosine between the gradient an fp16 run
    received and the fp32 gradient). Taught in notebook 03, section "1. The problem: fp16
    flushes small gradients to zero" (why the unscaled loss climbs back). Returns the figure."""
    import matplotlib.pyplot as plt

    if not isinstance(losses, Mapping) or not losses:
        raise TypeError("losses must be a non-empty dict {run label: list of losses}")
    if len(losses) > len(DRIFT_COLOURS):
        raise ValueError(f"at most {len(DRIFT_COLOURS)} runs, got {len(losses)}")
    cosines = [float(c) for c in cosines]
    if not cosines:
        raise ValueError("cosines is empty: run the GradientAgreement callback first")
    fig, (ax_loss, ax_cos) = plt.subplots(1, 2, figsize=(11, 3.8))
    for (label, values), colour in zip(losses.items(), DRIFT_COLOURS, strict=False):
        values = [float(v) for v in values]
        ax_loss.plot(range(1, len(values) + 1), values, marker=".", label=label, color=colour)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss (ScaledLoss's factor divided out)")
    ax_loss.set_title("Losing the zeros alone does not undo training")
    ax_loss.legend(fontsize="small")
    ax_cos.plot(range(1, len(cosines) + 1), cosines, marker="o", color="tab:blue")
    ax_cos.axhline(0, color="tab:gray", linewidth=1)
    ax_cos.set_xlabel("step")
    ax_cos.set_ylabel("cosine(fp16 gradient, fp32 gradient)")
    ax_cos.set_title("fp16, no scaling: its gradient drifts away from fp32's")
    fig.tight_layout()
    return fig


__all__ = ["DRIFT_COLOURS", "GradientAgreement", "ScaledLoss", "plot_gradient_drift"]
