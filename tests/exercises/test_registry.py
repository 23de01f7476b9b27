"""Exercise checks, the stub -> solution -> check layout of every notebook, the student copy."""

from __future__ import annotations

import importlib.util
import pathlib
import re

import nbformat
import pytest

from course_utils import exercises
from course_utils.exercises.layout import FOLD_LINE, find_exercises, layout_problems

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------- check helpers
@pytest.fixture
def square_check():
    """A throwaway exercise: write ``square(x)``."""

    @exercises.exercise("99.square", hint="multiply x by itself")
    def check_square(square):
        exercises.expect_callable(square, "square")
        for x in (0, 3, -2.5):
            exercises.expect_equal(square(x), x * x, what=f"square({x})")

    yield check_square
    exercises.unregister("99.square")


def test_right_answer_prints_correct(square_check, capsys):
    assert square_check(lambda x: x * x) is None
    assert capsys.readouterr().out == "Correct!\n"
    assert exercises.evaluate("99.square", lambda x: x**2)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (lambda x: 2 * x, "Not yet: square(3) is 6, expected 9\nHint: multiply x by itself\n"),
        (
            ...,
            "Not done yet: replace the `...` in the exercise cell, run it, then this one.\nHint: multiply",
        ),
        (4, "Not yet: square should be a function, got int 4\nHint:"),
        (lambda x: x.bad, "Your answer raised AttributeError: 'int' object has no attribute"),
    ],
)
def test_wrong_answers_say_what_is_wrong_with_a_hint(square_check, capsys, answer, expected):
    square_check(answer)
    out = capsys.readouterr().out
    assert out.startswith(expected) and "Hint: multiply x by itself" in out
    assert not exercises.evaluate("99.square", answer)


def test_unfinished_stub_is_reported_not_raised(square_check, capsys):
    def square(x):
        raise NotImplementedError("Exercise: write square")

    square_check(square)
    assert capsys.readouterr().out.startswith("Not done yet: write the function")


def test_checker_message_string_and_specific_hint(capsys):
    @exercises.exercise("99.answer", hint="the default hint")
    def check_answer(answer):
        if answer == 1:
            raise exercises.Incorrect("one is too small", hint="think bigger")
        return None if answer == 42 else f"{answer} is not it"

    try:
        results = [exercises.evaluate("99.answer", a) for a in (42, 1, 7)]
        exercises.check("99.answer", 7)
    finally:
        exercises.unregister("99.answer")
    assert [r.passed for r in results] == [True, False, False]
    assert str(results[1]) == "Not yet: one is too small\nHint: think bigger"
    assert str(results[2]) == "Not yet: 7 is not it\nHint: the default hint"
    assert capsys.readouterr().out == "Not yet: 7 is not it\nHint: the default hint\n"


def test_expect_close():
    exercises.expect_close(65504.0, 65504.0)
    for bad, message in [(65536, "is 65536, expected about 65504"), ("x", "should be a number")]:
        with pytest.raises(exercises.Incorrect, match=message):
            exercises.expect_close(bad, 65504.0, what="the maximum")
    with pytest.raises(exercises.Incorrect):
        exercises.expect_close(float("nan"), 1.0)


def test_registry_rejects_bad_names_and_clashes(square_check):
    with pytest.raises(ValueError, match="look like '01.decode_bits'"):
        exercises.exercise("decode bits", hint="h")
    with pytest.raises(ValueError, match="non-empty hint"):
        exercises.exercise("01.x", hint=" ")
    with pytest.raises(ValueError, match="already registered"):

        @exercises.exercise("99.square", hint="another")
        def check_other(answer):
            return None


def test_unknown_exercise_lists_the_names(square_check):
    with pytest.raises(KeyError, match=r"no exercise '99.sqare'.*did you mean '99.square'") as err:
        exercises.evaluate("99.sqare", 1)
    assert "99.square" in str(err.value) and not str(err.value).startswith("'")


