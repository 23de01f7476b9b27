"""Gradient X-ray: a model's real gradients held against each format's range.

``collect_gradients`` runs fp32 forward and backward passes and keeps every gradient value,
grouped by layer: the weight gradients (what the optimizer sees) and the activation gradients
(the gradient flowing into each matmul's output, which autocast holds in 16 bits). Then
``range_fractions`` says what share of them a format keeps as normal numbers, turns into
subnormals (fewer significant bits), flushes to zero or overflows, optionally after multiplying
by a loss scale, and ``plot_gradient_xray`` draws the histogram of log2|g| over each format's
zones:

    sample = collect_gradients(model, batches)
    range_fractions(sample.activations_all(), "fp16", scale=2.0**16)
    plot_gradient_xray(sample, kind="activations"); plt.show()

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

__all__ = [
    "FATES",
    "GradientSample",
    "Zone",
    "collect_gradients",
    "format_zones",
    "gpt2_layer_group",
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

    ``weights[group]``: the parameters' gradients, one backward pass at a time (not summed);
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


def collect_gradients(
    model: torch.nn.Module,
    batches: Mapping | Iterable[Mapping],
    *,
    group: Callable[[str], str] = gpt2_layer_group,
    activations: bool = True,
    device: str | torch.device | None = None,
) -> GradientSample:
    """Run fp32 forward + backward on each batch (no optimizer step: the weights do not change)
    and keep every gradient value, grouped by ``group(name)``. ``batches`` is one dict or an
    iterable of dicts that ``model(**batch)`` takes (with labels, so there is a loss). The model
    is left as it was (its ``.grad`` cleared, training mode restored, no hooks left)."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    batch_list = [batches] if isinstance(batches, Mapping) else list(batches)
    if not batch_list or not all(isinstance(b, Mapping) for b in batch_list):
        raise TypeError("batches must be a dict or a non-empty iterable of dicts")
    if any(p.dtype != torch.float32 for p in model.parameters()):
        raise ValueError("collect_gradients needs fp32 weights (the reference gradients)")
    if device is None:
        device = next(model.parameters()).device

    weight_parts: dict[str, list[torch.Tensor]] = {}
    activation_parts: dict[str, list[torch.Tensor]] = {}
    sample = GradientSample()

    def keep(store: dict[str, list[torch.Tensor]], name: str, grad: torch.Tensor) -> None:
        store.setdefault(group(name), []).append(grad.detach().float().flatten().cpu())

    def on_forward(name: str):
        def hook(_module, _inputs, output):
            if isinstance(output, torch.Tensor) and output.requires_grad:
                output.register_hook(lambda grad: keep(activation_parts, name, grad))

        return hook

    handles = []
    if activations:
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
            for name, param in model.named_parameters():
                if param.grad is not None:
                    keep(weight_parts, name, param.grad)
    finally:
        for handle in handles:
            handle.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    # groups in the model's order (activation gradients arrive last layer first)
    order = {}
    for name, _ in [*model.named_modules(), *model.named_parameters()]:
        order.setdefault(group(name), len(order))
    sample.weights = {g: torch.cat(weight_parts[g]) for g in sorted(weight_parts, key=order.get)}
    sample.activations = {
        g: torch.cat(activation_parts[g]) for g in sorted(activation_parts, key=order.get)
    }
    return sample


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
    kind: str = "weights",
    formats: Sequence[str] = ("fp16", "bf16"),
    scale: float = 1.0,
    bins: int = 120,
    xlim: tuple[float, float] = (-50.0, 20.0),
    axes=None,
):
    """One panel per format: the histogram of log2|g| of each layer group's non-zero gradients
    (times ``scale``), over the format's zones shaded: red, rounded to zero; orange, subnormal;
    white, normal; dark red, overflow. Returns the axes."""
    import matplotlib.pyplot as plt
    import numpy as np

    groups = sample.groups(kind)
    if not groups:
        raise ValueError(f"the sample holds no {kind} gradients")
    names = [F.get_format(fmt).name for fmt in formats]
    if axes is None:
        _, axes = plt.subplots(len(names), 1, figsize=(10, 2.6 * len(names) + 0.6), sharex=True)
    axes = np.atleast_1d(axes)
    edges = np.linspace(xlim[0], xlim[1], bins + 1)
    hists = {}
    for group, values in groups.items():
        x = values.float() * scale
        x = x[torch.isfinite(x) & (x != 0)]
        logs = torch.log2(x.abs()).clamp(xlim[0], xlim[1]).numpy()
        counts, _ = np.histogram(logs, bins=edges)
        hists[group] = counts / max(len(logs), 1)
    for ax, fmt in zip(axes, names, strict=True):
        for zone in format_zones(fmt):
            if zone.fate == "normal":
                continue
            low, high = max(zone.low_log2, xlim[0]), min(zone.high_log2, xlim[1])
            if low < high:
                ax.axvspan(low, high, color=_ZONE_COLOURS[zone.fate], alpha=0.18, linewidth=0)
                ax.text(
                    (low + high) / 2,
                    0.97,
                    zone.fate if zone.fate != "zero" else "rounds to 0",
                    transform=ax.get_xaxis_transform(),
                    ha="center",
                    va="top",
                    fontsize=8,
                    color=_ZONE_COLOURS[zone.fate],
                )
        subnormal_from = format_zones(fmt)[1].low_log2
        if subnormal_from < xlim[0]:
            ax.text(
                0.01,
                0.95,
                f"{fmt}'s subnormals start below 2^{format_zones(fmt)[2].low_log2:.0f} and it rounds to 0 "
                f"only below 2^{subnormal_from:.0f}: far off this axis",
                transform=ax.transAxes,
                va="top",
                fontsize=8,
                color=_ZONE_COLOURS["zero"],
            )
        for group, share in hists.items():
            ax.stairs(share, edges, label=group, linewidth=1.3)
        fractions = range_fractions(sample.all_values(kind), fmt, scale)
        lost = 100 * (fractions["zero"] + fractions["subnormal"])
        lost_text = f"{lost:.1f}%" if lost >= 1 else f"{lost:.2g}%"
        ax.set_title(
            f"{fmt}: {lost_text} of non-zero values become 0 or subnormal", fontsize=10, loc="left"
        )
        ax.set_ylim(0, 1.2 * max(float(share.max()) for share in hists.values()))
        ax.set_ylabel("share of values")
        ax.grid(axis="x", visible=False)
    scale_note = "" if scale == 1 else f" x loss scale {scale:g}"
    axes[-1].set_xlabel(
        f"log2 |gradient{scale_note}|   (values beyond the axis are drawn at its edges)"
    )
    axes[0].legend(loc="upper right", fontsize="small", ncol=2, bbox_to_anchor=(1.0, 0.88))
    what = "weight" if kind == "weights" else "activation"
    axes[0].figure.suptitle(f"{what} gradients{scale_note}, by layer", fontsize=11)
    return axes
