"""Checks for the exercises of notebook 07 (performance lab).

Taught in notebook 07, sections "Exercise 1: TFLOP/s of a matrix product" and "Exercise 2: MFU
from tokens per second".
"""

from __future__ import annotations

import math
import numbers

from course_utils.exercises.registry import Incorrect, exercise, expect_callable

# (m, n, k, seconds): square, non-square (catches n**3) and tiny cases.
MATMUL_CASES = [(1024, 1024, 1024, 0.01), (4096, 512, 2048, 0.002), (3, 5, 7, 1e-9)]
# (tokens per second, parameters, peak TFLOP/s)
MFU_CASES = [(10_000.0, 124_000_000, 989.5), (2_500.0, 7_000_000_000, 312.0), (1.0, 1, 1e-12)]


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise Incorrect(f"{what} should be a number, got {type(value).__name__} {value!r}")
    return float(value)


@exercise(
    "07.matmul_tflops",
    hint="An (m x k) @ (k x n) product computes m*n dot products of length k: m*n*k "
    "multiply-adds, and each multiply-add is 2 floating-point operations. Divide by the "
    "seconds, then by 1e12 for TFLOP/s.",
    title="Achieved TFLOP/s of a matrix product",
)
def check_matmul_tflops(matmul_tflops):
    """``matmul_tflops(m, n, k, seconds)``: TFLOP/s of an (m x k) @ (k x n) product."""
    expect_callable(matmul_tflops, "matmul_tflops")
    for m, n, k, seconds in MATMUL_CASES:
        what = f"matmul_tflops({m}, {n}, {k}, {seconds})"
        got = _number(matmul_tflops(m, n, k, seconds), what)
        expected = 2 * m * n * k / seconds / 1e12
        if math.isclose(got, expected, rel_tol=1e-9):
            continue
        if math.isclose(got, expected / 2, rel_tol=1e-9):
            raise Incorrect(f"{what} is half the right value: a multiply-add is 2 operations")
        if math.isclose(got, expected * 1e12, rel_tol=1e-9):
            raise Incorrect(f"{what} is in FLOP/s: divide by 1e12 for TFLOP/s")
        if (m, n) != (n, k) and math.isclose(got, 2 * n**3 / seconds / 1e12, rel_tol=1e-9):
            raise Incorrect(f"{what} uses n**3: the shapes are not square here")
        raise Incorrect(f"{what} is {got:g}, expected {expected:g}")


@exercise(
    "07.mfu",
    hint="A training token costs about 6 N FLOPs: 2 N in the forward pass (a multiply-add per "
    "parameter) and 4 N in the backward pass (gradients for the inputs and for the weights). "
    "MFU = that rate / (peak TFLOP/s x 1e12).",
    title="Model FLOPs utilisation from tokens per second",
)
def check_mfu(mfu):
    """``mfu(tokens_per_s, n_params, peak_tflops)``: 6 N tokens/s over the peak."""
    expect_callable(mfu, "mfu")
    for tokens_per_s, n_params, peak in MFU_CASES:
        what = f"mfu({tokens_per_s:g}, {n_params:g}, {peak:g})"
        got = _number(mfu(tokens_per_s, n_params, peak), what)
        expected = 6 * n_params * tokens_per_s / (peak * 1e12)
        if math.isclose(got, expected, rel_tol=1e-9):
            continue
        if math.isclose(got, expected / 3, rel_tol=1e-9):
            raise Incorrect(f"{what} counts only the forward pass (2 N per token)")
        if math.isclose(got, expected * 100, rel_tol=1e-9):
            raise Incorrect(f"{what} is a percentage: return a fraction (0.4, not 40)")
        if math.isclose(got, expected * 1e12, rel_tol=1e-9):
            raise Incorrect(f"{what}: the peak is in TFLOP/s, multiply it by 1e12")
        raise Incorrect(f"{what} is {got:g}, expected {expected:g}")
