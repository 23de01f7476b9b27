"""The interactive quiz (ipywidgets 8, JupyterLab 4): Check, Show hint, a running score.

``QuizView(quiz)`` builds the widgets; ``course_utils.quiz.core.show`` displays ``view.box``. The box
carries a text and an HTML rendering of the questions too, which is what a frontend without
widget support (a terminal, an HTML export) shows instead.

Built to fit a 1280x720 projector: banks of more than ``ONE_AT_A_TIME_OVER``
questions show one question at a time, and the score, the progress bar and Previous/Next sit
above the question, always in view. Choices come in the learner's order
(``quiz.text.choice_order``); after a rerun each answered question shows the learner's last
answer selected. "Show answer" takes the hint's place instead of stacking under it.

``PredictView`` and ``RevisitView`` are the predict-first prompts of ``quiz.predict`` and
``quiz.revisit`` (taught in every notebook: a prediction before the cell that reveals the answer,
revisited after it).
"""

from __future__ import annotations

import html
import re
from typing import Any

import ipywidgets as widgets

from course_utils.quiz import progress
from course_utils.quiz.bank import (
    Choice,
    InvalidAnswerError,
    Question,
    Quiz,
    Verdict,
    check_answer,
    describe_answer,
    parse_number,
)
from course_utils.quiz.text import (
    choice_order,
    markdown_to_html,
    question_html,
    question_lines,
    render_html,
    render_text,
)

ONE_AT_A_TIME_OVER = 5  # banks with more questions than this show one question at a time

_BOX_STYLE = (
    "padding: 6px 10px; margin: 4px 0; border-radius: 4px; color: #202124; "
    "background: {bg}; border-left: 4px solid {edge};"
)
STYLES = {
    "right": {"bg": "#e6f4ea", "edge": "#1e8e3e"},
    "wrong": {"bg": "#fce8e6", "edge": "#d93025"},
    "warn": {"bg": "#fef7e0", "edge": "#f9ab00"},
    "hint": {"bg": "#e8f0fe", "edge": "#1a73e8"},
    "note": {"bg": "#f1f3f4", "edge": "#9aa0a6"},
}
_HIDDEN = "none"
# ipywidgets gives radio and checkbox labels one fixed-height line; long choices would overlap.
QUIZ_CSS = """
.course-quiz .widget-radio-box label, .course-quiz .jupyter-widget-radio-box label {
  height: auto; line-height: 1.35; padding: 3px 0; white-space: normal;
  display: flex; flex-direction: row-reverse; justify-content: flex-end; align-items: flex-start;
}
.course-quiz .widget-radio-box input, .course-quiz .jupyter-widget-radio-box input {
  height: auto; margin-top: 2px; float: none; flex: none;
}
.course-quiz .widget-checkbox, .course-quiz .jupyter-widget-checkbox {
  height: auto; align-items: flex-start;
}
.course-quiz .widget-checkbox label, .course-quiz .jupyter-widget-checkbox label {
  white-space: normal; line-height: 1.35;
}
.course-quiz .widget-html-content, .course-quiz .jupyter-widget-html-content {
  white-space: normal; line-height: 1.4;
}
"""


def styled(kind: str, inner_html: str) -> str:
    """``inner_html`` in a coloured box (``kind`` in ``STYLES``)."""
    return f'<div style="{_BOX_STYLE.format(**STYLES[kind])}">{inner_html}</div>'


def plain(text: str) -> str:
    """Markdown reduced to plain text, for labels that cannot hold HTML (radio buttons)."""
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)
    return text.replace("`", "")


