"""The exercise layout of a notebook: stub, then ``solution`` cell(s), then a check cell.

One rule for every stub in the course: the stub cell is tagged ``exercise``, has a ``...`` for
the learner's code, and never raises when it runs. A value stub leaves ``answer = ...``; a
function stub raises ``NotImplementedError`` inside its body. Either way the check cell below
says, in one short line, that the exercise is not done yet. The solution cells are tagged
``solution``, collapsed (``metadata.jupyter.source_hidden``) and start with ``FOLD_LINE``:
JupyterLab shows a collapsed cell as a fold with the cell's first line on it, so that line must
not be the answer. The answer is one click away, never in plain view.

``layout_problems(nb)`` lists what breaks the pattern (used by tests/test_exercises.py and by
scripts/make_student_copy.py), so that removing the solution cells always leaves a working
exercise for the student.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from course_utils.exercises.registry import PASS_MESSAGE

STUB_PATTERN = re.compile(r"raise\s+NotImplementedError\(\s*[rfRF]?[\"']Exercise")
STUB_TAG = "exercise"
# the first line of every solution cell: what JupyterLab shows on the fold
FOLD_LINE = "# Solution: click to open, after you have tried the exercise above"
CHECK_PATTERN = re.compile(r"(\bcheck_\w+\s*\(|\bexercises\.check\s*\(|^\s*check\s*\()", re.M)
SOLUTION_TAG = "solution"
RAISES_TAG = "raises-exception"


def tags(cell: Any) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []) or [])


def source(cell: Any) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text


def is_stub(cell: Any) -> bool:
    return cell.get("cell_type") == "code" and STUB_TAG in tags(cell)


def is_hidden(cell: Any) -> bool:
    """True if JupyterLab shows the cell's source collapsed."""
    return bool(cell.get("metadata", {}).get("jupyter", {}).get("source_hidden"))


def raises_when_run(cell: Any) -> bool:
    """True if the cell has a top-level ``raise`` (not one inside a function body)."""
    try:
        tree = ast.parse(source(cell))
    except SyntaxError:
        return False
    return any(isinstance(node, ast.Raise) for node in tree.body)


def is_solution(cell: Any) -> bool:
    return cell.get("cell_type") == "code" and SOLUTION_TAG in tags(cell)


def is_check(cell: Any) -> bool:
    return (
        cell.get("cell_type") == "code"
        and not is_solution(cell)
        and bool(CHECK_PATTERN.search(source(cell)))
    )


def output_text(cell: Any) -> str:
    """The text a code cell printed or displayed (streams and text/plain)."""
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            text = output.get("text", "")
            parts.append("".join(text) if isinstance(text, list) else text)
        elif "data" in output:
            text = output["data"].get("text/plain", "")
            parts.append("".join(text) if isinstance(text, list) else text)
        elif output.get("output_type") == "error":
            parts.append(f"{output.get('ename')}: {output.get('evalue')}")
    return "".join(parts)


def exercise_count(nb: Any) -> int:
    return sum(is_stub(cell) for cell in nb["cells"])


@dataclass(frozen=True)
class ExerciseCells:
    """Cell indexes of one exercise: its stub, solution cells and check cell (None if missing)."""

    stub: int
    solutions: tuple[int, ...]
    check: int | None


def find_exercises(nb: Any) -> list[ExerciseCells]:
    """Every exercise stub, the solution cells right after it, and the first check after those."""
    code = [(i, cell) for i, cell in enumerate(nb["cells"]) if cell.get("cell_type") == "code"]
    found = []
    for k, (i, cell) in enumerate(code):
        if not is_stub(cell) or is_solution(cell):
            continue
        rest = code[k + 1 :]
        solutions = []
        for j, other in rest:
            if not is_solution(other):
                break
            solutions.append(j)
        check = None
        for j, other in rest[len(solutions) :] if solutions else []:
            if is_stub(other):
                break
            if is_check(other):
                check = j
                break
        found.append(ExerciseCells(i, tuple(solutions), check))
    return found


def layout_problems(nb: Any) -> list[str]:
    """Everything that breaks stub -> solution -> check, as readable sentences."""
    cells = nb["cells"]
    problems = [
        f"cell {i}: a 'solution' cell still raises the exercise stub's error"
        for i, cell in enumerate(cells)
        if is_solution(cell) and STUB_PATTERN.search(source(cell))
    ]
    problems += [
        f"cell {i}: looks like an exercise stub (raises NotImplementedError('Exercise...')) "
        f"but is not tagged {STUB_TAG!r}"
        for i, cell in enumerate(cells)
        if cell.get("cell_type") == "code"
        and not is_stub(cell)
        and not is_solution(cell)
        and STUB_PATTERN.search(source(cell))
    ]
    problems += [
        f"cell {i}: a 'solution' cell must be collapsed (metadata.jupyter.source_hidden = true)"
        for i, cell in enumerate(cells)
        if is_solution(cell) and not is_hidden(cell)
    ]
    problems += [
        f"cell {i}: a 'solution' cell must start with {FOLD_LINE!r} (JupyterLab shows the first "
        "line on the fold)"
        for i, cell in enumerate(cells)
        if is_solution(cell) and source(cell).split("\n", 1)[0] != FOLD_LINE
    ]
    for ex in find_exercises(nb):
        stub = cells[ex.stub]
        where = f"cell {ex.stub} (exercise stub)"
        if RAISES_TAG in tags(stub) or raises_when_run(stub):
            problems.append(
                f"{where}: raises when it runs; a stub only raises inside a function body "
                "(the check cell reports an unfinished exercise)"
            )
        if "..." not in source(stub):
            problems.append(f"{where}: has no `...` placeholder for the student's code")
        if not ex.solutions:
            problems.append(f"{where}: the next code cell is not tagged {SOLUTION_TAG!r}")
            continue
        if ex.check is None:
            problems.append(f"{where}: no check_...() cell after its solution")
            continue
        check_cell = cells[ex.check]
        if RAISES_TAG in tags(check_cell):
            problems.append(f"cell {ex.check} (check): must not be tagged {RAISES_TAG!r}")
        printed = output_text(check_cell)
        if check_cell.get("outputs") and PASS_MESSAGE not in printed:
            problems.append(
                f"cell {ex.check} (check): its saved output does not say {PASS_MESSAGE!r}: "
                f"{printed[:200]!r}"
            )
    return problems
