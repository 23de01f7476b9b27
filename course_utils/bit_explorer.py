"""The bit explorer: click the bits of a float (or type a number) in any course format and see
its sign, exponent, mantissa, value, spacing, and the same number in every other format.

Taught in notebook 01, section "The bit explorer".

``explore(0.1, "bf16")`` shows the ipywidgets explorer in JupyterLab and prints a text report
elsewhere; ``explore(0.1, "bf16", mode="text")`` always prints the (deterministic) report.
The state and the report live in ``BitExplorer``; the widgets only mirror them, so everything can
be driven and tested without a browser (``explorer.toggle(0)`` flips the sign bit).
"""

from __future__ import annotations

import html
import math
from typing import Any

from course_utils import formats as F

__all__ = ["BitExplorer", "explore"]

# (set, clear) colours per field: sign red, exponent blue, mantissa green
_COLOURS = {
    "sign": ("#c0392b", "#f5c6c0"),
    "exponent": ("#1f5fa8", "#c9dcf2"),
    "mantissa": ("#23803a", "#c8ebd0"),
}
_MODES = ("auto", "widget", "text")


class BitExplorer:
    """One number in one format, as bits. ``target`` is the number asked for (typed, or the value
    left by the last bit click); ``bits`` is its pattern in ``fmt``; ``value`` decodes it."""

    def __init__(self, fmt: str = "bf16", value: float = 1.0) -> None:
        self.fmt = F.get_format(fmt).name
        self.target = F._as_real(value)
        self.bits = F.encode(self.target, self.fmt)
        self.message = ""  # the last input error, shown under the widget
        self._widget = None
        self._syncing = False

    # ------------------------------------------------------------------ state changes

    @property
    def spec(self) -> F.FloatFormat:
        return F.FORMATS[self.fmt]

    @property
    def value(self) -> float:
        return F.decode(self.bits, self.fmt)

    def set_value(self, x: float) -> None:
        """Represent the number ``x`` (rounded to nearest even into the format)."""
        self.target = F._as_real(x)
        self.bits = F.encode(self.target, self.fmt)
        self.message = ""
        self._refresh()

    def set_text(self, text: str) -> bool:
        """Represent the number typed as ``text`` ("0.1", "1e-8", "-inf", "nan"); on anything else
        keep the state, set ``message`` and return False."""
        try:
            number = float(text.strip().replace("_", ""))
        except ValueError:
            self.message = f"not a number: {text!r} (try 0.1, 1e-8, 65504, inf, nan)"
            self._refresh()
            return False
        self.set_value(number)
        return True

    def set_bits(self, bits: int | str) -> None:
        """Set the whole pattern (an int or a bit string); the number becomes its value."""
        self.bits = F._as_bits(bits, self.spec)
        self.target = self.value
        self.message = ""
        self._refresh()

    def toggle(self, position: int) -> None:
        """Flip one bit; ``position`` counts from the left, 0 being the sign bit."""
        width = self.spec.total_bits
        if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < width:
            raise ValueError(f"bit position must be an int in [0, {width - 1}] for {self.fmt}")
        self.set_bits(self.bits ^ (1 << (width - 1 - position)))

    def set_format(self, fmt: str) -> None:
        """Switch format, rounding the number asked for into it."""
        self.fmt = F.get_format(fmt).name
        self.bits = F.encode(self.target, self.fmt)
        self.message = ""
        self._refresh(rebuild=True)

    # ------------------------------------------------------------------ the report

    def field_of(self, position: int) -> str:
        """ "sign", "exponent" or "mantissa" for the bit at ``position`` (0 = leftmost)."""
        if position == 0:
            return "sign"
        return "exponent" if position <= self.spec.exponent_bits else "mantissa"

    def other_formats(self) -> list[dict[str, Any]]:
        """``target`` rounded into every format: value, relative error, kind."""
        rows = []
        for name in F.FORMAT_NAMES:
            info = F.fields(self.target, name)
            rows.append(
                {
                    "format": name,
                    "value": info.value,
                    "relative_error": _relative_error(info.value, self.target),
                    "kind": _kind_note(info, self.target),
                }
            )
        return rows

    def report(self) -> str:
        """The text report: fields, value, spacing, the number in every format. Deterministic."""
        spec, info = self.spec, F.fields(bits=self.bits, fmt=self.fmt)
        sign_text, exp_text, man_text = F.format_bits(self.bits, self.fmt).split(" | ")
        hex_digits = (spec.total_bits + 3) // 4
        lines = [
            f"{self.fmt}  bits {sign_text} | {exp_text} | {man_text}  (0x{self.bits:0{hex_digits}X})"
        ]
        lines.append(f"  sign      {sign_text}  ({'-' if info.sign else '+'})")
        lines.append(
            f"  exponent  {exp_text} = {info.exponent_field}, {_exponent_note(info, spec)}"
        )
        lines.append(f"  mantissa  {man_text} = {info.mantissa_field}, {_mantissa_note(info)}")
        lines.append(f"  kind      {info.kind}")
        lines.append(
            f"  value     {info.formula() if info.kind not in ('zero',) else repr(info.value)}"
        )
        lines.append(f"  asked     {_asked_note(self.target, info.value)}")
        lines.append(f"  ulp       {_power_of_two(F.ulp(info.value, self.fmt))}")
        lines.append(f"  next up   {_next_up_note(info.value, self.fmt)}")
        lines.append(f"the number {self.target!r} in every format:")
        lines.append(f"  {'format':<9} {'value':<24} {'rel. error':<11} kind")
        for row in self.other_formats():
            error = _format_error(row["relative_error"])
            lines.append(f"  {row['format']:<9} {row['value']!r:<24} {error:<11} {row['kind']}")
        if self.message:
            lines.append(f"! {self.message}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"BitExplorer(fmt={self.fmt!r}, value={self.value!r}, bits={F.format_bits(self.bits, self.fmt)!r})"

    # ------------------------------------------------------------------ the widget

    @property
    def widget(self):
        """The ipywidgets view (built on first use)."""
        if self._widget is None:
            self._build()
        return self._widget

    def _repr_mimebundle_(self, **kwargs):
        # the widget view, with a short stable text/plain (nbval compares it, not the model id)
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = repr(self)
        return bundle

    def _build(self) -> None:
        import ipywidgets as widgets

        self.format_box = widgets.Dropdown(
            options=list(F.FORMAT_NAMES), value=self.fmt, description="format"
        )
        self.number_box = widgets.Text(
            value=repr(self.target), description="number", continuous_update=False
        )
        self.bit_row = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self.details = widgets.HTML()
        self.format_box.observe(self._on_format, names="value")
        self.number_box.observe(self._on_number, names="value")
        legend = " ".join(
            f"<span style='background:{dark};color:white;padding:0 4px'>{field}</span>"
            for field, (dark, _light) in _COLOURS.items()
        )
        hint = widgets.HTML(f"click a bit to flip it: {legend}")
        self._widget = widgets.VBox(
            [widgets.HBox([self.format_box, self.number_box]), hint, self.bit_row, self.details]
        )
        self._make_buttons()
        self._refresh()

    def _make_buttons(self) -> None:
        import ipywidgets as widgets

        self.bit_buttons = []
        for position in range(self.spec.total_bits):
            button = widgets.Button(
                layout=widgets.Layout(width="2.1em", padding="0", margin="1px"),
                tooltip=f"{self.field_of(position)} bit (position {position})",
            )
            button.on_click(lambda _button, p=position: self.toggle(p))
            self.bit_buttons.append(button)
        self.bit_row.children = tuple(self.bit_buttons)

    def _refresh(self, rebuild: bool = False) -> None:
        """Mirror the state into the widgets (if they exist)."""
        if self._widget is None:
            return
        self._syncing = True
        try:
            if rebuild or len(self.bit_buttons) != self.spec.total_bits:
                self._make_buttons()
            self.format_box.value = self.fmt
            if not self.message:
                self.number_box.value = repr(self.target)
            digits = F.format_bits(self.bits, self.fmt, sep="")
            for position, (button, digit) in enumerate(zip(self.bit_buttons, digits, strict=True)):
                dark, light = _COLOURS[self.field_of(position)]
                button.description = digit
                button.style.button_color = dark if digit == "1" else light
                button.style.text_color = "white" if digit == "1" else "black"
            self.details.value = f"<pre style='line-height:1.3'>{html.escape(self.report())}</pre>"
        finally:
            self._syncing = False

    def _on_format(self, change) -> None:
        if not self._syncing:
            self.set_format(change["new"])

    def _on_number(self, change) -> None:
        if not self._syncing:
            self.set_text(change["new"])


def explore(value: float = 1.0, fmt: str = "bf16", mode: str = "auto") -> BitExplorer | None:
    """Explore ``value`` in ``fmt``. ``mode="widget"`` returns the explorer (Jupyter shows it),
    ``"text"`` prints the report and returns None, ``"auto"`` picks the widget inside a Jupyter
    kernel and text elsewhere."""
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}; got {mode!r}")
    explorer = BitExplorer(fmt, value)
    if mode == "text" or (mode == "auto" and not _in_jupyter_kernel()):
        print(explorer.report())
        return None
    return explorer


