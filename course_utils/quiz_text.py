"""Quizzes as plain text and static HTML, for where widgets cannot render.

Both renderings are deterministic (no progress, no answers), so nbval can compare them, and
neither gives the answers away.
"""

from __future__ import annotations

import html
import textwrap

from course_utils.quiz_bank import Question, Quiz

WIDTH = 100
TYPE_LABELS = {
    "single": "choose one",
    "multiple": "select all that apply",
    "numeric": "a number",
    "true_false": "true or false",
}


def render_text(quiz: Quiz) -> str:
    """The questions and their choices, numbered, with how to answer them with ``grade``."""
    title = f"{quiz.title} ({quiz.id})"
    lines = [title, "=" * min(len(title), WIDTH)]
    if quiz.intro:
        lines += [*_wrap(quiz.intro, ""), ""]
    for number, question in enumerate(quiz.questions, start=1):
        lines += _question_lines(number, question)
    lines += [
        "",
        f'Answer with: quiz.grade("{quiz.id}", {{question id: answer, ...}}), where an answer is',
        '  a choice id ("b") to choose one, a list of ids (["a", "c"]) to select all that apply,',
        "  a number for a numeric question, True or False for a true/false question.",
    ]
    return "\n".join(lines)


def _question_lines(number: int, question: Question) -> list[str]:
    kind = TYPE_LABELS[question.type]
    if question.type == "numeric" and question.unit:
        kind += f", in {question.unit}"
    head = f"{number}. [{question.id}] {question.prompt} ({kind})"
    lines = _wrap(head, "   ", first_indent="")
    for choice in question.choices:
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


def render_html(quiz: Quiz) -> str:
    """A static, non-interactive HTML version (what an HTML export shows instead of widgets)."""
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
        kind = TYPE_LABELS[question.type]
        parts.append(f"<li><p>{markdown_to_html(question.prompt)} <em>({kind})</em></p>")
        if question.choices:
            parts.append('<ul style="list-style: none">')
            parts += [
                f"<li>{html.escape(c.id)}) {markdown_to_html(c.text)}</li>"
                for c in question.choices
            ]
            parts.append("</ul>")
        parts.append("</li>")
    parts += ["</ol>", "</div>"]
    return "\n".join(parts)
