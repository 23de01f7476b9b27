"""The interactive quiz (ipywidgets 8, JupyterLab 4): Check, Show hint, a running score.

``QuizView(quiz)`` builds the widgets; ``course_utils.quiz.show`` displays ``view.box``. The box
carries a text and an HTML rendering of the questions too, which is what a frontend without
widget support (a terminal, an HTML export) shows instead.
"""

from __future__ import annotations

import html
import re
from typing import Any

import ipywidgets as widgets

from course_utils import progress
from course_utils.quiz_bank import (
    InvalidAnswerError,
    Question,
    Quiz,
    check_answer,
    describe_answer,
)
from course_utils.quiz_text import markdown_to_html, render_html, render_text

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


class QuestionView:
    """One question: its input, Check / Show hint / Show answer, feedback and hint areas."""

    def __init__(self, parent: QuizView, question: Question, number: int, solved_before: bool):
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
        self.input = self._make_input()
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
        self.hint = widgets.HTML().add_class("course-quiz-hint")
        if solved_before:
            self.feedback.value = styled("note", "&#10003; You answered this one right before.")
        buttons = widgets.HBox([self.check_button, self.hint_button, self.answer_button])
        self.box = widgets.VBox(
            [self.header, self.input, buttons, self.feedback, self.hint],
            layout=widgets.Layout(margin="0 0 14px 0"),
        )
        self.box.add_class("course-quiz-question").add_class(f"course-quiz-q-{question.id}")

    def _make_input(self) -> widgets.Widget:
        q = self.question
        wide = widgets.Layout(width="auto", max_width="100%")
        if q.type == "single":
            return widgets.RadioButtons(
                options=[(plain(c.text), c.id) for c in q.choices], value=None, layout=wide
            )
        if q.type == "true_false":
            return widgets.RadioButtons(options=[("True", True), ("False", False)], value=None)
        if q.type == "multiple":
            self._boxes = [
                widgets.Checkbox(
                    value=False,
                    description=markdown_to_html(c.text),
                    description_allow_html=True,
                    indent=False,
                    layout=wide,
                )
                for c in q.choices
            ]
            return widgets.VBox(self._boxes)
        self._number = widgets.Text(
            placeholder="a number", layout=widgets.Layout(width="14em"), continuous_update=False
        )
        unit = widgets.HTML(html.escape(q.unit)) if q.unit else widgets.HTML("")
        return widgets.HBox([self._number, unit])

    # -- answers ------------------------------------------------------------------------------
    def current_answer(self) -> Any:
        """The learner's answer in ``grade``'s shape (None when nothing is chosen)."""
        q = self.question
        if q.type in ("single", "true_false"):
            return self.input.value
        if q.type == "multiple":
            return [c.id for c, box in zip(q.choices, self._boxes, strict=True) if box.value]
        return self._number.value

    def set_answer(self, answer: Any) -> None:
        """Fill the input as a learner would (used by tests and demos)."""
        q = self.question
        if q.type in ("single", "true_false"):
            self.input.value = answer
        elif q.type == "multiple":
            chosen = set(answer)
            for choice, box in zip(q.choices, self._boxes, strict=True):
                box.value = choice.id in chosen
        else:
            self._number.value = str(answer)

    def clear(self) -> None:
        q = self.question
        if q.type in ("single", "true_false"):
            self.input.value = None
        elif q.type == "multiple":
            for box in self._boxes:
                box.value = False
        else:
            self._number.value = ""
        self.feedback.value = self.hint.value = ""
        self.answer_button.layout.display = _HIDDEN
        self.attempts = 0
        self.solved = False

    # -- buttons ------------------------------------------------------------------------------
    def check(self, _button: Any = None) -> bool | None:
        """Grade the current answer; show feedback, hint or explanation. None if not gradable."""
        q = self.question
        answer = self.current_answer()
        if answer is None or answer == [] or (isinstance(answer, str) and not answer.strip()):
            self.feedback.value = styled("warn", _EMPTY_MESSAGE[q.type])
            return None
        try:
            verdict = check_answer(q, answer)
        except InvalidAnswerError as exc:
            self.feedback.value = styled("warn", html.escape(_without_question_id(str(exc))))
            return None
        self.attempts += 1
        progress.record(self.parent.quiz.id, q.id, verdict.correct)
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
        q = self.question
        shown = html.escape(describe_answer(q, q.key))
        self.feedback.value = styled(
            "note",
            f"<b>Answer:</b> {shown}<div>{markdown_to_html(q.explanation)}</div>",
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
    """The whole quiz: every question (or one at a time), the running score, Start over."""

    def __init__(self, quiz: Quiz, *, one_at_a_time: bool = False):
        self.quiz = quiz
        self.one_at_a_time = one_at_a_time
        solved = progress.solved(quiz.id)
        self.questions = [
            QuestionView(self, q, n, q.id in solved) for n, q in enumerate(quiz.questions, 1)
        ]
        total = len(self.questions)
        self.score = widgets.HTML().add_class("course-quiz-score")
        self.bar = widgets.IntProgress(
            value=0, min=0, max=total, layout=widgets.Layout(width="12em")
        )
        self.reset_button = widgets.Button(
            description="Start over", tooltip="Forget the saved progress of this quiz"
        )
        self.reset_button.on_click(self.start_over)
        title = widgets.HTML(f"<style>{QUIZ_CSS}</style><h3>{html.escape(quiz.title)}</h3>")
        intro = widgets.HTML(markdown_to_html(quiz.intro)) if quiz.intro else widgets.HTML("")
        self.current = 0
        self.page = widgets.VBox()
        self.prev_button = widgets.Button(description="Previous", icon="arrow-left")
        self.next_button = widgets.Button(description="Next", icon="arrow-right")
        self.prev_button.on_click(lambda _b: self.go(self.current - 1))
        self.next_button.on_click(lambda _b: self.go(self.current + 1))
        nav = widgets.HBox([self.prev_button, self.next_button])
        if not one_at_a_time:
            nav.layout.display = _HIDDEN
        self.bar.layout.margin = "0 12px"
        footer = widgets.HBox(
            [self.score, self.bar, self.reset_button], layout=widgets.Layout(align_items="center")
        )
        self.box = _QuizBox(
            [title, intro, self.page, nav, footer],
            text_fallback=render_text(quiz),
            html_fallback=render_html(quiz),
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
