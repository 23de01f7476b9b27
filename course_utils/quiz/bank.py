"""Quiz banks: load and validate ``data/quizzes/<quiz_id>.json`` and check answers.

Pure logic, no widgets and no files written: ``course_utils.quiz.core`` builds the learner-facing
functions (``show``, ``grade``, ...) on top of this module.

Answers, by question type (the same shapes ``answer_key`` returns):
- ``single``: the id of one choice, e.g. ``"b"``;
- ``multiple``: a list (or set/tuple) of choice ids, e.g. ``["a", "c"]``;
- ``numeric``: a number, or a string holding one (optionally followed by the question's unit);
- ``true_false``: ``True`` or ``False`` (the strings ``"true"``/``"false"`` also work).

Used by every notebook's quiz (its "Check your understanding" section and predict-first prompts).
"""

from __future__ import annotations

import difflib
import json
import math
import os
import pathlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

QUIZ_DIR_ENV = "COURSE_QUIZ_DIR"
DEFAULT_QUIZ_DIR = pathlib.Path(__file__).resolve().parents[2] / "data" / "quizzes"
SCHEMA_FILE = "schema.json"
QUESTION_TYPES = ("single", "multiple", "numeric", "true_false")


# ---------------------------------------------------------------------------------------- errors
class QuizBankError(ValueError):
    """A bank file is missing, is not JSON, or does not follow ``schema.json``."""


class _PlainKeyError(KeyError):
    """A KeyError whose message prints as plain text (KeyError quotes its argument)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownQuizError(_PlainKeyError):
    """No bank ``data/quizzes/<quiz_id>.json``; the message lists the quizzes there are."""


class UnknownQuestionError(_PlainKeyError):
    """A question id that the quiz does not have; the message lists the ids it has."""


class InvalidAnswerError(ValueError):
    """An answer of the wrong shape: not a number, an empty selection, an unknown choice..."""


# ----------------------------------------------------------------------------------- data model
@dataclass(frozen=True)
class Choice:
    id: str
    text: str
    correct: bool = False
    feedback: str | None = None


@dataclass(frozen=True)
class CommonMistake:
    value: float
    tolerance: float
    feedback: str


@dataclass(frozen=True)
class TaughtIn:
    """Where the course teaches a question: a notebook (file stem) and one of its headings.

    ``section`` is the text of a markdown heading line of that notebook, without its leading
    ``#``s and surrounding whitespace; ``course_utils.quiz.lint`` checks that it exists."""

    notebook: str
    section: str


@dataclass(frozen=True)
class Question:
    id: str
    type: str
    prompt: str
    explanation: str
    hint: str
    choices: tuple[Choice, ...] = ()
    answer: float | bool | None = None
    tolerance: float = 0.0
    unit: str | None = None
    wrong_feedback: str | None = None
    common_mistakes: tuple[CommonMistake, ...] = ()
    taught_in: TaughtIn | None = None
    predict: bool = False  # asked inline (quiz.predict) before the cell that reveals the answer

    def choice(self, choice_id: str) -> Choice:
        for choice in self.choices:
            if choice.id == choice_id:
                return choice
        known = ", ".join(repr(c.id) for c in self.choices)
        raise InvalidAnswerError(
            f"question {self.id!r} has no choice {shown(choice_id)}; its choices are {known}"
        )

    @property
    def correct_choice_ids(self) -> list[str]:
        return [c.id for c in self.choices if c.correct]

    @property
    def key(self) -> Any:
        """The right answer, in the shape ``grade`` accepts."""
        if self.type == "single":
            return self.correct_choice_ids[0]
        if self.type == "multiple":
            return self.correct_choice_ids
        return self.answer


@dataclass(frozen=True)
class Quiz:
    id: str
    title: str
    questions: tuple[Question, ...]
    intro: str | None = None
    notebook: str | None = None
    path: pathlib.Path | None = None

    def question(self, question_id: str) -> Question:
        for question in self.questions:
            if question.id == question_id:
                return question
        raise UnknownQuestionError(
            f"quiz {self.id!r} has no question {shown(question_id)}; its questions are "
            + ", ".join(q.id for q in self.questions)
            + _did_you_mean(question_id, [q.id for q in self.questions])
        )

    @property
    def question_ids(self) -> list[str]:
        return [q.id for q in self.questions]


@dataclass(frozen=True)
class Verdict:
    """The result of checking one answer: right or wrong, and what to tell the learner."""

    correct: bool
    feedback: str


