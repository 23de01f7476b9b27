#!/usr/bin/env python
"""Execute notebooks top to bottom, each in a fresh kernel, the way they are committed.

    python scripts/execute_notebooks.py [NOTEBOOK ...] [--force] [--max-load X]

With no NOTEBOOK, every ``notebooks/NN_*.ipynb`` in course order. Each notebook is run in place
(execution counts 1..N, cells tagged ``raises-exception`` may raise) and its wall time printed.

Timing outputs are read by every learner, so the script refuses to start when the machine is
busy: the 1-minute load average must be below ``--max-load`` (default: the number of usable
cores). It checks again after each notebook and stops if the machine became busy meanwhile.
``--force`` skips the check (for a quick local run you will not commit).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import nbformat
from nbconvert.preprocessors import ExecutePreprocessor

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO_ROOT / "notebooks"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def busy_reason(max_load: float) -> str | None:
    """Why the machine is too busy for timings to be committed, or None if it is idle enough."""
    load = os.getloadavg()[0]
    if load >= max_load:
        return f"load average {load:.1f} >= {max_load:g} (usable cores: {usable_cores()})"
    return None


def execute(path: pathlib.Path, timeout: int = 600) -> float:
    """Run ``path`` in a fresh kernel, write it back; return the wall time in seconds."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    ExecutePreprocessor(timeout=timeout, kernel_name="python3").preprocess(
        nb, {"metadata": {"path": str(path.parent)}}
    )
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=pathlib.Path)
    parser.add_argument("--force", action="store_true", help="run even on a busy machine")
    parser.add_argument("--max-load", type=float, default=float(usable_cores()))
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for path in paths:
        reason = None if args.force else busy_reason(args.max_load)
        if reason:
            print(
                f"refusing to execute {path.name}: the machine is busy ({reason}).", file=sys.stderr
            )
            print(
                "Wait until it is idle, or pass --force for a run you will not commit.",
                file=sys.stderr,
            )
            return 3
        seconds = execute(path)
        print(f"{path.name}: {seconds:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
