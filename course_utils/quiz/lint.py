"""Lint the quiz banks: a score should measure understanding, not test-taking.

python -m course_utils.quiz.lint [--stats] [--notebooks DIR] [BANK ...]

BANK is a bank id (``03_loss_scaling``, looked up in ``data/quizzes`` or ``$COURSE_QUIZ_DIR``) or a
path to a ``.json`` file; without BANK, every bank there. Exit 1 with one line per problem, each
naming the bank, the question id (or ``-`` for a bank-wide problem) and the rule; exit 0 when every
bank passes. ``--stats`` prints the per-bank figures instead (exit 0 unless a bank cannot be read).

Rules (``RULES`` holds their one-line names):

1. ``longest``: in at most floor(n/3) of a bank's n single-choice questions is the correct choice the
   strictly longest one (characters of its text).
2. ``giveaway``: in single/multiple questions, no "all/none/both of the above"; if exactly one
   choice has a code span (backticks), it is not the only correct one; if exactly one choice hedges
   (may, might, can, usually, often, typically, generally, sometimes, depends, in most cases), it is
   not the only correct one.
3. ``feedback``: every wrong choice has feedback of at least 40 characters, not counting stock
   openers ("Wrong", "Incorrect", "No", "Not quite", "Try again", ...); numeric and true/false
   questions have such a ``wrong_feedback``, and a numeric question's ``common_mistakes`` too.
4. ``taught_in``: every question has ``taught_in``; its notebook exists and has a markdown heading
   whose text (leading ``#``s and surrounding whitespace stripped) equals ``section`` exactly.
5. ``predict``: each notebook bank (ids ``NN_...``; ``course_nan_at_step_501`` and other banks
   without a two-digit prefix are exempt) has at least two ``predict`` questions, and each is called
   as ``quiz.predict("<bank>", "<question_id>")`` in a code cell of its notebook, in a cell before
   one that calls ``quiz.revisit("<bank>", "<question_id>")``; a ``quiz.predict``/``quiz.revisit``
   call in the notebook names a predict question of the bank.
``schema``/``json``: the bank is valid JSON and follows ``schema.json`` (as ``quiz.bank`` loads it).

Taught in: the course does not teach this module; it is the instructors' tool (``make quiz-lint``,
``make quiz-stats``) and tests/test_quiz_lint.py runs it over every bank.
"""

from __future__ import annotations

import argparse
import difflib
import json
import pathlib
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from course_utils.quiz.bank import QuizBankError, quiz_dir, shown_path, validate_bank

DEFAULT_NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parents[2] / "notebooks"
MIN_FEEDBACK_CHARS = 40
MIN_PREDICT_QUESTIONS = 2

RULES = {
    "json": "the bank file is valid JSON",
    "schema": "the bank follows data/quizzes/schema.json",
    "longest": "rule 1: the correct choice is the longest in at most a third of single-choice questions",
    "giveaway": "rule 2: no choice is a giveaway by form (of-the-above, only code span, only hedge)",
    "feedback": "rule 3: every wrong answer has specific feedback of at least 40 characters",
    "taught_in": "rule 4: every question names a notebook heading that exists",
    "predict": "rule 5: two predict-first questions per notebook, asked before they are revisited",
}

_OF_THE_ABOVE = re.compile(r"\b(all|none|both)\s+of\s+the\s+above\b", re.IGNORECASE)
_CODE_SPAN = re.compile(r"`[^`\n]+`")
HEDGE_WORDS = (
    "may",
    "might",
    "can",
    "usually",
    "often",
    "typically",
    "generally",
    "sometimes",
    "depends",
    "in most cases",
)
# "can't" is categorical, not a hedge; "can" followed by an apostrophe-t is left out.
_HEDGE = re.compile(
    r"\b(?:"
    + "|".join(
        r"can(?![’']t)" if w == "can" else re.escape(w).replace(r"\ ", r"\s+") for w in HEDGE_WORDS
    )
    + r")\b",
    re.IGNORECASE,
)
_STOCK_OPENERS = re.compile(
    r"^(?:\W|\b(?:wrong|incorrect|no|nope|not\s+quite|not\s+right|not\s+correct|sorry|try\s+again"
    r"|that'?s\s+not\s+(?:it|right|correct))\b)*",
    re.IGNORECASE,
)
_TRY_AGAIN = re.compile(r"\btry\s+again\b", re.IGNORECASE)
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_NOTEBOOK_BANK = re.compile(r"^\d\d_")
_CALL = re.compile(
    r"\bquiz\s*\.\s*(predict|revisit)\s*\(\s*(?:quiz_id\s*=\s*)?([\"'])([^\"'\n]*)\2\s*,\s*"
    r"(?:question_id\s*=\s*)?([\"'])([^\"'\n]*)\4"
)