def _in_jupyter_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


# ---------------------------------------------------------------------- report helpers


def _kind_note(info: F.Fields, target: float) -> str:
    """The kind, plus what happened on the way: underflow, overflow or saturation."""
    spec = F.FORMATS[info.fmt]
    if info.kind == "zero" and target != 0 and not math.isnan(target):
        return "zero (underflow)"
    if info.kind == "inf" and math.isfinite(target):
        return "inf (overflow)"
    if abs(info.value) == spec.max and abs(target) > spec.max:
        return "normal (saturated at max)"
    return info.kind


def _exponent_note(info: F.Fields, spec: F.FloatFormat) -> str:
    if info.kind == "normal":
        return f"unbiased {info.exponent_field} - {spec.bias} = {info.exponent}"
    if info.kind in ("subnormal", "zero"):
        return f"all zeros: subnormal/zero, exponent fixed at 1 - {spec.bias} = {spec.min_exponent}"
    if spec.has_inf:
        return "all ones: inf (mantissa 0) or NaN"
    return "all ones: NaN when the mantissa is all ones too"


def _mantissa_note(info: F.Fields) -> str:
    if info.kind == "normal":
        return f"significand 1 + {info.mantissa_field}/2^{_width(info)} = {info.significand!r}"
    if info.kind == "subnormal":
        return f"significand 0 + {info.mantissa_field}/2^{_width(info)} = {info.significand!r}"
    return "no significand"


