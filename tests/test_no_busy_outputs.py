"""No committed notebook output was recorded on a busy machine.

The benchmarks of notebook 07 (``course_utils.bench``) say so in a note that starts with
``bench_core.BUSY_MARKER`` when other processes competed for the CPU while they were timed. Such
a note is fine in a learner's own run, never in a committed notebook: its timings are not what
the course's text describes. Re-execute the notebook on an idle machine (load average below the
core count) if this fails.
"""

from __future__ import annotations

import json

import pytest
from conftest import REPO_ROOT

from course_utils.bench.timing import BUSY_MARKER

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def output_texts(notebook: dict) -> list[tuple[int, str]]:
    """(cell index, text) of every text output of a notebook (streams, results, errors)."""
    texts = []
    for index, cell in enumerate(notebook.get("cells", [])):
        for out in cell.get("outputs", []):
            parts = [out.get("text", "")]
            parts += [out.get("data", {}).get(k, "") for k in ("text/plain", "text/html")]
            parts += out.get("traceback", [])
            for part in parts:
                texts.append((index, "".join(part) if isinstance(part, list) else str(part)))
    return texts


def busy_cells(notebook: dict) -> list[int]:
    return sorted({i for i, text in output_texts(notebook) if BUSY_MARKER in text})


def test_the_scan_finds_a_busy_note_wherever_it_is_printed():
    note = f"note: {BUSY_MARKER}: other processes used 1.7 of its 2 cores"
    notebook = {
        "cells": [
            {"cell_type": "code", "outputs": [{"output_type": "stream", "text": ["ok\n"]}]},
            {"cell_type": "code", "outputs": [{"output_type": "stream", "text": [note]}]},
            {"cell_type": "code", "outputs": [{"data": {"text/plain": [note]}}]},
        ]
    }
    assert busy_cells(notebook) == [1, 2]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_committed_output_was_recorded_on_a_busy_machine(path):
    cells = busy_cells(json.loads(path.read_text(encoding="utf-8")))
    assert not cells, (
        f"{path.name}: cells {cells} print '{BUSY_MARKER}': their timings were recorded while "
        "other processes competed for the CPU. Re-execute the notebook on an idle machine."
    )