@dataclass(frozen=True)
class Problem:
    bank: str
    question: str  # a question id, or "-" for the whole bank
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.bank}: question {self.question}: [{self.rule}] {self.message}"


@dataclass
class BankStats:
    bank: str
    questions: int = 0
    single: int = 0
    longest: int = 0
    positions: Counter = field(default_factory=Counter)  # single-choice: position of the key
    predict: int = 0


# ------------------------------------------------------------------------------------ helpers
def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _choices(question: dict) -> list[dict]:
    choices = question.get("choices")
    if not isinstance(choices, list):
        return []
    return [c for c in choices if isinstance(c, dict)]


def _questions(raw: Any) -> list[dict]:
    if not isinstance(raw, dict) or not isinstance(raw.get("questions"), list):
        return []
    return [q for q in raw["questions"] if isinstance(q, dict)]


def _qid(question: dict, index: int) -> str:
    qid = question.get("id")
    return qid if isinstance(qid, str) and qid else f"#{index}"


def correct_is_longest(question: dict) -> bool:
    """Whether the correct choice of a single-choice question is strictly the longest."""
    choices = _choices(question)
    right = [len(_text(c.get("text"))) for c in choices if c.get("correct") is True]
    wrong = [len(_text(c.get("text"))) for c in choices if c.get("correct") is not True]
    return len(right) == 1 and bool(wrong) and right[0] > max(wrong)


def specific_length(feedback: Any) -> int:
    """Characters of ``feedback`` beyond stock openers ("Wrong.", "Not quite:") and "try again"."""
    text = _TRY_AGAIN.sub("", _text(feedback).strip())
    return len(_STOCK_OPENERS.sub("", text, count=1).strip())


def notebook_headings(path: pathlib.Path) -> list[str]:
    """The text of every markdown heading line of a notebook (leading ``#``s and spaces stripped),
    in order; lines inside fenced code blocks are not headings."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    headings = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        fence = None
        for line in _source(cell).splitlines():
            opened = _FENCE.match(line)
            if opened and (fence is None or opened.group(1)[0] == fence):
                fence = None if fence else opened.group(1)[0]
                continue
            if fence:
                continue
            match = _HEADING.match(line)
            if match:
                headings.append((match.group(2) or "").strip())
    return headings


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def quiz_calls(path: pathlib.Path) -> list[tuple[int, str, str, str]]:
    """``(cell index, "predict" or "revisit", bank, question id)`` of every ``quiz.predict`` /
    ``quiz.revisit`` call with literal arguments in the code cells of a notebook."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    calls = []
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        for match in _CALL.finditer(_source(cell)):
            calls.append((index, match.group(1), match.group(3), match.group(5)))
    return calls


# -------------------------------------------------------------------------------------- rules
def _rule_longest(bank: str, questions: list[dict]) -> list[Problem]:
    single = [(i, q) for i, q in enumerate(questions) if q.get("type") == "single"]
    longest = [_qid(q, i) for i, q in single if correct_is_longest(q)]
    allowed = len(single) // 3
    if len(longest) <= allowed:
        return []
    return [
        Problem(
            bank,
            "-",
            "longest",
            f"the correct choice is the strictly longest in {len(longest)} of {len(single)} "
            f"single-choice questions (at most {allowed} allowed): {', '.join(longest)}",
        )
    ]


