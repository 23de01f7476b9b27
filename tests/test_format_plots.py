"""course_utils.format_plots: the spacing curves against formats.ulp and torch's rounding, the
number lines against torch's values, and the plots draw what they say."""

import math

import matplotlib
import numpy as np
import pytest
import torch

from course_utils import formats as F
from course_utils.format_plots import (
    gap_at,
    plot_dynamic_ranges,
    plot_spacing,
    spacing_curve,
    values_near,
)

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
    with pytest.raises(ValueError, match="at least one magnitude"):
        plot_spacing(around=[])
    with pytest.raises(ValueError, match="too many"):
        plot_spacing(line_formats=["fp32"])
    with pytest.raises(ValueError, match="span"):
        plot_spacing(span=(1e5, 1e-8))
    with pytest.raises(ValueError, match="half_width"):
        values_near(1.0, "fp16", 0.0)
    with pytest.raises(TypeError, match="x must be a number"):
        values_near("1", "fp16", 1.0)
    with pytest.raises(ValueError, match="finite"):
        values_near(math.inf, "fp16", 1.0)
    with pytest.raises(ValueError, match="too many values"):
        values_near(1.0, "fp32", 1.0)
    with pytest.raises(ValueError, match="positive finite"):
        plot_dynamic_ranges(marks={"zero": 0.0})


def test_values_near_and_gaps_are_torchs_values():
    assert values_near(1000.0, "bf16", 8.0).tolist() == [992.0, 996.0, 1000.0, 1004.0, 1008.0]
    near_max = values_near(65504.0, "fp16", 100.0)
    assert near_max[-1] == 65504.0 and near_max[-2] == 65472.0  # nothing above fp16's max
    for fmt in ("fp16", "bf16"):
        values = torch.tensor(values_near(-3.0, fmt, 0.5))
        assert torch.equal(F.round_to(values, fmt).double(), values)  # every tick is a value
    # the gap around x: between the neighbouring values, or below the max at the end
    assert gap_at(1.0, "fp16") == 2**-10 and gap_at(1.0, "bf16") == 2**-7
    assert gap_at(1000.0, "fp16") == 0.5 and gap_at(1000.0, "bf16") == 4.0
    assert gap_at(65504.0, "fp16") == 32.0 and gap_at(65504.0, "bf16") == 256.0
    assert gap_at(448.0, "fp8_e4m3") == 32.0


def test_plots_draw_what_they_say():
    import matplotlib.pyplot as plt

    line_axes, rel_ax = plot_spacing(["fp16", "bf16"])
    assert len(line_axes) == 3 and all(
        [
            ax.get_xlim()[0] < c < ax.get_xlim()[1]
            for ax, c in zip(line_axes, (1, 1000, 65504), strict=True)
        ]
    )
    assert [
        line.get_label() for line in rel_ax.get_lines() if line.get_label() in ("fp16", "bf16")
    ] == ["fp16", "bf16"]
    assert rel_ax.get_xscale() == "log" and rel_ax.get_yscale() == "log"
    assert rel_ax.get_xlim() == pytest.approx((1e-8, 1e5))
    texts = " ".join(t.get_text() for t in rel_ax.texts)
    assert "fp16: at most 0.0488%" in texts and "bf16: at most 0.391%" in texts
    assert "65504; then inf" in texts and "fp16 subnormals" in texts
    titles = [ax.get_title() for ax in line_axes]
    assert titles[1] == "values near 1000: gap fp16 0.5, bf16 4"
    assert "fp16: inf" in [t.get_text().strip() for t in line_axes[2].texts]
    # one tick per value: the fp16 row near 1000 has the 65 values 984 ... 1016, 0.5 apart
    fp16_row = [c for c in line_axes[1].collections if c.get_color()[0][0] > 0.5]
    assert fp16_row and len(fp16_row[0].get_segments()) == 65
    plt.close("all")
    ax = plot_dynamic_ranges(["fp16", "bf16"], marks={"a gradient": 1e-8})
    bars = ax.patches
    assert len(bars) == 4  # a subnormal and a normal bar per format
    ends = sorted(round(b.get_x() + b.get_width(), 6) for b in bars)
    assert round(math.log10(65504), 6) in ends
    labels = [t.get_text() for t in ax.texts]
    assert "65504" in labels and any("a gradient" in t for t in labels)
    plt.close("all")
