"""The loss-scale explorer: its readout against fp16's edges and the gradient X-ray's rounding."""

import math

import matplotlib
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.gradient_xray import range_fractions
from course_utils.loss_scale_explorer import (
    LossScaleExplorer,
    coarse_percent,
    explore,
    fp16_edges,
    readout_line,
    scale_readout,
)

matplotlib.use("Agg")

finite_floats = st.floats(
    min_value=-(2.0**100), max_value=2.0**100, allow_nan=False, allow_infinity=False, width=32
)
gradients = st.lists(finite_floats, min_size=1, max_size=40)
log2_scales = st.integers(min_value=-30, max_value=40)


@settings(max_examples=60, deadline=None)
@given(values=gradients, log2_scale=log2_scales)
def test_fractions_add_up_and_match_the_gradient_xray(values, log2_scale):
    tensor = torch.tensor(values, dtype=torch.float32)
    readout = scale_readout(tensor, log2_scale)
    if readout["count"] == 0:
        assert all(math.isnan(readout[k]) for k in ("zero", "subnormal", "normal", "overflow"))
        return
    assert math.isclose(sum(readout[k] for k in ("zero", "subnormal", "normal", "overflow")), 1.0)
    # an independent implementation (formats.round_to) gives the same fates
    xray = range_fractions(tensor, "fp16", scale=2.0**log2_scale)
    for fate in ("zero", "subnormal", "normal", "overflow"):
        assert readout[fate] == pytest.approx(xray[fate]), fate


@settings(max_examples=40, deadline=None)
@given(values=gradients, log2_scale=st.integers(min_value=-30, max_value=39))
def test_a_larger_scale_flushes_less_and_overflows_more(values, log2_scale):
    tensor = torch.tensor(values, dtype=torch.float32)
    low, high = scale_readout(tensor, log2_scale), scale_readout(tensor, log2_scale + 1)
    if low["count"]:
        assert high["zero"] <= low["zero"] and high["overflow"] >= low["overflow"]


@pytest.mark.parametrize(
    ("value", "fate"),
    [
        (2.0**-25, "zero"),  # half the smallest subnormal: the tie rounds to 0
        (2.0**-25 * 1.0001, "subnormal"),
        (2.0**-14 * 0.999, "subnormal"),
        (2.0**-14, "normal"),
        (65504.0, "normal"),
        (65519.0, "normal"),  # rounds down to 65504
        (65520.0, "overflow"),
    ],
)
@pytest.mark.parametrize("log2_scale", [0, 16, -3])
def test_fp16_edges_shift_with_the_scale(value, fate, log2_scale):
    shifted = torch.tensor([value * 2.0**-log2_scale])
    readout = scale_readout(shifted, log2_scale)
    assert readout[fate] == 1.0
    edges = fp16_edges(log2_scale)
    log2 = math.log2(value) + (-log2_scale)
    expected = (
        "zero"
        if log2 <= edges["zero"]
        else "subnormal"
        if log2 < edges["normal"]
        else "normal"
        if log2 < edges["overflow"]
        else "overflow"
    )
    assert expected == fate


def test_exact_zeros_and_non_finite_values_are_left_out():
    readout = scale_readout(torch.tensor([0.0, math.inf, math.nan, 1.0]), 0)
    assert readout["count"] == 1 and readout["normal"] == 1.0


def test_bf16_keeps_what_fp16_flushes():
    tiny = torch.tensor([1e-10, 1e-20])
    assert scale_readout(tiny, 0, "fp16")["zero"] == 1.0
    assert scale_readout(tiny, 0, "bf16")["normal"] == 1.0


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: scale_readout([1.0], 0), TypeError, "torch.Tensor"),
        (lambda: scale_readout(torch.ones(2, dtype=torch.float16), 0), TypeError, "float32"),
        (lambda: scale_readout(torch.ones(2), 2.5), TypeError, "int"),
        (lambda: scale_readout(torch.ones(2), True), TypeError, "int"),
        (lambda: scale_readout(torch.ones(2), 100), ValueError, "between"),
        (lambda: scale_readout(torch.ones(2), 0, "fp8"), ValueError, "fmt"),
        (lambda: LossScaleExplorer(torch.ones(2), 30), ValueError, "between 0 and 24"),
        (lambda: LossScaleExplorer(torch.zeros(2)), ValueError, "no non-zero"),
        (lambda: coarse_percent(1.5), ValueError, "between 0 and 1"),
        (lambda: coarse_percent("5%"), TypeError, "number"),
        (lambda: explore(torch.ones(2), mode="gui"), ValueError, "mode"),
    ],
)
def test_bad_input_gets_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_coarse_percent_and_readout_line():
    cases = (0.0, 0.004, 0.0449, 0.07, 0.2017, 0.6086, 1.0, math.nan)
    assert [coarse_percent(x) for x in cases] == [
        "none",
        "<1%",
        "1-5%",
        "5-10%",
        "~20%",
        "~60%",
        "~100%",
        "n/a",
    ]
    readout = {"zero": 0.2, "subnormal": 0.6, "normal": 0.2, "overflow": 0.0}
    assert readout_line(readout, 0) == (
        "S = 2^0 : flushed to zero  ~20% | subnormal  ~60% | overflow  none"
    )


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=0.0, max_value=1.0))
def test_coarse_percent_buckets_are_ordered_and_contain_the_value(fraction):
    label = coarse_percent(fraction)
    if label == "none":
        assert fraction == 0
    elif label == "<1%":
        assert 0 < fraction < 0.01
    elif label == "1-5%":
        assert 0.01 <= fraction < 0.05
    elif label == "5-10%":
        assert 0.05 <= fraction < 0.10
    else:
        assert label.startswith("~") and label.endswith("%")
        assert abs(int(label[1:-1]) / 100 - fraction) <= 0.05 + 1e-12 and fraction >= 0.10


def test_explorer_state_widget_and_text_fallback(capsys):
    values = torch.tensor([2.0**-30, 2.0**-20, 2.0**-10, 2.0**-2])
    explorer = LossScaleExplorer(values, log2_scale=0)
    assert explorer.readout()["zero"] == 0.25
    view = explorer.widget  # builds the ipywidgets; the slider drives the state
    explorer.slider.value = 20
    assert explorer.log2_scale == 20 and explorer.readout()["overflow"] == 0.25
    assert "S = 2^20" in explorer.text.value
    assert view is explorer.widget
    assert explorer.figure().axes[0].get_title().endswith("2^20")
    bundle = explorer._repr_mimebundle_()
    assert bundle["text/plain"].startswith("S = 2^20") and "image/png" in bundle
    assert explorer.png().startswith(b"\x89PNG")
    capsys.readouterr()  # outside a kernel the Output widget prints the figure's repr
    assert explore(values, mode="text", text_scales=(0, 20)) is None
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("S = 2^20")
    assert explore(values, mode="auto") is None  # no Jupyter kernel here: text
    assert isinstance(explore(values, mode="widget"), LossScaleExplorer)
