"""Pictures of the float formats: spacing (ulp) and relative error vs magnitude, dynamic ranges.

The curves are computed from the specs in ``course_utils.formats`` (``spacing_curve``), so the
tests can check them against ``formats.ulp`` and against torch's own rounding:

    plot_spacing(["fp32", "fp16", "bf16"]); plt.show()
    plot_dynamic_ranges(); plt.show()
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from course_utils import formats as F

__all__ = [
    "FORMAT_COLOURS",
    "SpacingCurve",
    "plot_dynamic_ranges",
    "plot_spacing",
    "spacing_curve",
]

FORMAT_COLOURS = {
    "fp32": "tab:blue",
    "tf32": "tab:cyan",
    "fp16": "tab:red",
    "bf16": "tab:green",
    "fp8_e4m3": "tab:purple",
    "fp8_e5m2": "tab:orange",
}


@dataclass(frozen=True)
class SpacingCurve:
    """For magnitudes ``x`` from the smallest subnormal to the largest finite value of ``fmt``:
    ``ulp`` (the gap between neighbouring values there) and ``max_relative_error`` (the worst
    relative error of rounding a number of that magnitude to nearest: ``ulp / 2 / x``)."""

    fmt: str
    x: np.ndarray
    ulp: np.ndarray
    max_relative_error: np.ndarray


def spacing_curve(fmt: str, points_per_binade: int = 8) -> SpacingCurve:
    """The spacing of ``fmt`` over its whole range, ``points_per_binade`` points per power of two
    (plus each binade's two ends, so the saw teeth are sharp)."""
    spec = F.get_format(fmt)
    if isinstance(points_per_binade, bool) or not isinstance(points_per_binade, int):
        raise TypeError(f"points_per_binade must be an int, got {points_per_binade!r}")
    if points_per_binade < 1:
        raise ValueError(f"points_per_binade must be >= 1, got {points_per_binade}")
    low = spec.min_exponent - spec.mantissa_bits  # log2 of the smallest subnormal
    high = math.floor(math.log2(spec.max))  # the last binade starts at 2^high
    grid = np.linspace(low, high + 1, (high + 1 - low) * points_per_binade + 1)
    # each binade's two ends, so the saw teeth are sharp, and the format's exact end points
    edges = 2.0 ** np.arange(low, high + 2, dtype=float)
    x = np.unique(np.concatenate([2.0**grid, edges, np.nextafter(edges, 0.0), [spec.max]]))
    x = x[(x >= spec.min_subnormal) & (x <= spec.max)]
    binade = np.floor(np.log2(x))
    binade = np.where(np.exp2(binade) > x, binade - 1, binade)  # guard log2 rounding
    ulp = np.exp2(np.maximum(binade, spec.min_exponent) - spec.mantissa_bits)
    return SpacingCurve(spec.name, x, ulp, ulp / 2 / x)


def _names(formats: str | Iterable[str] | None) -> list[str]:
    if formats is None:
        return list(F.FORMAT_NAMES)
    if isinstance(formats, str):
        formats = [formats]
    names = [F.get_format(name).name for name in formats]
    if not names:
        raise ValueError("give at least one format")
    return names


def plot_spacing(
    formats: str | Iterable[str] | None = None,
    axes=None,
    zoom: tuple[float, float] = (2.0**-30, 2.0**20),
):
    """Two panels, magnitude on log axes, one line per format over its own range: the spacing
    between neighbouring values (ulp) over the whole range, and the worst relative rounding
    error over ``zoom`` (where its saw teeth can be seen). Returns the two axes."""
    import matplotlib.pyplot as plt

    names = _names(formats)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    ulp_ax, rel_ax = axes
    for name in names:
        curve = spacing_curve(name)
        colour = FORMAT_COLOURS[name]
        ulp_ax.loglog(curve.x, curve.ulp, color=colour, label=name, linewidth=1.5)
        rel_ax.loglog(curve.x, curve.max_relative_error, color=colour, label=name, linewidth=1.2)
        spec = F.FORMATS[name]
        rel_ax.axvline(spec.min_normal, color=colour, linestyle=":", linewidth=0.8)
    ulp_ax.set_title("spacing between neighbouring values (ulp)")
    ulp_ax.set_xlabel("magnitude |x|")
    ulp_ax.set_ylabel("ulp(x)")
    rel_ax.set_title("worst relative rounding error, ulp(x) / 2|x|")
    rel_ax.set_xlabel("magnitude |x|  (dotted: smallest normal value)")
    rel_ax.set_ylabel("relative error")
    rel_ax.set_xlim(*zoom)
    rel_ax.set_ylim(top=1.0)
    ulp_ax.legend(loc="upper left", fontsize="small")
    rel_ax.legend(loc="lower center", bbox_to_anchor=(0.5, 0.14), ncol=3, fontsize="small")
    return axes


def plot_dynamic_ranges(
    formats: str | Iterable[str] | None = None,
    marks: Mapping[str, float] | None = None,
    ax=None,
):
    """Each format's range on one log number line: a light bar for the subnormals, a dark bar for
    the normal values, the smallest subnormal, smallest normal and largest value written at the
    ends. ``marks`` (label -> value) draws vertical lines, e.g. ``{"a small gradient": 1e-8}``."""
    import matplotlib.pyplot as plt

    names = _names(formats)
    if ax is None:
        _, ax = plt.subplots(figsize=(12, 0.6 * len(names) + 1.6))
    for row, name in enumerate(reversed(names)):
        spec = F.FORMATS[name]
        colour = FORMAT_COLOURS[name]
        lo, mid, hi = (math.log10(v) for v in (spec.min_subnormal, spec.min_normal, spec.max))
        ax.barh(row, mid - lo, left=lo, height=0.5, color=colour, alpha=0.3)
        ax.barh(row, hi - mid, left=mid, height=0.5, color=colour, alpha=0.9)
        ax.text(lo - 0.5, row, f"{spec.min_subnormal:.2g}", ha="right", va="center", fontsize=8)
        ax.text(hi + 0.5, row, f"{spec.max:.5g}", ha="left", va="center", fontsize=8)
    ax.set_yticks(range(len(names)), list(reversed(names)))
    for label, value in (marks or {}).items():
        if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
            raise ValueError(f"mark {label!r} must be a positive finite number, got {value!r}")
        ax.axvline(math.log10(value), color="black", linestyle="--", linewidth=0.8)
        ax.text(
            math.log10(value),
            len(names) - 0.45,
            f" {label}",
            rotation=0,
            fontsize=8,
            va="bottom",
        )
    ticks = range(-50, 50, 10)
    ax.set_xticks(list(ticks), [f"$10^{{{k}}}$" if k else "1" for k in ticks])
    ax.set_xlabel("|x|, log scale   (light: subnormal values; dark: normal values)")
    ax.set_xlim(-52, 46)
    ax.set_ylim(-0.6, len(names) - 0.1 + (0.5 if marks else 0))
    ax.grid(axis="y", visible=False)
    ax.set_title("dynamic range: smallest subnormal ... largest finite value")
    return ax
