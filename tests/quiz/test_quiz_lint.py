"""The quiz bank linter (course_utils/quiz_lint.py, issue 14 part B): every rule on small banks.

Each test writes a bank that passes, breaks one thing, and checks the one line the linter prints.
The last test, ``test_real_banks_all_pass_the_linter`` (select it with ``-k real_banks``), runs the
linter over every bank in data/quizzes/.
"""

from __future__ import annotations

import copy
import json
import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.quiz import lint as quiz_lint
from course_utils.quiz.bank import QuizBankError, TaughtIn, parse_bank

BANK = "03_demo"
LONG_FEEDBACK = "This confuses the range of a format with its precision, which differ."


def notebook(*cells: tuple[str, str]) -> dict:
    return {
        "cells": [
            {"cell_type": kind, "metadata": {}, "source": text}
            | ({"outputs": [], "execution_count": None} if kind == "code" else {})
            for kind, text in cells
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


GOOD_NOTEBOOK = notebook(
    ("markdown", "# 03 · Demo\n\nIntro."),
    ("code", "from course_utils import quiz"),
    ("markdown", "## 1. The first section  \n\nText.\n\n```\n# not a heading\n```"),
    ("code", 'quiz.predict("03_demo", "p1")'),
    ("code", "print(1)"),
    ("code", "quiz.revisit('03_demo', 'p1')"),
    ("markdown", "### 2. `unscale_` before clipping"),
    ("code", 'quiz.predict(\n    "03_demo",\n    "p2",\n)'),
    ("code", 'quiz.revisit("03_demo", "p2")'),
    ("markdown", "## Check your understanding"),
    ("code", 'quiz.show("03_demo")'),
)


def single(qid: str, right_len: int = 20, wrong_lens=(30, 25), **extra) -> dict:
    choices = [{"id": "a", "text": "r" * right_len, "correct": True}]
    for n, length in enumerate(wrong_lens):
        choices.append({"id": "bcdefg"[n], "text": "w" * length, "feedback": LONG_FEEDBACK})
    return {
        "id": qid,
        "type": "single",
        "prompt": "Which one?",
        "choices": choices,
        "explanation": "Because.",
        "hint": "Think.",
        "taught_in": {"notebook": BANK, "section": "1. The first section"},
    } | extra


def good_bank() -> dict:
    return {
        "id": BANK,
        "title": "Demo quiz",
        "notebook": f"notebooks/{BANK}.ipynb",
        "questions": [
            single("p1", right_len=40, predict=True),  # the one allowed correct-is-longest
            single("p2", predict=True),
            single("q3"),
            {
                "id": "tf",
                "type": "true_false",
                "prompt": "True?",
                "answer": True,
                "wrong_feedback": LONG_FEEDBACK,
                "explanation": "Yes.",
                "hint": "Look.",
                "taught_in": {"notebook": BANK, "section": "2. `unscale_` before clipping"},
            },
            {
                "id": "num",
                "type": "numeric",
                "prompt": "How many?",
                "answer": 3,
                "tolerance": 0,
                "wrong_feedback": LONG_FEEDBACK,
                "common_mistakes": [{"value": 4, "feedback": LONG_FEEDBACK}],
                "explanation": "Three.",
                "hint": "Count.",
                "taught_in": {"notebook": BANK, "section": "Check your understanding"},
            },
            {
                "id": "multi",
                "type": "multiple",
                "prompt": "Which ones?",
                "choices": [
                    {"id": "a", "text": "`x` one", "correct": True, "feedback": LONG_FEEDBACK},
                    {"id": "b", "text": "two", "correct": True, "feedback": LONG_FEEDBACK},
                    {"id": "c", "text": "three", "feedback": LONG_FEEDBACK},
                ],
                "explanation": "One and two.",
                "hint": "Two of them.",
                "taught_in": {"notebook": BANK, "section": "03 · Demo"},
            },
        ],
    }


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A quiz folder and a notebook folder in tmp; ``write(bank, nb)`` returns the problems."""
    quizzes = tmp_path / "quizzes"
    notebooks = tmp_path / "notebooks"
    quizzes.mkdir()
    notebooks.mkdir()
    monkeypatch.setenv("COURSE_QUIZ_DIR", str(quizzes))

    class Course:
        quiz_dir = quizzes
        notebook_dir = notebooks

        def write(self, bank=None, nb=None, name=BANK):
            bank = good_bank() if bank is None else bank
            path = quizzes / f"{name}.json"
            path.write_text(bank if isinstance(bank, str) else json.dumps(bank), encoding="utf-8")
            nb = GOOD_NOTEBOOK if nb is None else nb
            (notebooks / f"{BANK}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
            return path

        def problems(self, bank=None, nb=None, name=BANK):
            return [str(p) for p in quiz_lint.lint_bank(self.write(bank, nb, name), notebooks)]

    return Course()


def only(problems: list[str], rule: str) -> list[str]:
    return [p for p in problems if f"[{rule}]" in p]


# ------------------------------------------------------------------------------------ passing
def test_a_good_bank_passes_and_the_cli_says_so(course, capsys):
    assert course.problems() == []
    assert quiz_lint.main(["--notebooks", str(course.notebook_dir)]) == 0
    assert "1 bank(s) pass" in capsys.readouterr().out


def test_parse_bank_reads_taught_in_and_predict(course):
    quiz = parse_bank(course.write())
    p1 = quiz.question("p1")
    assert p1.taught_in == TaughtIn(BANK, "1. The first section")
    assert p1.predict is True
    assert quiz.question("q3").predict is False


def test_a_bank_without_the_new_fields_still_loads(course):
    bank = good_bank()
    for q in bank["questions"]:
        q.pop("taught_in")
        q.pop("predict", None)
    quiz = parse_bank(course.write(bank))
    assert quiz.question("p1").taught_in is None
    assert quiz.question("p1").predict is False


# ----------------------------------------------------------------------------- rule 1: longest
def test_correct_is_longest_in_more_than_a_third_fails_naming_the_questions(course):
    bank = good_bank()
    bank["questions"][2] = single("q3", right_len=50)  # now 2 of 3 single: floor(3/3) = 1
    [line] = only(course.problems(bank), "longest")
    assert line.startswith(f"{BANK}: question -: [longest]")
    assert "2 of 3 single-choice questions (at most 1 allowed): p1, q3" in line


def test_a_tie_for_longest_does_not_count(course):
    bank = good_bank()
    bank["questions"][2] = single("q3", right_len=30)  # ties the longest wrong choice
    assert only(course.problems(bank), "longest") == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 80), st.integers(1, 80)), min_size=1, max_size=12))
def test_rule_1_flags_exactly_when_more_than_floor_n_over_3(pairs):
    questions = [single(f"q{i}", right_len=r, wrong_lens=(w,)) for i, (r, w) in enumerate(pairs)]
    longest = sum(r > w for r, w in pairs)
    flagged = quiz_lint._rule_longest(BANK, questions)
    assert bool(flagged) == (longest > len(pairs) // 3)


# ---------------------------------------------------------------------------- rule 2: giveaway
@pytest.mark.parametrize("phrase", ["All of the above", "none of the  above", "Both of the above."])
def test_of_the_above_choices_are_giveaways(course, phrase):
    bank = good_bank()
    bank["questions"][2]["choices"][1]["text"] = phrase
    [line] = only(course.problems(bank), "giveaway")
    assert "question q3: [giveaway] choice 'b' says" in line


def test_the_only_code_span_on_the_key_is_a_giveaway(course):
    bank = good_bank()
    bank["questions"][2]["choices"][0]["text"] = "call `scaler.unscale_(opt)` first"
    [line] = only(course.problems(bank), "giveaway")
    assert "question q3" in line and "only one with a code span" in line
    bank["questions"][2]["choices"][1]["text"] = "call `opt.step()` first"  # a distractor has one
    assert only(course.problems(bank), "giveaway") == []


def test_the_only_code_span_on_a_distractor_is_fine(course):
    bank = good_bank()
    bank["questions"][2]["choices"][1]["text"] = "call `opt.step()` first"
    assert only(course.problems(bank), "giveaway") == []


def test_in_a_multiple_question_a_code_span_on_one_of_several_keys_is_fine(course):
    assert only(course.problems(), "giveaway") == []  # 'multi' has `x` on one of two keys


@pytest.mark.parametrize("hedge", ["may", "usually", "it depends", "in most  cases", "Can"])
def test_the_only_hedge_on_the_key_is_a_giveaway(course, hedge):
    bank = good_bank()
    bank["questions"][2]["choices"][0]["text"] = f"it {hedge} overflow"
    [line] = only(course.problems(bank), "giveaway")
    assert "only one with a hedge word" in line


def test_cant_and_words_containing_hedges_are_not_hedges(course):
    bank = good_bank()
    bank["questions"][2]["choices"][0]["text"] = "it can't overflow: the maximum is fixed"
    assert only(course.problems(bank), "giveaway") == []


def test_hedges_on_two_choices_are_fine(course):
    bank = good_bank()
    bank["questions"][2]["choices"][0]["text"] = "it may overflow"
    bank["questions"][2]["choices"][1]["text"] = "it might underflow"
    assert only(course.problems(bank), "giveaway") == []


# ---------------------------------------------------------------------------- rule 3: feedback
def test_a_distractor_without_feedback_is_named(course):
    bank = good_bank()
    del bank["questions"][2]["choices"][1]["feedback"]
    problems = course.problems(bank)
    assert only(problems, "feedback") == [
        f"{BANK}: question q3: [feedback] wrong choice 'b' has no feedback"
    ]
    assert only(problems, "schema")  # quiz_bank would refuse to load it too


@pytest.mark.parametrize(
    "feedback",
    ["Wrong.", "Not quite: overflow.", "Incorrect. Not quite. Try again, try again, try again!"],
)
def test_short_or_stock_feedback_fails(course, feedback):
    bank = good_bank()
    bank["questions"][2]["choices"][1]["feedback"] = feedback
    [line] = only(course.problems(bank), "feedback")
    assert "question q3: [feedback] wrong choice 'b'" in line and "at least 40" in line


def test_feedback_that_names_a_misconception_after_no_passes(course):
    bank = good_bank()
    bank["questions"][2]["choices"][1]["feedback"] = "No: " + LONG_FEEDBACK
    assert only(course.problems(bank), "feedback") == []


@pytest.mark.parametrize(("index", "where"), [(3, "'wrong_feedback'"), (4, "common mistake 4")])
def test_true_false_and_numeric_feedback_is_checked(course, index, where):
    bank = good_bank()
    question = bank["questions"][index]
    if index == 3:
        question["wrong_feedback"] = "No."
    else:
        question["common_mistakes"][0]["feedback"] = "Off by one."
    [line] = only(course.problems(bank), "feedback")
    assert f"question {question['id']}: [feedback] {where}" in line


# --------------------------------------------------------------------------- rule 4: taught_in
def test_a_question_without_taught_in_fails(course):
    bank = good_bank()
    del bank["questions"][2]["taught_in"]
    [line] = only(course.problems(bank), "taught_in")
    assert line.startswith(f'{BANK}: question q3: [taught_in] has no "taught_in"')


def test_a_heading_that_does_not_exist_fails_with_a_suggestion(course):
    bank = good_bank()
    bank["questions"][2]["taught_in"]["section"] = "1. The first sektion"
    [line] = only(course.problems(bank), "taught_in")
    assert "has no markdown heading '1. The first sektion'" in line
    assert "did you mean '1. The first section'?" in line


@pytest.mark.parametrize("section", ["not a heading", "## 1. The first section", "Text."])
def test_the_section_must_be_a_heading_text_exactly(course, section):
    bank = good_bank()
    bank["questions"][2]["taught_in"]["section"] = section
    assert len(only(course.problems(bank), "taught_in")) == 1


def test_a_line_inside_a_code_fence_is_not_a_heading(course):
    course.write()
    headings = quiz_lint.notebook_headings(course.notebook_dir / f"{BANK}.ipynb")
    assert "not a heading" not in headings
    assert "2. `unscale_` before clipping" in headings


def test_a_notebook_that_does_not_exist_fails(course):
    bank = good_bank()
    bank["questions"][2]["taught_in"]["notebook"] = "03_dem"
    [line] = only(course.problems(bank), "taught_in")
    assert "there is no notebook" in line and "did you mean '03_demo'?" in line


# ----------------------------------------------------------------------------- rule 5: predict
def test_a_notebook_bank_needs_two_predict_questions(course):
    bank = good_bank()
    del bank["questions"][1]["predict"]
    problems = only(course.problems(bank), "predict")
    assert f"{BANK}: question -: [predict] has 1 predict-first question(s)" in problems[0]
    # the notebook still asks p2: that call now names a question that is not a predict one
    assert any("question p2: [predict]" in p and '"predict": true' in p for p in problems)


def test_a_course_wide_bank_is_exempt_from_predict(course):
    bank = good_bank()
    bank["id"] = "course_demo"
    for q in bank["questions"]:
        q.pop("predict", None)
    assert only(course.problems(bank, name="course_demo"), "predict") == []


def test_a_predict_question_never_asked_fails(course):
    nb = copy.deepcopy(GOOD_NOTEBOOK)
    nb["cells"][3]["source"] = "print('no predict here')"
    [line] = only(course.problems(nb=nb), "predict")
    assert line == (
        f"{BANK}: question p1: [predict] notebook '{BANK}' never calls "
        f'quiz.predict("{BANK}", "p1") (string literals, in a code cell)'
    )


def test_a_predict_question_never_revisited_fails(course):
    nb = copy.deepcopy(GOOD_NOTEBOOK)
    nb["cells"][5]["source"] = "print('no revisit')"
    [line] = only(course.problems(nb=nb), "predict")
    assert "question p1: [predict]" in line and "never calls quiz.revisit" in line


def test_a_revisit_before_the_predict_fails(course):
    nb = copy.deepcopy(GOOD_NOTEBOOK)
    cells = nb["cells"]
    cells[3]["source"], cells[5]["source"] = cells[5]["source"], cells[3]["source"]
    [line] = only(course.problems(nb=nb), "predict")
    assert "question p1: [predict]" in line and "is not in a cell before its quiz.revisit" in line


def test_a_call_to_a_question_the_bank_lacks_fails(course):
    nb = copy.deepcopy(GOOD_NOTEBOOK)
    nb["cells"].append(
        {
            "cell_type": "code",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": 'quiz.revisit("03_demo", "gone")',
        }
    )
    [line] = only(course.problems(nb=nb), "predict")
    assert "question gone: [predict]" in line and "does not have" in line


# ------------------------------------------------------------------------------- bad bank files
def test_a_bank_that_is_not_json_is_one_clear_line(course, capsys):
    course.write('{"id": "03_demo", "title": ')
    assert quiz_lint.main(["--notebooks", str(course.notebook_dir)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1
    assert out[0].startswith(f"{BANK}: question -: [json]") and "not valid JSON (line 1" in out[0]


def test_a_bank_that_breaks_the_schema_is_reported_and_still_linted(course):
    bank = good_bank()
    bank["questions"][2]["colour"] = "red"
    problems = course.problems(bank)
    assert len(problems) == 1 and "[schema]" in problems[0] and "colour" in problems[0]


def test_a_bank_that_is_a_list_is_reported_not_a_crash(course):
    problems = course.problems([1, 2])
    assert len(problems) == 1 and "[schema]" in problems[0]


def test_a_missing_bank_named_on_the_command_line_fails_clearly(course, capsys):
    assert quiz_lint.main(["no_such_bank"]) == 1
    assert "there is no bank file" in capsys.readouterr().err


def test_a_bank_given_as_a_path(course, capsys):
    path = course.write()
    assert quiz_lint.main([str(path), "--notebooks", str(course.notebook_dir)]) == 0


def test_the_cli_prints_one_line_per_problem_and_exits_1(course, capsys):
    bank = good_bank()
    bank["questions"][2]["taught_in"]["section"] = "Nowhere"
    bank["questions"][3]["wrong_feedback"] = "No."
    course.write(bank)
    assert quiz_lint.main([BANK, "--notebooks", str(course.notebook_dir)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [line.split(": [")[1].split("]")[0] for line in lines] == ["taught_in", "feedback"]
    assert "2 problem(s) in 1 of 1 bank(s)" in captured.err


# ------------------------------------------------------------------------------------- stats
def test_stats_count_questions_longest_positions_and_predict(course, capsys):
    bank = good_bank()
    bank["questions"][2]["choices"].reverse()  # q3's key now sits third
    course.write(bank)
    stats = quiz_lint.bank_stats(course.quiz_dir / f"{BANK}.json")
    assert (stats.questions, stats.single, stats.longest, stats.predict) == (6, 3, 1, 2)
    assert stats.positions == {0: 2, 2: 1}
    assert quiz_lint.main(["--stats"]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith(BANK)]
    assert row[0].split() == [BANK, "6", "3", "1", "2", "0", "1", "0", "2"]


def test_stats_of_an_unreadable_bank_fail_clearly(course, capsys):
    course.write("not json")
    assert quiz_lint.main(["--stats"]) == 1
    assert "[json]" in capsys.readouterr().err
    with pytest.raises(QuizBankError):
        quiz_lint.bank_stats(course.quiz_dir / f"{BANK}.json")


# ------------------------------------------------------------------- every bank of the course
def test_real_banks_all_pass_the_linter(monkeypatch):
    """ISSUE 14: every bank in data/quizzes/ passes every rule (select with ``-k real_banks``).

    Expected to fail until the banks are rewritten (taught_in, predict, distractors)."""
    monkeypatch.delenv("COURSE_QUIZ_DIR", raising=False)
    paths = quiz_lint.bank_paths([])
    assert len(paths) >= 10
    notebooks = quiz_lint._Notebooks(quiz_lint.DEFAULT_NOTEBOOK_DIR)
    problems = [str(p) for path in paths for p in quiz_lint._lint(path, notebooks)]
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


def test_the_real_banks_are_read_from_the_repo(monkeypatch):
    monkeypatch.delenv("COURSE_QUIZ_DIR", raising=False)
    names = [p.name for p in quiz_lint.bank_paths([])]
    assert "schema.json" not in names and "03_loss_scaling.json" in names
    assert pathlib.Path(quiz_lint.DEFAULT_NOTEBOOK_DIR, "03_loss_scaling.ipynb").is_file()
