"""Checks for the exercises of notebook 01 (float formats).

Notebook 01, section "Exercises".
"""

from __future__ import annotations

import math

import torch

from course_utils import formats as F
from course_utils.exercises.registry import Incorrect, exercise, expect_number

# Exercise 1: a pattern to decode by hand (sign | exponent | mantissa).
DECODE_PATTERN = "1 | 10010 | 1010000000"

# Exercise 2: which of these survive a trip through fp16 (come back finite and non-zero)?
SURVIVAL_CANDIDATES = [0.1, 70000.0, 65519.0, 1e-7, 1e-8, 1e-4, 60000.0, 5e-9]


def _number(answer, what: str) -> float:
    """A finite number (NaN, inf, strings and look-alike objects are ``Incorrect``)."""
    return expect_number(answer, what)


@exercise(
    "01.decode_fp16",
    hint="value = (-1)^sign x 2^(exponent - 15) x (1 + mantissa / 2^10) for a normal fp16 "
    "number: read the exponent and the mantissa as unsigned binary integers first.",
    title="Decode an fp16 bit pattern by hand",
)
def check_decode_fp16(value):
    """``value``: the number the fp16 pattern ``DECODE_PATTERN`` stands for."""
    got = _number(value, "your value")
    expected = F.decode(DECODE_PATTERN, "fp16")
    if got == expected:
        return None
    info = F.fields(DECODE_PATTERN, "fp16")
    if got == -expected:
        raise Incorrect(
            f"{got!r} has the wrong sign", "the first bit is the sign: 1 means negative"
        )
    if got == -info.significand * 2.0**info.exponent_field:
        raise Incorrect(
            f"{got!r} forgets the bias",
            f"the stored exponent {info.exponent_field} is biased: subtract 15 first",
        )
    if got == -(info.significand - 1) * 2.0**info.exponent:
        raise Incorrect(
            f"{got!r} forgets the implicit leading 1",
            "a normal number's significand is 1.mantissa: 1 + mantissa / 1024",
        )
    raise Incorrect(f"{got!r} is not the value of {DECODE_PATTERN}")


@exercise(
    "01.fp16_survivors",
    hint="fp16 overflows to inf from 65520 on (65504 plus half a gap of 32); below its smallest "
    "subnormal, 2^-24 (about 6e-8), values round to 0 once they are under half of it.",
    title="Predict which values survive a trip through fp16",
)
def check_fp16_survivors(survivors):
    """``survivors``: the values of ``SURVIVAL_CANDIDATES`` that come back from fp16 finite and
    non-zero."""
    if isinstance(survivors, (str, bytes)) or not hasattr(survivors, "__iter__"):
        raise Incorrect(
            f"give a list of values from SURVIVAL_CANDIDATES, got {type(survivors).__name__}"
        )
    chosen = [_number(v, "each survivor") for v in survivors]
    unknown = [v for v in chosen if v not in SURVIVAL_CANDIDATES]
    if unknown:
        raise Incorrect(f"{unknown} are not in SURVIVAL_CANDIDATES")
    rounded = F.round_to(SURVIVAL_CANDIDATES, "fp16").tolist()
    expected = {
        v for v, r in zip(SURVIVAL_CANDIDATES, rounded, strict=True) if math.isfinite(r) and r != 0
    }
    missing = sorted(expected - set(chosen))
    extra = sorted(set(chosen) - expected)
    if missing:
        raise Incorrect(f"{missing} survive too (try rounding them to fp16)")
    if extra:
        fates = {v: F.round_to([v], "fp16").item() for v in extra}
        raise Incorrect(
            "these do not survive: " + ", ".join(f"{v!r} -> {fates[v]!r}" for v in extra)
        )
    return None


@exercise(
    "01.bf16_integers",
    hint="bf16 keeps 8 significant bits (7 stored + the implicit 1). Above 2^8 the gap between "
    "neighbouring values is 2.",
    title="The largest n such that every integer 0..n is exact in bf16",
)
def check_bf16_integers(n):
    """``n``: the largest integer such that every integer 0, 1, ..., n is a bf16 value."""
    got = _number(n, "n")
    values = torch.arange(0, 2**12, dtype=torch.float32)
    exact = F.round_to(values, "bf16") == values
    expected = float(values[~exact][0].item() - 1)  # the integer before the first inexact one
    if got == expected:
        return None
    if got == expected + 1:
        raise Incorrect(
            f"{got:g} is not exact in bf16: it rounds to {F.round_to([got], 'bf16').item():g}"
        )
    if got == 2**11:
        raise Incorrect(f"{got:g} is fp16's answer (11 significant bits), not bf16's")
    raise Incorrect(f"{got:g} is not it")