# --------------------------------------------------------------------------------------- loading
def quiz_dir() -> pathlib.Path:
    """Where the banks live: ``$COURSE_QUIZ_DIR`` if set, else ``data/quizzes`` of the repo."""
    override = os.environ.get(QUIZ_DIR_ENV)
    return pathlib.Path(override) if override else DEFAULT_QUIZ_DIR


def shown_path(path: pathlib.Path) -> str:
    """``path`` relative to the repository when inside it (messages read the same anywhere)."""
    try:
        return str(path.resolve().relative_to(DEFAULT_QUIZ_DIR.parents[1]))
    except ValueError:
        return str(path)


def list_quizzes() -> list[str]:
    """The ids of every bank in ``quiz_dir()``, sorted."""
    folder = quiz_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if p.name != SCHEMA_FILE)


def load_quiz(quiz_id: str) -> Quiz:
    """Load and validate one bank; raise ``UnknownQuizError`` or ``QuizBankError``."""
    if not isinstance(quiz_id, str) or not quiz_id:
        raise TypeError(
            f"quiz_id must be a non-empty string like '00_start_here', got {shown(quiz_id)}"
        )
    path = quiz_dir() / f"{quiz_id}.json"
    if quiz_id == pathlib.Path(SCHEMA_FILE).stem or not path.is_file():
        there = list_quizzes()
        raise UnknownQuizError(
            f"unknown quiz {quiz_id!r}: there is no {shown_path(path)}. "
            f"Quizzes there are: {', '.join(there) if there else '(none)'}"
            + _did_you_mean(quiz_id, there)
        )
    stat = path.stat()
    return _load_cached(str(path), stat.st_mtime_ns, stat.st_size)


_CACHE: dict[tuple[str, int, int], Quiz] = {}


def _load_cached(path: str, mtime_ns: int, size: int) -> Quiz:
    key = (path, mtime_ns, size)
    if key not in _CACHE:
        _CACHE[key] = parse_bank(pathlib.Path(path))
    return _CACHE[key]


def parse_bank(path: pathlib.Path) -> Quiz:
    """Read, validate (schema + consistency) and build the ``Quiz`` in ``path``."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise QuizBankError(
            f"{shown_path(path)}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise QuizBankError(f"{shown_path(path)}: cannot read the quiz bank ({exc})") from None
    validate_bank(raw, path)
    return _build(raw, path)


def validate_bank(raw: Any, path: pathlib.Path) -> None:
    """Raise ``QuizBankError`` naming ``path`` and the offending field, or return None."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(raw), key=lambda e: (list(e.absolute_path), e.message))
    if errors:
        error = _most_useful(errors)
        field = _field_name(list(error.absolute_path) + _forbidden_key(error, raw))
        raise QuizBankError(f"{shown_path(path)}: field {field}: {_describe(error, raw)}")
    _check_consistency(raw, path)


_SCHEMA: dict | None = None


def _schema() -> dict:
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = json.loads((DEFAULT_QUIZ_DIR / SCHEMA_FILE).read_text(encoding="utf-8"))
    return _SCHEMA


def _most_useful(errors: list) -> Any:
    """The deepest error (the most specific place), ``if/then`` noise last."""

    def rank(error: Any) -> tuple[int, int]:
        return (-len(error.absolute_path), 1 if error.validator in ("if", "allOf") else 0)

    return sorted(errors, key=rank)[0]


def _forbidden_key(error: Any, raw: Any) -> list[str]:
    """For a ``"field": false`` error, the field (jsonschema reports only its parent object)."""
    if error.schema is not False:
        return []
    node: Any = raw
    for part in error.absolute_path:
        node = node[part]
    schema = _schema()
    props: Any = schema
    for part in error.absolute_schema_path:
        while isinstance(props, dict) and part not in props and "$ref" in props:
            props = schema["$defs"][props["$ref"].rsplit("/", 1)[-1]]
        props = props[part]
    if not isinstance(node, dict) or not isinstance(props, dict):
        return []
    return [key for key, rule in props.items() if rule is False and key in node][:1]


def _field_name(path: list) -> str:
    parts = []
    for part in path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    name = "".join(parts).lstrip(".")
    return repr(name) if name else "(top level)"


def _describe(error: Any, raw: Any) -> str:
    where = _question_label(error.absolute_path, raw)
    if error.schema is False:
        qtype = where[1] if where else "this"
        message = f"not allowed in a {qtype!r} question"
    elif error.validator == "pattern" and error.schema.get("pattern") == r"\S":
        message = "must not be blank"
    elif error.validator == "pattern":
        message = f"{error.instance!r} must be lower-case letters, digits and '_'"
    else:
        message = error.message
    if where:
        message += f" (question {where[0]!r})"
    return message


