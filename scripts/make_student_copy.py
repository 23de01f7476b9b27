#!/usr/bin/env python
"""Write the student copy of every notebook: the cells tagged ``solution`` removed.

    python scripts/make_student_copy.py OUT_DIR [--notebooks notebooks] [--clear-outputs] [--force]

Removed cells take their outputs with them. The outputs of the check cells (``check_...()``)
are cleared too, since their saved "Correct!" came from the removed solution. With
``--clear-outputs`` every output is cleared. The originals are never modified.

It refuses (exit 1, nothing written) when OUT_DIR already holds a notebook it would write,
unless ``--force`` is given, and when a code cell between an exercise stub and its check is not
tagged ``solution`` (it would hand the answer to the students). Each file is written atomically.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import nbformat
from nbconvert.preprocessors import TagRemovePreprocessor

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from course_utils.atomic import write_text_atomic  # noqa: E402
from course_utils.exercises.layout import (  # noqa: E402
    SOLUTION_TAG,
    is_check,
    is_solution,
    is_stub,
    layout_problems,
)


def student_copy(nb: nbformat.NotebookNode, clear_outputs: bool = False) -> nbformat.NotebookNode:
    """A copy of ``nb`` without its solution cells (the input is not modified)."""
    nb = nbformat.from_dict(nb)  # deep copy
    remover = TagRemovePreprocessor(enabled=True, remove_cell_tags={SOLUTION_TAG})
    nb, _ = remover.preprocess(nb, {})
    for cell in nb.cells:
        if cell.cell_type == "code" and (clear_outputs or is_check(cell)):
            cell.outputs = []
            cell.execution_count = None
    nb.metadata.pop("widgets", None)  # saved widget state refers to outputs that may be gone
    return nb


def untagged_solutions(nb: nbformat.NotebookNode) -> list[str]:
    """Code cells that look like a solution but are not tagged ``solution``, as sentences.

    In the course's layout an exercise stub is followed by its solution cell(s) and then its
    check cell, all code cells. So every code cell after a stub, up to its check cell (or the
    next stub), must be tagged ``solution``. When no check follows, only the first code cell
    after the stub is held to this (it is where the solution belongs).
    """
    code = [(i, cell) for i, cell in enumerate(nb.cells) if cell.get("cell_type") == "code"]
    found = []
    for k, (i, cell) in enumerate(code):
        if not is_stub(cell) or is_solution(cell):
            continue
        window = []
        for j, other in code[k + 1 :]:
            if is_check(other) or is_stub(other):
                break
            window.append((j, other))
        else:
            window = window[:1]  # no check after this stub
        found += [
            f"cell {j}: looks like the solution of the exercise in cell {i} (it sits between the "
            f"stub and its check) but is not tagged {SOLUTION_TAG!r}"
            for j, other in window
            if not is_solution(other)
        ]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=pathlib.Path, help="folder for the student notebooks")
    parser.add_argument(
        "--notebooks",
        type=pathlib.Path,
        default=REPO_ROOT / "notebooks",
        help="folder of the instructor notebooks (default: notebooks/)",
    )
    parser.add_argument("--clear-outputs", action="store_true", help="clear every output")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace notebooks that OUT_DIR already holds (without it the script refuses)",
    )
    args = parser.parse_args(argv)

    src = args.notebooks.resolve()
    out = args.out_dir.resolve()
    if not src.is_dir():
        parser.error(f"no notebooks folder {src}")
    if out == src:
        parser.error("OUT_DIR is the notebooks folder itself: that would overwrite the originals")
    if out.exists() and not out.is_dir():
        parser.error(f"OUT_DIR {out} exists and is not a folder")
    paths = sorted(src.glob("*.ipynb"))

    # Everything is checked before anything is written.
    there = [p.name for p in paths if (out / p.name).exists() or (out / p.name).is_symlink()]
    if there and not args.force:
        print(
            f"make_student_copy: {out} already holds {len(there)} notebook(s) this would "
            f"overwrite ({', '.join(there)}); nothing was written. Run again with --force to "
            "replace them (with make: `make student-copy FORCE=1`), or choose another OUT_DIR.",
            file=sys.stderr,
        )
        return 1
    notebooks = []
    leaks = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        for problem in layout_problems(nb):
            print(f"warning: {path.name}: {problem}", file=sys.stderr)
        leaks += [f"{path.name}: {problem}" for problem in untagged_solutions(nb)]
        notebooks.append((path, nb))
    if leaks:
        print(
            "make_student_copy: refusing to write a student copy that would show solutions; "
            "nothing was written. Tag these cells 'solution' (or fix the exercise layout):\n  "
            + "\n  ".join(leaks),
            file=sys.stderr,
        )
        return 1

    out.mkdir(parents=True, exist_ok=True)
    removed_total = 0
    for path, nb in notebooks:
        removed = sum(is_solution(cell) for cell in nb.cells)
        copy = student_copy(nb, clear_outputs=args.clear_outputs)
        nbformat.validate(copy)
        text = nbformat.writes(copy)
        write_text_atomic(out / path.name, text if text.endswith("\n") else text + "\n")
        removed_total += removed
        print(f"{path.name}: {removed} solution cell(s) removed")
    print(
        f"wrote {len(paths)} student notebook(s) to {out} ({removed_total} solution cells removed)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
