"""Gradient X-ray: a model's real gradients held against each format's range.

Taught in notebook 02, section "1. Gradient X-ray: real gradients against each format's range",
and notebook 03, section "1. The problem: fp16 flushes small gradients to zero".

``collect_gradients`` runs fp32 forward and backward passes
and keeps every gradient value that a 16-bit backward pass would hold in 16 bits, grouped by
layer: the *activation gradients* (the gradient flowing into each matmul's output: Linear and
GPT-2's Conv1D) and the *matmul weight gradients* (each matmul's weight and bias gradient, as
that matmul computes it from its input and output gradient). Under autocast those matmuls run
in 16 bits, so these are the gradients that are rounded to fp16/bf16 before anything else sees
them. ``gradient_dtypes`` traces it instead of assuming it: the dtype in which each gradient piece
reaching each parameter is computed, under autocast on the model's device. On GPT-2 it finds the
matmuls' weights and biases (16-bit), the tied ``wte``/``lm_head`` weight (a 16-bit piece from
``lm_head`` plus an fp32 piece from the embedding lookup) and the LayerNorm and position-embedding
parameters (fp32 only), which ``collect_gradients`` therefore leaves out (``weights="all"``
keeps every parameter's full gradient instead).

``range_fractions`` says what share of the values a format keeps as normal numbers, turns into
subnormals (fewer significant bits), flushes to zero or overflows, optionally after multiplying
by a loss scale, and ``plot_gradient_xray`` draws the histogram of log2|g| over a format's zones:

    sample = collect_gradients(model, batches)
    range_fractions(sample.activations_all(), "fp16", scale=2.0**16)
    plot_gradient_xray(sample); plt.show()

A value's fate is decided by torch's own rounding (``formats.round_to``), so the zones drawn
(``format_zones``) are exactly where torch puts the boundaries: below half the smallest subnormal
a value rounds to zero, at or above ``max + ulp(max) / 2`` it becomes inf (fp8_e4m3 saturates).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from course_utils import formats as F
from course_utils.env import pick_device

__all__ = [
    "FATES",
    "GradientSample",
    "Zone",
    "collect_gradients",
    "format_zones",
    "gpt2_layer_group",
    "gradient_dtype_summary",
    "gradient_dtypes",
    "plot_gradient_xray",
    "range_fractions",
    "range_table",
    "range_table_text",
]

FATES = ("normal", "subnormal", "zero", "overflow")
_ZONE_COLOURS = {
    "zero": "#d62728",
    "subnormal": "#ff9f40",
    "normal": "#2ca02c",
    "overflow": "#7f0000",
}
_BLOCK = re.compile(r"(?:^|\.)h\.(\d+)\.")


def gpt2_layer_group(name: str) -> str:
    """The layer a GPT-2 parameter or module belongs to: "embeddings", "block 0", "block 1",
    ..., "final norm" (``ln_f``) or "lm head"; any other name is its own first component."""
    if not isinstance(name, str):
        raise TypeError(f"expected a parameter or module name, got {name!r}")
    match = _BLOCK.search(name)
    if match:
        return f"block {match.group(1)}"
    if ".wte" in name or ".wpe" in name or name.startswith(("wte", "wpe")):
        return "embeddings"
    if "ln_f" in name:
        return "final norm"
    if "lm_head" in name:
        return "lm head"
    return name.split(".")[0]


@dataclass
class GradientSample:
    """Every gradient value seen, as flat fp32 tensors per layer group.

    ``weights[group]``: one backward pass at a time (not summed), the weight and bias gradients
    each matmul computes (``weights="matmul"``), or every parameter's gradient (``"all"``);
    ``activations[group]``: the gradients reaching each matmul's output (Linear, GPT-2's Conv1D).
    ``losses``: the loss of each batch."""

    weights: dict[str, torch.Tensor] = field(default_factory=dict)
    activations: dict[str, torch.Tensor] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)

    def groups(self, kind: str = "weights") -> dict[str, torch.Tensor]:
        if kind not in ("weights", "activations"):
            raise ValueError(f"kind must be 'weights' or 'activations', got {kind!r}")
        return self.weights if kind == "weights" else self.activations

    def all_values(self, kind: str = "weights") -> torch.Tensor:
        """Every value of one kind, all groups together."""
        groups = self.groups(kind)
        if not groups:
            return torch.empty(0)
        return torch.cat(list(groups.values()))

    def weights_all(self) -> torch.Tensor:
        return self.all_values("weights")

    def activations_all(self) -> torch.Tensor:
        return self.all_values("activations")


def _is_matmul_module(module: torch.nn.Module) -> bool:
    # GPT-2's projections are transformers' Conv1D (a matmul with a transposed weight)
    return isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"


def _matmul_parameter_gradients(
    module: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor
) -> list[torch.Tensor]:
    """The weight (and bias) gradient a Linear or Conv1D computes from its input ``x`` and the
    gradient of its output: the matmul whose result autocast holds in 16 bits."""
    x2 = x.detach().reshape(-1, x.shape[-1]).float()
    g2 = grad.detach().reshape(-1, grad.shape[-1]).float()
    parts = []
    if module.weight.requires_grad:
        # Linear: out = x W^T, dW = g^T x; Conv1D: out = x W, dW = x^T g
        parts.append(g2.T @ x2 if isinstance(module, torch.nn.Linear) else x2.T @ g2)
    bias = getattr(module, "bias", None)
    if bias is not None and bias.requires_grad:
        parts.append(g2.sum(0))
    return parts


def collect_gradients(
    model: torch.nn.Module,
    batches: Mapping | Iterable[Mapping],
    *,
    group: Callable[[str], str] = gpt2_layer_group,
    activations: bool = True,
    weights: str = "matmul",
    device: str | torch.device | None = None,
) -> GradientSample:
    """Run fp32 forward + backward on each batch (no optimizer step: the weights do not change)
    and keep every gradient value, grouped by ``group(name)``. ``batches`` is one dict or an
    iterable of dicts that ``model(**batch)`` takes (with labels, so there is a loss).

    ``weights="matmul"`` (default) keeps the weight and bias gradients that each matmul module
    (Linear, Conv1D) computes, grouped by module: the ones a 16-bit backward pass produces in 16
    bits; a weight tied to a matmul (GPT-2's ``wte`` is ``lm_head.weight``) contributes only the
    matmul's piece. ``weights="all"`` keeps every parameter's ``.grad`` instead. The model is left
    as it was (its ``.grad`` cleared, training mode restored, no hooks left)."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    if weights not in ("matmul", "all"):
        raise ValueError(f"weights must be 'matmul' or 'all', got {weights!r}")
    batch_list = [batches] if isinstance(batches, Mapping) else list(batches)
    if not batch_list or not all(isinstance(b, Mapping) for b in batch_list):
        raise TypeError("batches must be a dict or a non-empty iterable of dicts")
    if any(p.dtype != torch.float32 for p in model.parameters()):
        raise ValueError("collect_gradients needs fp32 weights (the reference gradients)")
    device = next(model.parameters()).device if device is None else pick_device(device)

    weight_parts: dict[str, list[torch.Tensor]] = {}
    activation_parts: dict[str, list[torch.Tensor]] = {}
    module_parts: dict[str, list[torch.Tensor]] = {}  # matmul weight gradients, per module
    sample = GradientSample()

    def keep(store: dict[str, list[torch.Tensor]], name: str, grad: torch.Tensor) -> None:
        store.setdefault(group(name), []).append(grad.detach().float().flatten().cpu())

    def on_grad(name: str, module: torch.nn.Module, x: torch.Tensor):
        def hook(grad: torch.Tensor) -> None:
            if activations:
                keep(activation_parts, name, grad)
            if weights == "matmul":
                parts = _matmul_parameter_gradients(module, x, grad)
                module_parts.setdefault(name, []).extend(p.flatten().cpu() for p in parts)

        return hook

    def on_forward(name: str):
        def hook(module, inputs, output):
            if isinstance(output, torch.Tensor) and output.requires_grad:
                output.register_hook(on_grad(name, module, inputs[0]))

        return hook

    handles = []
    if activations or weights == "matmul":
        for name, module in model.named_modules():
            if _is_matmul_module(module):
                handles.append(module.register_forward_hook(on_forward(name)))
    was_training = model.training
    model.train()
    try:
        for batch in batch_list:
            model.zero_grad(set_to_none=True)
            inputs = {
                k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()
            }
            output = model(**inputs)
            loss = output if isinstance(output, torch.Tensor) else getattr(output, "loss", None)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise ValueError(
                    "model(**batch) gave no scalar loss: pass batches with 'labels' "
                    "(for a causal LM, labels = input_ids)"
                )
            loss.backward()
            sample.losses.append(loss.item())
            if weights == "all":
                for name, param in model.named_parameters():
                    if param.grad is not None:
                        keep(weight_parts, name, param.grad)
    finally:
        for handle in handles:
            handle.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    for name, _ in model.named_modules():  # the matmuls' gradients arrive last module first
        for part in module_parts.get(name, []):
            keep(weight_parts, name, part)
    # groups in the model's order (activation gradients arrive last layer first)
    order = {}
    for name, _ in [*model.named_modules(), *model.named_parameters()]:
        order.setdefault(group(name), len(order))
    sample.weights = {g: torch.cat(weight_parts[g]) for g in sorted(weight_parts, key=order.get)}
    sample.activations = {
        g: torch.cat(activation_parts[g]) for g in sorted(activation_parts, key=order.get)
    }
    return sample


# ----------------------------------------------------------------------------- the dtype trace


def gradient_dtypes(
    model: torch.nn.Module, batch: Mapping, dtype: torch.dtype = torch.float16
) -> dict[str, tuple[str, ...]]:
    """Under ``torch.autocast(device, dtype)`` on the model's device, one forward and backward:
    for each parameter, the dtypes in which the gradient pieces that reach it are computed.

    A parameter that autocast casts to 16 bits (for a matmul) gets its gradient through that
    cast: the 16-bit op computes it, and the cast's backward turns it into fp32 (the piece is
    "float16"). A parameter used as is (LayerNorm, an embedding lookup) gets an fp32 piece. A
    tied weight used both ways gets both. Keys are parameter names, tied names joined by " = ";
    values are sorted dtype names. The model's gradients are cleared afterwards."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    if dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be torch.float16 or torch.bfloat16, got {dtype}")
    if not isinstance(batch, Mapping):
        raise TypeError("batch must be a dict that model(**batch) takes, with labels")
    names: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(param), []).append(name)
    device = next(model.parameters()).device
    inputs = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    was_training = model.training
    model.train()
    found: dict[int, set[str]] = {}
    handles = []

    def recorder(key: int):
        def record(grad_outputs):  # the gradient this node receives, before it computes the piece
            grad = grad_outputs[0]
            if grad is not None:
                found.setdefault(key, set()).add(str(grad.dtype).removeprefix("torch."))

        return record

    try:
        model.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype):
            output = model(**inputs)
        loss = getattr(output, "loss", None)
        if not isinstance(loss, torch.Tensor):
            raise ValueError("model(**batch) gave no loss: pass a batch with 'labels'")
        # walk the graph: every node that feeds a parameter's AccumulateGrad
        seen, stack = set(), [loss.grad_fn]
        while stack:
            node = stack.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            for child, _ in node.next_functions:
                variable = getattr(child, "variable", None)
                if isinstance(variable, torch.nn.Parameter) and id(variable) in names:
                    handles.append(node.register_prehook(recorder(id(variable))))
                else:
                    stack.append(child)
        loss.backward()
    finally:
        for handle in handles:
            handle.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return {
        " = ".join(names[key]): tuple(sorted(found.get(key, ())))
        for key in dict.fromkeys(id(p) for _, p in model.named_parameters())
    }


_LAYER_INDEX = re.compile(r"\.(\d+)\.")


def gradient_dtype_summary(trace: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """``gradient_dtypes`` grouped by dtype combination ("float16", "float16 + float32", ...),
    with layer indices written ``*`` so that every block's parameters appear once, the leading
    ``transformer.`` dropped."""
    if not isinstance(trace, Mapping):
        raise TypeError("expected the dict that gradient_dtypes returns")
    summary: dict[str, list[str]] = {}
    for name, dtypes in trace.items():
        key = " + ".join(dtypes) if dtypes else "no gradient"
        short = _LAYER_INDEX.sub(".*.", name).replace("transformer.", "")
        if short not in summary.setdefault(key, []):
            summary[key].append(short)
    return summary


# ----------------------------------------------------------------------------- the zones


@dataclass(frozen=True)
class Zone:
    """Magnitudes ``low <= |x| < high`` (as log2) that a format turns into ``fate``."""

    fate: str
    low_log2: float
    high_log2: float


def format_zones(fmt: str) -> list[Zone]:
    """Where a format sends each magnitude when rounding to nearest: zero (below half the
    smallest subnormal), subnormal, normal, and overflow (from ``max + ulp(max) / 2``, where
    IEEE-like formats round to inf; fp8_e4m3 saturates there instead, still an overflow)."""
    spec = F.get_format(fmt)
    half_min_subnormal = math.log2(spec.min_subnormal) - 1
    overflow_from = math.log2(spec.max + F.ulp(spec.max, spec.name) / 2)
    return [
        Zone("zero", -math.inf, half_min_subnormal),
        Zone("subnormal", half_min_subnormal, math.log2(spec.min_normal)),
        Zone("normal", math.log2(spec.min_normal), overflow_from),
        Zone("overflow", overflow_from, math.inf),
    ]


def range_fractions(values: torch.Tensor, fmt: str, scale: float = 1.0) -> dict[str, float]:
    """Of the non-zero, finite ``values``, times ``scale``: the fraction that ``fmt`` rounds to
    a normal number, to a subnormal, to zero, or out of range (inf; fp8_e4m3: saturated at max).
    Also "count": how many values that is. (Exact zeros are left out: they are zero anyway.)"""
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"values must be a tensor, got {type(values).__name__}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise TypeError(f"scale must be a number, got {scale!r}")
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale must be positive and finite, got {scale}")
    spec = F.get_format(fmt)
    x = values.detach().flatten().float()
    x = x[torch.isfinite(x) & (x != 0)] * scale  # exact for a power-of-two scale (or inf)
    count = x.numel()
    if count == 0:
        return dict.fromkeys(FATES, math.nan) | {"count": 0}
    rounded = F.round_to(x, spec.name).abs()
    overflow = torch.isinf(rounded) | (rounded > spec.max)
    if not spec.has_inf:  # saturated: the magnitude reached max from beyond its rounding range
        overflow |= x.abs() >= spec.max + F.ulp(spec.max, spec.name) / 2
    zero = rounded == 0
    subnormal = (rounded > 0) & (rounded < spec.min_normal)
    normal = ~(overflow | zero | subnormal)
    return {
        "normal": normal.sum().item() / count,
        "subnormal": subnormal.sum().item() / count,
        "zero": zero.sum().item() / count,
        "overflow": overflow.sum().item() / count,
        "count": count,
    }


def range_table(
    values: torch.Tensor,
    formats: Sequence[str] = ("fp16", "bf16"),
    scales: Sequence[float] = (1.0,),
) -> list[dict]:
    """``range_fractions`` for every format and loss scale: one row each, with "format" and
    "scale" keys."""
    rows = []
    for fmt in formats:
        for scale in scales:
            rows.append(
                {"format": F.get_format(fmt).name, "scale": scale}
                | range_fractions(values, fmt, scale)
            )
    return rows


def range_table_text(rows: Sequence[Mapping], digits: int = 2) -> str:
    """A ``range_table`` as fixed-width text, percentages with ``digits`` decimals."""
    header = f"{'format':<9} {'loss scale':>10}" + "".join(f" {fate:>10}" for fate in FATES)
    lines = [header]
    for row in rows:
        scale = row["scale"]
        scale_text = f"2^{int(math.log2(scale))}" if math.log2(scale).is_integer() else f"{scale:g}"
        cells = "".join(f" {100 * row[fate]:>9.{digits}f}%" for fate in FATES)
        lines.append(f"{row['format']:<9} {scale_text:>10}{cells}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the picture


def plot_gradient_xray(
    sample: GradientSample,
    kinds: Sequence[str] = ("activations", "weights"),
    fmt: str = "fp16",
    scale: float = 1.0,
    bins: int = 120,
    xlim: tuple[float, float] = (-50.0, 20.0),
    axes=None,
    compare: str = "bf16",
):
    """One panel per kind of gradient (activation, matmul weight): the histogram of log2|g| of
    each layer group's non-zero values (times ``scale``) over ``fmt``'s zones, shaded: red,
    rounded to zero; orange, subnormal; white, normal; dark red, overflow. A note in each panel
    says where ``compare``'s zones start (bf16's are far off the axis). Returns the axes."""
    import matplotlib.pyplot as plt
    import numpy as np

    if isinstance(kinds, str):
        kinds = (kinds,)
    for kind in kinds:
        if not sample.groups(kind):
            raise ValueError(f"the sample holds no {kind} gradients")
    fmt = F.get_format(fmt).name
    if axes is None:
        _, axes = plt.subplots(len(kinds), 1, figsize=(10, 2.8 * len(kinds) + 0.6), sharex=True)
    axes = np.atleast_1d(axes)
    if len(axes) != len(kinds):
        raise ValueError(f"need one axis per kind: {len(kinds)} kinds, {len(axes)} axes")
    edges = np.linspace(xlim[0], xlim[1], bins + 1)
    other = format_zones(compare) if compare else None
    for ax, kind in zip(axes, kinds, strict=True):
        hists = {}
        for group, values in sample.groups(kind).items():
            x = values.float() * scale
            x = x[torch.isfinite(x) & (x != 0)]
            logs = torch.log2(x.abs()).clamp(xlim[0], xlim[1]).numpy()
            counts, _ = np.histogram(logs, bins=edges)
            hists[group] = counts / max(len(logs), 1)
        for zone in format_zones(fmt):
            if zone.fate == "normal":
                continue
            low, high = max(zone.low_log2, xlim[0]), min(zone.high_log2, xlim[1])
            if low < high:
                ax.axvspan(low, high, color=_ZONE_COLOURS[zone.fate], alpha=0.18, linewidth=0)
                ax.text(
                    (low + high) / 2,
                    0.97,
                    f"{fmt}: {zone.fate if zone.fate != 'zero' else 'rounds to 0'}",
                    transform=ax.get_xaxis_transform(),
                    ha="center",
                    va="top",
                    fontsize=8,
                    color=_ZONE_COLOURS[zone.fate],
                )
        if other is not None and other[1].low_log2 < xlim[0]:
            ax.text(
                0.01,
                0.80,
                f"{F.get_format(compare).name}: subnormal only below 2^{other[2].low_log2:.0f}, "
                f"0 only below 2^{other[1].low_log2:.0f}\n(far off this axis: all normal)",
                transform=ax.transAxes,
                va="top",
                fontsize=8,
                color="#1f4e79",
            )
        for group, share in hists.items():
            ax.stairs(share, edges, label=group, linewidth=1.3)
        fractions = range_fractions(sample.all_values(kind), fmt, scale)
        lost = 100 * (fractions["zero"] + fractions["subnormal"])
        lost_text = f"{lost:.1f}%" if lost >= 1 else f"{lost:.2g}%"
        what = "matmul weight" if kind == "weights" else "activation"
        ax.set_title(
            f"{what} gradients: {lost_text} of non-zero values become 0 or subnormal in {fmt}",
            fontsize=10,
            loc="left",
        )
        ax.set_ylim(0, 1.25 * max(float(share.max()) for share in hists.values()))
        ax.set_ylabel("share of values")
        ax.grid(axis="x", visible=False)
        ax.legend(loc="upper right", fontsize="small", ncol=2, bbox_to_anchor=(1.0, 0.88))
    scale_note = "" if scale == 1 else f" x loss scale {scale:g}"
    axes[-1].set_xlabel(
        f"log2 |gradient{scale_note}|   (values beyond the axis are drawn at its edges)"
    )
    return axes
