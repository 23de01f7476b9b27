"""Scaling out from a notebook: launch the course's torchrun workers (``ddp``, ``fsdp``,
``with_accelerate``, modules of this package) and read their results.

Taught in notebook 08 ("Running `torchrun` from a notebook" and sections 1-4); ``worker`` holds
what the workers share.
"""

from course_utils.distributed.launcher import (
    WORKERS,
    LaunchResult,
    RankOutput,
    ReductionError,
    launch,
    simulate_reduction,
    torchrun_command,
    worker_target,
)

__all__ = [
    "WORKERS",
    "LaunchResult",
    "RankOutput",
    "ReductionError",
    "launch",
    "simulate_reduction",
    "torchrun_command",
    "worker_target",
]
