"""Exercise checks: ``check_<name>(answer)`` prints "Correct!" or what is wrong, with a hint.

Each notebook exercise has three code cells:

1. the stub (tagged ``raises-exception``)::

       fp16_max = ...  # your code here
       raise NotImplementedError("Exercise: compute the largest finite fp16 value")

2. the solution (tagged ``solution``; the student copy drops it), which sets the answer;
3. the check, ``check_fp16_max(fp16_max)``, which prints and never raises, so "Run all" goes
   on and nbval compares its output ("Correct!").

Checks for notebook NN live in their own module, ``course_utils/exercises/nbNN.py`` by convention,
and register themselves with the ``exercise`` decorator::

    from course_utils.exercises.registry import exercise, expect_close

    @exercise("01.fp16_max", hint="5 exponent bits (bias 15), 10 fraction bits")
    def check_fp16_max(answer):
        expect_close(answer, 65504.0, what="your fp16 maximum")

A checker returns None (right) or a string saying what is wrong, or raises ``Incorrect``.
The decorator returns the learner-facing check function; ``evaluate`` gives the same verdict as
a ``CheckResult`` without printing (for tests).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import math
import pkgutil
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

NAME_PATTERN = re.compile(r"^\d\d\.[a-z][a-z0-9_]*$")
PASS_MESSAGE = "Correct!"


class Incorrect(Exception):
    """Raised by a checker: ``message`` says what is wrong; ``hint`` replaces the default hint."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class UnknownExerciseError(KeyError):
    """No exercise registered under that name; the message lists the names there are."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Exercise:
    name: str
    checker: Callable[[Any], Any]
    hint: str
    title: str


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one answer: ``passed``, what is wrong, and the hint to show."""

    exercise: str
    passed: bool
    message: str
    hint: str | None = None

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        if self.passed:
            return self.message
        return f"{self.message}\nHint: {self.hint}" if self.hint else self.message


_REGISTRY: dict[str, Exercise] = {}


def exercise(name: str, *, hint: str, title: str | None = None) -> Callable:
    """Decorator: register ``checker`` as exercise ``name`` ("NN.short_name") and return the
    printing check function learners call."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValueError(
            f"exercise names look like '01.decode_bits' (notebook number, a dot, snake_case), "
            f"got {name!r}"
        )
    if not isinstance(hint, str) or not hint.strip():
        raise ValueError(f"exercise {name!r} needs a non-empty hint")

    def register(checker: Callable[[Any], Any]) -> Callable[[Any], None]:
        previous = _REGISTRY.get(name)
        if previous is not None and _origin(previous.checker) != _origin(checker):
            raise ValueError(
                f"exercise {name!r} is already registered by {_origin(previous.checker)}"
            )
        _REGISTRY[name] = Exercise(name, checker, hint, title or name)

        def check(answer: Any) -> None:
            print(evaluate(name, answer))

        check.__name__ = check.__qualname__ = checker.__name__
        check.__doc__ = checker.__doc__ or f"Check your answer to exercise {name}."
        check.__module__ = checker.__module__
        check.exercise_name = name  # type: ignore[attr-defined]
        return check

    return register


def evaluate(name: str, answer: Any) -> CheckResult:
    """Run exercise ``name``'s checker on ``answer``; never raises for a wrong answer."""
    ex = get_exercise(name)
    if _unanswered(answer):
        return CheckResult(
            name,
            False,
            "Not done yet: replace the `...` in the exercise cell, run it, then this one.",
            ex.hint,
        )
    try:
        problem = ex.checker(answer)
    except Incorrect as wrong:
        return CheckResult(name, False, f"Not yet: {wrong.message}", wrong.hint or ex.hint)
    except NotImplementedError:
        return CheckResult(
            name,
            False,
            "Not done yet: write the function in the exercise cell, run it, then this one.",
            ex.hint,
        )
    except Exception as exc:  # the learner's code failed inside the check: say so, kindly
        return CheckResult(name, False, f"Your answer raised {type(exc).__name__}: {exc}", ex.hint)
    if problem is None or problem is True:
        return CheckResult(name, True, PASS_MESSAGE)
    if isinstance(problem, str) and problem:
        return CheckResult(name, False, f"Not yet: {problem}", ex.hint)
    raise TypeError(
        f"the checker of exercise {name!r} must return None or a message string, got {problem!r}"
    )


def check(name: str, answer: Any) -> None:
    """Print the verdict on ``answer`` for exercise ``name`` (same as its ``check_...``)."""
    print(evaluate(name, answer))


def get_exercise(name: str) -> Exercise:
    """The registered exercise ``name``; loads ``course_utils.exercises.nbNN`` modules if needed."""
    if name not in _REGISTRY and isinstance(name, str) and NAME_PATTERN.match(name):
        _import_if_present(f"course_utils.exercises.nb{name[:2]}")
    if name not in _REGISTRY:
        known = sorted(_REGISTRY)
        close = difflib.get_close_matches(str(name), known, n=1)
        raise UnknownExerciseError(
            f"no exercise {name!r}; registered exercises: {', '.join(known) or '(none)'}"
            + (f" (did you mean {close[0]!r}?)" if close else "")
        )
    return _REGISTRY[name]


def list_exercises() -> list[str]:
    """Every registered exercise name, sorted (after loading ``course_utils.exercises.nbNN``)."""
    load_exercise_modules()
    return sorted(_REGISTRY)


def load_exercise_modules() -> None:
    """Import every ``course_utils.exercises.nbNN`` module, so that its checks register."""
    import course_utils.exercises

    for module in pkgutil.iter_modules(course_utils.exercises.__path__):
        if re.fullmatch(r"nb\d\d", module.name):
            importlib.import_module(f"course_utils.exercises.{module.name}")


