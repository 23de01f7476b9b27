"""Exercises: the registry and checks (``evaluate``, ``check``), the layout rules, one module per notebook
(``nb00`` .. ``nb08``).
"""

from course_utils.exercises.registry import (
    NAME_PATTERN,
    PASS_MESSAGE,
    CheckResult,
    Exercise,
    Incorrect,
    UnknownExerciseError,
    check,
    evaluate,
    exercise,
    expect_bool,
    expect_callable,
    expect_close,
    expect_equal,
    expect_number,
    expect_str,
    get_exercise,
    list_exercises,
    load_exercise_modules,
    unregister,
)

__all__ = [
    "CheckResult",
    "Exercise",
    "Incorrect",
    "NAME_PATTERN",
    "PASS_MESSAGE",
    "UnknownExerciseError",
    "check",
    "evaluate",
    "exercise",
    "expect_bool",
    "expect_callable",
    "expect_close",
    "expect_equal",
    "expect_number",
    "expect_str",
    "get_exercise",
    "list_exercises",
    "load_exercise_modules",
    "unregister",
]