def test_checks_for_a_notebook_load_from_their_module():
    """Checks for notebook NN are found in course_utils/exercises/nbNN.py without an import."""
    modules = sorted(
        p.stem for p in (REPO_ROOT / "course_utils" / "exercises").glob("nb[0-9][0-9].py")
    )
    names = exercises.list_exercises()
    for module in modules:
        assert any(n.startswith(module[-2:] + ".") for n in names), module


# -------------------------------------------------------------------------- notebook layout
def code(source: str, tags=(), output: str | None = None):
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)} if tags else {})
    if output is not None:
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)]
        cell.execution_count = 1
    return cell


STUB = "answer = ...  # your answer"
SOLVED = f"{FOLD_LINE}\nanswer = 42"


def solution_cell(source: str = SOLVED):
    cell = code(source, tags=["solution"])
    cell.metadata["jupyter"] = {"source_hidden": True}
    return cell


def fixture_notebook(*, solution=True, check=True, check_output="Correct!\n"):
    cells = [nbformat.v4.new_markdown_cell("## Exercise"), code(STUB, tags=["exercise"])]
    if solution:
        cells.append(solution_cell())
    if check:
        cells.append(code("check_answer(answer)", output=check_output))
    return nbformat.v4.new_notebook(cells=cells)


def test_fixture_notebook_with_the_full_pattern_passes():
    assert layout_problems(fixture_notebook()) == []
    assert layout_problems(fixture_notebook(check_output=None)) == []  # not executed yet


@pytest.mark.parametrize(
    ("kwargs", "where", "problem"),
    [
        ({"solution": False}, "cell 1 (exercise stub)", "next code cell is not tagged 'solution'"),
        ({"check": False}, "cell 1 (exercise stub)", "no check_...() cell after its solution"),
        ({"check_output": "Not yet: 7 is not it\n"}, "cell 3 (check)", "does not say 'Correct!'"),
    ],
)
def test_fixture_notebook_with_a_broken_pattern_fails(kwargs, where, problem):
    problems = layout_problems(fixture_notebook(**kwargs))
    assert len(problems) == 1 and problems[0].startswith(where) and problem in problems[0]


@pytest.mark.parametrize("answer", [..., [...], [1.0, ...], (..., 2), {"a": ...}])
def test_a_stub_still_holding_the_ellipsis_is_not_done_yet(square_check, answer):
    assert exercises.evaluate("99.square", answer).message.startswith("Not done yet: replace")


def test_solution_that_still_raises_is_caught():
    nb = fixture_notebook()
    nb.cells[2].source = 'raise NotImplementedError("Exercise: compute the answer")'
    assert any("still raises" in p for p in layout_problems(nb))


def test_a_stub_that_raises_when_run_is_caught():
    nb = fixture_notebook()
    nb.cells[1].source = STUB + '\nraise NotImplementedError("Exercise: compute the answer")'
    assert any("raises when it runs" in p for p in layout_problems(nb))
    nb.cells[1].source = 'def f():\n    ...\n    raise NotImplementedError("Exercise: write f")'
    assert layout_problems(nb) == []  # inside a function body: raises only when called


def test_an_untagged_stub_and_a_visible_solution_are_caught():
    nb = fixture_notebook()
    nb.cells[1].metadata = {}
    nb.cells[1].source = 'def f():\n    raise NotImplementedError("Exercise: write f")'
    assert any("not tagged 'exercise'" in p for p in layout_problems(nb))
    nb = fixture_notebook()
    del nb.cells[2].metadata["jupyter"]
    assert any("must be collapsed" in p for p in layout_problems(nb))


def test_a_solution_whose_first_line_would_show_on_the_fold_is_caught():
    nb = fixture_notebook()
    nb.cells[2].source = "answer = 42  # shown on the fold"
    assert any("must start with" in p for p in layout_problems(nb))


def test_two_exercises_each_need_their_own_solution():
    nb = fixture_notebook()
    nb.cells += fixture_notebook(solution=False).cells
    problems = layout_problems(nb)
    assert len(problems) == 1 and problems[0].startswith("cell 5 (exercise stub)")


