"""The bit explorer without a browser: drive the widgets programmatically, check the text report."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils import formats as F
from course_utils.bit_explorer import BitExplorer, explore

ONE_IN_FP16 = """\
fp16  bits 0 | 01111 | 0000000000  (0x3C00)
  sign      0  (+)
  exponent  01111 = 15, unbiased 15 - 15 = 0
  mantissa  0000000000 = 0, significand 1 + 0/2^10 = 1.0
  kind      normal
  value     (-1)^0 x 2^(0) x 1.0 = 1.0
  asked     1.0 (stored exactly)
  ulp       2^-10 = 0.0009765625
  next up   1.0009765625  (gap 2^-10 = 0.0009765625)
the number 1.0 in every format:
  format    value                    rel. error  kind
  fp32      1.0                      0 (exact)   normal
  tf32      1.0                      0 (exact)   normal
  fp16      1.0                      0 (exact)   normal
  bf16      1.0                      0 (exact)   normal
  fp8_e4m3  1.0                      0 (exact)   normal
  fp8_e5m2  1.0                      0 (exact)   normal
"""


def test_text_report_is_exact(capsys):
    assert explore(1.0, "fp16", mode="text") is None
    assert capsys.readouterr().out == ONE_IN_FP16


def test_text_report_shows_rounding_overflow_and_underflow(capsys):
    explore(70000, "bf16", mode="text")
    out = capsys.readouterr().out
    assert "asked     70000.0, stored as 70144.0, relative error 2.06e-03" in out
    assert "  fp16      inf                      inf         inf (overflow)" in out
    assert "  fp8_e4m3  448.0                    9.94e-01    normal (saturated at max)" in out
    explore(1e-8, "fp16", mode="text")
    out = capsys.readouterr().out
    assert "kind      zero" in out and "fp16      0.0" in out and "zero (underflow)" in out
    assert "bf16      1.0011717677116394e-08   1.17e-03    normal" in out
    explore(448, "fp8_e4m3", mode="text")
    assert "next up   none (448.0 is the largest finite value" in capsys.readouterr().out


def test_auto_mode_outside_jupyter_prints_text(capsys):
    assert explore(257, "bf16") is None
    assert "value     (-1)^0 x 2^(8) x 1.0 = 256.0" in capsys.readouterr().out


def test_widget_mode_returns_an_explorer():
    explorer = explore(0.1, "fp16", mode="widget")
    assert isinstance(explorer, BitExplorer)
    assert explorer.bits == F.encode(0.1, "fp16")
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert (
        bundle["text/plain"]
        == "BitExplorer(fmt='fp16', value=0.0999755859375, bits='0 | 01011 | 1001100110')"
    )


def test_clicking_bits_updates_the_value():
    explorer = BitExplorer("bf16", 1.0)
    buttons = explorer.widget and explorer.bit_buttons
    assert len(buttons) == 16
    assert "".join(b.description for b in buttons) == "0011111110000000"
    buttons[0].click()  # sign
    assert explorer.value == -1.0 and explorer.number_box.value == "-1.0"
    assert buttons[0].description == "1" and buttons[0].style.button_color == "#c0392b"
    buttons[0].click()
    buttons[15].click()  # mantissa LSB: the next bf16 number after 1
    assert explorer.value == 1 + 2**-7 == F.next_up(1.0, "bf16")
    assert buttons[15].style.button_color == "#23803a"  # set mantissa bit: dark green
    buttons[8].click()  # lowest exponent bit: 0b01111111 -> 0b01111110 halves the value
    assert explorer.value == (1 + 2**-7) / 2
    assert f"value     (-1)^0 x 2^(-1) x {1 + 2**-7!r}" in explorer.details.value


def test_colours_follow_the_fields():
    explorer = BitExplorer("fp8_e5m2", 0.0)
    explorer.widget  # noqa: B018 - builds the widgets
    colours = [b.style.button_color for b in explorer.bit_buttons]
    assert colours == ["#f5c6c0"] + ["#c9dcf2"] * 5 + ["#c8ebd0"] * 2
    assert [explorer.field_of(p) for p in (0, 1, 5, 6, 7)] == [
        "sign",
        "exponent",
        "exponent",
        "mantissa",
        "mantissa",
    ]


def test_typing_a_number_and_switching_format():
    explorer = BitExplorer("bf16", 1.0)
    explorer.widget  # noqa: B018
    explorer.number_box.value = "257"
    assert explorer.value == 256.0 and explorer.target == 257.0
    explorer.number_box.value = "0.1"
    explorer.format_box.value = "fp16"
    # the typed number is rounded into the new format, not the bf16 value
    assert len(explorer.bit_buttons) == 16 and explorer.value == F.decode(
        F.encode(0.1, "fp16"), "fp16"
    )
    explorer.format_box.value = "fp8_e4m3"
    assert len(explorer.bit_buttons) == 8 and len(explorer.bit_row.children) == 8
    explorer.bit_buttons[-1].click()  # works on the rebuilt buttons
    assert explorer.bits == F.encode(0.1, "fp8_e4m3") ^ 1


def test_bad_typed_input_keeps_the_state():
    explorer = BitExplorer("fp16", 2.0)
    explorer.widget  # noqa: B018
    explorer.number_box.value = "two"
    assert explorer.value == 2.0 and "not a number: 'two'" in explorer.message
    assert "! not a number" in explorer.report() and "not a number" in explorer.details.value
    assert explorer.set_text("-inf") and explorer.value == -math.inf and explorer.message == ""


def test_logic_works_without_widgets():
    explorer = BitExplorer("fp8_e4m3", 1.0)
    explorer.toggle(0)
    assert explorer.value == -1.0
    explorer.set_bits("0 | 1111 | 111")
    assert math.isnan(explorer.value) and "kind      nan" in explorer.report()
    explorer.set_format("fp32")
    assert math.isnan(explorer.value) and explorer.spec.total_bits == 32
    assert "BitExplorer(fmt='fp32'" in repr(explorer)


def test_bad_input():
    with pytest.raises(ValueError, match="known formats: fp32, tf32"):
        explore(1.0, "fp64", mode="text")
    with pytest.raises(ValueError, match="mode must be one of auto, widget, text"):
        explore(1.0, "bf16", mode="html")
    with pytest.raises(TypeError, match="expected a real number"):
        BitExplorer("bf16", "1.0")
    with pytest.raises(ValueError, match=r"bit position must be an int in \[0, 15\] for bf16"):
        BitExplorer("bf16").toggle(16)
    with pytest.raises(ValueError, match="out of range for fp8_e5m2"):
        BitExplorer("fp8_e5m2").set_bits(256)


@settings(deadline=None, max_examples=50)
@given(st.sampled_from(list(F.FORMAT_NAMES)), st.data())
def test_toggle_flips_exactly_one_bit(fmt, data):
    width = F.FORMATS[fmt].total_bits
    start = data.draw(st.integers(0, 2**width - 1))
    position = data.draw(st.integers(0, width - 1))
    explorer = BitExplorer(fmt)
    explorer.set_bits(start)
    explorer.toggle(position)
    assert explorer.bits == start ^ (1 << (width - 1 - position))
    value = F.decode(explorer.bits, fmt)
    assert explorer.value == value or (math.isnan(value) and math.isnan(explorer.value))
    explorer.toggle(position)
    assert explorer.bits == start
