"""The exercise layout of a notebook: stub, then ``solution`` cell(s), then a check cell.

``layout_problems(nb)`` lists what breaks the pattern (used by tests/test_exercises.py and by
scripts/make_student_copy.py), so that removing the solution cells always leaves a working
exercise for the student.
"""

from __future__ import annotations

import re
from typing import Any

STUB_PATTERN = re.compile(r"raise\s+NotImplementedError\(\s*[rfRF]?[\"']Exercise")
CHECK_PATTERN = re.compile(r"(\bcheck_\w+\s*\(|\bexercises\.check\s*\(|^\s*check\s*\()", re.M)
SOLUTION_TAG = "solution"
RAISES_TAG = "raises-exception"
PASS_TEXT = "Correct!"


def tags(cell: Any) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []) or [])


def source(cell: Any) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text


def is_stub(cell: Any) -> bool:
    return cell.get("cell_type") == "code" and bool(STUB_PATTERN.search(source(cell)))


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


def layout_problems(nb: Any) -> list[str]:
    """Everything that breaks stub -> solution -> check, as readable sentences."""
    problems: list[str] = []
    code = [(i, cell) for i, cell in enumerate(nb["cells"]) if cell.get("cell_type") == "code"]
    for k, (i, cell) in enumerate(code):
        if is_solution(cell) and STUB_PATTERN.search(source(cell)):
            problems.append(f"cell {i}: a 'solution' cell still raises the exercise stub's error")
        if not is_stub(cell) or is_solution(cell):
            continue
        where = f"cell {i} (exercise stub)"
        if RAISES_TAG not in tags(cell):
            problems.append(f"{where}: not tagged {RAISES_TAG!r}")
        if "..." not in source(cell):
            problems.append(f"{where}: has no `...` placeholder for the student's code")
        rest = code[k + 1 :]
        if not rest or not is_solution(rest[0][1]):
            problems.append(f"{where}: the next code cell is not tagged {SOLUTION_TAG!r}")
            continue
        after = [(j, c) for j, c in rest if not is_solution(c)]
        following = []
        for j, c in after:
            if is_stub(c):
                break
            following.append((j, c))
        checks = [(j, c) for j, c in following if is_check(c)]
        if not checks:
            problems.append(f"{where}: no check_...() cell after its solution")
            continue
        j, check_cell = checks[0]
        if RAISES_TAG in tags(check_cell):
            problems.append(f"cell {j} (check): must not be tagged {RAISES_TAG!r}")
        printed = output_text(check_cell)
        if check_cell.get("outputs") and PASS_TEXT not in printed:
            problems.append(
                f"cell {j} (check): its saved output does not say {PASS_TEXT!r}: {printed[:200]!r}"
            )
    return problems
