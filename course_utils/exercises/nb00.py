"""Checks for the exercises of notebook 00 (start here).

Notebook 00, section "Exercise: the autocast settings for a GPU".
"""

from __future__ import annotations

import torch

from course_utils.exercises.registry import Incorrect, exercise, expect_bool, expect_callable
from course_utils.hardware import recommend_precision
from course_utils.precision import AUTOCAST_DTYPES

# GPUs the check asks about: (name, compute capability). Answers come from the hardware table.
CHECK_GPUS = [
    ("Tesla V100-SXM2-16GB", (7, 0)),
    ("Tesla T4", (7, 5)),
    ("NVIDIA GeForce RTX 3080", (8, 6)),
    ("NVIDIA A100-SXM4-40GB", (8, 0)),
    ("NVIDIA L4", (8, 9)),
    ("NVIDIA H100 80GB HBM3", (9, 0)),
]


@exercise(
    "00.amp_settings",
    hint="bf16 tensor cores arrived with Ampere (compute capability 8.0); Volta (7.0) and Turing "
    "(7.5) have fp16 ones. fp16 needs a GradScaler; bf16 has fp32's range and needs none.",
    title="Pick the autocast dtype and whether a GradScaler is needed, from the compute capability",
)
def check_amp_settings(amp_settings):
    """``amp_settings(capability) -> (dtype, use_grad_scaler)`` for a CUDA GPU."""
    expect_callable(amp_settings, "amp_settings")
    for name, cap in CHECK_GPUS:
        expected = AUTOCAST_DTYPES.get(
            recommend_precision(name, cap).precision
        )  # fp32: no autocast
        got = amp_settings(cap)
        if not (isinstance(got, tuple) and len(got) == 2):
            raise Incorrect(
                f"amp_settings{cap} should return a pair (dtype, use_grad_scaler), got {got!r}"
            )
        dtype, use_scaler = got[0], expect_bool(got[1], f"use_grad_scaler for capability {cap}")
        if dtype is not expected:
            raise Incorrect(
                f"for the {name} (capability {cap}) you chose {dtype}, expected {expected}"
            )
        if use_scaler != (expected is torch.float16):
            need = "needs" if expected is torch.float16 else "does not need"
            raise Incorrect(f"{expected} {need} a GradScaler (the {name}), you said {use_scaler!r}")
