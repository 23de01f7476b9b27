"""'Check your understanding' quizzes: ``show`` them, ``grade`` answers, get the ``answer_key``.

Used in every notebook: its last section ("Check your understanding") and its predict-first prompts.

    from course_utils import quiz
    quiz.show("00_start_here")            # widgets in JupyterLab; text elsewhere
    quiz.print_quiz("00_start_here")      # always text (deterministic, for nbval-compared cells)
    quiz.grade("00_start_here", {"v100": "b"}).correct
    quiz.predict("01_float_formats", QUESTION_ID)   # before the cell that reveals the answer
    quiz.revisit("01_float_formats", QUESTION_ID)   # after it: the prediction and the answer

``show``, ``predict`` and ``revisit`` give each learner their own choice order (seeded by the
learner id in the progress file; ``quiz.text.choice_order``). Choices keep their ids: ``grade``
and ``answer_key`` work on ids, and ``print_quiz`` keeps the bank's order.

Banks are ``data/quizzes/<quiz_id>.json`` (see ``schema.json`` there). Progress (which questions
were answered right) is kept in ``$COURSE_PROGRESS_FILE`` (default
``~/.mixed_precision_course/progress.json``); ``reset`` forgets it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from course_utils.quiz import progress
from course_utils.quiz.bank import (
    InvalidAnswerError,
    QuizBankError,
    UnknownQuestionError,
    UnknownQuizError,
    check_answer,
    describe_answer,
    list_quizzes,
    load_quiz,
    parse_number,
)
from course_utils.quiz.progress import ProgressWarning
from course_utils.quiz.text import render_text

__all__ = [
    "InvalidAnswerError",
    "ProgressWarning",
    "QuestionResult",
    "QuizBankError",
    "Score",
    "UnknownQuestionError",
    "UnknownQuizError",
    "answer_key",
    "grade",
    "list_quizzes",
    "load_quiz",
    "predict",
    "print_quiz",
    "reset",
    "revisit",
    "show",
]

MODE_ENV = "COURSE_QUIZ_MODE"
MODES = ("auto", "widget", "text")


@dataclass(frozen=True)
class QuestionResult:
    """How one question was answered: right or wrong, and what to tell the learner."""

    question_id: str
    answered: bool
    correct: bool
    your_answer: str | None
    feedback: str
    hint: str | None
    explanation: str | None

    def report(self) -> str:
        if not self.answered:
            return f"- {self.question_id}: not answered"
        if self.correct:
            return f"- {self.question_id}: correct. {self.explanation}"
        feedback = "\n  ".join(self.feedback.splitlines())
        text = f"- {self.question_id}: not quite ({self.your_answer}).\n  {feedback}".rstrip()
        return f"{text}\n  Hint: {self.hint}"


@dataclass(frozen=True)
class Score:
    """The result of ``grade``: ``.correct`` out of ``.total``, and per-question ``.results``."""

    quiz_id: str
    results: tuple[QuestionResult, ...]

    @property
    def correct(self) -> int:
        return sum(r.correct for r in self.results)

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def answered(self) -> int:
        return sum(r.answered for r in self.results)

    @property
    def feedback(self) -> dict[str, str]:
        """``{question_id: feedback}`` for each wrong answer."""
        return {r.question_id: r.feedback for r in self.results if r.answered and not r.correct}

    def __getitem__(self, question_id: str) -> QuestionResult:
        for result in self.results:
            if result.question_id == question_id:
                return result
        raise UnknownQuestionError(f"quiz {self.quiz_id!r} has no question {question_id!r}")

    def report(self) -> str:
        head = f"Score: {self.correct} / {self.total} correct ({self.quiz_id})"
        return "\n".join([head, *(r.report() for r in self.results)])

    def __str__(self) -> str:
        return self.report()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.report())


def grade(quiz_id: str, answers: Mapping[str, Any], *, record: bool = False) -> Score:
    """Grade ``answers`` (``{question_id: answer}``; see ``quiz.bank`` for the shapes).

    Questions left out count as not answered. ``record=True`` also saves the result to the
    progress file, as the widget does: every answer is checked first, then all are saved in one
    write. Bad input raises ``UnknownQuestionError`` (a KeyError) or ``InvalidAnswerError`` (a
    ValueError) with a message saying what to fix, and records nothing.
    """
    quiz = load_quiz(quiz_id)
    if not isinstance(answers, Mapping):
        raise TypeError(
            f"answers must be a dict {{question_id: answer}}, got {type(answers).__name__}"
        )
    for question_id in answers:
        quiz.question(question_id)  # raises UnknownQuestionError, listing the ids
    # every answer is checked before any is recorded: a bad one raises with nothing saved
    verdicts = {q.id: check_answer(q, answers[q.id]) for q in quiz.questions if q.id in answers}
    results = []
    for question in quiz.questions:
        if question.id not in answers:
            results.append(QuestionResult(question.id, False, False, None, "", None, None))
            continue
        verdict = verdicts[question.id]
        results.append(
            QuestionResult(
                question_id=question.id,
                answered=True,
                correct=verdict.correct,
                your_answer=describe_answer(question, answers[question.id]),
                feedback=verdict.feedback,
                hint=None if verdict.correct else question.hint,
                explanation=question.explanation if verdict.correct else None,
            )
        )
    if record and verdicts:
        progress.record_many(
            quiz.id,
            {qid: v.correct for qid, v in verdicts.items()},
            answers={qid: _saved_answer(quiz.question(qid), answers[qid]) for qid in verdicts},
        )
    return Score(quiz.id, tuple(results))


def answer_key(quiz_id: str) -> dict[str, Any]:
    """``{question_id: right answer}`` for instructors, in the shapes ``grade`` accepts."""
    return {q.id: q.key for q in load_quiz(quiz_id).questions}


def print_quiz(quiz_id: str) -> None:
    """Print the questions as text (deterministic: no answers, no progress)."""
    print(render_text(load_quiz(quiz_id)))


def show(quiz_id: str, *, one_at_a_time: bool | None = None, mode: str = "auto") -> None:
    """Show a quiz: interactive widgets in a Jupyter kernel, printed text elsewhere.

    ``mode``: "auto" (widgets when running in a Jupyter kernel, else text; ``$COURSE_QUIZ_MODE``
    overrides it), "widget" or "text". The widget output also carries the text and an HTML
    rendering, which frontends without widget support (an HTML export) show instead.
    ``one_at_a_time``: None (the default) shows banks of more than
    ``quiz.widget.ONE_AT_A_TIME_OVER`` questions one at a time. Choices come in the learner's
    order, in text as in the widget.
    """
    mode = _resolve_mode(mode)
    quiz = load_quiz(quiz_id)
    if mode == "text":
        print(render_text(quiz, learner_id=progress.learner_id()))
        return
    from IPython.display import display

    from course_utils.quiz.widget import QuizView

    display(QuizView(quiz, one_at_a_time=one_at_a_time).box)


def predict(quiz_id: str, question_id: str, *, answer: Any = None, mode: str = "auto") -> None:
    """Ask one question *before* the cell that reveals its answer; record the prediction.

    In a kernel: the question with "Save my prediction" (no verdict yet). Elsewhere: the question
    as text, and how to record a prediction, ``predict(quiz_id, question_id, answer=...)``
    (``answer`` in ``grade``'s shapes; recorded in any mode). A prediction counts as one attempt
    in the progress file, like a quiz answer, and is kept as first made. ``revisit`` shows it
    next to the right answer after the revealing cell.
    """
    from course_utils.quiz import widget as quiz_widget

    mode = _resolve_mode(mode)
    quiz = load_quiz(quiz_id)
    question = quiz.question(question_id)
    if answer is not None:
        verdict = check_answer(question, answer)  # InvalidAnswerError for a bad shape
        earlier = prediction_of(quiz.id, question.id)
        if earlier is not None and not quiz_widget.fits(question, earlier):
            earlier = None  # made for an older bank: replaced
        kept = record_prediction(
            quiz.id, question.id, _saved_answer(question, answer), verdict.correct
        )
        said = "Prediction saved" if earlier is None else "You predicted before; kept as made"
        print(f"{said}: {describe_answer(question, kept)}. Run the next cells, then revisit it.")
        return
    learner = progress.learner_id()
    prediction = prediction_of(quiz.id, question.id)
    if prediction is not None and not quiz_widget.fits(question, prediction):
        prediction = None  # made for an older bank: asked again
    if mode == "text":
        lines = quiz_widget.predict_lines(quiz, question, learner)
        if prediction is not None:
            lines[-1] = f"Your prediction, saved earlier: {describe_answer(question, prediction)}."
        print("\n".join(lines))
        return
    from IPython.display import display

    view = quiz_widget.PredictView(quiz, question, learner_id=learner, prediction=prediction)
    display(view.box)


def revisit(quiz_id: str, question_id: str, *, mode: str = "auto") -> None:
    """After the revealing cell: the learner's prediction (from ``predict``), the right answer,
    the feedback on that prediction and the explanation. Records nothing."""
    mode = _resolve_mode(mode)
    quiz = load_quiz(quiz_id)
    question = quiz.question(question_id)
    prediction = prediction_of(quiz.id, question.id)
    from course_utils.quiz import widget as quiz_widget

    if mode == "text":
        print("\n".join(quiz_widget.revisit_lines(question, prediction)))
        return
    from IPython.display import display

    display(quiz_widget.RevisitView(quiz, question, prediction).box)


_session_predictions: dict[tuple[str, str], Any] = {}  # when the progress file cannot be saved


def record_prediction(quiz_id: str, question_id: str, answer: Any, correct: bool) -> Any:
    """Keep a prediction (in the progress file; for this session only when it cannot be
    written). Returns the prediction kept: an earlier one if there was one that still fits the
    question (one saved for an older version of the bank is replaced)."""
    from course_utils.quiz.widget import fits

    question = load_quiz(quiz_id).question(question_id)
    earlier = prediction_of(quiz_id, question_id)
    stale = earlier is not None and not fits(question, earlier)
    kept = progress.record_prediction(quiz_id, question_id, answer, correct, replace=stale)
    if kept is None:
        if stale:
            _session_predictions.pop((quiz_id, question_id), None)
        kept = _session_predictions.setdefault((quiz_id, question_id), answer)
    return kept


def prediction_of(quiz_id: str, question_id: str) -> Any:
    """The learner's recorded prediction for one question, or None."""
    saved = (progress.entry(quiz_id, question_id) or {}).get("prediction")
    return saved if saved is not None else _session_predictions.get((quiz_id, question_id))


def _saved_answer(question: Any, answer: Any) -> Any:
    """An answer as the progress file keeps it (a numeric answer as its float)."""
    if question.type == "numeric":
        return parse_number(question, answer)
    if question.type == "true_false" and isinstance(answer, str):  # "true", "yes", "f"...
        return answer.strip().lower() in ("true", "t", "yes")
    return answer


def _resolve_mode(mode: str) -> str:
    """ "text" or "widget": ``mode``, ``$COURSE_QUIZ_MODE``, then whether this is a kernel."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if mode == "auto":
        mode = os.environ.get(MODE_ENV, "").strip().lower() or "auto"
        if mode not in MODES:
            raise ValueError(f"${MODE_ENV} must be one of {', '.join(MODES)}; got {mode!r}")
    if mode == "auto":
        from course_utils.env import in_notebook_kernel  # lazy: env imports torch; banks need not

        mode = "widget" if in_notebook_kernel() else "text"
    return mode


def reset(quiz_id: str | None = None) -> None:
    """Forget saved progress (answers and predictions too): of one quiz, or of all quizzes when
    ``quiz_id`` is None. The learner id stays, and with it each learner's choice order."""
    if quiz_id is not None and quiz_id not in progress.load():
        load_quiz(quiz_id)  # an unknown id raises, listing the quizzes there are
    progress.reset(quiz_id)