def _question_label(path: Any, raw: Any) -> tuple[str, str] | None:
    """(question id, type) of the question an error sits in, if any."""
    parts = list(path)
    if len(parts) >= 2 and parts[0] == "questions" and isinstance(raw, dict):
        try:
            question = raw["questions"][parts[1]]
            return str(question.get("id", f"#{parts[1]}")), str(question.get("type", "?"))
        except (IndexError, KeyError, TypeError, AttributeError):
            return None
    return None


def _check_consistency(raw: dict, path: pathlib.Path) -> None:
    """What a JSON schema cannot say: unique ids, one right choice, matching file name."""

    def fail(field: str, message: str) -> None:
        raise QuizBankError(f"{shown_path(path)}: field {field!r}: {message}")

    if raw["id"] != path.stem:
        fail("id", f"is {raw['id']!r} but the file is {path.name}: they must match")
    seen: set[str] = set()
    for i, question in enumerate(raw["questions"]):
        qid = question["id"]
        if qid in seen:
            fail(f"questions[{i}].id", f"duplicate question id {qid!r}")
        seen.add(qid)
        choices = question.get("choices", [])
        ids = [c["id"] for c in choices]
        if len(set(ids)) != len(ids):
            fail(f"questions[{i}].choices", f"duplicate choice ids in question {qid!r}")
        n_right = sum(bool(c.get("correct")) for c in choices)
        if question["type"] == "single" and n_right != 1:
            fail(
                f"questions[{i}].choices",
                f"a 'single' question needs exactly one choice with \"correct\": true, "
                f"question {qid!r} has {n_right}",
            )
        if question["type"] == "multiple" and n_right < 1:
            fail(
                f"questions[{i}].choices",
                f"a 'multiple' question needs at least one right choice (question {qid!r})",
            )
        for j, mistake in enumerate(question.get("common_mistakes", [])):
            if abs(mistake["value"] - question["answer"]) <= question["tolerance"]:
                fail(
                    f"questions[{i}].common_mistakes[{j}].value",
                    f"{mistake['value']} would count as right (question {qid!r})",
                )


def _build(raw: dict, path: pathlib.Path) -> Quiz:
    questions = []
    for q in raw["questions"]:
        answer = q.get("answer")
        if q["type"] == "numeric":
            answer = float(answer)
        questions.append(
            Question(
                id=q["id"],
                type=q["type"],
                prompt=q["prompt"],
                explanation=q["explanation"],
                hint=q["hint"],
                choices=tuple(
                    Choice(c["id"], c["text"], bool(c.get("correct")), c.get("feedback"))
                    for c in q.get("choices", [])
                ),
                answer=answer,
                tolerance=float(q.get("tolerance", 0.0)),
                unit=q.get("unit"),
                wrong_feedback=q.get("wrong_feedback"),
                common_mistakes=tuple(
                    CommonMistake(float(m["value"]), float(m.get("tolerance", 0.0)), m["feedback"])
                    for m in q.get("common_mistakes", [])
                ),
                taught_in=(
                    TaughtIn(q["taught_in"]["notebook"], q["taught_in"]["section"])
                    if "taught_in" in q
                    else None
                ),
                predict=bool(q.get("predict", False)),
            )
        )
    return Quiz(
        id=raw["id"],
        title=raw["title"],
        questions=tuple(questions),
        intro=raw.get("intro"),
        notebook=raw.get("notebook"),
        path=path,
    )


# -------------------------------------------------------------------------------- checking answers
def check_answer(question: Question, answer: Any) -> Verdict:
    """Right or wrong, with feedback; ``InvalidAnswerError`` for an answer of the wrong shape."""
    if question.type == "single":
        return _check_single(question, answer)
    if question.type == "multiple":
        return _check_multiple(question, answer)
    if question.type == "numeric":
        return _check_numeric(question, answer)
    return _check_true_false(question, answer)


def _check_single(question: Question, answer: Any) -> Verdict:
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        raise InvalidAnswerError(f"question {question.id!r}: no choice selected")
    if not isinstance(answer, str):
        raise InvalidAnswerError(
            f"question {question.id!r} takes one choice id (a string such as "
            f"{question.choices[0].id!r}), got {shown(answer)}"
        )
    choice = question.choice(answer.strip())
    if choice.correct:
        return Verdict(True, choice.feedback or "")
    return Verdict(False, choice.feedback or "")


