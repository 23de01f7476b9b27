"""See what actually ran: record the dtype of every leaf module's output during a forward pass.

Taught in notebook 00, section "Ten seconds of mixed-precision training" (what ran, recorded), and
notebook 04, section "2. The weights stay fp32, if they were loaded in fp32".

>>> with record_output_dtypes(model) as seen:      # doctest: +SKIP
...     model(**batch)
>>> seen["transformer.h.0.attn.c_attn"]             # doctest: +SKIP
torch.bfloat16
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def record_output_dtypes(
    model: nn.Module, leaves_only: bool = True
) -> Iterator[dict[str, torch.dtype]]:
    """Yield a dict filled, during the ``with`` block, with ``module name -> output dtype``.

    Only the first tensor output of each module is recorded (the first call wins). All hooks are
    removed on exit, even if the forward pass raises.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"record_output_dtypes needs a torch.nn.Module, got {type(model).__name__}")
    seen: dict[str, torch.dtype] = {}
    handles = []

    def make_hook(name: str):
        def hook(_module, _inputs, output):
            tensor = output[0] if isinstance(output, tuple | list) and output else output
            if isinstance(tensor, torch.Tensor) and name not in seen:
                seen[name] = tensor.dtype

        return hook

    for name, module in model.named_modules():
        if name and (not leaves_only or not any(True for _ in module.children())):
            handles.append(module.register_forward_hook(make_hook(name)))
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def parameter_dtypes(model: nn.Module) -> dict[torch.dtype, int]:
    """How many parameters the model holds in each dtype, e.g. ``{torch.float32: 3_000_000}``."""
    counts: dict[torch.dtype, int] = {}
    for p in model.parameters():
        counts[p.dtype] = counts.get(p.dtype, 0) + p.numel()
    return counts