def _rule_giveaway(bank: str, qid: str, question: dict) -> list[Problem]:
    if question.get("type") not in ("single", "multiple"):
        return []
    problems = []
    choices = _choices(question)
    for c in choices:
        found = _OF_THE_ABOVE.search(_text(c.get("text")))
        if found:
            problems.append(
                Problem(bank, qid, "giveaway", f"choice {c.get('id')!r} says {found.group(0)!r}")
            )
    right = {c.get("id") for c in choices if c.get("correct") is True}
    for what, pattern in (("a code span (backticks)", _CODE_SPAN), ("a hedge word", _HEDGE)):
        marked = [c for c in choices if pattern.search(_text(c.get("text")))]
        if len(marked) == 1 and right == {marked[0].get("id")}:
            word = ""
            if pattern is _HEDGE:
                word = f" ({pattern.search(_text(marked[0].get('text'))).group(0)!r})"
            problems.append(
                Problem(
                    bank,
                    qid,
                    "giveaway",
                    f"the correct choice {marked[0].get('id')!r} is the only one with "
                    f"{what}{word}: give a wrong choice one too, or take it out",
                )
            )
    return problems


def _rule_feedback(bank: str, qid: str, question: dict) -> list[Problem]:
    def check(where: str, feedback: Any) -> list[Problem]:
        if not _text(feedback).strip():
            return [Problem(bank, qid, "feedback", f"{where} has no feedback")]
        if specific_length(feedback) < MIN_FEEDBACK_CHARS:
            return [
                Problem(
                    bank,
                    qid,
                    "feedback",
                    f"{where} has feedback of {specific_length(feedback)} specific characters "
                    f"({_text(feedback).strip()[:60]!r}); it needs at least {MIN_FEEDBACK_CHARS} "
                    "naming the misconception",
                )
            ]
        return []

    qtype = question.get("type")
    problems: list[Problem] = []
    if qtype in ("single", "multiple"):
        for c in _choices(question):
            if c.get("correct") is not True:
                problems += check(f"wrong choice {c.get('id')!r}", c.get("feedback"))
    elif qtype in ("numeric", "true_false"):
        problems += check("'wrong_feedback'", question.get("wrong_feedback"))
        mistakes = question.get("common_mistakes")
        for m in mistakes if isinstance(mistakes, list) else []:
            if isinstance(m, dict):
                problems += check(f"common mistake {m.get('value')!r}", m.get("feedback"))
    return problems