def _check_multiple(question: Question, answer: Any) -> Verdict:
    if isinstance(answer, str):
        answer = [answer] if answer.strip() else []
    if answer is None or not isinstance(answer, Iterable) or isinstance(answer, Mapping):
        raise InvalidAnswerError(
            f"question {question.id!r} takes a list of choice ids (select all that apply), "
            f"got {shown(answer)}"
        )
    picked = list(answer)
    if not picked:
        raise InvalidAnswerError(
            f"question {question.id!r}: empty selection; select every choice that applies"
        )
    for item in picked:
        if not isinstance(item, str):
            raise InvalidAnswerError(
                f"question {question.id!r}: choice ids are strings, got {shown(item)}"
            )
        question.choice(item)  # raises on an unknown id
    chosen = set(picked)
    lines = []
    for choice in question.choices:
        if choice.id in chosen and not choice.correct:
            lines.append(f"'{choice.text}' is not right: {choice.feedback}")
        elif choice.id not in chosen and choice.correct:
            lines.append(f"You missed '{choice.text}': {choice.feedback}")
    return Verdict(not lines, "\n".join(lines))


def parse_number(question: Question, answer: Any) -> float:
    """``answer`` as a finite float; a string may end with the question's unit."""
    if isinstance(answer, bool) or answer is None:
        raise InvalidAnswerError(f"question {question.id!r} takes a number, got {shown(answer)}")
    finite = InvalidAnswerError(
        f"question {question.id!r} takes a finite number, got {shown(answer)}"
    )
    if isinstance(answer, int | float):
        try:
            value = float(answer)
        except OverflowError:  # an int beyond the float range, e.g. 10**400
            raise finite from None
    elif isinstance(answer, str):
        text = answer.strip().replace(",", "").replace("_", "")
        if question.unit and text.lower().endswith(question.unit.lower()):
            text = text[: -len(question.unit)].strip()
        if not text:
            raise InvalidAnswerError(f"question {question.id!r}: no number entered")
        try:
            value = float(text)
        except ValueError:
            unit = f" (in {question.unit})" if question.unit else ""
            raise InvalidAnswerError(
                f"question {question.id!r} takes a number{unit}; {shown(answer)} is not a number"
            ) from None
    else:
        try:
            value = float(answer)  # numpy and torch scalars, Fraction, Decimal
        except OverflowError:
            raise finite from None
        except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor of many elements
            raise InvalidAnswerError(
                f"question {question.id!r} takes a number, got {type(answer).__name__} "
                f"{shown(answer)}"
            ) from None
    if not math.isfinite(value):
        raise finite
    return value


def _check_numeric(question: Question, answer: Any) -> Verdict:
    value = parse_number(question, answer)
    if abs(value - float(question.answer or 0.0)) <= question.tolerance:
        return Verdict(True, "")
    for mistake in question.common_mistakes:
        if abs(value - mistake.value) <= mistake.tolerance:
            return Verdict(False, mistake.feedback)
    return Verdict(False, question.wrong_feedback or "")


_TRUE_WORDS = {"true": True, "t": True, "yes": True, "false": False, "f": False, "no": False}


def _check_true_false(question: Question, answer: Any) -> Verdict:
    if isinstance(answer, str) and answer.strip().lower() in _TRUE_WORDS:
        answer = _TRUE_WORDS[answer.strip().lower()]
    if not isinstance(answer, bool):
        raise InvalidAnswerError(
            f"question {question.id!r} takes True or False, got {shown(answer)}"
        )
    if answer is question.answer:
        return Verdict(True, "")
    return Verdict(False, question.wrong_feedback or "")


def describe_answer(question: Question, answer: Any) -> str:
    """A readable form of an answer (choice texts rather than ids)."""
    if question.type == "single" and isinstance(answer, str):
        return next((c.text for c in question.choices if c.id == answer), answer)
    if question.type == "multiple" and not isinstance(answer, str | bytes):
        texts = [c.text for c in question.choices if c.id in set(answer)]
        return "; ".join(texts)
    if question.type == "numeric" and isinstance(answer, float):
        shown = f"{answer:g}"
        return f"{shown} {question.unit}" if question.unit else shown
    return str(answer)


def shown(value: Any, limit: int = 120) -> str:
    """``repr(value)`` for a message: shortened, and never raising (a 5000-digit int cannot be
    printed by default; a learner's object may have a broken ``__repr__``)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"an int of about {int(value.bit_length() * 0.30103) + 1} digits"
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - any failure of a foreign __repr__
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _did_you_mean(word: Any, options: list[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
