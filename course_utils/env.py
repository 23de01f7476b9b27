"""``setup(seed)``: the one call at the top of every notebook.

Taught in notebook 00, section "Setup" (every notebook starts with ``setup``).

It seeds every random generator, picks the device, sets print options that make outputs
readable and reproducible, and builds a one-line hardware report.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

MAX_SEED = 2**64  # torch.manual_seed takes 0 <= seed < 2**64

# Quieter, deterministic-by-default library behaviour for notebooks and tests.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass
class CourseEnv:
    """What ``setup`` found: the device to use, the seed, and a one-line hardware report."""

    device: torch.device
    seed: int
    report: str
    hardware: Any = field(repr=False, default=None)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (all devices).

    ``seed`` is an int in ``0 <= seed < 2**64`` (torch's generators take 64 bits)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < MAX_SEED:
        if isinstance(seed, int) and not isinstance(seed, bool) and seed.bit_length() > 256:
            # repr() of an int over 4300 digits raises
            shown = f"an int of about {int(seed.bit_length() * 0.30103) + 1} digits"
        else:
            shown = repr(seed)
        raise ValueError(f"seed must be a non-negative int below 2**64, got {shown}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the global generator learners and libraries use
    torch.manual_seed(seed)


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The device the course uses: ``device`` if given, else ``$COURSE_DEVICE``, else CUDA if
    available, else the CPU. (Apple MPS is reported but not picked automatically: its autocast
    covers fewer ops, so the CPU path is the one the notebooks are tested on.)"""
    choice = device if device is not None else os.environ.get("COURSE_DEVICE")
    if choice is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(choice)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {choice!r}: use 'cpu', 'cuda' or 'cuda:N'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {choice!r} asked for, but this machine has no CUDA GPU")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise RuntimeError(
            f"device {choice!r} asked for, but this machine has {torch.cuda.device_count()} CUDA "
            f"GPU(s): use 'cuda:0' .. 'cuda:{torch.cuda.device_count() - 1}'"
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"device {choice!r} asked for, but Apple MPS is not available here")
    return dev


def setup(
    seed: int = 0, device: str | torch.device | None = None, quiet: bool = False
) -> CourseEnv:
    """Seed everything, choose the device, set print options, and print a one-line report.

    >>> env = setup(seed=0)          # doctest: +SKIP
    >>> env.device, env.report       # doctest: +SKIP
    """
    from course_utils import hardware

    seed_everything(seed)
    dev = pick_device(device)
    torch.set_printoptions(precision=4, sci_mode=None, linewidth=100)
    np.set_printoptions(precision=4, suppress=True, linewidth=100)
    _style_plots()
    hw = hardware.detect()
    here = hardware.recommend_for_device(dev).precision  # for the device the notebooks run on
    best = hardware.recommend_precision().precision  # for the machine's GPU, when it is not used
    rec = here if best == here else f"{here} (on its GPU: {best})"
    report = f"device: {dev} | {hw.one_line()} | torch {torch.__version__} | recommended: {rec}"
    env = CourseEnv(device=dev, seed=seed, report=report, hardware=hw)
    if not quiet:
        print(report)
    return env


def _style_plots() -> None:
    """Readable, consistent matplotlib defaults (no-op when matplotlib is absent)."""
    try:
        import matplotlib as mpl
    except ImportError:  # pragma: no cover - matplotlib is a course requirement
        return
    mpl.rcParams.update(
        {
            "figure.figsize": (8, 4.5),
            "figure.dpi": 100,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "svg.hashsalt": "course",
        }
    )


def in_notebook_kernel() -> bool:
    """True inside a Jupyter kernel, where a frontend may render widgets; False in a plain
    Python process or an IPython terminal. The quizzes and the loss-scale explorer use it to
    choose between a widget and printed text."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a course requirement
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


@contextlib.contextmanager
def library_progress_bars_off():
    """Hide transformers' and datasets' own progress bars ("Loading weights", "Tokenizing train
    dataset") inside the block: they would land in notebook outputs. datasets is silenced when it
    has been imported (code that tokenizes with it imports it first). The course's own tqdm bars,
    which show the learner that a long cell is working, are not affected."""
    from transformers.utils import logging as hf_logging

    libraries = [hf_logging]
    if "datasets" in sys.modules:  # importing datasets only to silence it would cost a second
        from datasets.utils import logging as ds_logging

        libraries.append(ds_logging)
    was_enabled = [(lib, lib.is_progress_bar_enabled()) for lib in libraries]
    for lib, _ in was_enabled:
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib, enabled in was_enabled:
            if enabled:
                lib.enable_progress_bar()
