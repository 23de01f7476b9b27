#!/usr/bin/env python
"""Write the student copy of every notebook: the cells tagged ``solution`` removed.

    python scripts/make_student_copy.py OUT_DIR [--notebooks notebooks] [--clear-outputs]

Removed cells take their outputs with them. The outputs of the check cells (``check_...()``)
are cleared too, since their saved "Correct!" came from the removed solution. With
``--clear-outputs`` every output is cleared. The originals are never modified.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import nbformat
from nbconvert.preprocessors import TagRemovePreprocessor

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from course_utils.exercise_layout import (  # noqa: E402
    SOLUTION_TAG,
    is_check,
    is_solution,
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
    args = parser.parse_args(argv)

    src = args.notebooks.resolve()
    out = args.out_dir.resolve()
    if not src.is_dir():
        parser.error(f"no notebooks folder {src}")
    if out == src:
        parser.error("OUT_DIR is the notebooks folder itself: that would overwrite the originals")
    paths = sorted(src.glob("*.ipynb"))
    out.mkdir(parents=True, exist_ok=True)
    removed_total = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        for problem in layout_problems(nb):
            print(f"warning: {path.name}: {problem}", file=sys.stderr)
        removed = sum(is_solution(cell) for cell in nb.cells)
        copy = student_copy(nb, clear_outputs=args.clear_outputs)
        nbformat.validate(copy)
        nbformat.write(copy, out / path.name)
        removed_total += removed
        print(f"{path.name}: {removed} solution cell(s) removed")
    print(
        f"wrote {len(paths)} student notebook(s) to {out} ({removed_total} solution cells removed)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
