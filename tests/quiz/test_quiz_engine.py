"""Issue 14, part A: per-learner choice order, predict-first prompts, the widget's layout and
the progress file's migration from version 1.

Most tests use a small private bank (``engine_demo``, written here), so they hold whatever the
course's banks say; the shuffle tests also run over every real bank.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.quiz import core as quiz
from course_utils.quiz import progress
from course_utils.quiz.bank import Choice, Question, load_quiz
from course_utils.quiz.text import choice_order, choice_seed, render_text
from course_utils.quiz.widget import (
    ONE_AT_A_TIME_OVER,
    PredictView,
    QuizView,
    RevisitView,
)

QUIZ = "engine_demo"
LEARNER_A = "0" * 32
LEARNER_B = "f" * 32


def _single(qid: str, right: str, n: int = 4) -> dict:
    ids = "abcdefgh"[:n]
    return {
        "id": qid,
        "type": "single",
        "prompt": f"Question {qid}: which one?",
        "explanation": f"Because {qid} says so (the explanation).",
        "hint": f"Think about {qid}.",
        "choices": [
            {"id": i, "text": f"choice {i} of {qid}", "correct": True}
            if i == right
            else {"id": i, "text": f"choice {i} of {qid}", "feedback": f"{i} is a misconception"}
            for i in ids
        ],
    }


BANK = {
    "id": QUIZ,
    "title": "Engine demo",
    "questions": [
        _single("first", "c"),
        {
            "id": "several",
            "type": "multiple",
            "prompt": "Which ones?",
            "explanation": "a and d.",
            "hint": "Two of them.",
            "choices": [
                {"id": "a", "text": "alpha", "correct": True, "feedback": "missed alpha"},
                {"id": "b", "text": "beta", "feedback": "beta is not one"},
                {"id": "c", "text": "gamma", "feedback": "gamma is not one"},
                {"id": "d", "text": "delta", "correct": True, "feedback": "missed delta"},
            ],
        },
        {
            "id": "number",
            "type": "numeric",
            "prompt": "How many?",
            "explanation": "Seven.",
            "hint": "More than five.",
            "answer": 7,
            "tolerance": 0,
            "wrong_feedback": "Count again.",
        },
        {
            "id": "truth",
            "type": "true_false",
            "prompt": "True?",
            "explanation": "Yes.",
            "hint": "It is.",
            "answer": True,
            "wrong_feedback": "It is true.",
        },
        _single("fifth", "a"),
        _single("sixth", "b"),
    ],
}


@pytest.fixture(autouse=True)
def private_state(tmp_path, monkeypatch):
    """A private progress file and a private quiz folder holding ``engine_demo``."""
    path = tmp_path / "progress" / "progress.json"
    monkeypatch.setenv(progress.PROGRESS_ENV, str(path))
    monkeypatch.delenv(quiz.MODE_ENV, raising=False)
    monkeypatch.setattr(progress, "_warned", set())
    monkeypatch.setattr(progress, "_session_learner", None)
    monkeypatch.setattr(quiz, "_session_predictions", {})
    return path


@pytest.fixture
def demo_bank(tmp_path, monkeypatch):
    folder = tmp_path / "quizzes"
    folder.mkdir()
    (folder / f"{QUIZ}.json").write_text(json.dumps(BANK))
    small = dict(BANK, id="engine_small", questions=BANK["questions"][:ONE_AT_A_TIME_OVER])
    (folder / "engine_small.json").write_text(json.dumps(small))
    monkeypatch.setenv("COURSE_QUIZ_DIR", str(folder))
    return load_quiz(QUIZ)


def write_progress(path, doc) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def ids(choices) -> list[str]:
    return [c.id for c in choices]


# ------------------------------------------------------------------------- 1. per-learner order
@settings(max_examples=60, deadline=None)
@given(
    learner=st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
    quiz_id=st.from_regex(r"[a-z0-9][a-z0-9_]{0,20}", fullmatch=True),
    n=st.integers(min_value=2, max_value=8),
)
def test_the_order_is_a_permutation_the_same_at_every_call(learner, quiz_id, n):
    question = Question(
        id="q",
        type="single",
        prompt="p",
        explanation="e",
        hint="h",
        choices=tuple(Choice(c, c, c == "a") for c in "abcdefgh"[:n]),
    )
    first = choice_order(quiz_id, question, learner)
    assert sorted(ids(first)) == sorted(ids(question.choices))
    assert choice_order(quiz_id, question, learner) == first
    assert choice_order(quiz_id, question, None) == question.choices  # bank order


def test_the_seed_is_a_stable_hash_pinned_here():
    # SHA-256 of "learner\x1fquiz\x1fquestion", first 8 bytes: the same in every process and
    # Python version (Python's hash() of a str changes per process)
    assert choice_seed(LEARNER_A, "q", "x") == 0x3605_0E2E_912F_7F9F
    with pytest.raises(TypeError, match="learner_id must be a non-empty string"):
        choice_seed(None, "q", "x")


def test_same_learner_same_order_in_another_process(demo_bank, private_state):
    learner = progress.learner_id()
    assert len(learner) == 32 and int(learner, 16) >= 0
    assert progress.learner_id() == learner  # made once
    mine = [ids(choice_order(QUIZ, q, learner)) for q in demo_bank.questions]
    code = (
        "import json\n"
        "from course_utils.quiz import progress\n"
        "from course_utils.quiz.bank import load_quiz\n"
        "from course_utils.quiz.text import choice_order\n"
        "quiz = load_quiz('engine_demo')\n"
        "learner = progress.learner_id()\n"
        "print(json.dumps([[c.id for c in choice_order(quiz.id, q, learner)]"
        " for q in quiz.questions]))\n"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")  # a different str hash than this process
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == mine


@pytest.mark.parametrize("quiz_id", quiz.list_quizzes())
def test_two_learners_differ_on_some_question(quiz_id):
    bank = load_quiz(quiz_id)
    shuffled = [q for q in bank.questions if q.type in ("single", "multiple")]
    if not shuffled:
        pytest.skip("no choice questions")
    orders_a = [ids(choice_order(quiz_id, q, LEARNER_A)) for q in shuffled]
    orders_b = [ids(choice_order(quiz_id, q, LEARNER_B)) for q in shuffled]
    assert orders_a != orders_b


def test_the_right_choice_moves_across_learners(demo_bank):
    """Over 40 learners, the right choice of a 4-choice question sits in every position."""
    first = demo_bank.question("first")
    positions = {ids(choice_order(QUIZ, first, f"{n:032x}")).index("c") for n in range(40)}
    assert positions == {0, 1, 2, 3}


def test_text_and_widget_show_the_same_order_and_grading_is_by_id(demo_bank, capsys):
    learner = progress.learner_id()
    view = QuizView(demo_bank)
    quiz.show(QUIZ, mode="text")
    text = capsys.readouterr().out
    for qv in view.questions:
        q = qv.question
        if q.type == "single":
            widget_order = [value for _label, value in qv.input.options]
        elif q.type == "multiple":
            widget_order = ids(qv.answer_input.choices)
        else:
            continue
        assert widget_order == ids(choice_order(QUIZ, q, learner))
        text_order = [c.id for c in sorted(q.choices, key=lambda c: text.index(f"{c.text}\n"))]
        assert text_order == widget_order, q.id
    # the key is found by id, wherever it sits
    for qv in view.questions:
        qv.set_answer(quiz.answer_key(QUIZ)[qv.question.id])
        assert qv.check() is True, qv.question.id
    assert quiz.grade(QUIZ, quiz.answer_key(QUIZ)).correct == len(demo_bank.questions)


def test_print_quiz_keeps_the_bank_order(demo_bank, capsys):
    quiz.print_quiz(QUIZ)
    assert capsys.readouterr().out.strip() == render_text(demo_bank).strip()
    text = render_text(demo_bank)
    assert text.index("choice a of first") < text.index("choice b of first")


# -------------------------------------------------------------------------- 2. predict first
def test_predict_in_text_asks_without_giving_the_answer_away(demo_bank, capsys):
    quiz.predict(QUIZ, "first")
    out = capsys.readouterr().out
    assert out.startswith("Predict before you run")
    assert "[first] Question first: which one?" in out
    assert 'quiz.predict("engine_demo", "first", answer=<a choice id, in quotes>)' in out
    assert "explanation" not in out and "Think about" not in out
    assert progress.entry(QUIZ, "first") is None  # asking records nothing


def test_predict_records_once_and_revisit_compares(demo_bank, capsys):
    quiz.predict(QUIZ, "first", answer="a")
    assert "Prediction saved: choice a of first" in capsys.readouterr().out
    saved = progress.entry(QUIZ, "first")
    assert saved == {"solved": False, "attempts": 1, "answer": "a", "prediction": "a"}
    quiz.predict(QUIZ, "first", answer="c")  # a prediction is a commitment: the first stays
    assert "You predicted before; kept as made: choice a of first" in capsys.readouterr().out
    assert progress.entry(QUIZ, "first")["prediction"] == "a"
    quiz.revisit(QUIZ, "first")
    out = capsys.readouterr().out
    assert "You predicted: choice a of first (not right)." in out
    assert "a is a misconception" in out  # the feedback on the predicted choice
    assert "Answer: choice c of first" in out and "Because first says so" in out
    quiz.predict(QUIZ, "first")  # asked again: the saved prediction, no new prompt
    assert "Your prediction, saved earlier: choice a of first." in capsys.readouterr().out


def test_revisit_without_a_prediction_still_shows_the_answer(demo_bank, capsys):
    quiz.revisit(QUIZ, "number")
    out = capsys.readouterr().out
    assert "You recorded no prediction" in out and "Answer: 7" in out
    assert progress.entry(QUIZ, "number") is None  # revisiting records nothing


def test_predict_bad_input_is_a_clear_error_and_records_nothing(demo_bank, private_state):
    with pytest.raises(quiz.UnknownQuestionError, match="has no question 'nope'"):
        quiz.predict(QUIZ, "nope")
    with pytest.raises(quiz.InvalidAnswerError, match="has no choice 'z'"):
        quiz.predict(QUIZ, "first", answer="z")
    with pytest.raises(quiz.InvalidAnswerError, match="takes a number"):
        quiz.predict(QUIZ, "number", answer="lots")
    with pytest.raises(ValueError, match="mode must be one of"):
        quiz.revisit(QUIZ, "first", mode="html")
    assert progress.load() == {}


def test_predict_widget_saves_locks_and_survives_a_rerun(demo_bank):
    learner = progress.learner_id()
    view = PredictView(demo_bank, demo_bank.question("several"), learner_id=learner)
    assert view.save() is None and "at least one" in view.status.value
    order = ids(view.answer_input.choices)
    assert order == ids(choice_order(QUIZ, demo_bank.question("several"), learner))
    view.answer_input.set(["d", "a"])
    assert view.save() == ["a", "d"]
    assert "Prediction saved" in view.status.value and "Correct" not in view.status.value
    assert all(box.disabled for box in view.answer_input.boxes)
    assert progress.entry(QUIZ, "several") == {
        "solved": True,
        "attempts": 1,
        "answer": ["a", "d"],
        "prediction": ["a", "d"],
    }
    again = PredictView(
        demo_bank,
        demo_bank.question("several"),
        learner_id=learner,
        prediction=quiz.prediction_of(QUIZ, "several"),
    )
    assert (
        sorted(again.answer_input.value()) == ["a", "d"] and "saved earlier" in again.status.value
    )
    assert again.save_button.layout.display == "none"
    shown = RevisitView(demo_bank, demo_bank.question("several"), ["a", "d"]).content.value
    assert "You predicted:</b> alpha; delta" in shown and "Answer:</b> alpha; delta" in shown


def test_numeric_prediction_is_kept_as_a_number(demo_bank, capsys):
    quiz.predict(QUIZ, "number", answer="6")
    assert progress.entry(QUIZ, "number")["prediction"] == 6.0
    quiz.revisit(QUIZ, "number")
    assert "You predicted: 6 (not right)." in capsys.readouterr().out


def test_a_predicted_question_shows_as_answered_in_the_quiz(demo_bank):
    quiz.predict(QUIZ, "first", answer="c")
    view = QuizView(demo_bank)
    first = view.questions[0]
    assert first.current_answer() == "c" and "right before" in first.feedback.value
    assert "Score: 1 / 6" in view.score.value


def test_predictions_kept_for_the_session_when_the_file_cannot_be_written(tmp_path, monkeypatch):
    folder = tmp_path / "quizzes"
    folder.mkdir()
    (folder / f"{QUIZ}.json").write_text(json.dumps(BANK))
    monkeypatch.setenv("COURSE_QUIZ_DIR", str(folder))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(progress.PROGRESS_ENV, str(blocker / "progress.json"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiz.predict(QUIZ, "first", answer="b")
        assert quiz.prediction_of(QUIZ, "first") == "b"
        first, second = progress.learner_id(), progress.learner_id()
    assert first == second  # one id for the session
    assert caught and all(issubclass(w.category, quiz.ProgressWarning) for w in caught)


# ------------------------------------------------------------------------------ 3. the widget
def test_one_at_a_time_is_the_default_over_five_questions(demo_bank):
    assert len(demo_bank.questions) > ONE_AT_A_TIME_OVER
    view = QuizView(demo_bank)
    assert view.one_at_a_time and view.page.children == (view.questions[0].box,)
    assert "Question 1 of 6" in view.questions[0].header.value
    view.next_button.click()
    assert view.page.children == (view.questions[1].box,)
    assert "Question 2 of 6" in view.questions[1].header.value
    small = QuizView(load_quiz("engine_small"))
    assert not small.one_at_a_time and len(small.page.children) == len(small.questions)
    assert QuizView(demo_bank, one_at_a_time=False).one_at_a_time is False


def test_the_score_sits_above_the_questions(demo_bank):
    view = QuizView(demo_bank)
    children = list(view.box.children)
    top = next(c for c in children if "course-quiz-top" in c._dom_classes)
    assert children.index(top) < children.index(view.page)
    status = top.children[0]
    assert view.score in status.children and view.bar in status.children


def test_show_answer_replaces_the_hint(demo_bank):
    view = QuizView(demo_bank)
    first = view.questions[0]
    first.set_answer("a")
    assert first.check() is False
    assert "Hint:" in first.hint.value
    first.reveal()
    assert "Answer:</b> choice c of first" in first.hint.value
    assert "Hint:" not in first.hint.value
    first.show_hint()  # and back: one area, never both
    assert "Hint:" in first.hint.value and "Answer:" not in first.hint.value


def test_after_a_rerun_every_answer_is_selected_again(demo_bank):
    view = QuizView(demo_bank)
    by_id = {qv.question.id: qv for qv in view.questions}
    answers = {"first": "c", "several": ["d", "a"], "number": "7", "truth": False}
    for qid, answer in answers.items():
        by_id[qid].set_answer(answer)
        by_id[qid].check()
    again = {qv.question.id: qv for qv in QuizView(demo_bank).questions}
    assert again["first"].current_answer() == "c"
    assert sorted(again["several"].current_answer()) == ["a", "d"]
    assert again["number"].current_answer() == "7"
    assert again["truth"].current_answer() is False
    assert "right before" in again["first"].feedback.value
    assert "was not right" in again["truth"].feedback.value


# ------------------------------------------------------------------- 5. old progress files
def test_a_version_1_file_is_read_and_migrated(demo_bank, private_state):
    old = {"version": 1, "quizzes": {QUIZ: {"first": {"solved": True, "attempts": 3}}}}
    write_progress(private_state, old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: an old file is not corrupt
        assert progress.solved(QUIZ) == {"first"}
        view = QuizView(demo_bank)  # makes the learner id
    assert "Score: 1 / 6" in view.score.value and "right before" in view.questions[0].feedback.value
    saved = json.loads(private_state.read_text())
    assert saved["version"] == progress.VERSION == 2
    assert len(saved["learner_id"]) == 32
    assert saved["quizzes"] == old["quizzes"]
    assert not list(private_state.parent.glob("*.corrupt*"))


@pytest.mark.parametrize("learner", [None, "", "not hex", "F" * 32, 12, "0" * 31], ids=repr)
def test_a_bad_learner_id_is_replaced_not_a_crash(private_state, learner):
    write_progress(
        private_state,
        {
            "version": 2,
            "learner_id": learner,
            "quizzes": {"q": {"a": {"solved": True, "attempts": 1}}},
        },
    )
    made = progress.learner_id()
    assert made != learner and len(made) == 32
    assert progress.solved("q") == {"a"}


def test_answers_of_no_answer_shape_are_dropped_not_corrupt(private_state):
    entry = {"solved": True, "attempts": 1, "answer": {"x": 1}, "prediction": [1, 2]}
    write_progress(private_state, {"version": 2, "quizzes": {"q": {"a": entry}}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert progress.entry("q", "a") == {"solved": True, "attempts": 1}


def test_a_future_version_is_set_aside_not_read(private_state):
    write_progress(private_state, {"version": 3, "quizzes": {}})
    with pytest.warns(quiz.ProgressWarning, match="not valid"):
        progress.learner_id()
    assert (private_state.parent / "progress.json.corrupt").exists()


def test_reset_keeps_the_learner_id(demo_bank):
    learner = progress.learner_id()
    quiz.grade(QUIZ, {"first": "c"}, record=True)
    quiz.reset()
    assert progress.load() == {} and progress.learner_id() == learner


def test_saved_answers_that_no_longer_fit_the_bank_never_raise(demo_bank, private_state, capsys):
    """A progress file written for an older bank: answers of another shape, unknown ids."""
    odd = [["x", "y"], "zz", 3.5, True, ["a", 1]]
    for value in odd:
        entry = {"solved": False, "attempts": 1, "answer": value, "prediction": value}
        quizzes = {QUIZ: {q.id: entry for q in demo_bank.questions}}
        write_progress(private_state, {"version": 2, "learner_id": LEARNER_A, "quizzes": quizzes})
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            view = QuizView(demo_bank)
            for q in demo_bank.questions:
                prediction = quiz.prediction_of(QUIZ, q.id)
                PredictView(demo_bank, q, learner_id=LEARNER_A, prediction=prediction)
                RevisitView(demo_bank, q, prediction)
                quiz.revisit(QUIZ, q.id, mode="text")
        assert "Score: 0 / 6" in view.score.value, value
    out = capsys.readouterr().out
    assert "does not fit this question any more" in out


def test_a_numeric_answer_is_restored_with_every_digit(demo_bank):
    view = QuizView(demo_bank)
    number = next(qv for qv in view.questions if qv.question.id == "number")
    for typed, shown in [("123456789", "123456789"), ("0.1", "0.1"), ("65519.99", "65519.99")]:
        number.set_answer(typed)
        number.check()
        again = next(qv for qv in QuizView(demo_bank).questions if qv.question.id == "number")
        assert again.current_answer() == shown


def test_a_multiple_prediction_in_any_order_is_saved_once(demo_bank, capsys):
    quiz.predict(QUIZ, "several", answer=["d", "a"])
    assert "Prediction saved: alpha; delta" in capsys.readouterr().out
    quiz.predict(QUIZ, "several", answer=["a", "d"])
    assert "You predicted before; kept as made: alpha; delta" in capsys.readouterr().out
    assert progress.entry(QUIZ, "several")["attempts"] == 1


def test_a_prediction_saved_for_an_older_bank_is_asked_again(demo_bank, private_state, capsys):
    entry = {"solved": False, "attempts": 1, "prediction": "zz"}  # no such choice any more
    write_progress(private_state, {"version": 2, "quizzes": {QUIZ: {"first": entry}}})
    view = PredictView(
        demo_bank, demo_bank.question("first"), learner_id=LEARNER_A, prediction="zz"
    )
    assert "does not fit" in view.status.value and view.save_button.layout.display != "none"
    quiz.predict(QUIZ, "first", mode="text")
    assert "Record your prediction" in capsys.readouterr().out
    quiz.predict(QUIZ, "first", answer="b")
    assert "Prediction saved: choice b of first" in capsys.readouterr().out
    assert progress.entry(QUIZ, "first")["prediction"] == "b"


def test_the_learner_id_is_read_without_a_write_once_made(private_state, monkeypatch):
    made = progress.learner_id()
    writes = []
    real = progress._save
    monkeypatch.setattr(progress, "_save", lambda path, doc: (writes.append(1), real(path, doc)))
    assert [progress.learner_id() for _ in range(3)] == [made] * 3
    assert writes == []
