"""Quiz banks, grading, bad input, progress file, text fallback and widget logic."""

from __future__ import annotations

import copy
import json
import os
import re
import warnings

import pytest

from course_utils.quiz import core as quiz
from course_utils.quiz import progress
from course_utils.quiz.bank import DEFAULT_QUIZ_DIR, Question, load_quiz
from course_utils.quiz.widget import QuizView

BANKS = quiz.list_quizzes()


@pytest.fixture(autouse=True)
def private_progress(tmp_path, monkeypatch):
    """Each test gets its own progress file and forgets earlier one-time warnings."""
    monkeypatch.setenv(progress.PROGRESS_ENV, str(tmp_path / "progress" / "progress.json"))
    monkeypatch.delenv(quiz.MODE_ENV, raising=False)
    monkeypatch.setattr(progress, "_warned", set())
    return tmp_path / "progress" / "progress.json"


@pytest.fixture
def bank_dir(tmp_path, monkeypatch):
    """A private quiz folder holding a copy of 00_start_here; returns (folder, raw bank)."""
    folder = tmp_path / "quizzes"
    folder.mkdir()
    raw = json.loads((DEFAULT_QUIZ_DIR / "00_start_here.json").read_text())
    monkeypatch.setenv("COURSE_QUIZ_DIR", str(folder))
    return folder, raw


def write_bank(folder, raw, name=None):
    path = folder / f"{name or raw['id']}.json"
    path.write_text(json.dumps(raw))
    return path


def wrong_answer(q: Question):
    """A wrong answer of the right shape for question ``q``."""
    if q.type == "single":
        return next(c.id for c in q.choices if not c.correct)
    if q.type == "multiple":
        wrong = [c.id for c in q.choices if not c.correct]
        return q.correct_choice_ids + wrong[:1] if wrong else q.correct_choice_ids[1:] or ["x"]
    if q.type == "numeric":
        return q.answer + q.tolerance + 1 + abs(q.answer)
    return not q.answer


# ------------------------------------------------------------------------------------ the banks
def test_the_banks_exist():
    assert "00_start_here" in BANKS and "course_nan_at_step_501" in BANKS
    assert len(load_quiz("00_start_here").questions) >= 8
    types = {q.type for b in BANKS for q in load_quiz(b).questions}
    assert types == {"single", "multiple", "numeric", "true_false"}


@pytest.mark.parametrize("quiz_id", BANKS)
def test_answer_key_scores_full_marks_and_each_wrong_answer_loses_one(quiz_id):
    key = quiz.answer_key(quiz_id)
    full = quiz.grade(quiz_id, key)
    assert (full.correct, full.total) == (len(key), len(key)) and full.feedback == {}
    for q in load_quiz(quiz_id).questions:
        answers = dict(key, **{q.id: wrong_answer(q)})
        score = quiz.grade(quiz_id, answers)
        assert score.correct == score.total - 1, q.id
        result = score[q.id]
        assert not result.correct and result.feedback.strip() and result.hint == q.hint


@pytest.mark.parametrize("quiz_id", BANKS)
def test_every_wrong_choice_names_a_misconception(quiz_id):
    for q in load_quiz(quiz_id).questions:
        for choice in q.choices:
            if not choice.correct or q.type == "multiple":
                assert choice.feedback and len(choice.feedback) > 20, (q.id, choice.id)
        assert q.explanation and q.hint


NUMBER = re.compile(r"(?<![\w.^-])\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w])")


@pytest.mark.parametrize("quiz_id", BANKS)
def test_explanations_that_state_a_number_cite_a_source(quiz_id):
    """Truth policy: a number is cited (a link) or computed: by code named in `...`, by a formula
    (with ^), or in the notebook (the explanation says so)."""
    for q in load_quiz(quiz_id).questions:
        text = q.explanation
        numbers = [n for n in NUMBER.findall(text) if "." in n or float(n) >= 10]
        if numbers:
            sourced = ("](http", "`", "^", "notebook")
            assert any(mark in text for mark in sourced), (q.id, numbers)


