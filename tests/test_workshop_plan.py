"""The workshop plans (scripts/workshop_plan.py, instructors/workshop_plan.md).

The committed plan is a fresh render of the notebooks' stored run times, and each plan fits its
hours: measured code time + estimated reading/exercise time + breaks.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "workshop_plan", REPO_ROOT / "scripts/workshop_plan.py"
)
wp = importlib.util.module_from_spec(_spec)
sys.modules["workshop_plan"] = wp  # dataclasses look their module up there
_spec.loader.exec_module(wp)


def test_committed_plan_is_a_fresh_render():
    # After re-executing notebooks, re-render: python scripts/workshop_plan.py
    assert wp.main(["--check"]) == 0


@pytest.mark.parametrize("plan, minutes", [("3h", 180), ("4h", 240)])
def test_plan_fits_its_hours(plan, minutes):
    total = wp.plan_totals()[plan]
    assert total.minutes <= minutes, (
        f"{plan}: code {total.code_seconds / 60:.1f} min (measured) + "
        f"{total.estimated_minutes} min (estimated) + breaks {total.break_minutes} min "
        f"= {total.minutes:.1f} min > {minutes}"
    )
    assert wp.PLANS[plan] == minutes


def test_every_section_is_placed_by_the_plan():
    matched = wp.match(wp.read_notebooks())
    assert matched.unplanned == [], "sections no plan places: add them to PLAN"
    assert matched.unmatched == [], "PLAN lines that match no section: update them"


def test_the_core_notebooks_are_taught_in_both_plans():
    # The README promises 00-06 in depth: every one of them has in-class sections in both plans.
    rows = wp.match(wp.read_notebooks()).rows
    for plan in wp.PLANS:
        taught = {r.notebook[:2] for r in rows if r.uses[plan].mode in ("demo", "hands-on")}
        assert {f"0{i}" for i in range(7)} <= taught, plan


# --- the script on small notebooks of its own -------------------------------------------------


def _cell(kind, source, start=None, seconds=None, tags=()):
    cell = {"cell_type": kind, "metadata": {"tags": list(tags)}, "source": source}
    if kind == "code":
        cell.update(execution_count=1, outputs=[])
        if start is not None:
            begin = f"2026-01-01T00:00:{start:09.6f}Z"
            end = f"2026-01-01T00:00:{start + seconds:09.6f}Z"
            cell["metadata"]["execution"] = {
                "iopub.execute_input": begin,
                "shell.execute_reply": end,
            }
    return cell


def _write(folder, stem, cells):
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = folder / f"{stem}.ipynb"
    path.write_text(json.dumps(nb))
    return path


HEADER = (
    "# 42 · A test notebook\n\n**You will learn**\n- one thing;\n- another thing,\n"
    "  on two lines.\n\n**Time:** about 12 minutes.\n"
)


def test_sections_sum_their_code_cells(tmp_path):
    path = _write(
        tmp_path,
        "42_test",
        [
            _cell("markdown", HEADER),
            _cell("code", "x = 1", start=0.0, seconds=1.5),  # before the first ## heading
            _cell("markdown", "## One\ntext\n### a subsection does not split\n"),
            _cell("code", "y = 2", start=2.0, seconds=2.25),
            _cell("markdown", "```bash\n## a comment in a fence is no heading\n```"),
            _cell("code", "z = 3", start=5.0, seconds=0.25),
            _cell("markdown", "## Two"),
        ],
    )
    nb = wp.read_notebook(path)
    assert [(s.heading, s.code_cells, s.code_seconds) for s in nb.sections] == [
        (wp.OPENING, 1, 1.5),
        ("One", 2, 2.5),
        ("Two", 0, 0.0),
    ]
    assert nb.objectives == ["one thing;", "another thing, on two lines."]
    assert nb.stated_minutes == 12 and nb.code_seconds == 4.0


def test_a_code_cell_without_stored_times_is_refused(tmp_path):
    path = _write(tmp_path, "42_test", [_cell("markdown", HEADER), _cell("code", "x = 1")])
    with pytest.raises(wp.PlanError, match=r"code cells \[1\] have no stored execution times"):
        wp.read_notebook(path)


def test_a_notebook_still_being_written_is_planned_by_its_topic(tmp_path, monkeypatch):
    # 09 has its own PLAN lines now; plan it by its topic again, as before it was written.
    plan = {k: v for k, v in wp.PLAN.items() if not k.startswith("09")}
    monkeypatch.setattr(wp, "PLAN", plan)
    topic = ("The classic failures, broken on purpose", "homework 25", "hands-on 20")
    monkeypatch.setattr(wp, "TOPICS", {"09": topic})
    matched = wp.match(wp.read_notebooks(tmp_path))
    block = next(r for r in matched.rows if r.notebook == "09")
    assert block.code_seconds is None and "broken on purpose" in block.label

    _write(
        tmp_path,
        "09_classic_failures",
        [
            _cell("markdown", "# 09 · Classic failures\n"),
            _cell("markdown", "## Failure 1"),
            _cell("code", "pass", start=0.0, seconds=3.0),
        ],
    )
    rows = wp.match(wp.read_notebooks(tmp_path)).rows
    block = next(r for r in rows if r.notebook.startswith("09"))
    assert block.code_seconds == 3.0 and block.label.startswith("Classic failures")
    assert "| Failure 1 | 1 | 3.0 |" in wp.render(tmp_path)


def test_check_fails_on_a_stale_file_and_passes_on_a_fresh_one(tmp_path, capsys):
    _write(tmp_path, "00_start_here", [_cell("markdown", HEADER), _cell("markdown", "## Setup")])
    out = tmp_path / "plan.md"
    out.write_text("an old plan\n")
    guide = tmp_path / "00.md"
    guide.write_text(
        f"# 00\n{wp.OBJECTIVES_START}\n- an old objective\n{wp.OBJECTIVES_END}\nnotes\n"
    )
    args = ["--out", str(out), "--notebooks", str(tmp_path), "--guides", str(tmp_path)]
    assert wp.main(["--check", *args]) == 1
    assert "not a fresh render" in capsys.readouterr().err
    assert wp.main(args) == 0
    assert wp.main(["--check", *args]) == 0
    assert "in the plan, not in a notebook: 00_start_here: How the course works" in out.read_text()
    assert guide.read_text() == (
        f"# 00\n{wp.OBJECTIVES_START}\n- one thing;\n- another thing, on two lines.\n"
        f"{wp.OBJECTIVES_END}\nnotes\n"
    )


@pytest.mark.parametrize("text", ["demo", "lecture 5", "demo five", "demo 5 6"])
def test_a_malformed_plan_line_is_refused(text):
    with pytest.raises(wp.PlanError, match="MODE MINUTES"):
        wp.parse_use(text, "PLAN['00'] 'Setup'")
