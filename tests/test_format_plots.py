"""course_utils.format_plots: the spacing curves against formats.ulp and torch's rounding, and
the plots draw what they say."""

import math

import matplotlib
import numpy as np
import pytest
import torch

from course_utils import formats as F
from course_utils.format_plots import plot_dynamic_ranges, plot_spacing, spacing_curve

matplotlib.use("Agg")


@pytest.mark.parametrize("fmt", F.FORMAT_NAMES)
def test_spacing_curve_matches_formats_ulp(fmt):
    curve = spacing_curve(fmt)
    spec = F.FORMATS[fmt]
    assert curve.x[0] == pytest.approx(spec.min_subnormal) and curve.x[-1] == spec.max
    assert np.all(np.diff(curve.x) > 0)
    picks = np.linspace(0, len(curve.x) - 1, 60).astype(int)
    for i in picks:
        x = float(curve.x[i])
        if F.round_to([x], fmt).item() != x:
            continue  # F.ulp rounds x into the format first; compare where x is a value
        assert curve.ulp[i] == F.ulp(x, fmt), (fmt, x)


@pytest.mark.parametrize("fmt", ["fp16", "bf16", "fp8_e4m3", "fp8_e5m2", "tf32"])
def test_max_relative_error_bounds_torch_rounding(fmt):
    curve = spacing_curve(fmt, points_per_binade=32)
    x = torch.tensor(curve.x, dtype=torch.float64)
    keep = x == x.to(torch.float32).double()  # values torch would first round to fp32
    err = (F.round_to(x[keep], fmt).double() - x[keep]).abs() / x[keep]
    bound = torch.tensor(curve.max_relative_error)[keep]
    assert torch.all(err <= bound * (1 + 1e-12))
    # in the normal range the bound is at most eps / 2 and at least eps / 4
    normal = torch.tensor(curve.x)[keep] >= F.FORMATS[fmt].min_normal
    spec = F.FORMATS[fmt]
    assert torch.all(bound[normal] <= spec.eps / 2) and torch.all(bound[normal] > spec.eps / 4)


def test_spacing_curve_saw_tooth_and_subnormals():
    curve = spacing_curve("fp16")
    at_one = np.searchsorted(curve.x, 1.0)
    assert curve.ulp[at_one] == 2**-10 and curve.ulp[at_one - 1] == 2**-11
    sub = curve.x < F.FORMATS["fp16"].min_normal
    assert np.all(curve.ulp[sub] == 2.0**-24)  # subnormals: one fixed gap


def test_bad_input():
    with pytest.raises(ValueError, match="known formats"):
        spacing_curve("fp17")
    with pytest.raises(ValueError, match=">= 1"):
        spacing_curve("fp16", points_per_binade=0)
    with pytest.raises(TypeError):
        spacing_curve("fp16", points_per_binade=2.5)
    with pytest.raises(ValueError, match="at least one"):
        plot_spacing([])
    with pytest.raises(ValueError, match="positive finite"):
        plot_dynamic_ranges(marks={"zero": 0.0})


def test_plots_draw_one_line_and_one_range_per_format():
    import matplotlib.pyplot as plt

    ulp_ax, rel_ax = plot_spacing(["fp16", "bf16"])
    assert [line.get_label() for line in ulp_ax.get_lines()] == ["fp16", "bf16"]
    assert ulp_ax.get_xscale() == "log" and rel_ax.get_yscale() == "log"
    ax = plot_dynamic_ranges(["fp16", "bf16"], marks={"a gradient": 1e-8})
    bars = ax.patches
    assert len(bars) == 4  # a subnormal and a normal bar per format
    ends = sorted(round(b.get_x() + b.get_width(), 6) for b in bars)
    assert round(math.log10(65504), 6) in ends
    labels = [t.get_text() for t in ax.texts]
    assert "65504" in labels and any("a gradient" in t for t in labels)
    plt.close("all")
