"""precision.py's vocabulary: the names, their order, the name -> dtype map and dtype_name."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from course_utils.precision import (
    AUTOCAST_DTYPES,
    DTYPES,
    FLOATING_NAMES,
    FORMATS,
    MATMUL_FORMATS,
    PRECISIONS,
    dtype_name,
    to_dtype,
)


def test_the_names_come_in_the_course_order_and_agree_with_each_other():
    assert FORMATS == ("fp32", "bf16", "fp16")
    assert tuple(PRECISIONS)[:3] == FORMATS  # training modes start with the three formats
    assert set(FORMATS) <= set(MATMUL_FORMATS) == set(DTYPES)
    assert AUTOCAST_DTYPES == {"bf16": torch.bfloat16, "fp16": torch.float16}


@pytest.mark.parametrize(
    ("name", "dtype"),
    [
        ("fp32", torch.float32),
        ("tf32", torch.float32),  # TF32 is fp32 storage; only the matmul maths differs
        ("bf16", torch.bfloat16),
        ("bfloat16", torch.bfloat16),
        ("fp16", torch.float16),
        ("float16", torch.float16),
        ("fp8", torch.float8_e4m3fn),
        (torch.bfloat16, torch.bfloat16),
    ],
)
def test_to_dtype(name, dtype):
    assert to_dtype(name) is dtype


@given(st.one_of(st.text(max_size=12), st.integers(), st.none(), st.floats()))
def test_to_dtype_refuses_anything_else_with_the_valid_names(value):
    if value in DTYPES or value in ("float32", "bfloat16", "float16"):
        return
    with pytest.raises(ValueError, match="unknown precision name .*'fp32', 'tf32', 'bf16'"):
        to_dtype(value)


def test_dtype_name_short_long_and_none():
    assert [dtype_name(to_dtype(n)) for n in FORMATS] == list(FORMATS)
    assert dtype_name(torch.bfloat16, long=True) == "bfloat16"
    assert dtype_name(torch.float8_e4m3fn) == "fp8_e4m3" and dtype_name(torch.int64) == "int64"
    assert dtype_name(torch.complex64) == "complex64" and dtype_name(None) == "none"
    with pytest.raises(TypeError, match="expected a torch.dtype, got 'fp32'"):
        dtype_name("fp32")


def test_floating_names_are_the_floating_dtypes():
    assert FLOATING_NAMES == {"fp64", "fp32", "bf16", "fp16", "fp8_e4m3", "fp8_e5m2"}
    assert "int64" not in FLOATING_NAMES and "bool" not in FLOATING_NAMES
