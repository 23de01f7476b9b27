"""Quizzes as plain text and static HTML, for where widgets cannot render; each learner's
choice order.

Both renderings give no answers away. Without a ``learner_id`` they keep the bank's order and
are deterministic (no progress, no answers), so nbval can compare them (``quiz.print_quiz``).
With one, choices come in that learner's order (``choice_order``), the order the widget shows.

``choice_order`` is the per-learner shuffle: a learner who is good at tests finds no pattern in
where the right choice sits. The order is seeded by a stable hash (SHA-256, not Python's
``hash()``, which changes per process) of (learner id, quiz id, question id), so one learner
sees the same order at every rerun, in the widget and in text. Choices keep their ids, and
grading works on ids, never on positions.

Used by every notebook's quiz where widgets cannot render, by the answer key and by the course site.
"""

from __future__ import annotations

import hashlib
import html
import random
import textwrap

from course_utils.quiz.bank import Choice, Question, Quiz

WIDTH = 100
TYPE_LABELS = {
    "single": "choose one",
    "multiple": "select all that apply",
    "numeric": "a number",
    "true_false": "true or false",
}


SHUFFLED_TYPES = ("single", "multiple")


def choice_seed(learner_id: str, quiz_id: str, question_id: str) -> int:
    """A 64-bit seed, the same in every process and Python version, for one learner's question."""
    for name, value in (
        ("learner_id", learner_id),
        ("quiz_id", quiz_id),
        ("question_id", question_id),
    ):
        if not isinstance(value, str) or not value:
            raise TypeError(f"{name} must be a non-empty string, got {type(value).__name__}")
    text = "\x1f".join((learner_id, quiz_id, question_id))
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def choice_order(quiz_id: str, question: Question, learner_id: str | None) -> tuple[Choice, ...]:
    """``question``'s choices in the order ``learner_id`` sees them (bank order when None, and for
    numeric and true/false questions)."""
    if learner_id is None or question.type not in SHUFFLED_TYPES:
        return question.choices
    order = list(question.choices)
    random.Random(choice_seed(learner_id, quiz_id, question.id)).shuffle(order)
    return tuple(order)


def render_text(quiz: Quiz, *, learner_id: str | None = None) -> str:
    """The questions and their choices, numbered, with how to answer them with ``grade``.

    Choices keep the bank's order unless ``learner_id`` is given (then: that learner's order)."""
    title = f"{quiz.title} ({quiz.id})"
    lines = [title, "=" * min(len(title), WIDTH)]
    if quiz.intro:
        lines += [*_wrap(quiz.intro, ""), ""]
    for number, question in enumerate(quiz.questions, start=1):
        lines += question_lines(number, question, choice_order(quiz.id, question, learner_id))
    lines += [
        "",
        f'Answer with: quiz.grade("{quiz.id}", {{question id: answer, ...}}), where an answer is',
        '  a choice id ("b") to choose one, a list of ids (["a", "c"]) to select all that apply,',
        "  a number for a numeric question, True or False for a true/false question.",
    ]
    return "\n".join(lines)


def question_lines(
    number: int | None, question: Question, choices: tuple[Choice, ...] | None = None
) -> list[str]:
    """One question as text lines: ``N. [id] prompt (kind)``, then ``id) text`` per choice, in the
    order ``choices`` gives (the bank's when None)."""
    kind = TYPE_LABELS[question.type]
    if question.type == "numeric" and question.unit:
        kind += f", in {question.unit}"
    head = f"[{question.id}] {question.prompt} ({kind})"
    if number is not None:
        head = f"{number}. {head}"
    lines = _wrap(head, "   ", first_indent="")
    for choice in question.choices if choices is None else choices:
        lines += _wrap(f"{choice.id}) {choice.text}", "      ", first_indent="   ")
    return lines


def _wrap(text: str, indent: str, first_indent: str | None = None) -> list[str]:
    out: list[str] = []
    for k, paragraph in enumerate(text.split("\n")):
        first = first_indent if (first_indent is not None and k == 0) else indent
        out += textwrap.wrap(
            paragraph,
            WIDTH,
            initial_indent=first,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        ) or [""]
    return out


def markdown_to_html(text: str) -> str:
    """Inline Markdown (code, emphasis, links) as HTML; links open in a new tab."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False})
    rendered = md.render(text).strip()
    if rendered.startswith("<p>") and rendered.endswith("</p>") and rendered.count("<p>") == 1:
        rendered = rendered[3:-4]
    return rendered.replace("<a href=", '<a target="_blank" rel="noopener" href=')


def render_html(quiz: Quiz, *, learner_id: str | None = None) -> str:
    """A static, non-interactive HTML version (what an HTML export shows instead of widgets);
    choices in ``learner_id``'s order when given."""
    parts = [
        '<div class="course-quiz-static">',
        f"<h4>{html.escape(quiz.title)}</h4>",
        "<p><em>Interactive quiz: open this notebook in JupyterLab and run the cell to answer "
        f'it, or use <code>quiz.grade("{html.escape(quiz.id)}", ...)</code>.</em></p>',
    ]
    if quiz.intro:
        parts.append(f"<p>{markdown_to_html(quiz.intro)}</p>")
    parts.append("<ol>")
    for question in quiz.questions:
        choices = choice_order(quiz.id, question, learner_id)
        parts.append(f"<li>{question_html(question, choices)}</li>")
    parts += ["</ol>", "</div>"]
    return "\n".join(parts)


def question_html(question: Question, choices: tuple[Choice, ...] | None = None) -> str:
    """One question as static HTML: the prompt, its kind, ``id) text`` per choice (in the order
    ``choices`` gives; the bank's when None)."""
    kind = TYPE_LABELS[question.type]
    parts = [f"<p>{markdown_to_html(question.prompt)} <em>({kind})</em></p>"]
    if question.choices:
        parts.append('<ul style="list-style: none">')
        parts += [
            f"<li>{html.escape(c.id)}) {markdown_to_html(c.text)}</li>"
            for c in (question.choices if choices is None else choices)
        ]
        parts.append("</ul>")
    return "\n".join(parts)