def test_bank_facts_hold_in_this_torch():
    import torch

    key = quiz.answer_key("00_start_here")
    assert key["fp16_max"] == torch.finfo(torch.float16).max
    nb00 = load_quiz("00_start_here")
    cpu_default = nb00.question("cpu_autocast").choice(key["cpu_autocast"]).text
    assert cpu_default == str(torch.get_autocast_dtype("cpu"))
    assert torch.tensor(65536.0).half().isinf()  # the 65536 common mistake's feedback
    assert f"{torch.finfo(torch.float16).tiny:.1e}" == "6.1e-05"
    assert f"{torch.finfo(torch.bfloat16).tiny:.1e}" == "1.2e-38"
    assert torch.finfo(torch.bfloat16).max / torch.finfo(torch.float32).max > 0.996  # "0.4%"


def test_trainer_facts_hold_in_this_transformers():
    from transformers import TrainingArguments

    assert TrainingArguments(output_dir="unused", use_cpu=True).max_grad_norm == 1.0
    with pytest.raises(TypeError, match="gradient_max_norm"):
        TrainingArguments(output_dir="unused", gradient_max_norm=1.0)
    with pytest.raises(ValueError, match="At most one of fp16 and bf16"):
        TrainingArguments(output_dir="unused", bf16=True, fp16=True, use_cpu=True)


# ---------------------------------------------------------------------------------- bad input
def test_unknown_quiz_lists_the_quizzes_there_are():
    with pytest.raises(KeyError) as err:
        quiz.grade("00_strat_here", {})
    message = str(err.value)
    assert "00_strat_here" in message and "00_start_here" in message
    assert "course_nan_at_step_501" in message and "did you mean '00_start_here'" in message
    assert not message.startswith("'")  # a plain message, not KeyError's repr
    for call in (quiz.show, quiz.answer_key, quiz.print_quiz, quiz.reset):
        with pytest.raises(quiz.UnknownQuizError):
            call("nope")
    with pytest.raises(quiz.UnknownQuizError):
        quiz.answer_key("schema")


def test_unknown_question_id_lists_the_ids():
    with pytest.raises(quiz.UnknownQuestionError, match=r"no question 'v10'.*v100.*did you mean"):
        quiz.grade("00_start_here", {"v10": "b"})


@pytest.mark.parametrize(
    ("question_id", "answer", "message"),
    [
        ("fp16_max", "a lot", r"takes a number; 'a lot' is not a number"),
        ("fp16_max", True, r"takes a number, got True"),
        ("fp16_max", float("nan"), r"finite number"),
        ("fp16_max", "", r"no number entered"),
        ("bf16_gpus", [], r"empty selection"),
        ("bf16_gpus", "", r"empty selection"),
        ("bf16_gpus", ["a100", "k80"], r"no choice 'k80'.*'a100'"),
        ("bf16_gpus", 3, r"list of choice ids"),
        ("v100", None, r"no choice selected"),
        ("v100", 1, r"one choice id"),
        ("v100", "e", r"no choice 'e'"),
        ("cpu_only", "maybe", r"True or False"),
    ],
)
def test_bad_answers_get_clear_messages(question_id, answer, message):
    with pytest.raises(quiz.InvalidAnswerError, match=message) as err:
        quiz.grade("00_start_here", {question_id: answer})
    assert question_id in str(err.value)


def test_answers_must_be_a_dict():
    with pytest.raises(TypeError, match=r"dict \{question_id: answer\}"):
        quiz.grade("00_start_here", [("v100", "b")])


def test_answers_in_other_accepted_shapes():
    score = quiz.grade(
        "00_start_here",
        {
            "fp16_max": " 65,504 ",
            "cpu_only": "true",
            "bf16_gpus": {"a100", "h100", "rtx3080", "rtx4090"},
            "v100": " b",
        },
    )
    assert score.correct == 4 and score.answered == 4 and score.total == 12


