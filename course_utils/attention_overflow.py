"""Attention-logit overflow on a real GPT-2: which attention implementation overflows in fp16.

Taught in notebook 02, section "2. Overflow: an attention logit too large for fp16", and notebook
06, section "4. When fp16's range *is* the cause: fixes that exist on a T4".

An attention logit is a dot product of a query and a key,
``q . k``, summed over the head's dimensions and scaled by 1/sqrt(head_dim). When training makes
queries and keys grow ("attention logit growth", Dehghani et al. 2023,
https://arxiv.org/abs/2302.05442; Wortsman et al. 2023, https://arxiv.org/abs/2309.14322), that
product can pass fp16's largest value, 65504. Whether it overflows depends on the attention
implementation:

* eager (transformers' ``eager_attention_forward``: ``matmul(q, k^T) * scaling``): under fp16
  autocast the matmul's result is fp16 *before* the scaling, so it is inf, softmax of a row with
  inf in it is NaN, and so is the loss;
* SDPA (``torch.nn.functional.scaled_dot_product_attention``, what ``from_pretrained`` picks by
  default): a fused kernel that takes q, k, v and returns the attention output; on CPU (traced
  here) it keeps the logits out of fp16 and stays finite on the same input;
* GPT-2's ``reorder_and_upcast_attn=True`` (eager only): q . k in fp32 with autocast off.

bf16 has fp32's exponent range, so every implementation stays finite in bf16.

    with scaled_queries(model, 1e4):
        attention_logit_max(model, batch)                    # largest |q . k| per layer, in fp32
        forward_report(model, batch, torch.float16)          # eager: loss nan
        forward_report(model, batch, torch.float16, "sdpa")  # finite

The functions expect a Hugging Face GPT-2 (``model.transformer.h[i].attn.c_attn``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = [
    "ATTENTION_IMPLEMENTATIONS",
    "ONE_KEY",
    "ForwardReport",
    "attention_logit_max",
    "forward_report",
    "query_key_max",
    "scaled_queries",
]

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


def _per_layer_max(model: torch.nn.Module, batch: Mapping, measure) -> list[float]:
    """Run one eval-mode forward with a hook on each block's ``c_attn`` and return, per layer,
    ``measure(c_attn_output, attn_module)``; the hooks and the training mode are restored."""
    blocks = _blocks(model)
    device = next(model.parameters()).device
    found: dict[int, float] = {}

    def hook_for(index: int, attn: torch.nn.Module):
        def hook(_module, _inputs, output):
            found[index] = measure(output, attn)

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


def _logit_max(output: torch.Tensor, attn: torch.nn.Module) -> float:
    q, k, _v = output.float().split(attn.embed_dim, dim=-1)
    heads, dim = attn.num_heads, attn.head_dim
    q = q.unflatten(-1, (heads, dim)).transpose(1, 2)
    k = k.unflatten(-1, (heads, dim)).transpose(1, 2)
    return (q @ k.transpose(-1, -2)).abs().max().item()


@torch.no_grad()
def attention_logit_max(model: torch.nn.Module, batch: Mapping) -> list[float]:
    """The largest |q . k| of each layer (every head, every pair of positions, before the
    division by sqrt(head_dim)), from an fp32 forward pass: the number the fp16 matmul would
    have to hold."""
    return _per_layer_max(model, batch, _logit_max)


ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa")
ONE_KEY = 0.99  # an attention row "on one key": its largest probability is above this
_ATTENTION_OPS = (
    "bmm",
    "baddbmm",
    "_softmax",
)  # eager attention's kernels (and GPT-2's upcast path)


def _is_attention_op(name: str) -> bool:
    return name in _ATTENTION_OPS or "scaled_dot_product" in name


class _AttentionOpTrace(TorchDispatchMode):
    """Records the attention kernels that actually run (name and the dtype of their first
    input), below autocast: ``bmm``/``baddbmm``/``_softmax`` for eager attention, an
    ``_scaled_dot_product_*`` kernel for SDPA. (In GPT-2 no other op of a forward is a bmm.)"""

    def __init__(self) -> None:
        super().__init__()
        self.ops: dict[str, None] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if _is_attention_op(name):
            first = next((a for a in args if isinstance(a, torch.Tensor)), None)
            dtype = str(first.dtype).removeprefix("torch.") if first is not None else "?"
            self.ops.setdefault(f"{name}({dtype})", None)
        return func(*args, **(kwargs or {}))


@torch.no_grad()
def query_key_max(model: torch.nn.Module, batch: Mapping) -> list[float]:
    """The largest |q| or |k| entry of each layer (the outputs of the query/key projection),
    from an fp32 forward pass: if it stays below 65504, fp16 holds the queries and keys, and an
    overflow can only come from their products."""
    return _per_layer_max(
        model, batch, lambda out, attn: out[..., : 2 * attn.embed_dim].float().abs().max().item()
    )


@dataclass(frozen=True)
class ForwardReport:
    """What one forward pass in ``dtype`` gave, and with which attention implementation: the
    loss, whether the logits are all finite, the share of attention probabilities that are NaN,
    the largest of them, and ``one_key_fraction``: the share of attention rows (one per query,
    head and layer) without NaN that put more than ``ONE_KEY`` (0.99) of their probability on a
    single key (all three ``None`` for SDPA, whose kernels return no probabilities), and
    ``attention_ops``: the attention kernels that ran, with the dtype of their first input."""

    dtype: torch.dtype
    loss: float
    logits_finite: bool
    attention_nan_fraction: float | None
    max_attention_probability: float | None
    attn_implementation: str = "eager"
    reorder_and_upcast_attn: bool = False
    attention_ops: tuple[str, ...] = ()
    one_key_fraction: float | None = None

    @property
    def implementation(self) -> str:
        """``"eager"``, ``"eager + reorder_and_upcast_attn"`` or ``"sdpa"``."""
        upcast = " + reorder_and_upcast_attn" if self.reorder_and_upcast_attn else ""
        return self.attn_implementation + upcast

    def __str__(self) -> str:
        name = str(self.dtype).removeprefix("torch.")
        if self.attention_nan_fraction is None:
            probabilities = "attention probabilities not returned"
        else:
            one_key = (
                "-" if self.one_key_fraction is None else f"{100 * self.one_key_fraction:.0f}%"
            )
            probabilities = (
                f"NaN attention probabilities: {100 * self.attention_nan_fraction:.0f}% | "
                f"rows on one key (p > {ONE_KEY}): {one_key}"
            )
        return f"{name:>9} {self.implementation}: loss {self.loss:.3g} | {probabilities}"


@torch.no_grad()
def forward_report(
    model: torch.nn.Module,
    batch: Mapping,
    dtype: torch.dtype = torch.float32,
    attn_implementation: str = "eager",
    reorder_and_upcast_attn: bool = False,
) -> ForwardReport:
    """One forward pass under ``torch.autocast`` for fp16/bf16 (or plain fp32), with the
    attention implementation asked for: ``"eager"`` (transformers' ``eager_attention_forward``:
    ``matmul(q, k^T) * scaling``, so q . k is a 16-bit matmul result *before* the scaling; its
    probabilities are returned) or ``"sdpa"`` (``F.scaled_dot_product_attention``, the default
    of ``from_pretrained``; no probabilities). ``reorder_and_upcast_attn=True`` (eager only)
    turns on GPT-2's own fix: q . k in fp32 with autocast off, scaled inside ``baddbmm``.
    The model is left as it was (implementation, flags, training mode)."""
    if dtype not in (torch.float32, *_AUTOCAST_DTYPES):
        raise ValueError(
            f"dtype must be torch.float32, torch.bfloat16 or torch.float16, got {dtype}"
        )
    if attn_implementation not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(
            f"attn_implementation must be one of {ATTENTION_IMPLEMENTATIONS}, "
            f"got {attn_implementation!r}"
        )
    if not isinstance(reorder_and_upcast_attn, bool):
        raise TypeError(f"reorder_and_upcast_attn must be a bool, got {reorder_and_upcast_attn!r}")
    if reorder_and_upcast_attn and attn_implementation != "eager":
        raise ValueError(
            "reorder_and_upcast_attn is GPT-2's eager-only path: transformers ignores it for "
            f"{attn_implementation!r}"
        )
    blocks = _blocks(model)
    device = next(model.parameters()).device
    inputs = _inputs(batch, device)
    previous = model.config._attn_implementation
    previous_upcast = [block.attn.reorder_and_upcast_attn for block in blocks]
    was_training = model.training
    model.eval()
    trace = _AttentionOpTrace()
    try:
        model.set_attn_implementation(attn_implementation)
        for block in blocks:
            block.attn.reorder_and_upcast_attn = reorder_and_upcast_attn
        with torch.autocast(device.type, dtype=dtype, enabled=dtype in _AUTOCAST_DTYPES):
            with trace:
                out = model(**inputs, output_attentions=attn_implementation == "eager")
    finally:
        model.set_attn_implementation(previous)
        for block, flag in zip(blocks, previous_upcast, strict=True):
            block.attn.reorder_and_upcast_attn = flag
        model.train(was_training)
    loss = out.loss.item() if out.loss is not None else math.nan
    nan_fraction = max_probability = one_key = None
    if attn_implementation == "eager":
        probabilities = torch.cat([a.float().flatten() for a in out.attentions])
        finite = probabilities[~torch.isnan(probabilities)]
        nan_fraction = torch.isnan(probabilities).float().mean().item()
        max_probability = finite.max().item() if finite.numel() else math.nan
        rows = torch.cat([a.float().flatten(0, -2) for a in out.attentions])  # one per query
        rows = rows[~rows.isnan().any(-1)]
        one_key = (rows.amax(-1) > ONE_KEY).float().mean().item() if len(rows) else math.nan
    return ForwardReport(
        dtype=dtype,
        loss=loss,
        logits_finite=bool(torch.isfinite(out.logits).all()),
        attention_nan_fraction=nan_fraction,
        max_attention_probability=max_probability,
        attn_implementation=attn_implementation,
        reorder_and_upcast_attn=reorder_and_upcast_attn,
        attention_ops=tuple(trace.ops),
        one_key_fraction=one_key,
    )