def _width(info: F.Fields) -> int:
    return F.FORMATS[info.fmt].mantissa_bits


def _relative_error(stored: float, target: float) -> float:
    if math.isnan(target) or math.isnan(stored):
        return math.nan
    if stored == target:
        return 0.0
    if math.isinf(target) or math.isinf(stored):
        return math.inf
    return abs(stored - target) / abs(target) if target != 0 else math.inf


def _format_error(error: float) -> str:
    if error == 0:
        return "0 (exact)"
    if math.isnan(error):
        return "n/a"
    return f"{error:.2e}" if math.isfinite(error) else str(error)


def _asked_note(target: float, stored: float) -> str:
    if math.isnan(target):
        return "nan (stays NaN in every format)"
    error = _relative_error(stored, target)
    if error == 0:
        return f"{target!r} (stored exactly)"
    return f"{target!r}, stored as {stored!r}, relative error {_format_error(error)}"


def _power_of_two(x: float) -> str:
    if not math.isfinite(x) or x <= 0:
        return repr(x)
    mantissa, exponent = math.frexp(x)
    return f"2^{exponent - 1} = {x!r}" if mantissa == 0.5 else repr(x)


def _next_up_note(value: float, fmt: str) -> str:
    if math.isnan(value):
        return "none (NaN)"
    above = F.next_up(value, fmt)
    if math.isnan(above):
        return f"none ({value!r} is the largest finite value and {fmt} has no inf)"
    if math.isinf(above) or math.isinf(value):
        return repr(above)
    return f"{above!r}  (gap {_power_of_two(above - value)})"
