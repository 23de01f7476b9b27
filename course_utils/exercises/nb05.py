"""Checks for the exercise of notebook 05 (bf16 vs fp16 fine-tuning).

Taught in notebook 05, section "Exercise: plan a run on a T4, and predict the audit".
"""

from __future__ import annotations

from course_utils.exercises.registry import Incorrect, exercise, expect_str
from course_utils.hardware import recommend_precision

# What ``PrecisionAudit(...).report().ran`` can say about a Trainer run.
AUDIT_OUTCOMES = (
    "fp32",
    "bf16 autocast",
    "fp16 autocast",
    "fp16 autocast + GradScaler",
    "bf16 weights (no autocast)",
    "pure bf16 (bf16 autocast, bf16 trainable weights)",
)
# The GPU the exercise describes: a free-tier cloud notebook's T4.
EXERCISE_GPU = ("Tesla T4", (7, 5))
_KEYS = ("precision", "ran_on_gpu", "ran_on_cpu")


@exercise(
    "05.precision_plan",
    hint="The T4 is Turing (compute capability 7.5): fp16 tensor cores, no bf16 ones. With "
    "fp16=True on a GPU the Trainer turns on fp16 autocast and a GradScaler; on a CPU it turns "
    "neither on. Look at the audits of the three runs above.",
    title="Configure the precision for a T4 and predict the audit's verdict, there and on a CPU",
)
def check_precision_plan(plan):
    """``plan = {"precision": ..., "ran_on_gpu": ..., "ran_on_cpu": ...}``."""
    if not isinstance(plan, dict):
        raise Incorrect(f"plan should be a dict with keys {', '.join(_KEYS)}, got {plan!r}")
    missing = [key for key in _KEYS if key not in plan]
    if missing:
        raise Incorrect(f"plan lacks {', '.join(missing)}")
    for key in _KEYS:
        expect_str(plan[key], f"plan[{key!r}]")
    for key in ("ran_on_gpu", "ran_on_cpu"):
        if _norm(plan[key]) not in {_norm(o) for o in AUDIT_OUTCOMES}:
            raise Incorrect(
                f"plan[{key!r}] = {plan[key]!r} is not something the audit says; choose one of "
                + ", ".join(repr(o) for o in AUDIT_OUTCOMES)
            )
    expected = recommend_precision(*EXERCISE_GPU).precision
    if _norm(plan["precision"]) != expected:
        raise Incorrect(
            f"on the {EXERCISE_GPU[0]} you chose {plan['precision']!r}",
            hint="Which GPU generation introduced bf16 tensor cores, and is Turing before or "
            "after it?",
        )
    if _norm(plan["ran_on_gpu"]) != _norm("fp16 autocast + GradScaler"):
        raise Incorrect(
            f"on the T4 the audit would not say {plan['ran_on_gpu']!r}",
            hint="On a GPU, fp16=True gives fp16 autocast, and the Trainer adds the loss scaler "
            "fp16 needs.",
        )
    if _norm(plan["ran_on_cpu"]) != "fp32":
        raise Incorrect(
            f"on a CPU the audit would not say {plan['ran_on_cpu']!r}",
            hint="Look at the fp16 run of this notebook: what did the audit find on the CPU?",
        )


def _norm(text) -> str:
    return " ".join(str(text).lower().split())
