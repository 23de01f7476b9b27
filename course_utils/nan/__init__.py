"""Finding, reproducing and recovering from NaNs: the first non-finite value, broken scenarios,
NanGuard and checkpoints.

Taught in notebook 06.
"""

from course_utils.nan.debug import (
    DebuggerRun,
    NonFiniteReport,
    TensorStats,
    adam_step_bound,
    find_first_nonfinite,
    first_nonfinite_step,
    grad_norm_spikes,
    largest_weight_change,
    nonfinite_parameters,
    run_debugger,
)

__all__ = [
    "DebuggerRun",
    "NonFiniteReport",
    "TensorStats",
    "adam_step_bound",
    "find_first_nonfinite",
    "first_nonfinite_step",
    "grad_norm_spikes",
    "largest_weight_change",
    "nonfinite_parameters",
    "run_debugger",
]
