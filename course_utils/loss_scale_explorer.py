"""The loss-scale explorer: slide the loss scale S over a histogram of gradients and read how
many values fp16 flushes to zero, keeps only as subnormals, or overflows to inf.

Taught in notebook 03, section "2. Static loss scaling".

``explore(values)`` shows an ipywidgets
slider over log2 S (0..24) in a Jupyter kernel and prints a text table elsewhere (the same
decision the quizzes make: ``course_utils.env.in_notebook_kernel``). The numbers come from one pure
function, ``scale_readout(values, log2_scale)``, which casts ``values * 2**log2_scale`` to the
real 16-bit dtype, so every rounding edge is the hardware's own.

    from course_utils.loss_scale_explorer import explore, scale_readout
    scale_readout(grads, 16)      # {'zero': ..., 'subnormal': ..., 'normal': ..., 'overflow': ...}
    explore(grads, log2_scale=16)
"""

from __future__ import annotations

import base64
import math
from typing import Any

import torch

from course_utils.env import in_notebook_kernel
from course_utils.precision import AUTOCAST_DTYPES

__all__ = [
    "LOG2_SCALE_MAX",
    "LOG2_SCALE_MIN",
    "LossScaleExplorer",
    "coarse_percent",
    "explore",
    "fp16_edges",
    "readout_line",
    "scale_readout",
]

LOG2_SCALE_MIN, LOG2_SCALE_MAX = 0, 24  # the slider's range: S = 2^0 .. 2^24
_MODES = ("auto", "widget", "text")
FATES = ("zero", "subnormal", "normal", "overflow")
_COLOURS = {"zero": "tab:red", "subnormal": "tab:orange", "normal": "tab:green", "overflow": "k"}


def _check_log2_scale(log2_scale: Any, low: int = -64, high: int = 64) -> int:
    if isinstance(log2_scale, bool) or not isinstance(log2_scale, int):
        raise TypeError(
            f"log2_scale must be an int (the loss scale is S = 2**log2_scale), got {log2_scale!r}"
        )
    if not low <= log2_scale <= high:
        raise ValueError(f"log2_scale must be between {low} and {high}, got {log2_scale}")
    return log2_scale


def _check_values(values: Any) -> torch.Tensor:
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"values must be a torch.Tensor of gradients, got {type(values).__name__}")
    if not (values.is_floating_point() and values.dtype.itemsize >= 4):
        raise TypeError(
            f"values must be float32 or float64 (the true gradients, before any 16-bit rounding), "
            f"got {values.dtype}"
        )
    x = values.detach().flatten().to(torch.float32)
    return x[torch.isfinite(x) & (x != 0)]


def scale_readout(values: torch.Tensor, log2_scale: int, fmt: str = "fp16") -> dict[str, float]:
    """What ``fmt`` makes of the non-zero, finite ``values`` multiplied by ``S = 2**log2_scale``.

    Returns the fractions "zero" (flushed), "subnormal" (kept with fewer bits), "normal" and
    "overflow" (inf), which add up to 1, and "count", the number of values looked at (exact zeros
    and non-finite values are left out). With no such value the fractions are NaN.
    """
    if fmt not in AUTOCAST_DTYPES:
        raise ValueError(f"fmt must be one of {', '.join(AUTOCAST_DTYPES)}, got {fmt!r}")
    log2_scale = _check_log2_scale(log2_scale)
    x = _check_values(values)
    count = x.numel()
    if count == 0:
        return dict.fromkeys(FATES, math.nan) | {"count": 0}
    # A power of two: the product is exact in float32 unless it leaves float32's range, and
    # then it is inf (an overflow anyway) or a float32 subnormal (far below fp16's zero edge).
    rounded = (x * 2.0**log2_scale).to(AUTOCAST_DTYPES[fmt]).abs()
    tiny = torch.finfo(AUTOCAST_DTYPES[fmt]).tiny
    zero = int((rounded == 0).sum())
    overflow = int(torch.isinf(rounded).sum())
    subnormal = int(((rounded > 0) & (rounded < tiny)).sum())
    normal = count - zero - overflow - subnormal
    return {
        "zero": zero / count,
        "subnormal": subnormal / count,
        "normal": normal / count,
        "overflow": overflow / count,
        "count": count,
    }