def notebook_problems(nb, name: str) -> list[str]:
    """Layout problems, plus check_...() calls that are not registered exercises."""
    registered = {exercises.get_exercise(n).checker.__name__ for n in exercises.list_exercises()}
    problems = [f"{name}: {p}" for p in layout_problems(nb)]
    for ex in find_exercises(nb):
        check_source = nb.cells[ex.check].source if ex.check is not None else ""
        for check in re.findall(r"(?<![.\w])(check_\w+)\s*\(", check_source):
            if check not in registered:
                problems.append(f"{name}: {check}() is not a registered exercise")
    return problems


def test_every_notebook_exercise_has_a_solution_and_a_passing_check():
    """Stub -> solution -> check in every notebook (zero notebooks is fine)."""
    problems = []
    for path in NOTEBOOKS:
        problems += notebook_problems(nbformat.read(path, as_version=4), path.name)
    assert problems == []


def test_a_check_that_is_not_registered_is_reported(square_check):
    nb = fixture_notebook()
    assert notebook_problems(nb, "demo") == ["demo: check_answer() is not a registered exercise"]
    nb.cells[3].source = "check_square(lambda x: x * x)"
    assert notebook_problems(nb, "demo") == []


def test_layout_check_runs_with_no_notebooks_at_all(tmp_path):
    """An empty notebooks/ folder is fine: the scripts and the checks have nothing to do."""
    out = tmp_path / "student"
    assert load_script("make_student_copy").main([str(out), "--notebooks", str(tmp_path)]) == 0
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------ student copy, answer key
def test_student_copy_drops_solutions_and_their_outputs(tmp_path, capsys):
    src = tmp_path / "notebooks"
    src.mkdir()
    nb = fixture_notebook()
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="SECRET 42\n")]
    nb.cells.append(code("print('plot data')", output="plot data\n"))
    nbformat.write(nb, src / "01_demo.ipynb")
    before = (src / "01_demo.ipynb").read_text()
    out = tmp_path / "student"
    assert load_script("make_student_copy").main([str(out), "--notebooks", str(src)]) == 0
    assert "1 solution cell(s) removed" in capsys.readouterr().out
    student = nbformat.read(out / "01_demo.ipynb", as_version=4)
    nbformat.validate(student)
    text = (out / "01_demo.ipynb").read_text()
    assert "answer = 42" not in text and "SECRET" not in text and '"solution"' not in text
    assert [c.source for c in student.cells if c.cell_type == "code"] == [
        STUB,
        "check_answer(answer)",
        "print('plot data')",
    ]
    assert student.cells[2].outputs == []  # the check's "Correct!" came from the solution
    assert student.cells[3].outputs[0].text == "plot data\n"  # other outputs are kept
    assert (src / "01_demo.ipynb").read_text() == before  # the original is untouched


def test_student_copy_refuses_to_overwrite_the_originals(tmp_path):
    with pytest.raises(SystemExit):
        load_script("make_student_copy").main([str(tmp_path), "--notebooks", str(tmp_path)])


def test_answer_key_lists_every_quiz_answer_and_the_solutions(tmp_path):
    src = tmp_path / "notebooks"
    src.mkdir()
    nbformat.write(fixture_notebook(), src / "01_demo.ipynb")
    out = tmp_path / "key" / "answer_key.md"
    assert load_script("make_answer_key").main([str(out), "--notebooks", str(src)]) == 0
    text = out.read_text()
    from course_utils import quiz

    for quiz_id in quiz.list_quizzes():
        assert f"(`{quiz_id}`)" in text
        for question_id in quiz.answer_key(quiz_id):
            assert f"`{question_id}`" in text
    assert "- **[x]** `b`: fp16 autocast with dynamic loss scaling" in text
    assert "**Answer:** 65504" in text and "**Answer:** False" in text
    assert "## Exercise solutions: `01_demo.ipynb`" in text and "answer = 42" in text