class _QuizBox(widgets.VBox):
    """A VBox whose display bundle also holds a text and an HTML rendering of the quiz."""

    def __init__(self, *args: Any, text_fallback: str, html_fallback: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._text_fallback = text_fallback
        self._html_fallback = html_fallback

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        data = super()._repr_mimebundle_(**kwargs) or {}
        data["text/plain"] = self._text_fallback
        data["text/html"] = self._html_fallback
        return data


class AnswerInput:
    """The input of one question (radio buttons, checkboxes or a number box), choices in
    ``choices``' order; ``value()`` is the answer in ``grade``'s shape (None: nothing given)."""

    def __init__(self, question: Question, choices: tuple[Choice, ...]):
        self.question = question
        self.choices = choices
        wide = widgets.Layout(width="auto", max_width="100%")
        if question.type == "single":
            self.widget: widgets.Widget = widgets.RadioButtons(
                options=[(plain(c.text), c.id) for c in choices], value=None, layout=wide
            )
        elif question.type == "true_false":
            self.widget = widgets.RadioButtons(
                options=[("True", True), ("False", False)], value=None
            )
        elif question.type == "multiple":
            self.boxes = [
                widgets.Checkbox(
                    value=False,
                    description=markdown_to_html(c.text),
                    description_allow_html=True,
                    indent=False,
                    layout=wide,
                )
                for c in choices
            ]
            self.widget = widgets.VBox(self.boxes)
        else:
            self.number = widgets.Text(
                placeholder="a number", layout=widgets.Layout(width="14em"), continuous_update=False
            )
            unit = widgets.HTML(html.escape(question.unit)) if question.unit else widgets.HTML("")
            self.widget = widgets.HBox([self.number, unit])

    def value(self) -> Any:
        q = self.question
        if q.type in ("single", "true_false"):
            return self.widget.value
        if q.type == "multiple":
            return [c.id for c, box in zip(self.choices, self.boxes, strict=True) if box.value]
        return self.number.value

    def set(self, answer: Any) -> None:
        """Fill the input as a learner would; an answer that does not fit is ignored (a saved
        answer may predate a change of the bank)."""
        q = self.question
        if q.type == "single":
            if isinstance(answer, str) and answer in {c.id for c in self.choices}:
                self.widget.value = answer
        elif q.type == "true_false":
            if isinstance(answer, bool):
                self.widget.value = answer
        elif q.type == "multiple":
            if isinstance(answer, str):
                answer = [answer]
            chosen = set(answer) if isinstance(answer, list | tuple | set | frozenset) else set()
            for choice, box in zip(self.choices, self.boxes, strict=True):
                box.value = choice.id in chosen
        elif isinstance(answer, float) and not isinstance(answer, bool):
            # every digit kept: repr is the shortest text that reads back as the same float
            whole = answer.is_integer() and abs(answer) < 1e16
            self.number.value = str(int(answer)) if whole else repr(answer)
        elif isinstance(answer, int | str) and not isinstance(answer, bool):
            self.number.value = str(answer)

    def clear(self) -> None:
        q = self.question
        if q.type in ("single", "true_false"):
            self.widget.value = None
        elif q.type == "multiple":
            for box in self.boxes:
                box.value = False
        else:
            self.number.value = ""

    def disable(self, disabled: bool = True) -> None:
        for widget in getattr(self, "boxes", None) or [getattr(self, "number", self.widget)]:
            widget.disabled = disabled


def saved_answer(question: Question, answer: Any) -> Any:
    """``answer`` as the progress file keeps it (a numeric answer as its float)."""
    if question.type == "numeric":
        return parse_number(question, answer)
    return answer


def grade_input(question: Question, answer: Any) -> Verdict | str:
    """The verdict on ``answer``, or a message (HTML-safe text) saying why it cannot be graded."""
    if answer is None or answer == [] or (isinstance(answer, str) and not answer.strip()):
        return _EMPTY_MESSAGE[question.type]
    try:
        return check_answer(question, answer)
    except InvalidAnswerError as exc:
        return html.escape(_without_question_id(str(exc)))


class QuestionView:
    """One question: its input, Check / Show hint / Show answer, a feedback area and one area for
    the hint or the answer (whichever was asked for last)."""

    def __init__(
        self,
        parent: QuizView,
        question: Question,
        number: int,
        solved_before: bool,
        *,
        choices: tuple[Choice, ...] | None = None,
        last_answer: Any = None,
    ):
        self.parent = parent
        self.question = question
        self.attempts = 0
        self.solved = solved_before
        total = len(parent.quiz.questions)
        self.header = widgets.HTML(
            f"<b>Question {number} of {total}</b> "
            f'<span style="color: #5f6368">({_KIND[question.type]})</span>'
            f"<div>{markdown_to_html(question.prompt)}</div>"
        )
        self.answer_input = AnswerInput(question, question.choices if choices is None else choices)
        self.input = self.answer_input.widget
        self.check_button = widgets.Button(
            description="Check", button_style="primary", tooltip="Check your answer"
        )
        self.hint_button = widgets.Button(
            description="Show hint", tooltip="A nudge, not the answer"
        )
        self.answer_button = widgets.Button(
            description="Show answer", tooltip="Reveal the answer and the explanation"
        )
        self.answer_button.layout.display = _HIDDEN
        self.check_button.on_click(self.check)
        self.hint_button.on_click(self.show_hint)
        self.answer_button.on_click(self.reveal)
        self.feedback = widgets.HTML().add_class("course-quiz-feedback")
        self.hint = widgets.HTML().add_class("course-quiz-hint")  # the hint, or the answer
        self._restore(last_answer)
        buttons = widgets.HBox([self.check_button, self.hint_button, self.answer_button])
        self.box = widgets.VBox(
            [self.header, self.input, buttons, self.feedback, self.hint],
            layout=widgets.Layout(margin="0 0 14px 0"),
        )
        self.box.add_class("course-quiz-question").add_class(f"course-quiz-q-{question.id}")

    def _restore(self, last_answer: Any) -> None:
        """After a rerun: the last answer selected again, and what it was worth."""
        if last_answer is not None:
            self.answer_input.set(last_answer)
        restored = self.current_answer() if last_answer is not None else None
        verdict = grade_input(self.question, restored) if restored not in (None, [], "") else None
        if isinstance(verdict, Verdict) and verdict.correct:
            self.feedback.value = styled(
                "note", "&#10003; You answered this one right before (your answer is selected)."
            )
        elif isinstance(verdict, Verdict):
            earlier = " You answered it right earlier." if self.solved else ""
            self.feedback.value = styled(
                "note", f"Your last answer (selected) was not right.{earlier}"
            )
        elif self.solved:
            self.feedback.value = styled("note", "&#10003; You answered this one right before.")

    # -- answers ------------------------------------------------------------------------------
    def current_answer(self) -> Any:
        """The learner's answer in ``grade``'s shape (None when nothing is chosen)."""
        return self.answer_input.value()

    def set_answer(self, answer: Any) -> None:
        """Fill the input as a learner would (used by tests and demos)."""
        self.answer_input.set(answer)

    def clear(self) -> None:
        self.answer_input.clear()
        self.feedback.value = self.hint.value = ""
        self.answer_button.layout.display = _HIDDEN
        self.attempts = 0
        self.solved = False

    # -- buttons ------------------------------------------------------------------------------
    def check(self, _button: Any = None) -> bool | None:
        """Grade the current answer; show feedback, hint or explanation. None if not gradable."""
        q = self.question
        answer = self.current_answer()
        verdict = grade_input(q, answer)
        if not isinstance(verdict, Verdict):
            self.feedback.value = styled("warn", verdict)
            return None
        self.attempts += 1
        progress.record(self.parent.quiz.id, q.id, verdict.correct, answer=saved_answer(q, answer))
        if verdict.correct:
            self.solved = True
            extra = f"<div>{markdown_to_html(verdict.feedback)}</div>" if verdict.feedback else ""
            self.feedback.value = styled(
                "right",
                f"<b>&#10003; Correct!</b>{extra}<div>{markdown_to_html(q.explanation)}</div>",
            )
            self.hint.value = ""
            self.answer_button.layout.display = _HIDDEN
        else:
            lines = "".join(
                f"<div>{markdown_to_html(line)}</div>" for line in verdict.feedback.splitlines()
            )
            self.feedback.value = styled("wrong", f"<b>&#10007; Not quite.</b>{lines}")
            self.show_hint()
            self.answer_button.layout.display = None
        self.parent.refresh_score()
        return verdict.correct

    def show_hint(self, _button: Any = None) -> None:
        self.hint.value = styled("hint", f"<b>Hint:</b> {markdown_to_html(self.question.hint)}")

    def reveal(self, _button: Any = None) -> None:
        """Show the answer and the explanation in the hint's place (revealing is not solving)."""
        self.hint.value = answer_html(self.question)


def answer_html(question: Question) -> str:
    shown = markdown_to_html(describe_answer(question, question.key))
    return styled(
        "note", f"<b>Answer:</b> {shown}<div>{markdown_to_html(question.explanation)}</div>"
    )


_KIND = {
    "single": "choose one",
    "multiple": "select all that apply",
    "numeric": "type a number",
    "true_false": "true or false",
}
_EMPTY_MESSAGE = {
    "single": "Choose an answer first.",
    "true_false": "Choose True or False first.",
    "multiple": "Select at least one choice (all that apply).",
    "numeric": "Type a number first.",
}


def _without_question_id(message: str) -> str:
    return re.sub(r"^question '[^']*'(: | )", "", message)


class QuizView:
    """The whole quiz: the score, progress bar and navigation on top, then the questions (one at
    a time for banks over ``ONE_AT_A_TIME_OVER`` questions), and Start over."""

    def __init__(
        self, quiz: Quiz, *, one_at_a_time: bool | None = None, learner_id: str | None = None
    ):
        self.quiz = quiz
        if one_at_a_time is None:
            one_at_a_time = len(quiz.questions) > ONE_AT_A_TIME_OVER
        self.one_at_a_time = one_at_a_time
        self.learner_id = progress.learner_id() if learner_id is None else learner_id
        saved = progress.load().get(quiz.id, {})
        self.questions = [
            QuestionView(
                self,
                q,
                n,
                bool(saved.get(q.id, {}).get("solved")),
                choices=choice_order(quiz.id, q, self.learner_id),
                last_answer=saved.get(q.id, {}).get("answer"),
            )
            for n, q in enumerate(quiz.questions, 1)
        ]
        total = len(self.questions)
        self.score = widgets.HTML().add_class("course-quiz-score")
        self.bar = widgets.IntProgress(
            value=0, min=0, max=total, layout=widgets.Layout(width="10em")
        )
        self.reset_button = widgets.Button(
            description="Start over", tooltip="Forget the saved progress of this quiz"
        )
        self.reset_button.on_click(self.start_over)
        title = widgets.HTML(f"<style>{QUIZ_CSS}</style><h3>{html.escape(quiz.title)}</h3>")
        intro = widgets.HTML(markdown_to_html(quiz.intro)) if quiz.intro else widgets.HTML("")
        self.current = 0
        self.page = widgets.VBox()
        self.prev_button = widgets.Button(
            description="Previous", icon="arrow-left", layout=widgets.Layout(width="8em")
        )
        self.next_button = widgets.Button(
            description="Next", icon="arrow-right", layout=widgets.Layout(width="8em")
        )
        self.prev_button.on_click(lambda _b: self.go(self.current - 1))
        self.next_button.on_click(lambda _b: self.go(self.current + 1))
        nav = widgets.HBox([self.prev_button, self.next_button])
        nav.layout.align_items = "center"
        if not one_at_a_time:
            nav.layout.display = _HIDDEN
        self.bar.layout.margin = "0 12px"
        status = widgets.HBox([self.score, self.bar], layout=widgets.Layout(align_items="center"))
        top = widgets.HBox(
            [status, nav],
            layout=widgets.Layout(
                justify_content="space-between",
                align_items="center",
                flex_flow="row wrap",
                border_bottom="1px solid #dadce0",
                margin="0 0 8px 0",
            ),
        )
        top.add_class("course-quiz-top")
        self.box = _QuizBox(
            [title, intro, top, self.page, self.reset_button],
            text_fallback=render_text(quiz, learner_id=self.learner_id),
            html_fallback=render_html(quiz, learner_id=self.learner_id),
        )
        self.box.add_class("course-quiz")
        self.go(0)
        self.refresh_score()

    @property
    def correct(self) -> int:
        return sum(q.solved for q in self.questions)

    def refresh_score(self) -> None:
        total = len(self.questions)
        self.score.value = f"<b>Score: {self.correct} / {total} correct</b>"
        self.bar.value = self.correct

    def go(self, index: int) -> None:
        """Show question ``index`` (one at a time) or all questions."""
        if not self.one_at_a_time:
            self.page.children = [q.box for q in self.questions]
            return
        self.current = max(0, min(index, len(self.questions) - 1))
        self.page.children = [self.questions[self.current].box]
        self.prev_button.disabled = self.current == 0
        self.next_button.disabled = self.current == len(self.questions) - 1

    def start_over(self, _button: Any = None) -> None:
        progress.reset(self.quiz.id)
        for question in self.questions:
            question.clear()
        self.go(0)
        self.refresh_score()


class PredictView:
    """A predict-first prompt: one question, "Save my prediction", no verdict until
    ``RevisitView``. A prediction is kept as first made (the input is then locked)."""

    def __init__(self, quiz: Quiz, question: Question, *, learner_id: str, prediction: Any = None):
        self.quiz = quiz
        self.question = question
        self.prediction = prediction
        header = widgets.HTML(
            f"<style>{QUIZ_CSS}</style><b>Predict before you run</b> "
            f'<span style="color: #5f6368">({_KIND[question.type]}; you will see the answer '
            "after the next cells run)</span>"
            f"<div>{markdown_to_html(question.prompt)}</div>"
        )
        self.answer_input = AnswerInput(question, choice_order(quiz.id, question, learner_id))
        self.save_button = widgets.Button(
            description="Save my prediction",
            button_style="primary",
            tooltip="Kept as made; the revisit cell after the next cells compares it",
            layout=widgets.Layout(width="auto"),
        )
        self.save_button.on_click(self.save)
        self.status = widgets.HTML().add_class("course-quiz-feedback")
        self.box = _QuizBox(
            [header, self.answer_input.widget, self.save_button, self.status],
            text_fallback="\n".join(predict_lines(quiz, question, learner_id)),
            html_fallback=question_html(question, choice_order(quiz.id, question, learner_id)),
        )
        self.box.add_class("course-quiz").add_class("course-quiz-predict")
        self.box.add_class(f"course-quiz-q-{question.id}")
        if prediction is not None and not fits(question, prediction):
            self.prediction = None
            self.status.value = styled("warn", f"{STALE_PREDICTION} Make a new prediction.")
        elif prediction is not None:
            self.answer_input.set(prediction)
            self._lock(f"Your prediction, saved earlier: {self._describe(prediction)}.")

    def _describe(self, answer: Any) -> str:
        return markdown_to_html(describe_answer(self.question, answer))

    def _lock(self, message: str) -> None:
        self.answer_input.disable()
        self.save_button.layout.display = _HIDDEN
        self.status.value = styled(
            "note",
            f"{message} Now run the next cells; the revisit cell after them shows whether it held.",
        )

    def save(self, _button: Any = None) -> Any:
        """Record the prediction (one attempt, like a quiz answer); None when not gradable."""
        answer = self.answer_input.value()
        verdict = grade_input(self.question, answer)
        if not isinstance(verdict, Verdict):
            self.status.value = styled("warn", verdict)
            return None
        from course_utils.quiz import core as quiz_module

        self.prediction = quiz_module.record_prediction(
            self.quiz.id, self.question.id, saved_answer(self.question, answer), verdict.correct
        )
        self.answer_input.set(self.prediction)
        self._lock(f"Prediction saved: {self._describe(self.prediction)}.")
        return self.prediction


class RevisitView:
    """After the revealing cell: the learner's prediction next to the right answer, the feedback
    for that prediction and the explanation."""

    def __init__(self, quiz: Quiz, question: Question, prediction: Any):
        self.quiz = quiz
        self.question = question
        self.content = widgets.HTML(revisit_html(question, prediction)).add_class(
            "course-quiz-feedback"
        )
        self.box = _QuizBox(
            [widgets.HTML(f"<style>{QUIZ_CSS}</style>"), self.content],
            text_fallback="\n".join(revisit_lines(question, prediction)),
            html_fallback=revisit_html(question, prediction),
        )
        self.box.add_class("course-quiz").add_class("course-quiz-revisit")
        self.box.add_class(f"course-quiz-q-{question.id}")


def predict_lines(quiz: Quiz, question: Question, learner_id: str | None) -> list[str]:
    """The predict-first prompt as text, with how to record a prediction outside a widget."""
    example = {  # placeholders, never a real id: an example must not hint at the answer
        "single": "<a choice id, in quotes>",
        "multiple": "<a list of choice ids>",
        "numeric": "<a number>",
        "true_false": "<True or False>",
    }
    return [
        "Predict before you run (you will see the answer after the next cells run):",
        *question_lines(None, question, choice_order(quiz.id, question, learner_id)),
        f'Record your prediction: quiz.predict("{quiz.id}", "{question.id}", '
        f"answer={example[question.type]})",
    ]


def fits(question: Question, answer: Any) -> bool:
    """Whether a saved answer still has a shape ``question`` can grade (the bank may change)."""
    return _verdict_on(question, answer) is not None


def _verdict_on(question: Question, prediction: Any) -> Verdict | None:
    if prediction is None:
        return None
    try:
        return check_answer(question, prediction)
    except InvalidAnswerError:  # the bank changed since: the old prediction fits no more
        return None


NO_PREDICTION = "You recorded no prediction for this question."
STALE_PREDICTION = (
    "Your saved prediction does not fit this question any more (the quiz bank changed since)."
)


def revisit_lines(question: Question, prediction: Any) -> list[str]:
    verdict = _verdict_on(question, prediction)
    lines = [f"Your prediction, revisited: [{question.id}] {plain(question.prompt)}"]
    if verdict is None:
        lines.append(NO_PREDICTION if prediction is None else STALE_PREDICTION)
    else:
        mark = "right" if verdict.correct else "not right"
        lines.append(f"You predicted: {describe_answer(question, prediction)} ({mark}).")
        if verdict.feedback and not verdict.correct:
            lines.append(plain(verdict.feedback))
    lines += [
        f"Answer: {describe_answer(question, question.key)}",
        plain(question.explanation),
    ]
    return lines


def revisit_html(question: Question, prediction: Any) -> str:
    verdict = _verdict_on(question, prediction)
    parts = [f"<b>Your prediction, revisited</b><div>{markdown_to_html(question.prompt)}</div>"]
    if verdict is None:
        why = f"{NO_PREDICTION[:-1]} (the predict cell above records one)."
        parts.append(styled("warn", why if prediction is None else STALE_PREDICTION))
    else:
        shown = markdown_to_html(describe_answer(question, prediction))
        if verdict.correct:
            parts.append(styled("right", f"<b>&#10003; You predicted:</b> {shown}"))
        else:
            why = "".join(
                f"<div>{markdown_to_html(line)}</div>" for line in verdict.feedback.splitlines()
            )
            parts.append(styled("wrong", f"<b>&#10007; You predicted:</b> {shown}{why}"))
    parts.append(answer_html(question))
    return "".join(parts)
