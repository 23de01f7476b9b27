"""Pictures of the float formats, taught in notebook 01: the spacing of their values (number
lines near a few magnitudes, and the worst relative rounding error from 1e-8 to 1e5)
and their dynamic ranges.

Taught in notebook 01, sections "The gap between numbers grows with their size" and "Dynamic range
on one number line".

The curves are computed from the specs in ``course_utils.formats`` (``spacing_curve``,
``values_near``), so the tests can check them against ``formats.ulp`` and torch's own values:

    plot_spacing(); plt.show()
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
    "gap_at",
    "plot_spacing",
    "spacing_curve",
    "values_near",
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


def values_near(x: float, fmt: str, half_width: float) -> np.ndarray:
    """Every finite value of ``fmt`` in ``[x - half_width, x + half_width]``, ascending, as
    float64. Formats of up to 19 bits only (fp32 has too many values to list)."""
    spec = F.get_format(fmt)
    for name, value in (("x", x), ("half_width", half_width)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
    if half_width <= 0:
        raise ValueError(f"half_width must be > 0, got {half_width!r}")
    positive = F.representable_values(spec.name).numpy()
    values = np.unique(np.concatenate([-positive, positive]))
    return values[(values >= x - half_width) & (values <= x + half_width)]


def gap_at(x: float, fmt: str) -> float:
    """The distance between the two neighbouring values of ``fmt`` around ``x``: from the largest
    value <= x to the next one up; at the end of the format (x >= max), from the one below max."""
    spec = F.get_format(fmt)
    values = values_near(x, spec.name, 4 * F.ulp(min(abs(x), spec.max), spec.name) + 1e-300)
    below, above = values[values <= x], values[values > x]
    if len(above) == 0:  # x is the format's largest value (or beyond it)
        return float(below[-1] - below[-2])
    return float(above[0] - below[-1])


def _inf_from(spec: F.FloatFormat) -> float:
    """The magnitude from which a value no longer rounds to a finite number: max + ulp(max) / 2."""
    return spec.max + F.ulp(spec.max, spec.name) / 2


def _number_line(ax, centre: float, formats: list[str]) -> None:
    """One tick per value of each format near ``centre``, one row per format (first on top)."""
    half_width = 4 * F.ulp(centre, formats[-1]) if centre else 1.0
    rows = list(reversed(formats))
    gaps = []
    for row, name in enumerate(rows):
        spec = F.FORMATS[name]
        colour = FORMAT_COLOURS[name]
        values = values_near(centre, name, half_width)
        ax.vlines(values, row - 0.3, row + 0.3, color=colour, linewidth=1.0)
        end = _inf_from(spec)
        if centre + half_width >= end:
            ax.axvspan(
                end,
                centre + half_width,
                ymin=(row + 0.1) / len(rows),
                ymax=(row + 0.9) / len(rows),
                color=colour,
                alpha=0.12,
                linewidth=0,
            )
            beyond = "inf" if spec.has_inf else f"{spec.max:g} (saturates)"
            ax.text(end, row, f"  {name}: {beyond}", va="center", ha="left", fontsize=8)
        gaps.append(f"{name} {gap_at(centre, name):.3g}")
    ax.axvline(centre, color="0.4", linestyle="--", linewidth=0.8, zorder=0)
    ax.set_xlim(centre - half_width, centre + half_width)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_yticks(range(len(rows)), rows)
    ax.ticklabel_format(axis="x", useOffset=False, style="plain")
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(False)
    ax.set_title(f"values near {centre:g}: gap {', '.join(reversed(gaps))}", fontsize=9)


def plot_spacing(
    formats: str | Iterable[str] | None = ("fp32", "fp16", "bf16", "fp8_e4m3", "fp8_e5m2"),
    around: Iterable[float] = (1.0, 1000.0, 65504.0),
    line_formats: Iterable[str] = ("fp16", "bf16"),
    span: tuple[float, float] = (1e-8, 1e5),
    highlight: str | None = "fp16",
    fig=None,
):
    """The spacing of the formats, in two views.

    Left, one number line per magnitude in ``around``: a tick for every value of each of
    ``line_formats`` (formats of up to 19 bits) near it, with the gap between neighbours in the
    title, and where a format ends (inf, or saturation).
    Right: the worst relative error of rounding to nearest, ulp(x) / 2|x|, over ``span`` for each
    of ``formats``; the subnormal range and the largest value of ``highlight`` are marked.
    Returns (the number-line axes, the relative-error axes)."""
    import matplotlib.pyplot as plt

    names = _names(formats)
    rows = _names(list(line_formats))
    centres = [float(c) for c in around]
    if not centres:
        raise ValueError("give at least one magnitude in around")
    for name in rows:
        if F.FORMATS[name].total_bits > 19:
            raise ValueError(
                f"number lines list every value: {name} has too many; use fp16, bf16, fp8 or tf32"
            )
    low, high = span
    if not (0 < low < high and math.isfinite(high)):
        raise ValueError(f"span must be (low, high) with 0 < low < high, got {span!r}")
    if fig is None:
        fig = plt.figure(figsize=(13, 1.6 * len(centres) + 0.6))
    grid = fig.add_gridspec(len(centres), 2, width_ratios=[1, 1.15], wspace=0.22, hspace=0.75)
    line_axes = [fig.add_subplot(grid[i, 0]) for i in range(len(centres))]
    for ax, centre in zip(line_axes, centres, strict=True):
        _number_line(ax, centre, rows)

    rel_ax = fig.add_subplot(grid[:, 1])
    label_at = math.sqrt(low * high)  # the middle of the span, on the log axis
    for name in names:
        spec = F.FORMATS[name]
        curve = spacing_curve(name, points_per_binade=16)
        keep = (curve.x >= low) & (curve.x <= high)
        if not keep.any():
            continue
        colour = FORMAT_COLOURS[name]
        rel_ax.loglog(
            curve.x[keep], curve.max_relative_error[keep], color=colour, linewidth=1.2, label=name
        )
        if spec.max <= high:
            rel_ax.plot([spec.max], [curve.max_relative_error[-1]], marker="x", color=colour)
        # name each band where the format is normal (the middle of the span, or before the
        # format ends): above its band, or below it when another band lies close above
        x_text = max(min(label_at, spec.max / 30), spec.min_normal * 3)
        above = not any(spec.eps < F.FORMATS[n].eps <= 16 * spec.eps for n in names)
        rel_ax.text(
            x_text,
            spec.eps / 2 * 1.5 if above else spec.eps / 4 / 1.5,
            f"{name}: at most {100 * spec.eps / 2:.3g}%",
            color=colour,
            fontsize=8,
            ha="center",
            va="bottom" if above else "top",
        )
    if highlight is not None:
        spec = F.get_format(highlight)
        colour = FORMAT_COLOURS[spec.name]
        if spec.min_normal > low:
            rel_ax.axvspan(low, spec.min_normal, color=colour, alpha=0.08, linewidth=0)
            rel_ax.axvline(spec.min_normal, color=colour, linestyle=":", linewidth=0.9)
            rel_ax.text(
                spec.min_normal,
                2e-6,
                f"{spec.name} subnormals \nbelow {spec.min_normal:.2g} ",
                ha="right",
                fontsize=8,
                color=colour,
            )
        if spec.max < high:
            rel_ax.axvspan(_inf_from(spec), high, color=colour, alpha=0.08, linewidth=0)
            rel_ax.axvline(spec.max, color=colour, linestyle=":", linewidth=0.9)
            beyond = "inf" if spec.has_inf else "saturates"
            rel_ax.text(
                spec.max,
                2e-6,
                f"largest {spec.name}\n{spec.max:g}; then {beyond} ",
                ha="right",
                fontsize=8,
                color=colour,
            )
    rel_ax.set_xlim(low, high)
    rel_ax.set_ylim(1e-8, 1.5)
    rel_ax.set_xlabel("magnitude |x|   (x: a format's largest value)")
    rel_ax.set_ylabel("worst relative rounding error, ulp(x) / 2|x|")
    rel_ax.set_title("relative precision: flat in the normal range, lost in the subnormals")
    return line_axes, rel_ax


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
