"""Checks for the exercises of notebook 08 (scaling out).

Taught in notebook 08, sections "Exercise 1: predict FSDP2's dtypes" and "Exercise 2: what a
bf16 reduction saves".
"""

from __future__ import annotations

import math

import torch
from torch.distributed.fsdp import MixedPrecisionPolicy

from course_utils.exercises.registry import Incorrect, exercise, expect_callable, expect_number

# (numel, world size, dtype)
RING_CASES = [
    (124_000_000, 8, torch.bfloat16),
    (124_000_000, 8, torch.float32),
    (1_000, 2, torch.float16),
    (10, 1, torch.float32),
]


DTYPE_KEYS = ("stored", "compute", "reduce", "accumulate")

# (dtype the model was loaded in, (param_dtype, reduce_dtype)): the cases the check tries.
DTYPE_CASES = [
    (torch.float32, (None, None)),
    (torch.float32, (torch.bfloat16, torch.float32)),
    (torch.float32, (torch.bfloat16, None)),
    (torch.float32, (torch.bfloat16, torch.bfloat16)),
    (torch.float32, (torch.float16, torch.float32)),
    (torch.bfloat16, (torch.bfloat16, torch.float32)),
    (torch.bfloat16, (None, None)),
]


def fsdp2_dtypes_key(loaded: torch.dtype, policy: MixedPrecisionPolicy) -> dict[str, torch.dtype]:
    """FSDP2's rules (torch 2.13, ``FSDPParam.init_dtype_attrs`` and the ``MixedPrecisionPolicy``
    docs), for a floating-point model loaded in ``loaded`` and sharded with ``policy``:

    - stored: the shards keep the dtype the parameters had when ``fully_shard`` ran;
    - compute: ``param_dtype`` (the all-gather and the forward/backward), else the stored dtype;
    - reduce: ``reduce_dtype``, else the compute dtype;
    - accumulate: with ``set_requires_gradient_sync(False)``, gradients accumulate in
      ``reduce_dtype`` (the docs), which is the reduce dtype above.

    ``course_utils.distributed.fsdp`` measures these on two gloo ranks;
    ``tests/distributed/test_launcher.py`` checks that this key agrees with what it measured."""
    compute = policy.param_dtype or loaded
    reduce = policy.reduce_dtype or compute
    return {"stored": loaded, "compute": compute, "reduce": reduce, "accumulate": reduce}


WHY = {
    "stored": "FSDP2 stores (and the optimizer updates) the shards in the dtype the parameters had "
    "when fully_shard ran: the policy does not change it",
    "compute": "param_dtype is the dtype of the all-gathered parameters, and so of the compute; "
    "None keeps the stored dtype",
    "reduce": "reduce_dtype is the dtype of the reduce-scatter; None falls back to the compute "
    "dtype (param_dtype if set)",
    "accumulate": "with set_requires_gradient_sync(False), FSDP2 accumulates the unsharded "
    "gradients in the dtype it would reduce them in (the MixedPrecisionPolicy docs)",
}


def _describe(loaded: torch.dtype, policy: MixedPrecisionPolicy) -> str:
    return (
        f"a model loaded in {loaded} with MixedPrecisionPolicy(param_dtype={policy.param_dtype}, "
        f"reduce_dtype={policy.reduce_dtype})"
    )


@exercise(
    "08.fsdp2_dtypes",
    hint="Four rules: the shards keep the loaded dtype; param_dtype (or, if None, the stored "
    "dtype) is the compute dtype; reduce_dtype (or, if None, the compute dtype) is the reduction "
    "dtype; and accumulation without sync uses the reduction dtype.",
    title="Predict FSDP2's dtypes from the loaded dtype and the policy",
)
def check_fsdp2_dtypes(fsdp2_dtypes):
    """``fsdp2_dtypes(loaded, policy)`` -> ``{"stored", "compute", "reduce", "accumulate"}``,
    each a ``torch.dtype``."""
    expect_callable(fsdp2_dtypes, "fsdp2_dtypes")
    for loaded, (param_dtype, reduce_dtype) in DTYPE_CASES:
        policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=reduce_dtype)
        what = _describe(loaded, policy)
        got = fsdp2_dtypes(loaded, policy)
        if not isinstance(got, dict):
            raise Incorrect(f"for {what}, expected a dict, got {type(got).__name__} {got!r}")
        missing = [k for k in DTYPE_KEYS if k not in got]
        if missing:
            raise Incorrect(f"the dict needs the keys {', '.join(DTYPE_KEYS)}; missing: "
                            f"{', '.join(missing)}")  # fmt: skip
        expected = fsdp2_dtypes_key(loaded, policy)
        for key in DTYPE_KEYS:
            if not isinstance(got[key], torch.dtype):
                raise Incorrect(
                    f"{key!r} should be a torch.dtype such as torch.bfloat16, "
                    f"got {type(got[key]).__name__} {got[key]!r}"
                )
            if got[key] is not expected[key]:
                raise Incorrect(
                    f"for {what}, {key!r} is {got[key]}; expected {expected[key]}: {WHY[key]}"
                )


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
        got = expect_number(ring_allreduce_bytes(numel, world, dtype), what)
        size = torch.tensor([], dtype=dtype).element_size()
        expected = 2 * (world - 1) / world * numel * size
        if math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9):
            continue
        if expected and math.isclose(got, expected / 2, rel_tol=1e-9):
            raise Incorrect(f"{what} counts one phase only: an all-reduce is two (2 (N-1)/N)")
        if expected and math.isclose(got, expected / size * 4, rel_tol=1e-9) and size != 4:
            raise Incorrect(f"{what} uses 4 bytes per element: {dtype} has {size}")
        raise Incorrect(f"{what} is {got:g}, expected {expected:g}")
