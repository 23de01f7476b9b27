"""Attention-logit overflow on a real GPT-2: fine in bf16, inf then NaN in fp16.

An attention logit is a dot product of a query and a key, ``q . k``, summed over the head's
dimensions before it is divided by sqrt(head_dim). When training makes queries and keys grow
("attention logit growth", Dehghani et al. 2023, https://arxiv.org/abs/2302.05442; Wortsman et
al. 2023, https://arxiv.org/abs/2309.14322), that product can pass fp16's largest value, 65504:
the matmul's fp16 output is inf, softmax of a row with inf in it is NaN, and so is the loss.
bf16 has fp32's exponent range, so the same logits stay finite.

    with scaled_queries(model, 100.0):
        attention_logit_max(model, batch)            # largest |q . k| per layer, in fp32
        forward_report(model, batch, torch.float16)  # loss nan, attention probabilities nan
        forward_report(model, batch, torch.bfloat16) # finite

The functions expect a Hugging Face GPT-2 (``model.transformer.h[i].attn.c_attn``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch

__all__ = ["ForwardReport", "attention_logit_max", "forward_report", "scaled_queries"]

_AUTOCAST_DTYPES = (torch.float16, torch.bfloat16)


def _blocks(model: torch.nn.Module):
    try:
        return list(model.transformer.h)
    except AttributeError:
        raise TypeError(
            f"expected a Hugging Face GPT-2 (model.transformer.h), got {type(model).__name__}"
        ) from None


@contextlib.contextmanager
def scaled_queries(model: torch.nn.Module, factor: float) -> Iterator[torch.nn.Module]:
    """Multiply every attention layer's query projection (weight and bias) by ``factor``
    inside the block, as if training had grown the queries; the exact weights come back after.
    Every attention logit ``q . k`` is multiplied by ``factor``."""
    if isinstance(factor, bool) or not isinstance(factor, (int, float)):
        raise TypeError(f"factor must be a number, got {factor!r}")
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"factor must be positive and finite, got {factor}")
    blocks = _blocks(model)
    saved = []
    with torch.no_grad():
        for block in blocks:
            proj, width = block.attn.c_attn, block.attn.embed_dim
            saved.append((proj.weight[:, :width].clone(), proj.bias[:width].clone()))
            proj.weight[:, :width] *= factor  # Conv1D: columns [0, width) compute the queries
            proj.bias[:width] *= factor
    try:
        yield model
    finally:
        with torch.no_grad():
            for block, (weight, bias) in zip(blocks, saved, strict=True):
                width = block.attn.embed_dim
                block.attn.c_attn.weight[:, :width] = weight
                block.attn.c_attn.bias[:width] = bias


def _inputs(batch: Mapping, device: torch.device) -> dict:
    if not isinstance(batch, Mapping) or "input_ids" not in batch:
        raise TypeError("batch must be a dict with 'input_ids' (and 'labels' for a loss)")
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@torch.no_grad()
def attention_logit_max(model: torch.nn.Module, batch: Mapping) -> list[float]:
    """The largest |q . k| of each layer (every head, every pair of positions, before the
    division by sqrt(head_dim)), from an fp32 forward pass: the number the fp16 matmul would
    have to hold."""
    blocks = _blocks(model)
    device = next(model.parameters()).device
    found: dict[int, float] = {}

    def hook_for(index: int, attn: torch.nn.Module):
        def hook(_module, _inputs, output):
            q, k, _v = output.float().split(attn.embed_dim, dim=-1)
            heads, dim = attn.num_heads, attn.head_dim
            q = q.unflatten(-1, (heads, dim)).transpose(1, 2)
            k = k.unflatten(-1, (heads, dim)).transpose(1, 2)
            found[index] = (q @ k.transpose(-1, -2)).abs().max().item()

        return hook

    handles = [
        block.attn.c_attn.register_forward_hook(hook_for(i, block.attn))
        for i, block in enumerate(blocks)
    ]
    was_training = model.training
    model.eval()
    try:
        model(**_inputs(batch, device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return [found[i] for i in range(len(blocks))]


@dataclass(frozen=True)
class ForwardReport:
    """What one forward pass in ``dtype`` gave: the loss, whether the logits are all finite,
    the share of attention probabilities that are NaN, and the largest attention probability."""

    dtype: torch.dtype
    loss: float
    logits_finite: bool
    attention_nan_fraction: float
    max_attention_probability: float

    def __str__(self) -> str:
        name = str(self.dtype).removeprefix("torch.")
        return (
            f"{name:>9}: loss {self.loss:.3g} | logits finite: {self.logits_finite} | "
            f"NaN attention probabilities: {100 * self.attention_nan_fraction:.0f}%"
        )


@torch.no_grad()
def forward_report(
    model: torch.nn.Module, batch: Mapping, dtype: torch.dtype = torch.float32
) -> ForwardReport:
    """One forward pass with eager attention (so the attention probabilities can be returned),
    under ``torch.autocast`` for fp16/bf16 or plain fp32; the model is left as it was."""
    if dtype not in (torch.float32, *_AUTOCAST_DTYPES):
        raise ValueError(
            f"dtype must be torch.float32, torch.bfloat16 or torch.float16, got {dtype}"
        )
    _blocks(model)
    device = next(model.parameters()).device
    inputs = _inputs(batch, device)
    previous = model.config._attn_implementation
    was_training = model.training
    model.eval()
    try:
        model.set_attn_implementation("eager")
        with torch.autocast(device.type, dtype=dtype, enabled=dtype in _AUTOCAST_DTYPES):
            out = model(**inputs, output_attentions=True)
    finally:
        model.set_attn_implementation(previous)
        model.train(was_training)
    probabilities = torch.cat([a.float().flatten() for a in out.attentions])
    finite = probabilities[~torch.isnan(probabilities)]
    loss = out.loss.item() if out.loss is not None else math.nan
    return ForwardReport(
        dtype=dtype,
        loss=loss,
        logits_finite=bool(torch.isfinite(out.logits).all()),
        attention_nan_fraction=torch.isnan(probabilities).float().mean().item(),
        max_attention_probability=finite.max().item() if finite.numel() else math.nan,
    )
