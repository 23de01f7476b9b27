"""course_utils.nan.plots: notebook 06's figures, on synthetic histories (no training)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from course_utils.nan import plots  # noqa: E402
from course_utils.train import History, StepRecord  # noqa: E402


def history(first: int, last: int, nan_from: int | None = None) -> History:
    records = [
        StepRecord(
            step,
            math.nan if nan_from and step >= nan_from else 3.0 - step / 100,
            math.nan if nan_from and step >= nan_from else 1.0,
            1.0,
            False,
            1e-3,
            0.01,
            None,
        )
        for step in range(first, last + 1)
    ]
    return History("bf16", "cpu", records)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_stable_then_nan_draws_loss_and_norm():
    fig = plots.plot_stable_then_nan(history(1, 110, nan_from=101), 101, "bf16")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    loss, norm = fig.axes
    assert loss.get_ylabel() == "loss" and norm.get_yscale() == "log"
    assert "NaN from step 101" in loss.get_title()
    assert len(loss.get_lines()) == 1 and len(loss.get_lines()[0].get_xdata()) == 110
    with pytest.raises(ValueError, match="first_bad must be a step number"):
        plots.plot_stable_then_nan(history(1, 5), 0, "x")
    with pytest.raises(TypeError, match="must be a History"):
        plots.plot_stable_then_nan([1.0, 2.0], 2, "x")


def test_fixes_draw_finite_runs_and_one_status_row_per_run():
    original = history(1, 110, nan_from=101)
    runs = {
        "dead at once": history(101, 105, nan_from=101),
        "roll back + skip batch 101": history(102, 120),
        "finite": history(101, 120),
    }
    fig = plots.plot_fixes(original, runs)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ax, status = fig.axes
    # the original's steps 90-100, then the two runs with something to draw; the dead one has not
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["original run", "roll back + skip batch 101", "finite"]
    assert list(ax.get_lines()[0].get_xdata()) == list(range(90, 101))
    assert [t.get_text() for t in status.get_yticklabels()] == list(runs)
    assert len(status.patches) == 3 * 20  # one cell per run and step 101..120
    assert ax.get_xlim() == (89.5, 120.5)


def test_fixes_refuse_what_is_not_runs():
    with pytest.raises(TypeError, match="non-empty dict"):
        plots.plot_fixes(history(1, 110), {})
    with pytest.raises(TypeError, match=r"runs\['x'\] must be a History"):
        plots.plot_fixes(history(1, 110), {"x": [1.0]})
    with pytest.raises(ValueError, match="is empty"):
        plots.plot_fixes(history(1, 110), {"x": History("bf16", "cpu")})
    with pytest.raises(ValueError, match="bad_step <= last_step"):
        plots.plot_fixes(history(1, 110), {"x": history(101, 102)}, bad_step=130)


def test_late_losses_dash_the_outlier_runs_and_skip_their_first_step():
    compared = {"(a) outlier": history(101, 120), "(c) lr 1e-2": history(101, 120)}
    fig = plots.plot_late_losses(history(1, 110), compared)
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["steps 90-100", *compared]
    assert lines[1].get_linestyle() == "--" and len(lines[1].get_xdata()) == 19
    assert lines[2].get_linestyle() == "-" and len(lines[2].get_xdata()) == 20


def test_absmax_traces_one_line_each_and_the_limit():
    trace = [("transformer.h.0.attn.c_proj", 100.0), ("transformer.h.1.attn.c_proj", math.inf)]
    fig = plots.plot_absmax_traces({"grown / 4": trace, "grown": trace}, limit=65504.0)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    assert [line.get_label() for line in ax.get_lines()] == [
        "grown / 4",
        "grown",
        "fp16 max, 65504",
    ]
    assert list(ax.get_lines()[0].get_ydata()) == [100.0, 2e5]  # inf drawn at the top
    fig = plots.plot_absmax_traces({"bf16": trace}, limit=3.4e38, limit_label="bf16 max")
    assert fig.axes[0].get_lines()[0].get_ydata()[1] > 3.4e38  # still above a larger limit
    with pytest.raises(TypeError, match="non-empty dict"):
        plots.plot_absmax_traces({})
    with pytest.raises(ValueError, match="same 2 modules"):
        plots.plot_absmax_traces({"a": trace, "b": trace[:1]})
