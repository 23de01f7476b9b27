"""Checks for the exercises of notebook 04 (autocast under the hood).

Notebook 04, section "3. Memory anatomy, in bytes per parameter" (training memory of a model's
state).
"""

from __future__ import annotations

from course_utils.exercises.registry import Incorrect, exercise, expect_callable, expect_number

GIB = 2**30

# Bytes per parameter of weights + gradients + AdamW's two moments (+ autocast's 16-bit weight
# copies), as notebook 04 measures them with course_utils.memory.measure_memory.
BYTES_PER_PARAMETER = {
    "fp32": 4 + 4 + 8,  # fp32 weights, fp32 gradients, two fp32 moments
    "bf16": 4 + 4 + 8 + 2,  # the same master state, plus a bf16 copy of (almost) every weight
    "bf16-pure": 2 + 2 + 4,  # everything in bf16
}
CHECK_SIZES = [124e6, 1.3e9, 7e9, 70e9]  # GPT-2 small, a 1.3B, a 7B and a 70B model


def expected_gib(num_params: float, precision: str) -> float:
    return num_params * BYTES_PER_PARAMETER[precision] / GIB


@exercise(
    "04.training_memory",
    hint="Bytes per parameter: fp32 16 (weights 4 + gradients 4 + AdamW 8); bf16 autocast 18 "
    "(the same, plus a 2-byte bf16 copy of each weight); pure bf16 8 (2 + 2 + 4). "
    "Divide the bytes by 2**30 for GiB.",
    title="Training memory of a model's state, in GiB, per precision",
)
def check_training_memory(training_memory_gib):
    """``training_memory_gib(num_params, precision) -> float``: GiB of weights, gradients,
    AdamW state (and autocast's weight copies), for precision "fp32", "bf16" or "bf16-pure"."""
    expect_callable(training_memory_gib, "training_memory_gib")
    for precision in BYTES_PER_PARAMETER:
        for n in CHECK_SIZES:
            want = expected_gib(n, precision)
            value = expect_number(  # a NaN, an inf or a string is never "close"
                training_memory_gib(n, precision),
                f"training_memory_gib({n:.3g}, {precision!r}) (a number of GiB)",
            )
            if not abs(value - want) <= 0.02 * want:
                if abs(value - want * GIB / 1e9) <= 0.02 * want:
                    raise Incorrect(
                        f"for {n:.3g} parameters in {precision!r} you gave {value:.1f}: that is "
                        "in GB (10**9 bytes); give GiB (2**30 bytes), the unit memory tools show"
                    )
                per_param = value * GIB / n
                raise Incorrect(
                    f"for {n:.3g} parameters in {precision!r} you said {value:.1f} GiB "
                    f"({per_param:.1f} bytes/param); the measured anatomy gives {want:.1f} GiB"
                )
