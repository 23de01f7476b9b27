"""Checks for the exercises of notebook 02 (underflow and overflow).

Notebook 02, section "Exercises".
"""

from __future__ import annotations

import math

from course_utils import formats as F
from course_utils.exercises.registry import (
    Incorrect,
    exercise,
    expect_bool,
    expect_callable,
    expect_number,
)

# Exercise 1: a layer's gradients, from the tiniest to the largest.
SCALE_GRADIENTS = [3e-9, 2e-7, 1e-5, 0.25]

# Exercise 2: (w, update) pairs; none is an exact tie (half a gap), where the parity decides.
MOVE_CASES = [
    (1.0, 1e-3),  # far below half an ulp (2^-8): lost
    (1.0, 5e-3),  # above it: moves
    (1.0, -3e-3),  # downwards the gap below 1 is 2^-8, half of it is 2^-9: moves
    (1.0, -1e-3),  # still under 2^-9: lost
    (0.3, 1e-3),  # ulp(0.3) = 2^-9: half is ~9.8e-4, so 1e-3 moves it
    (0.3, 9e-4),
    (-2.5, 7e-3),
    (-2.5, 9e-3),
    (100.0, 0.2),
    (100.0, 0.3),
    (3e-4, 1e-7),
    (3e-4, 1e-6),
    (1e-30, 1e-33),
    (1e-30, 5e-33),
    (5.0, -0.01),
    (5.0, -0.02),
]


def _fp16_is_normal(x: float) -> bool:
    rounded = abs(F.round_to([x], "fp16").item())
    return F.FORMATS["fp16"].min_normal <= rounded <= F.FORMATS["fp16"].max


@exercise(
    "02.smallest_loss_scale",
    hint="The smallest normal fp16 number is 2^-14 (about 6.1e-5): the scale must lift the "
    "smallest gradient at least that high, without pushing the largest past 65504. Try powers "
    "of two in order.",
    title="Find the smallest power-of-two loss scale that rescues every gradient in fp16",
)
def check_smallest_loss_scale(scale):
    """``scale``: the smallest power of two s such that every ``s * g`` for g in
    ``SCALE_GRADIENTS`` is a normal fp16 number (not zero, not subnormal, not inf)."""
    scale = expect_number(scale, "the loss scale")
    if not scale > 0:
        raise Incorrect(f"the loss scale should be a positive number, got {scale!r}")
    if not math.log2(scale).is_integer():
        raise Incorrect(f"{scale:g} is not a power of two (loss scalers use powers of two)")
    expected = next(
        2.0**k for k in range(64) if all(_fp16_is_normal(2.0**k * g) for g in SCALE_GRADIENTS)
    )
    if scale == expected:
        return None
    if scale > expected:
        raise Incorrect(f"2^{int(math.log2(scale))} works, but a smaller power of two works too")
    low = [g for g in SCALE_GRADIENTS if not _fp16_is_normal(scale * g)]
    raise Incorrect(
        f"with 2^{int(math.log2(scale))}, {low} times the scale is still zero or subnormal in fp16"
    )


@exercise(
    "02.update_moves",
    hint="Round w + update to nearest: the result changes only if the update is more than half "
    "the gap to the neighbour in the update's direction. Careful: just below a power of two the "
    "gap is half as wide as just above it (formats.next_up / next_down give the neighbours).",
    title="Predict whether an update moves a bf16 weight",
)
def check_update_moves(moves):
    """``moves(w, update) -> bool``: does ``w + update``, rounded to bf16, differ from ``w``?"""
    expect_callable(moves, "moves")
    for w, update in MOVE_CASES:
        w_bf16 = F.round_to([w], "bf16").item()
        truth = F.round_to([w_bf16 + update], "bf16").item() != w_bf16
        got = expect_bool(moves(w, update), f"moves({w}, {update})")
        if got != truth:
            verdict = "moves" if truth else "is lost"
            hint = None
            if w == 1.0 and update < 0:
                hint = (
                    "below 1.0 the bf16 values are 2^-8 apart (above it, 2^-7): a downward "
                    "update only needs to pass 2^-9"
                )
            raise Incorrect(
                f"moves({w}, {update}) returned {got!r}, but that update {verdict} in bf16", hint
            )
    return None
