#!/usr/bin/env python
"""Write a printable answer key (Markdown) of every quiz, and of the notebooks' exercise solutions.

python scripts/make_answer_key.py OUT.md [--notebooks notebooks]

OUT.md is checked before any work (not a folder; its folder is created and must be writable) and
written atomically: a failed write leaves the previous key as it was.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from course_utils.atomic import write_text_atomic  # noqa: E402
from course_utils.exercises.layout import FOLD_LINE, is_solution, source  # noqa: E402
from course_utils.quiz.bank import Question, Quiz, list_quizzes, load_quiz  # noqa: E402


def taught_in_markdown(q: Question) -> str:
    """Where the course teaches ``q`` (notebook and section heading), for the instructor."""
    if q.taught_in is None:
        return "*Taught in:* not given (`python -m course_utils.quiz.lint` requires it)"
    return f'*Taught in:* `notebooks/{q.taught_in.notebook}.ipynb`, section "{q.taught_in.section}"'


def question_markdown(number: int, q: Question) -> list[str]:
    kind = q.type.replace("_", "/") + (
        ", predict first: asked before the cell that shows it" if q.predict else ""
    )
    lines = [f"### {number}. `{q.id}` ({kind})", "", taught_in_markdown(q), "", q.prompt, ""]
    if q.choices:
        for c in q.choices:
            mark = "**[x]**" if c.correct else "[ ]"
            lines.append(f"- {mark} `{c.id}`: {c.text}")
            if c.feedback:
                label = "if missed" if c.correct else "misconception"
                lines.append(f"  - *{label}:* {c.feedback}")
        lines.append("")
    if q.type == "numeric":
        unit = f" {q.unit}" if q.unit else ""
        lines.append(f"**Answer:** {q.answer:g}{unit} (tolerance {q.tolerance:g})")
        for m in q.common_mistakes:
            lines.append(f"- *{m.value:g}:* {m.feedback}")
        lines += [f"- *any other wrong value:* {q.wrong_feedback}", ""]
    if q.type == "true_false":
        lines += [f"**Answer:** {q.answer}", f"- *if wrong:* {q.wrong_feedback}", ""]
    lines += [f"**Explanation:** {q.explanation}", "", f"**Hint:** {q.hint}", ""]
    return lines


def quiz_markdown(quiz: Quiz) -> list[str]:
    lines = [f"## {quiz.title} (`{quiz.id}`)", ""]
    if quiz.notebook:
        lines += [f"Notebook: `{quiz.notebook}`", ""]
    if quiz.intro:
        lines += [quiz.intro, ""]
    for number, q in enumerate(quiz.questions, start=1):
        lines += question_markdown(number, q)
    return lines


def solutions_markdown(notebooks: pathlib.Path) -> list[str]:
    import nbformat

    lines: list[str] = []
    for path in sorted(notebooks.glob("*.ipynb")) if notebooks.is_dir() else []:
        nb = nbformat.read(path, as_version=4)
        cells = [(i, c) for i, c in enumerate(nb.cells) if is_solution(c)]
        if not cells:
            continue
        lines += [f"## Exercise solutions: `{path.name}`", ""]
        for i, cell in cells:
            code = source(cell).removeprefix(FOLD_LINE).lstrip("\n").rstrip()  # the fold's label
            lines += [f"Cell {i}:", "", "```python", code, "```", ""]
    return lines


def answer_key_markdown(notebooks: pathlib.Path) -> str:
    lines = ["# Answer key: Mixed precision training, bfloat16 vs float16 in practice", ""]
    lines += ["For instructors. Regenerate with `python scripts/make_answer_key.py OUT.md`.", ""]
    for quiz_id in list_quizzes():
        lines += quiz_markdown(load_quiz(quiz_id))
    lines += solutions_markdown(notebooks)
    return "\n".join(lines).rstrip() + "\n"


def output_problem(out: pathlib.Path) -> str | None:
    """Why ``out`` cannot be written (creating its folder if needed), or None: checked first."""
    if out.is_dir():
        return (
            f"OUT {out} is a folder: name the Markdown file to write, e.g. {out / 'answer_key.md'}"
        )
    folder = out.parent
    for above in [folder, *folder.parents]:
        if above.exists() and not above.is_dir():
            return f"cannot write {out}: {above} is a file, not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the folder {folder} for {out.name} ({exc})"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write into {folder} (permission denied)"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=pathlib.Path, help="the Markdown file to write")
    parser.add_argument("--notebooks", type=pathlib.Path, default=REPO_ROOT / "notebooks")
    args = parser.parse_args(argv)
    problem = output_problem(args.out)
    if problem:
        parser.error(problem)
    text = answer_key_markdown(args.notebooks)
    try:
        write_text_atomic(args.out, text)
    except OSError as exc:
        print(
            f"make_answer_key: cannot write {args.out} ({exc}); the file there, if any, is "
            "unchanged",
            file=sys.stderr,
        )
        return 1
    print(f"wrote the answer key of {len(list_quizzes())} quizzes to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
