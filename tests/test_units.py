"""units.format_bytes: binary units, one decimal, a clear error for what is not a byte count."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from course_utils.units import format_bytes


@given(
    st.one_of(st.integers(min_value=0, max_value=2**60), st.floats(min_value=0, max_value=2**60))
)
def test_any_byte_count_has_one_unit_and_reads_back_within_rounding(n):
    text = format_bytes(n)
    match = re.fullmatch(r"(\d+(?:\.\d)?) (B|KiB|MiB|GiB)", text)
    assert match, text
    value = (
        float(match.group(1)) * {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[match.group(2)]
    )
    if match.group(2) == "B":
        assert value == int(n)
    else:
        assert abs(value - n) <= 0.05 * {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[match.group(2)]


@pytest.mark.parametrize("bad", [-1, -0.5, "12", None, True, float("nan"), float("inf")])
def test_what_is_not_a_byte_count_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="expected a number of bytes >= 0"):
        format_bytes(bad)