def fp16_edges(log2_scale: int) -> dict[str, float]:
    """log2 of the *unscaled* magnitudes where fp16's fates change under ``S = 2**log2_scale``:
    values at or below 2**zero flush to 0, below 2**normal are subnormal, from 2**overflow up
    they round to inf. Each edge moves left by log2_scale as S grows."""
    log2_scale = _check_log2_scale(log2_scale)
    finfo = torch.finfo(torch.float16)
    return {
        "zero": -25.0 - log2_scale,  # half the smallest subnormal 2**-24: ties round to 0
        "normal": math.log2(finfo.tiny) - log2_scale,  # 2**-14
        "overflow": math.log2(finfo.max + 16) - log2_scale,  # 65520: half an ulp above 65504
    }


def coarse_percent(fraction: float) -> str:
    """A fraction in buckets wide enough to hold on any machine: "none", "<1%", "1-5%", "5-10%",
    then to the nearest 10% ("~20%"). Another CPU's rounding in the backward pass changes a few
    hundred values out of a million: whole percents are not coarse enough for that (4.49% of
    notebook 03's gradients print "4%" on one CPU and may print "5%" on another)."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise TypeError(f"fraction must be a number, got {fraction!r}")
    if math.isnan(fraction):
        return "n/a"
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    if fraction == 0:
        return "none"
    for edge, label in ((0.01, "<1%"), (0.05, "1-5%"), (0.10, "5-10%")):
        if fraction < edge:
            return label
    return f"~{10 * round(10 * fraction)}%"


def readout_line(readout: dict[str, float], log2_scale: int) -> str:
    """One line: ``S = 2^16: flushed to zero  <1% | subnormal 1-5% | overflow none``."""
    return (
        f"S = 2^{log2_scale:<2}: flushed to zero {coarse_percent(readout['zero']):>5} | "
        f"subnormal {coarse_percent(readout['subnormal']):>5} | "
        f"overflow {coarse_percent(readout['overflow']):>5}"
    )


class LossScaleExplorer:
    """The gradients ``values`` and one loss scale ``S = 2**log2_scale``; the widget (a slider
    over log2 S, a histogram, a readout) only mirrors this state, so it can be tested without a
    browser: ``explorer.set_log2_scale(20); explorer.report()``."""

    def __init__(self, values: torch.Tensor, log2_scale: int = 16, fmt: str = "fp16") -> None:
        if fmt != "fp16":
            raise ValueError(f"the explorer shows fp16's window; got fmt={fmt!r}")
        self.values = _check_values(values)
        if self.values.numel() == 0:
            raise ValueError("values holds no non-zero finite gradient to show")
        self.log2_scale = _check_log2_scale(log2_scale, LOG2_SCALE_MIN, LOG2_SCALE_MAX)
        self.log2_magnitudes = self.values.abs().log2()
        self._widget = None

    def set_log2_scale(self, log2_scale: int) -> None:
        self.log2_scale = _check_log2_scale(log2_scale, LOG2_SCALE_MIN, LOG2_SCALE_MAX)
        self._refresh()

    def readout(self) -> dict[str, float]:
        return scale_readout(self.values, self.log2_scale)

    def report(self) -> str:
        return readout_line(self.readout(), self.log2_scale)

    def __repr__(self) -> str:
        return f"LossScaleExplorer({self.values.numel()} values, {self.report()})"

    def figure(self):
        """The histogram of log2 |g| with fp16's zones at this scale (a matplotlib Figure)."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(8, 3.2))
        ax = fig.add_subplot()
        low = math.floor(self.log2_magnitudes.min().item())
        high = math.ceil(self.log2_magnitudes.max().item()) + 1
        ax.hist(self.log2_magnitudes.numpy(), bins=range(low, high + 1), color="tab:blue")
        edges = fp16_edges(self.log2_scale)
        # the same axes at every slider position: every zone stays in view as S moves
        left = min(low - 1, math.floor(fp16_edges(LOG2_SCALE_MAX)["zero"]) - 1)
        right = max(high + 1, math.ceil(fp16_edges(LOG2_SCALE_MIN)["overflow"]) + 1)
        zones = [
            ("zero", left, edges["zero"]),
            ("subnormal", edges["zero"], edges["normal"]),
            ("normal", edges["normal"], edges["overflow"]),
            ("overflow", edges["overflow"], right),
        ]
        readout = self.readout()
        for fate, start, stop in zones:
            if stop > left and start < right:
                ax.axvspan(
                    max(start, left),
                    min(stop, right),
                    color=_COLOURS[fate],
                    alpha=0.15,
                    label=f"{fate}: {coarse_percent(readout[fate])}",
                )
        ax.set_xlim(left, right)
        ax.set_xlabel("log2 |gradient| (true units, before the scale)")
        ax.set_ylabel("values")
        ax.set_title(f"fp16 with the loss scaled by S = 2^{self.log2_scale}")
        ax.legend(loc="upper left", fontsize="small")
        fig.tight_layout()
        return fig

    # ------------------------------------------------------------------ the widget
    @property
    def widget(self):
        """The ipywidgets view (built on first use): a slider, the readout, the histogram."""
        if self._widget is None:
            import ipywidgets as widgets

            self.slider = widgets.IntSlider(
                value=self.log2_scale,
                min=LOG2_SCALE_MIN,
                max=LOG2_SCALE_MAX,
                description="log2 S",
                continuous_update=False,
            )
            self.slider.observe(lambda change: self.set_log2_scale(change["new"]), names="value")
            self.text = widgets.HTML()
            self.plot = widgets.Output()
            self._widget = widgets.VBox([self.slider, self.text, self.plot])
            self._refresh()
        return self._widget

    def _refresh(self) -> None:
        if self._widget is None:
            return
        from IPython.display import display

        self.slider.value = self.log2_scale
        self.text.value = f"<code>{self.report()}</code>"
        with self.plot:
            self.plot.clear_output(wait=True)
            display(self.figure())

    def png(self) -> bytes:
        """The figure as PNG bytes."""
        import io

        buffer = io.BytesIO()
        self.figure().savefig(buffer, format="png", dpi=80)
        return buffer.getvalue()

    def _repr_mimebundle_(self, **kwargs):
        # The widget view for a live frontend; for a static one (an HTML export, a notebook
        # viewer) the histogram at the starting scale, and a short stable text.
        bundle = self.widget._repr_mimebundle_(**kwargs) or {}
        bundle["image/png"] = base64.b64encode(self.png()).decode("ascii")
        bundle["text/plain"] = self.report()
        return bundle


def explore(
    values: torch.Tensor,
    log2_scale: int = 16,
    mode: str = "auto",
    text_scales: tuple[int, ...] = (0, 8, 16, 20, 24),
) -> LossScaleExplorer | None:
    """The loss-scale slider over ``values`` (true-unit gradients). ``mode="widget"`` returns
    the explorer (Jupyter shows it), ``"text"`` prints a readout for each of ``text_scales`` and
    returns None, ``"auto"`` picks the widget inside a Jupyter kernel and text elsewhere."""
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}; got {mode!r}")
    explorer = LossScaleExplorer(values, log2_scale)
    if mode == "text" or (mode == "auto" and not in_notebook_kernel()):
        for scale in text_scales:
            print(readout_line(scale_readout(explorer.values, scale), scale))
        return None
    return explorer
