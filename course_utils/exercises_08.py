"""Checks for the exercises of notebook 08 (scaling out)."""

from __future__ import annotations

import math
import numbers

import torch
from torch.distributed.fsdp import MixedPrecisionPolicy

from course_utils.exercises import Incorrect, exercise, expect_callable

# (numel, world size, dtype)
RING_CASES = [
    (124_000_000, 8, torch.bfloat16),
    (124_000_000, 8, torch.float32),
    (1_000, 2, torch.float16),
    (10, 1, torch.float32),
]


@exercise(
    "08.reduce_in_fp32",
    hint="MixedPrecisionPolicy(param_dtype=..., reduce_dtype=...): param_dtype is the dtype of "
    "the unsharded weights during forward and backward (the compute), reduce_dtype the dtype "
    "the gradients are reduce-scattered in.",
    title="An FSDP2 policy: compute in bf16, reduce gradients in fp32",
)
def check_policy(policy):
    """``policy``: a ``MixedPrecisionPolicy`` computing in bf16 and reducing in fp32."""
    if not isinstance(policy, MixedPrecisionPolicy):
        raise Incorrect(
            f"expected a torch.distributed.fsdp.MixedPrecisionPolicy, got {type(policy).__name__}"
        )
    if policy.param_dtype is not torch.bfloat16:
        raise Incorrect(
            f"param_dtype is {policy.param_dtype}: the compute (and the all-gathered weights) "
            "should be torch.bfloat16"
        )
    if policy.reduce_dtype is torch.bfloat16:
        raise Incorrect(
            "reduce_dtype=torch.bfloat16 reduces the gradients in bf16 (what Accelerate does by "
            "default); this exercise asks for fp32"
        )
    if policy.reduce_dtype is None:
        raise Incorrect(
            "reduce_dtype=None falls back to param_dtype, so gradients would be reduced in bf16: "
            "set it to torch.float32"
        )
    if policy.reduce_dtype is not torch.float32:
        raise Incorrect(f"reduce_dtype is {policy.reduce_dtype}, expected torch.float32")


@exercise(
    "08.ring_allreduce_bytes",
    hint="A ring all-reduce is a reduce-scatter then an all-gather: in each, every rank sends "
    "(world_size - 1) chunks of numel / world_size elements. Multiply by the dtype's bytes "
    "per element (torch.tensor([], dtype=dtype).element_size()).",
    title="Bytes each rank sends in a ring all-reduce",
)
def check_ring_allreduce_bytes(ring_allreduce_bytes):
    """``ring_allreduce_bytes(numel, world_size, dtype)``: bytes one rank sends."""
    expect_callable(ring_allreduce_bytes, "ring_allreduce_bytes")
    for numel, world, dtype in RING_CASES:
        what = f"ring_allreduce_bytes({numel}, {world}, {dtype})"
        got = ring_allreduce_bytes(numel, world, dtype)
        if isinstance(got, bool) or not isinstance(got, numbers.Real):
            raise Incorrect(f"{what} should be a number, got {type(got).__name__} {got!r}")
        size = torch.tensor([], dtype=dtype).element_size()
        expected = 2 * (world - 1) / world * numel * size
        if math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9):
            continue
        if expected and math.isclose(got, expected / 2, rel_tol=1e-9):
            raise Incorrect(f"{what} counts one phase only: an all-reduce is two (2 (N-1)/N)")
        if expected and math.isclose(got, expected / size * 4, rel_tol=1e-9) and size != 4:
            raise Incorrect(f"{what} uses 4 bytes per element: {dtype} has {size}")
        raise Incorrect(f"{what} is {got:g}, expected {expected:g}")
