"""Scaling out from a notebook: launch torchrun programs (DDP, FSDP2, Accelerate) and read their results.

Taught in notebook 08.
"""

from course_utils.distributed.launcher import (
    LaunchResult,
    RankOutput,
    ReductionError,
    launch,
    scripts_dir,
    simulate_reduction,
    torchrun_command,
    worker_path,
)

__all__ = [
    "LaunchResult",
    "RankOutput",
    "ReductionError",
    "launch",
    "scripts_dir",
    "simulate_reduction",
    "torchrun_command",
    "worker_path",
]