def test_common_mistake_feedback_and_unit(bank_dir):
    folder, raw = bank_dir
    fp16 = next(q for q in raw["questions"] if q["id"] == "fp16_max")
    fp16["unit"] = "units"
    write_bank(folder, raw)
    assert quiz.grade("00_start_here", {"fp16_max": "65504 units"}).correct == 1
    score = quiz.grade("00_start_here", {"fp16_max": 65536})
    assert "initial scale" in score["fp16_max"].feedback
    assert "5 exponent bits" in quiz.grade("00_start_here", {"fp16_max": 7})["fp16_max"].feedback


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["questions"][0].pop("hint"), r"field 'questions\[0\]': 'hint' is a required"),
        (
            lambda r: r["questions"][0]["choices"][1].pop("feedback"),
            r"field 'questions\[0\].choices\[1\]': 'feedback' is a required property "
            r"\(question 'exercise_stub'\)",
        ),
        (lambda r: r["questions"][0].update(type="essay"), r"field 'questions\[0\].type'"),
        (
            lambda r: r["questions"][0].update(answer=3),
            r"field 'questions\[0\].answer': not allowed in a 'single' question",
        ),
        (lambda r: r["questions"][0].update(explanation="  "), r"must not be blank"),
        (
            lambda r: r["questions"][7].update(answer="65504"),
            r"field 'questions\[7\].answer'.*question 'fp16_max'",
        ),
        (lambda r: r.update(id="other"), r"field 'id': is 'other' but the file is"),
        (
            lambda r: r["questions"][0]["choices"][1].update(correct=True),
            r"exactly one choice.*has 2",
        ),
        (lambda r: r["questions"][1].update(id="exercise_stub"), r"duplicate question id"),
        (lambda r: r.update(questions=[]), r"field 'questions'"),
        (lambda r: r["questions"][2]["choices"][0].update(id="Bad Id"), r"lower-case"),
        (
            lambda r: r["questions"][7]["common_mistakes"][0].update(value=65504),
            r"would count as right",
        ),
    ],
)
def test_malformed_bank_names_the_file_and_the_field(bank_dir, mutate, message):
    folder, raw = bank_dir
    raw = copy.deepcopy(raw)
    assert raw["questions"][7]["id"] == "fp16_max"  # the indexes used above
    mutate(raw)
    path = write_bank(folder, raw, name="00_start_here")
    with pytest.raises(quiz.QuizBankError, match=message) as err:
        quiz.grade("00_start_here", {})
    assert str(path) in str(err.value)


def test_bank_that_is_not_json(bank_dir):
    folder, _ = bank_dir
    (folder / "broken.json").write_text('{"id": "broken",\n  "title": }')
    with pytest.raises(quiz.QuizBankError, match=r"broken.json: not valid JSON \(line 2"):
        quiz.show("broken", mode="text")


def test_edited_bank_is_reloaded(bank_dir):
    folder, raw = bank_dir
    write_bank(folder, raw)
    assert quiz.answer_key("00_start_here")["v100"] == "b"
    raw["questions"][2]["choices"][0]["correct"] = True
    raw["questions"][2]["choices"][1]["correct"] = False
    raw["questions"][2]["choices"][1]["feedback"] = "now wrong for the test"
    write_bank(folder, raw)
    assert quiz.answer_key("00_start_here")["v100"] == "a"


# ------------------------------------------------------------------------------ text fallback
def test_print_quiz_is_deterministic_and_hides_the_answers(capsys, private_progress):
    quiz.print_quiz("00_start_here")
    first = capsys.readouterr().out
    view = QuizView(load_quiz("00_start_here"))
    view.questions[2].set_answer("b")
    view.questions[2].check()  # progress must not change the text
    quiz.print_quiz("00_start_here")
    assert capsys.readouterr().out == first
    nb00 = load_quiz("00_start_here")
    for q in nb00.questions:
        assert f"[{q.id}]" in first
    assert 'Answer with: quiz.grade("00_start_here"' in first
    for q in nb00.questions:  # no explanation (they give the answers away) is printed
        assert q.explanation[:60] not in first.replace("\n", " ")
    assert max(len(line) for line in first.splitlines()) <= 100


def test_show_prints_text_outside_a_kernel(capsys, monkeypatch):
    quiz.show("course_nan_at_step_501")
    out = capsys.readouterr().out
    assert out.startswith("Check your understanding: NaN at step 501")
    monkeypatch.setenv(quiz.MODE_ENV, "bogus")
    with pytest.raises(ValueError, match="COURSE_QUIZ_MODE"):
        quiz.show("course_nan_at_step_501")
    with pytest.raises(ValueError, match="mode must be one of auto, widget, text"):
        quiz.show("course_nan_at_step_501", mode="html")