def _import_if_present(module_name: str) -> None:
    if importlib.util.find_spec(module_name) is not None:
        importlib.import_module(module_name)


def unregister(name: str) -> None:
    """Forget exercise ``name`` (for tests)."""
    _REGISTRY.pop(name, None)


# ----------------------------------------------------------------- helpers for writing checkers
# Every check of notebooks 00-05 and 08 reads a learner's value through these, so that a NaN, an
# inf, a string that looks like a number, or an object whose ``__eq__`` is always True never
# passes (tests/test_exercise_answer_types.py). Taught nowhere: machinery.


def expect_callable(answer: Any, what: str = "your answer") -> None:
    """Raise ``Incorrect`` unless ``answer`` is a function."""
    if not callable(answer):
        raise Incorrect(f"{what} should be a function, got {type(answer).__name__} {answer!r}")


def expect_number(
    answer: Any, what: str = "your answer", *, integer: bool = False, finite: bool = True
) -> float | int:
    """``answer`` as a Python float (an int with ``integer=True``), or ``Incorrect``.

    Takes Python and NumPy ints and floats and one-element real tensors; refuses bools, strings,
    containers and other objects (whatever their ``__eq__`` or ``__float__`` say), and, unless
    ``finite=False``, NaN and +-inf."""
    if _is_tensor(answer) and answer.numel() == 1:
        if answer.is_complex() or answer.dtype is _torch_bool():
            raise Incorrect(f"{what} should be a number, got a {answer.dtype} tensor")
        answer = answer.item()
    elif _is_numpy_scalar(answer):
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, int | float):
        raise Incorrect(f"{what} should be a number, got {_describe(answer)}")
    if integer:
        if not isinstance(answer, int):
            raise Incorrect(f"{what} should be an int, got {_describe(answer)}")
        return int(answer)
    try:
        value = float(answer)
    except OverflowError:  # an int beyond float range
        value = math.inf if answer > 0 else -math.inf
    if finite and not math.isfinite(value):
        shown = repr(value) if isinstance(answer, float) else "an int beyond float range"
        raise Incorrect(f"{what} should be a finite number, got {shown}")
    return value


def expect_bool(answer: Any, what: str = "your answer") -> bool:
    """``answer`` as a Python bool: takes ``bool``, ``numpy.bool_`` and a one-element bool
    tensor; anything else (0/1, NaN, strings, truthy objects) is ``Incorrect``."""
    if _is_tensor(answer) and answer.numel() == 1 and answer.dtype is _torch_bool():
        return bool(answer.item())
    if isinstance(answer, bool) or (_is_numpy_scalar(answer) and answer.dtype.kind == "b"):
        return bool(answer)
    raise Incorrect(f"{what} should be True or False, got {_describe(answer)}")


def expect_str(answer: Any, what: str = "your answer") -> str:
    """``answer`` if it is a ``str``, else ``Incorrect``."""
    if not isinstance(answer, str):
        raise Incorrect(f"{what} should be a string, got {_describe(answer)}")
    return answer


def expect_equal(got: Any, expected: Any, what: str = "the result") -> None:
    """Raise ``Incorrect`` unless ``got`` equals ``expected`` and has its kind of type: numbers
    compare as finite numbers (``9.0`` equals ``9``), bools as bools, anything else only when
    ``type(got) is type(expected)`` (so an object whose ``__eq__`` is always True fails)."""
    if isinstance(expected, bool):
        same = expect_bool(got, what) == expected
    elif isinstance(expected, int | float):
        same = expect_number(got, what) == expected
    elif type(got) is not type(expected):
        raise Incorrect(f"{what} should be a {type(expected).__name__}, got {_describe(got)}")
    elif isinstance(expected, tuple | list):
        if len(got) != len(expected):
            raise Incorrect(f"{what} is {got!r}, expected {expected!r}")
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            expect_equal(g, e, what=f"{what}[{i}]")
        same = True
    else:
        same = bool(expected == got)
    if not same:
        raise Incorrect(f"{what} is {got!r}, expected {expected!r}")


def expect_close(
    got: Any, expected: float, *, rel: float = 1e-6, abs_tol: float = 0.0, what: str = "the result"
) -> None:
    """Raise ``Incorrect`` unless ``got`` is a finite number within ``rel``/``abs_tol`` of
    ``expected``."""
    value = expect_number(got, what)
    if not abs(value - expected) <= max(rel * abs(expected), abs_tol):
        raise Incorrect(f"{what} is {value:g}, expected about {expected:g}")


def _unanswered(answer: Any) -> bool:
    """``...`` itself, or a stub's container still holding one (``[...]``, ``{"a": ...}``)."""
    if answer is Ellipsis:
        return True
    if isinstance(answer, (list, tuple, set, frozenset)):
        return any(item is Ellipsis for item in answer)
    if isinstance(answer, dict):
        return any(value is Ellipsis for value in answer.values())
    return False


def _describe(answer: Any) -> str:
    try:
        shown = repr(answer)
    except Exception:  # a learner's object whose repr fails
        shown = "(no repr)"
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{type(answer).__name__} {shown}"


def _is_tensor(answer: Any) -> bool:
    torch = sys.modules.get("torch")  # an answer can only be a tensor once torch is imported
    return torch is not None and isinstance(answer, torch.Tensor)


def _torch_bool():
    return sys.modules["torch"].bool


def _is_numpy_scalar(answer: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(answer, numpy.generic)


def _origin(func: Callable) -> str:
    return f"{func.__module__}.{func.__qualname__}"