class _Notebooks:
    """Notebooks read once per run: headings and quiz calls, or why they cannot be read."""

    def __init__(self, folder: pathlib.Path) -> None:
        self.folder = folder
        self._cache: dict[str, tuple[list[str], list, str | None]] = {}

    def get(self, stem: str) -> tuple[list[str], list, str | None]:
        if stem not in self._cache:
            path = self.folder / f"{stem}.ipynb"
            try:
                self._cache[stem] = (notebook_headings(path), quiz_calls(path), None)
            except FileNotFoundError:
                there = sorted(p.stem for p in self.folder.glob("*.ipynb"))
                close = difflib.get_close_matches(stem, there, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self._cache[stem] = ([], [], f"there is no notebook {path}{hint}")
            except (OSError, UnicodeDecodeError, ValueError, AttributeError) as exc:
                self._cache[stem] = ([], [], f"cannot read the notebook {path} ({exc})")
        return self._cache[stem]


def _rule_taught_in(bank: str, qid: str, question: dict, notebooks: _Notebooks) -> list[Problem]:
    taught = question.get("taught_in")
    if taught is None:
        return [
            Problem(
                bank,
                qid,
                "taught_in",
                'has no "taught_in": {"notebook": <file stem>, "section": <heading text>}',
            )
        ]
    stem, section = (
        taught.get(k) if isinstance(taught, dict) else None for k in ("notebook", "section")
    )
    if not isinstance(stem, str) or not isinstance(section, str):
        return [
            Problem(
                bank, qid, "taught_in", "taught_in needs a string notebook and a string section"
            )
        ]
    headings, _calls, error = notebooks.get(stem)
    if error:
        return [Problem(bank, qid, "taught_in", error)]
    if section in headings:
        return []
    close = difflib.get_close_matches(section, headings, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return [
        Problem(
            bank,
            qid,
            "taught_in",
            f"notebook {stem!r} has no markdown heading {section!r}{hint}",
        )
    ]


def _rule_predict(
    bank: str, raw: dict, questions: list[dict], notebooks: _Notebooks
) -> list[Problem]:
    if not _NOTEBOOK_BANK.match(bank):
        return []
    notebook = raw.get("notebook")
    stem = pathlib.PurePosixPath(notebook).stem if isinstance(notebook, str) else bank
    predict_ids = [_qid(q, i) for i, q in enumerate(questions) if q.get("predict") is True]
    problems = []
    if len(predict_ids) < MIN_PREDICT_QUESTIONS:
        problems.append(
            Problem(
                bank,
                "-",
                "predict",
                f"has {len(predict_ids)} predict-first question(s), a notebook bank needs at "
                f'least {MIN_PREDICT_QUESTIONS} ("predict": true)',
            )
        )
    _headings, calls, error = notebooks.get(stem)
    if error:
        if predict_ids:
            problems.append(Problem(bank, "-", "predict", error))
        return problems
    mine = [(cell, kind, qid) for cell, kind, called_bank, qid in calls if called_bank == bank]
    for qid in predict_ids:
        asked = [cell for cell, kind, q in mine if kind == "predict" and q == qid]
        revisited = [cell for cell, kind, q in mine if kind == "revisit" and q == qid]
        call = f'quiz.predict("{bank}", "{qid}")'
        if not asked:
            problems.append(
                Problem(
                    bank,
                    qid,
                    "predict",
                    f"notebook {stem!r} never calls {call} (string literals, in a code cell)",
                )
            )
        elif not revisited:
            problems.append(
                Problem(
                    bank,
                    qid,
                    "predict",
                    f'notebook {stem!r} never calls quiz.revisit("{bank}", "{qid}") after {call}',
                )
            )
        elif min(asked) >= max(revisited):
            problems.append(
                Problem(
                    bank,
                    qid,
                    "predict",
                    f"notebook {stem!r}: {call} (cell {min(asked)}) is not in a cell before "
                    f"its quiz.revisit (cell {max(revisited)})",
                )
            )
    known = {_qid(q, i) for i, q in enumerate(questions)}
    for cell, kind, qid in mine:
        if qid not in known:
            problems.append(
                Problem(
                    bank,
                    qid,
                    "predict",
                    f"notebook {stem!r} cell {cell} calls quiz.{kind} on a question the bank "
                    "does not have",
                )
            )
        elif qid not in predict_ids:
            problems.append(
                Problem(
                    bank,
                    qid,
                    "predict",
                    f'notebook {stem!r} cell {cell} calls quiz.{kind} but the question is not "predict": true',
                )
            )
    return problems


# ----------------------------------------------------------------------------------- driving
def read_bank(path: pathlib.Path) -> tuple[Any, list[Problem]]:
    """The bank's JSON (None if unreadable) and its ``json``/``schema`` problems."""
    bank = path.stem
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
        return None, [Problem(bank, "-", "json", f"{shown_path(path)} is not valid JSON ({where})")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(bank, "-", "json", f"cannot read {shown_path(path)} ({exc})")]
    try:
        validate_bank(raw, path)
    except QuizBankError as exc:
        return raw, [Problem(bank, "-", "schema", str(exc))]
    return raw, []


def lint_bank(path: pathlib.Path, notebook_dir: pathlib.Path | None = None) -> list[Problem]:
    """Every problem of the bank in ``path`` (empty when it passes)."""
    notebooks = _Notebooks(notebook_dir or DEFAULT_NOTEBOOK_DIR)
    return _lint(path, notebooks)


def _lint(path: pathlib.Path, notebooks: _Notebooks) -> list[Problem]:
    raw, problems = read_bank(path)
    if not isinstance(raw, dict):  # unreadable, or the schema problem says what it should be
        return problems
    bank = path.stem
    questions = _questions(raw)
    problems += _rule_longest(bank, questions)
    for i, q in enumerate(questions):
        qid = _qid(q, i)
        problems += _rule_giveaway(bank, qid, q)
        problems += _rule_feedback(bank, qid, q)
        problems += _rule_taught_in(bank, qid, q, notebooks)
    problems += _rule_predict(bank, raw, questions, notebooks)
    return problems


def bank_stats(path: pathlib.Path) -> BankStats:
    """The figures ``--stats`` prints for one bank (``QuizBankError`` if it is unreadable)."""
    raw, problems = read_bank(path)
    if raw is None or not isinstance(raw, dict):
        raise QuizBankError(str(problems[0]) if problems else f"{path}: not a quiz bank")
    stats = BankStats(path.stem)
    questions = _questions(raw)
    stats.questions = len(questions)
    for q in questions:
        stats.predict += q.get("predict") is True
        if q.get("type") != "single":
            continue
        stats.single += 1
        stats.longest += correct_is_longest(q)
        for position, c in enumerate(_choices(q)):
            if c.get("correct") is True:
                stats.positions[position] += 1
    return stats


def stats_table(all_stats: list[BankStats]) -> str:
    """A plain-text table: one row per bank, then the totals."""
    width = max([len(s.bank) for s in all_stats] + [len("bank"), len("total")])
    n_pos = max([4] + [max(s.positions, default=0) + 1 for s in all_stats])
    letters = [chr(ord("a") + i) for i in range(n_pos)]
    head = (
        f"{'bank':<{width}}  questions  single  longest  "
        + " ".join(f"{x:>2}" for x in letters)
        + "  predict"
    )
    lines = [
        "Correct-is-longest and the position spread (how many keys sit in the 1st (a), 2nd (b), ...",
        "choice, in bank order) count single-choice questions only.",
        head,
        "-" * len(head),
    ]
    total = BankStats("total")
    for s in all_stats:
        total.questions += s.questions
        total.single += s.single
        total.longest += s.longest
        total.positions.update(s.positions)
        total.predict += s.predict
    for s in [*all_stats, total]:
        if s is total:
            lines.append("-" * len(head))
        lines.append(
            f"{s.bank:<{width}}  {s.questions:>9}  {s.single:>6}  {s.longest:>7}  "
            + " ".join(f"{s.positions[i]:>2}" for i in range(n_pos))
            + f"  {s.predict:>7}"
        )
    return "\n".join(lines)


def bank_paths(banks: list[str]) -> list[pathlib.Path]:
    """Paths for bank ids or ``.json`` paths; every bank of ``quiz_dir()`` when none is given."""
    if not banks:
        folder = quiz_dir()
        return sorted(p for p in folder.glob("*.json") if p.name != "schema.json")
    paths = []
    for bank in banks:
        path = pathlib.Path(bank)
        if path.suffix != ".json":
            path = quiz_dir() / f"{bank}.json"
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.quiz.lint", description=__doc__.splitlines()[0]
    )
    parser.add_argument("banks", nargs="*", metavar="BANK", help="bank ids or .json paths")
    parser.add_argument("--stats", action="store_true", help="print per-bank figures, not problems")
    parser.add_argument(
        "--notebooks",
        type=pathlib.Path,
        default=DEFAULT_NOTEBOOK_DIR,
        help="folder of the notebooks (default: the repo's notebooks/)",
    )
    args = parser.parse_args(argv)
    paths = bank_paths(args.banks)
    if not paths:
        print(f"quiz_lint: no quiz banks in {quiz_dir()}", file=sys.stderr)
        return 1
    missing = [p for p in paths if not p.is_file()]
    if missing:
        for p in missing:
            print(f"{p.stem}: question -: [json] there is no bank file {p}", file=sys.stderr)
        return 1
    if args.stats:
        try:
            print(stats_table([bank_stats(p) for p in paths]))
        except QuizBankError as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    notebooks = _Notebooks(args.notebooks)
    problems = [problem for path in paths for problem in _lint(path, notebooks)]
    for problem in problems:
        print(problem)
    if problems:
        print(
            f"quiz_lint: {len(problems)} problem(s) in "
            f"{len({p.bank for p in problems})} of {len(paths)} bank(s)",
            file=sys.stderr,
        )
        return 1
    print(f"quiz_lint: {len(paths)} bank(s) pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
