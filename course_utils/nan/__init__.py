"""Finding, reproducing and recovering from NaNs: the first non-finite value, broken scenarios,
NanGuard and checkpoints.

Taught in notebook 06: ``debug`` in "2. Diagnose: which step, which batch, which module";
``scenarios`` from "1. A run that is stable for 100 steps, then NaN" to "4. When fp16's range
*is* the cause: fixes that exist on a T4"; ``recovery`` in "5. Heal the run without a restart";
``checkpoints`` in "Checkpoints that survive a crash"; ``plots`` draws the notebook's figures.
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
