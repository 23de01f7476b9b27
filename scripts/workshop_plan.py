#!/usr/bin/env python
"""Render the workshop plans (3 hours and 4 hours) from the notebooks' stored run times.

python scripts/workshop_plan.py            # writes instructors/workshop_plan.md
python scripts/workshop_plan.py --check    # exit 1 if the committed file differs from a fresh render

Two inputs, kept apart on purpose:
- **measured**: the code time of each ``##`` section of each notebook, summed from the stored cell
  metadata of its last execution (``metadata.execution``: ``iopub.execute_input`` to
  ``shell.execute_reply``, as nbconvert / ``make execute`` record them). Re-execute the notebooks on
  an idle machine, then re-render.
- **estimated**: the minutes of reading, talk and exercises, and the breaks, written by hand in
  ``PLAN`` below (one line per section: how each plan uses it, and for how long).

Kernel start-up is not in the measured time (it happens before the first cell).
``instructors/README.md`` explains how to use the plans; this script only adds up and renders.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import difflib
import json
import pathlib
import re
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO_ROOT / "notebooks"
GUIDES = REPO_ROOT / "instructors"
OUTPUT = GUIDES / "workshop_plan.md"
# In a hand-written guide instructors/NN.md, the lines between these two markers are the
# notebook's own objectives, copied here at every render (so they cannot drift).
OBJECTIVES_START = "<!-- objectives: copied from the notebook by scripts/workshop_plan.py -->"
OBJECTIVES_END = "<!-- /objectives -->"

PLANS = {"3h": 180, "4h": 240}  # plan name -> minutes available
MODES = ("demo", "hands-on", "homework")
BREAK = "(break)"
OPENING = "(opening cells)"  # code cells before a notebook's first ## heading

# ---------------------------------------------------------------------------------------------
# The plan spec. One line per "##" section, in notebook order: the start of its heading, then
# what the 3-hour and the 4-hour plan do with it: "MODE MINUTES".
#   demo      the instructor runs it on the projector and talks it through; learners watch
#   hands-on  learners run it themselves (and do its exercise, if any)
#   homework  not in class; the minutes are the estimated time at home
# MINUTES are estimated reading + talk + exercise minutes (the code time is measured, not here).
# A (break) line puts a break after the line above it: "break MINUTES", or "none".
# A notebook that does not exist yet is planned as one block under its topic, in TOPICS.
# ---------------------------------------------------------------------------------------------
PLAN: dict[str, list[tuple[str, str, str]]] = {
    # (start of the ## heading,                  3-hour plan,    4-hour plan)
    "00_start_here": [
        ("Setup", "hands-on 3", "hands-on 3"),
        ("How the course works", "demo 1", "demo 1"),
        ("Your hardware", "hands-on 3", "hands-on 3"),
        ("Ten seconds of mixed-precision training", "hands-on 4", "hands-on 4"),
        ("Will *your* weights stay fp32?", "demo 1", "demo 1"),
        ("Exercise: the autocast settings for a GPU", "hands-on 3", "hands-on 3"),
        ("Check your understanding", "homework 5", "homework 5"),
        ("Key takeaways", "demo 1", "demo 1"),
        ("The path through the course", "demo 1", "demo 1"),
        ("Further reading", "homework 5", "homework 5"),
    ],
    "01_float_formats": [
        ("Setup", "hands-on 1", "hands-on 1"),
        ("A float is three fields", "hands-on 4", "hands-on 4"),
        ("Six formats side by side", "demo 3", "demo 3"),
        ("The bit explorer", "hands-on 3", "hands-on 3"),
        ("The gap between numbers grows", "demo 2", "demo 2"),
        ("Dynamic range on one number line", "demo 1", "demo 1"),
        ("Rounding surprises", "hands-on 4", "hands-on 4"),
        ("Sums: what torch keeps in fp32", "demo 3", "demo 3"),
        ("Why bf16 is", "demo 1", "demo 1"),
        ("Exercises", "homework 10", "hands-on 8"),
        ("Check your understanding", "homework 5", "homework 5"),
        ("Key takeaways", "demo 1", "demo 1"),
        ("Further reading", "homework 5", "homework 5"),
    ],
    "02_underflow_and_overflow": [
        ("Setup", "hands-on 1", "hands-on 1"),
        ("1. Gradient X-ray", "hands-on 7", "hands-on 7"),
        ("2. Overflow: an attention logit", "demo 5", "demo 5"),
        ("3. Stalled updates", "demo 6", "demo 6"),
        ("Exercises", "homework 10", "hands-on 7"),
        ("Check your understanding", "homework 5", "homework 5"),
        ("Key takeaways", "demo 1", "demo 1"),
        ("Further reading", "homework 5", "homework 5"),
        (BREAK, "none", "break 10"),
    ],
    "03_loss_scaling": [
        ("Setup", "hands-on 1", "hands-on 1"),
        ("1. The problem", "demo 5", "demo 5"),
        ("2. Static loss scaling", "hands-on 4", "hands-on 4"),
        ("3. Dynamic loss scaling", "hands-on 8", "hands-on 8"),
        ("4. `unscale_` before clipping", "demo 4", "demo 4"),
        ("5. Gradient accumulation", "hands-on 7", "hands-on 7"),
        ("6. Why bf16 needs no scaler", "demo 2", "demo 2"),
        ("7. The scaler in a real training loop", "homework 8", "homework 8"),
        ("Check your understanding", "homework 5", "homework 5"),
        ("Key takeaways", "demo 1", "demo 1"),
        ("Further reading", "homework 5", "homework 5"),
        (BREAK, "break 10", "none"),
    ],
    "04_autocast_under_the_hood": [
        ("Setup", "hands-on 1", "hands-on 1"),
        ("1. Which ops run in which dtype", "demo 6", "demo 6"),
        ("2. The weights stay fp32", "demo 3", "demo 3"),
        ("3. Memory anatomy", "hands-on 7", "hands-on 7"),
        ("4. The error gallery", "demo 4", "demo 4"),
        ("5. Islands of fp32", "homework 8", "homework 8"),
        ("Check your understanding", "homework 5", "homework 5"),
        ("Key takeaways", "demo 1", "demo 1"),
        ("Further reading", "homework 5", "homework 5"),
        (BREAK, "none", "break 10"),
    ],
    "05_bf16_vs_fp16_finetuning": [
        ("Setup", "hands-on 1", "hands-on 1"),
        ("1. The original tutorial's code", "demo 4", "demo 4"),
        ("2. A fine-tuning task worth watching", "demo 1", "demo 1"),
        ("3. The same fine-tuning", "demo 5", "demo 5"),
        ("4. The precision audit", "hands-on 4", "hands-on 4"),
        ("5. Loading in 16 bits", "homework 6", "homework 6"),
        ("6. On a GPU", "demo 1", "demo 1"),
        ("Exercise: plan a run on a T4", "hands-on 4", "hands-on 4"),
        ("Check your understanding", "homework 5", "homework 5"),
        ("Key takeaways", "demo 1", "demo 1"),
        ("Further reading", "homework 5", "homework 5"),
    ],
    "06_nan_recovery": [
        ("Setup", "hands-on 1", "hands-on 1"),
        ("The question", "demo 2", "demo 2"),
        ("1. A run that is stable", "demo 3", "demo 3"),
        ("2. Diagnose", "hands-on 6", "hands-on 6"),
        ("3. Fixes compared on the same run", "demo 6", "demo 6"),
        ("4. When fp16's range *is* the cause", "homework 10", "demo 5"),
        ("5. Heal the run without a restart", "demo 4", "demo 4"),
        ("6. Exercises", "hands-on 5", "hands-on 5"),
        ("Check your understanding", "homework 5", "homework 5"),
        ("Key takeaways", "demo 1", "demo 1"),
        ("Further reading", "homework 5", "homework 5"),
    ],
    "07_performance_lab": [
        (OPENING, "homework 1", "demo 0"),
        ("The claims under test", "homework 1", "demo 1"),
        ("1. Timing done right", "homework 3", "demo 1"),
        ("2. Matmul throughput per dtype", "homework 5", "demo 2"),
        ("3. A training step", "homework 5", "demo 1"),
        ("4. Memory: where the bytes go", "homework 4", "demo 2"),
        ("5. Published GPU measurements", "homework 3", "demo 1"),
        ("6. Verdict", "homework 2", "demo 1"),
        ("Exercise 1: TFLOP/s", "homework 4", "homework 4"),
        ("Exercise 2: MFU", "homework 4", "homework 4"),
        ("Check your understanding", "homework 5", "homework 5"),
        ("Key takeaways", "homework 1", "homework 1"),
        ("Further reading", "homework 5", "homework 5"),
    ],
    "08_scaling_out": [
        (OPENING, "homework 1", "homework 1"),
        ("Data parallelism in one table", "homework 2", "homework 2"),
        ("Running `torchrun` from a notebook", "homework 1", "homework 1"),
        ("1. DDP + bf16 autocast", "homework 4", "homework 4"),
        ("2. FSDP2", "homework 6", "homework 6"),
        ("3. Two FSDP2 pitfalls", "homework 4", "homework 4"),
        ("4. The same in Hugging Face Accelerate", "homework 2", "homework 2"),
        ("5. DeepSpeed", "homework 2", "homework 2"),
        ("6. On GPUs: NCCL", "homework 1", "homework 1"),
        ("Exercise 1: predict FSDP2's dtypes", "homework 5", "homework 5"),
        ("Exercise 2: what a bf16 reduction saves", "homework 4", "homework 4"),
        ("Check your understanding", "homework 5", "homework 5"),
        ("Key takeaways", "homework 1", "homework 1"),
        ("Further reading", "homework 5", "homework 5"),
    ],
    "09_classic_failures": [
        # 3 hours: all homework. 4 hours: the closing block; a few failures on the projector (the
        # ones 00-06 did not already show), the GPU what-if that exercises 1 and 3 need, then the
        # three "predict the doctor's findings" exercises in pairs.
        ("Setup", "homework 1", "hands-on 1"),
        ("The precision doctor in one minute", "homework 2", "demo 2"),
        ("1. `fp16=True` on a CPU", "homework 3", "demo 2"),
        ("2. `fp16=True` and `bf16=True` together", "homework 2", "homework 2"),
        ("3. fp16 weights under a GradScaler", "homework 2", "demo 2"),
        ("4. Clipping before `unscale_`", "homework 3", "homework 3"),
        ("5. A GradScaler left out of the checkpoint", "homework 3", "homework 3"),
        ("6. A GradScaler with bf16", "homework 3", "homework 3"),
        ("7. `backward()` inside autocast", "homework 2", "homework 2"),
        ("8. Pure bf16", "homework 3", "demo 2"),
        ("9. The deprecated `torch.cuda.amp`", "homework 1", "homework 1"),
        ("10. Failures that need a GPU", "homework 5", "demo 2"),
        ("11. Exercises", "homework 10", "hands-on 8"),
        ("12. Check your own script", "homework 4", "homework 4"),
        ("Check your understanding", "homework 5", "homework 5"),
        ("Key takeaways", "homework 1", "demo 1"),
        ("Further reading", "homework 5", "homework 5"),
    ],
}

# Notebooks planned as one block, named by their topic until they exist ("NN": (topic, 3-hour
# use, 4-hour use)). Once notebooks/NN_*.ipynb exists, its sections are listed under it
# (measured), and the block's measured code time is the whole notebook's; give it per-section
# lines in PLAN to split it (as 09's were, once it was written).
TOPICS: dict[str, tuple[str, str, str]] = {}


# ---------------------------------------------------------------------------------------------
# Reading the notebooks
# ---------------------------------------------------------------------------------------------
class PlanError(ValueError):
    """The notebooks and the plan spec do not fit together (the message says how)."""


@dataclasses.dataclass
class Section:
    heading: str
    code_cells: int = 0
    code_seconds: float = 0.0


@dataclasses.dataclass
class Notebook:
    stem: str  # e.g. "03_loss_scaling"
    title: str  # the "# " heading, without the "# "
    objectives: list[str]  # the "You will learn" bullets, as written
    time_line: str | None  # the notebook's own "**Time:**" sentence
    stated_minutes: int | None  # the number in it ("about 30 minutes")
    sections: list[Section]
    run_started: dt.datetime | None  # first cell's start, from the stored metadata

    @property
    def code_seconds(self) -> float:
        return sum(s.code_seconds for s in self.sections)


def _timestamp(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _headings(markdown: str) -> list[str]:
    """The ``## `` headings of one markdown cell, skipping fenced code blocks."""
    found, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("## "):
            found.append(line[3:].strip())
    return found