def test_widget_output_carries_text_and_html_fallbacks():
    box = QuizView(load_quiz("course_nan_at_step_501")).box
    bundle = box._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == box.model_id
    assert bundle["text/plain"].startswith("Check your understanding: NaN at step 501")
    assert "<ol>" in bundle["text/html"] and "<code>max_grad_norm=1.0</code>" in bundle["text/html"]


# ------------------------------------------------------------------------------------- widget
def test_widget_wrong_then_right(private_progress):
    view = QuizView(load_quiz("00_start_here"))
    v100 = next(q for q in view.questions if q.question.id == "v100")
    total = len(view.questions)
    assert "Score: 0 / 12" in view.score.value and v100.hint.value == ""
    v100.set_answer("a")
    assert v100.check() is False
    assert "Not quite" in v100.feedback.value and "no bf16 ones" in v100.feedback.value
    assert "Hint:" in v100.hint.value and v100.answer_button.layout.display is None
    assert f"Score: 0 / {total}" in view.score.value
    v100.set_answer("b")
    assert v100.check() is True
    assert "Correct!" in v100.feedback.value and "compute capability 7.0" in v100.feedback.value
    assert v100.hint.value == "" and f"Score: 1 / {total}" in view.score.value
    assert view.bar.value == 1
    saved = json.loads(private_progress.read_text())
    assert saved["quizzes"]["00_start_here"]["v100"] == {
        "attempts": 2,
        "solved": True,
        "answer": "b",
    }
    # after a restart, the learner sees the progress, and their answer selected
    again = QuizView(load_quiz("00_start_here"))
    assert f"Score: 1 / {total}" in again.score.value
    assert "right before" in again.questions[2].feedback.value
    assert again.questions[2].current_answer() == "b"
    again.start_over()
    assert f"Score: 0 / {total}" in again.score.value
    assert progress.solved("00_start_here") == set()


def test_widget_input_problems_are_shown_not_raised():
    view = QuizView(load_quiz("00_start_here"))
    by_id = {q.question.id: q for q in view.questions}
    assert (
        by_id["v100"].check() is None and "Choose an answer first" in by_id["v100"].feedback.value
    )
    assert (
        by_id["bf16_gpus"].check() is None and "at least one" in by_id["bf16_gpus"].feedback.value
    )
    by_id["fp16_max"].set_answer("lots")
    assert by_id["fp16_max"].check() is None
    assert "&#x27;lots&#x27; is not a number" in by_id["fp16_max"].feedback.value
    by_id["bf16_gpus"].set_answer(["a100", "h100", "rtx3080", "rtx4090"])
    by_id["fp16_max"].set_answer("65504")
    by_id["cpu_only"].set_answer(True)
    assert by_id["bf16_gpus"].check() and by_id["fp16_max"].check() and by_id["cpu_only"].check()
    assert "Score: 3 / 12" in view.score.value
    by_id["t4"].set_answer("a")
    by_id["t4"].check()
    assert "Hint:" in by_id["t4"].hint.value
    by_id["t4"].reveal()  # the answer takes the hint's place; the feedback stays
    assert "Answer:</b> fp16 autocast with a GradScaler" in by_id["t4"].hint.value
    assert "Hint:" not in by_id["t4"].hint.value and "Not quite" in by_id["t4"].feedback.value
    assert "Score: 3 / 12" in view.score.value  # revealing is not solving


def test_one_at_a_time_navigation():
    view = QuizView(load_quiz("course_nan_at_step_501"), one_at_a_time=True)
    assert view.page.children == (view.questions[0].box,) and view.prev_button.disabled
    view.next_button.click()
    view.next_button.click()
    assert view.page.children == (view.questions[2].box,)
    view.go(99)
    assert view.current == 3 and view.next_button.disabled
    all_on_one = QuizView(load_quiz("course_nan_at_step_501"))
    assert len(all_on_one.page.children) == 4