def _objectives(first_cell: str) -> list[str]:
    """The bullets under "**You will learn**" (a bullet's continuation lines joined to it)."""
    lines = first_cell.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if "You will learn" in line) + 1
    except StopIteration:
        return []
    bullets: list[str] = []
    for line in lines[start:]:
        if line.startswith("- "):
            bullets.append(line[2:].strip())
        elif line.startswith("  ") and bullets:
            bullets[-1] += " " + line.strip()
        else:
            break
    return bullets


def read_notebook(path: pathlib.Path) -> Notebook:
    """Sections and their measured code time, from a notebook's stored execution metadata."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise PlanError(f"{path}: cannot read it as a notebook: {err}") from None
    cells = nb.get("cells", [])
    first = "".join(cells[0].get("source", "")) if cells else ""
    title = next((ln[2:].strip() for ln in first.splitlines() if ln.startswith("# ")), path.stem)
    time_match = re.search(r"\*\*Time:\*\*\s*([^\n]*)", first)
    time_line = time_match.group(1).strip() if time_match else None
    minutes = re.search(r"about (\d+) minutes", time_line or "")
    sections = [Section(OPENING)]
    missing, started = [], None
    for index, cell in enumerate(cells):
        source = "".join(cell.get("source", ""))
        if cell.get("cell_type") == "markdown":
            sections.extend(Section(h) for h in _headings(source))
        elif cell.get("cell_type") == "code":
            run = cell.get("metadata", {}).get("execution", {})
            if "iopub.execute_input" not in run or "shell.execute_reply" not in run:
                missing.append(index)
                continue
            begin, end = (
                _timestamp(run["iopub.execute_input"]),
                _timestamp(run["shell.execute_reply"]),
            )
            started = begin if started is None else min(started, begin)
            sections[-1].code_cells += 1
            sections[-1].code_seconds += (end - begin).total_seconds()
    if missing:
        raise PlanError(
            f"{path.name}: code cells {missing} have no stored execution times "
            "(metadata.execution); re-execute the notebook top to bottom (make execute)"
        )
    if sections[0].code_cells == 0:
        sections.pop(0)  # no code before the first heading: no opening row
    return Notebook(
        stem=path.stem,
        title=title,
        objectives=_objectives(first),
        time_line=time_line,
        stated_minutes=int(minutes.group(1)) if minutes else None,
        sections=sections,
        run_started=started,
    )


def read_notebooks(folder: pathlib.Path = NOTEBOOKS) -> dict[str, Notebook]:
    return {p.stem: read_notebook(p) for p in sorted(folder.glob("[0-9][0-9]_*.ipynb"))}


# ---------------------------------------------------------------------------------------------
# Matching the spec to the notebooks
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Use:
    mode: str  # demo / hands-on / homework / break / none
    minutes: int


def parse_use(text: str, where: str) -> Use:
    parts = text.split()
    if parts == ["none"]:
        return Use("none", 0)
    if len(parts) != 2 or parts[0] not in (*MODES, "break") or not parts[1].isdigit():
        raise PlanError(f"{where}: {text!r} is not 'MODE MINUTES' (MODE in {MODES}) or 'none'")
    return Use(parts[0], int(parts[1]))


@dataclasses.dataclass
class Row:
    notebook: str  # stem, or "NN" for a topic block
    label: str  # section heading, topic, or "break"
    code_seconds: float | None  # None: nothing measured (a notebook that does not exist yet)
    uses: dict[str, Use]  # plan name -> use


@dataclasses.dataclass
class Matched:
    rows: list[Row]
    unplanned: list[str]  # "notebook: heading" in a notebook but not in the spec
    unmatched: list[str]  # "notebook: spec line" in the spec but not in the notebook


def _uses(three: str, four: str, where: str) -> dict[str, Use]:
    return {"3h": parse_use(three, where), "4h": parse_use(four, where)}


def match(notebooks: dict[str, Notebook]) -> Matched:
    """Rows in course order: each notebook section with its use in each plan, and the breaks."""
    rows: list[Row] = []
    unplanned: list[str] = []
    unmatched: list[str] = []
    numbers = {stem[:2]: stem for stem in notebooks}
    order = sorted(set(PLAN) | set(notebooks) | {numbers.get(n, n) for n in TOPICS})
    for key in order:
        if key in TOPICS:  # a topic block whose notebook does not exist yet
            topic, three, four = TOPICS[key]
            rows.append(Row(key, topic, None, _uses(three, four, f"TOPICS[{key!r}]")))
            continue
        nb = notebooks.get(key)
        spec = PLAN.get(key)
        if nb is None:
            unmatched.append(f"{key}: the whole notebook (not in notebooks/)")
            continue
        if spec is None and key[:2] in TOPICS:
            topic, three, four = TOPICS[key[:2]]
            label = re.sub(r"^\d\d\s*·\s*", "", nb.title) + " (the whole notebook)"
            rows.append(
                Row(key, label, nb.code_seconds, _uses(three, four, f"TOPICS[{key[:2]!r}]"))
            )
            continue
        if spec is None:
            unplanned.extend(f"{key}: {s.heading}" for s in nb.sections)
            continue
        lines = [(h, _uses(t, f, f"PLAN[{key!r}] {h!r}")) for h, t, f in spec]
        used = [False] * len(lines)
        placed: dict[int, Row] = {}
        for section in nb.sections:
            hit = next(
                (
                    i
                    for i, (head, _) in enumerate(lines)
                    if not used[i] and head != BREAK and section.heading.startswith(head)
                ),
                None,
            )
            if hit is None:
                unplanned.append(f"{key}: {section.heading}")
                continue
            used[hit] = True
            placed[hit] = Row(key, section.heading, section.code_seconds, lines[hit][1])
        for i, (head, uses) in enumerate(lines):
            if head == BREAK:
                placed[i] = Row(key, "break", 0.0, uses)
            elif not used[i]:
                unmatched.append(f"{key}: {head}")
        rows.extend(placed[i] for i in sorted(placed))
    return Matched(rows, unplanned, unmatched)


@dataclasses.dataclass
class Total:
    code_seconds: float  # measured, in class (demo + hands-on)
    estimated_minutes: int  # reading + talk + exercises, in class
    break_minutes: int
    homework_minutes: int
    unmeasured_blocks: list[str]  # in-class blocks with no measured code (notebook not written)

    @property
    def minutes(self) -> float:
        return self.code_seconds / 60 + self.estimated_minutes + self.break_minutes


def totals(matched: Matched) -> dict[str, Total]:
    out = {}
    for plan in PLANS:
        code = est = brk = home = 0.0
        unmeasured = []
        for row in matched.rows:
            use = row.uses[plan]
            if use.mode == "break":
                brk += use.minutes
            elif use.mode == "homework":
                home += use.minutes
            elif use.mode in ("demo", "hands-on"):
                est += use.minutes
                if row.code_seconds is None:
                    unmeasured.append(row.notebook)
                else:
                    code += row.code_seconds
        out[plan] = Total(code, int(est), int(brk), int(home), unmeasured)
    return out


def plan_totals(folder: pathlib.Path = NOTEBOOKS) -> dict[str, Total]:
    """The totals of both plans, from the notebooks in ``folder`` (what the tests check)."""
    return totals(match(read_notebooks(folder)))


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------
def _clock(minutes: float) -> str:
    whole = int(round(minutes))
    return f"{whole // 60}:{whole % 60:02d}"


def _seconds(value: float | None) -> str:
    return "not written yet" if value is None else f"{value:.1f}"


def _where(row: Row, notebooks: dict[str, Notebook]) -> str:
    if row.label == "break":
        return "**Break**"
    if row.code_seconds is None:
        return f"{row.notebook} · {row.label} (notebook being written: planned by its topic)"
    return f"{row.notebook[:2]} · {row.label}"


def render_glance(plan: str, matched: Matched, notebooks: dict[str, Notebook]) -> list[str]:
    """One line per notebook (and break): when it starts, its minutes in class, what is left."""
    lines = [
        "At a glance (minutes: estimated reading, talk and exercises + measured code):",
        "",
        "| Starts | Notebook | In class (min) | Demo / hands-on sections | Homework (min) |",
        "|---|---|---|---|---|",
    ]
    clock = 0.0
    blocks: list[tuple[str, list[Row]]] = []
    for row in matched.rows:
        key = "break" if row.label == "break" else row.notebook
        if not blocks or blocks[-1][0] != key:
            blocks.append((key, []))
        blocks[-1][1].append(row)
    for key, rows in blocks:
        uses = [(r, r.uses[plan]) for r in rows if r.uses[plan].mode != "none"]
        if not uses:
            continue
        if key == "break":
            minutes = sum(u.minutes for _, u in uses)
            lines.append(f"| {_clock(clock)} | **Break** | {minutes} | | |")
            clock += minutes
            continue
        inside = [(r, u) for r, u in uses if u.mode in ("demo", "hands-on")]
        minutes = sum(u.minutes + (r.code_seconds or 0.0) / 60 for r, u in inside)
        home = sum(u.minutes for _, u in uses if u.mode == "homework")
        demo = sum(1 for _, u in inside if u.mode == "demo")
        hands = len(inside) - demo
        if key in notebooks:
            name = re.sub(r"^\d\d\s*·\s*", "", notebooks[key].title).split(":")[0]
            name = f"{key[:2]} · {name}"
        else:
            name = f"{key} · {rows[0].label} (being written)"
        start = _clock(clock) if inside else "homework"
        lines.append(
            f"| {start} | {name} | {minutes:.1f} | {demo} / {hands} | {home} |"
            if inside
            else f"| {start} | {name} | 0 | 0 / 0 | {home} |"
        )
        clock += minutes
    lines.append(f"| {_clock(clock)} | end | | | |")
    return lines + [""]


def render_plan(plan: str, matched: Matched, notebooks: dict[str, Notebook], total: Total) -> str:
    lines = [
        f"## The {plan[0]}-hour plan",
        "",
        *render_glance(plan, matched, notebooks),
        "Section by section:",
        "",
        "| Starts | Notebook · section | Mode | Code, measured (seconds from the stored run) "
        "| Reading + talk + exercises, estimated (min) |",
        "|---|---|---|---|---|",
    ]
    clock = 0.0
    homework = []
    for row in matched.rows:
        use = row.uses[plan]
        if use.mode == "none":
            continue
        if use.mode == "homework":
            homework.append(row)
            continue
        if use.mode == "break":
            lines.append(f"| {_clock(clock)} | **Break** | break | | {use.minutes} |")
        else:
            lines.append(
                f"| {_clock(clock)} | {_where(row, notebooks)} | {use.mode} "
                f"| {_seconds(row.code_seconds)} | {use.minutes} |"
            )
        clock += use.minutes + (row.code_seconds or 0.0) / 60
    lines.append(f"| {_clock(clock)} | end | | | |")
    lines += [
        "",
        f"**Total, {plan[0]}-hour plan:** code {total.code_seconds / 60:.1f} min measured "
        f"({total.code_seconds:.0f} s from the stored run) + reading, talk and exercises "
        f"{total.estimated_minutes} min estimated + breaks {total.break_minutes} min = "
        f"**{total.minutes:.1f} min** of {PLANS[plan]}.",
    ]
    if total.unmeasured_blocks:
        lines.append(
            f"Not measured yet (no notebook to time): {', '.join(total.unmeasured_blocks)}; "
            "its code time joins the total once it exists and has been executed."
        )
    lines += [
        "",
        f"Homework in this plan ({total.homework_minutes} min estimated):",
        "",
        "| Notebook · section | Code, measured (s) | At home, estimated (min) |",
        "|---|---|---|",
    ]
    for row in homework:
        lines.append(
            f"| {_where(row, notebooks)} | {_seconds(row.code_seconds)} | {row.uses[plan].minutes} |"
        )
    return "\n".join(lines) + "\n"


def render_notebook(nb: Notebook) -> str:
    lines = [f"### {nb.title}", ""]
    if nb.objectives:
        lines += ['Objectives, as the notebook states them (its "You will learn" cell):', ""]
        lines += [f"- {o}" for o in nb.objectives]
        lines.append("")
    if nb.time_line:
        lines += [f"The notebook's own time line: *{nb.time_line}*", ""]
    started = nb.run_started.strftime("%Y-%m-%d %H:%M UTC") if nb.run_started else "unknown"
    lines += [
        f"Measured code time per section (stored run started {started}; "
        f"{nb.code_seconds:.1f} s in all):",
        "",
        "| Section | Code cells | Code, measured (s) |",
        "|---|---|---|",
    ]
    lines += [f"| {s.heading} | {s.code_cells} | {s.code_seconds:.1f} |" for s in nb.sections]
    guide = f"{nb.stem[:2]}.md"
    lines += ["", f"Teaching notes (questions, hardware, exercises): [{guide}]({guide})", ""]
    return "\n".join(lines) + "\n"


def render(folder: pathlib.Path = NOTEBOOKS) -> str:
    notebooks = read_notebooks(folder)
    matched = match(notebooks)
    sums = totals(matched)
    stated = {k: nb.stated_minutes for k, nb in notebooks.items()}
    stated_core = sum(m or 0 for k, m in stated.items() if k[:2] <= "06")
    stated_all = sum(m or 0 for m in stated.values())
    parts = [
        "# Workshop plans (generated)",
        "",
        "<!-- Generated by scripts/workshop_plan.py from the notebooks' stored run times and the",
        "     plan spec in that script. Do not edit by hand: edit the spec, then re-render. -->",
        "",
        "Two plans for the course: 3 hours and 4 hours. Each row is one `##` section of a notebook.",
        "",
        "- **Code, measured**: the seconds its code cells took in the stored run (the cell metadata",
        "  of the notebooks' last top-to-bottom execution; kernel start-up not included). A learner's",
        "  laptop may be slower or faster: this is the machine the course was executed on.",
        "- **Reading + talk + exercises, estimated**: the minutes the plan gives the section in class,",
        "  an estimate written in the plan spec, not a measurement.",
        "- **Mode**: *demo* (you run it on the projector and talk it through; learners watch),",
        "  *hands-on* (learners run it and do its exercise), *homework* (after the workshop).",
        "",
        'The notebooks\' own "Time" lines add up to '
        f"{stated_core} min for 00-06 and {stated_all} min for all {len(stated)} notebooks: "
        "more than 3 hours, hence the demos and the homework below. How to run the day: "
        "[README.md](README.md).",
        "",
        "| Plan | Code, measured (min) | Reading + talk + exercises, estimated (min) | Breaks (min) "
        "| Total (min) | Available (min) | Homework, estimated (min) |",
        "|---|---|---|---|---|---|---|",
    ]
    for plan, total in sums.items():
        parts.append(
            f"| {plan[0]} hours | {total.code_seconds / 60:.1f} | {total.estimated_minutes} "
            f"| {total.break_minutes} | {total.minutes:.1f} | {PLANS[plan]} "
            f"| {total.homework_minutes} |"
        )
    parts.append("")
    if matched.unplanned or matched.unmatched:
        parts += ["**The plan spec is out of date with the notebooks:**", ""]
        parts += [f"- in a notebook, not in the plan: {u}" for u in matched.unplanned]
        parts += [f"- in the plan, not in a notebook: {u}" for u in matched.unmatched]
        parts.append("")
    out = "\n".join(parts) + "\n"
    for plan in PLANS:
        out += "\n" + render_plan(plan, matched, notebooks, sums[plan])
    out += "\n## Per notebook\n\n"
    out += "\n".join(render_notebook(nb) for nb in notebooks.values())
    for key, (topic, _, _) in TOPICS.items():
        if not any(stem.startswith(key) for stem in notebooks):
            out += (
                f"\n### {key} · {topic}\n\nNot in `notebooks/` yet: planned by its topic; "
                "its sections and their measured code time appear here once it exists.\n"
            )
    return out


def sync_objectives(text: str, nb: Notebook) -> str:
    """``text`` (a guide) with the lines between the objectives markers set to ``nb``'s."""
    head, sep, rest = text.partition(OBJECTIVES_START)
    _, sep2, tail = rest.partition(OBJECTIVES_END)
    if not sep or not sep2:
        return text
    block = [f"- {o}" for o in nb.objectives] or ["(the notebook states no objectives)"]
    return head + OBJECTIVES_START + "\n" + "\n".join(block) + "\n" + OBJECTIVES_END + tail


def outputs(
    out: pathlib.Path = OUTPUT, folder: pathlib.Path = NOTEBOOKS, guides: pathlib.Path = GUIDES
) -> dict[pathlib.Path, str]:
    """Every file a render writes: the plans, and each guide NN.md with objectives markers."""
    files = {out: render(folder)}
    notebooks = read_notebooks(folder)
    for guide in sorted(guides.glob("[0-9][0-9].md")):
        nb = next((n for stem, n in notebooks.items() if stem[:2] == guide.stem), None)
        text = guide.read_text(encoding="utf-8")
        if nb is not None and OBJECTIVES_START in text:
            files[guide] = sync_objectives(text, nb)
    return files


def check(
    out: pathlib.Path = OUTPUT, folder: pathlib.Path = NOTEBOOKS, guides: pathlib.Path = GUIDES
) -> int:
    """0 if every rendered file holds exactly a fresh render, else 1 (with a diff on stderr)."""
    stale = []
    for path, fresh in outputs(out, folder, guides).items():
        try:
            committed = path.read_text(encoding="utf-8")
        except OSError as err:
            print(f"{path}: cannot read it ({err})", file=sys.stderr)
            stale.append(path)
            continue
        if committed != fresh:
            diff = difflib.unified_diff(
                committed.splitlines(), fresh.splitlines(), str(path), "fresh", lineterm="", n=0
            )
            print("\n".join(list(diff)[:40]), file=sys.stderr)
            stale.append(path)
    if stale:
        names = ", ".join(str(p) for p in stale)
        print(
            f"{names}: not a fresh render of the notebooks: run python scripts/workshop_plan.py",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--out", type=pathlib.Path, default=OUTPUT)
    parser.add_argument("--notebooks", type=pathlib.Path, default=NOTEBOOKS)
    parser.add_argument("--guides", type=pathlib.Path, default=GUIDES)
    args = parser.parse_args(argv)
    try:
        if args.check:
            return check(args.out, args.notebooks, args.guides)
        files = outputs(args.out, args.notebooks, args.guides)
    except PlanError as err:
        print(f"workshop_plan: {err}", file=sys.stderr)
        return 2
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