# ----------------------------------------------------------------------------------- progress
def test_grade_records_only_when_asked(private_progress):
    quiz.grade("00_start_here", {"v100": "b"})
    assert not private_progress.exists()
    quiz.grade("00_start_here", {"v100": "b", "t4": "a"}, record=True)
    assert progress.solved("00_start_here") == {"v100"}
    assert progress.load()["00_start_here"]["t4"] == {
        "solved": False,
        "attempts": 1,
        "answer": "a",
    }


def test_reset_one_quiz_or_all():
    quiz.grade("00_start_here", {"v100": "b"}, record=True)
    quiz.grade("course_nan_at_step_501", {"resume": "a"}, record=True)
    quiz.reset("00_start_here")
    assert set(progress.load()) == {"course_nan_at_step_501"}
    quiz.reset()
    assert progress.load() == {}


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"version": 1, "quizzes": {"q": {"a": {"solved": "yes"}}}}',
        b"[]",
        b"\xff\xfe",
    ],
)
def test_corrupt_progress_file_warns_once_and_starts_fresh(private_progress, content):
    private_progress.parent.mkdir(parents=True)
    private_progress.write_bytes(content)
    with pytest.warns(quiz.ProgressWarning, match="not valid|cannot read"):
        view = QuizView(load_quiz("00_start_here"))
    assert "Score: 0 / 12" in view.score.value
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        view.questions[2].set_answer("b")
        view.questions[2].check()
        assert progress.solved("00_start_here") == {"v100"}


def test_unwritable_progress_file_warns_once_and_the_quiz_goes_on(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(progress.PROGRESS_ENV, str(blocker / "progress.json"))
    with pytest.warns(quiz.ProgressWarning, match="cannot save quiz progress"):
        view = QuizView(load_quiz("00_start_here"))  # the learner id cannot be saved
    with warnings.catch_warnings():  # warned once: no second warning
        warnings.simplefilter("error")
        view.questions[2].set_answer("b")
        assert view.questions[2].check() is True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        view.questions[3].set_answer("b")
        assert view.questions[3].check() is True
    assert "Score: 2 / 12" in view.score.value


def test_progress_writes_are_atomic(private_progress, monkeypatch):
    quiz.grade("00_start_here", {"v100": "b"}, record=True)
    before = private_progress.read_text()

    def crash(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.warns(quiz.ProgressWarning, match="disk full"):
        quiz.grade("00_start_here", {"t4": "b"}, record=True)
    assert private_progress.read_text() == before  # the old file is intact
    # the old file is the only data file; the lock file stays (filelock keeps it between runs)
    assert sorted(p.name for p in private_progress.parent.iterdir()) == [
        "progress.json",
        "progress.json.lock",
    ]


def test_default_progress_file_is_under_home(monkeypatch, tmp_path):
    monkeypatch.delenv(progress.PROGRESS_ENV)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert progress.progress_path() == tmp_path / ".mixed_precision_course" / "progress.json"


# ------------------------------------------------------------------- issue 13: lesser grading faults
@pytest.mark.parametrize(
    "answer",
    [10**400, -(10**400), 10**5000, __import__("fractions").Fraction(10**400, 3), "1" * 400],
    ids=["10**400", "-10**400", "10**5000", "Fraction", "400 digits"],
)
def test_a_number_too_large_for_a_float_is_a_clear_error(answer):
    with pytest.raises(quiz.InvalidAnswerError, match="'fp16_max' takes a finite number") as err:
        quiz.grade("00_start_here", {"fp16_max": answer})
    assert len(str(err.value)) < 300  # a 5000-digit int is not printed in full


def test_grade_record_validates_every_answer_before_recording_any(private_progress):
    # v100 and t4 come before fp16_max in the bank: they must not be recorded either
    with pytest.raises(quiz.InvalidAnswerError, match="fp16_max"):
        quiz.grade("00_start_here", {"v100": "b", "t4": "a", "fp16_max": "lots"}, record=True)
    assert not private_progress.exists()
    assert progress.load() == {}


def test_an_unprintable_question_id_is_a_clear_error():
    with pytest.raises(quiz.UnknownQuestionError, match="has no question"):
        quiz.grade("00_start_here", {10**5000: "b"})
