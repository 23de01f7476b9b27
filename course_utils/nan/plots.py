"""The figures of notebook 06: a run that turns NaN, the fixes compared on it, and activations
approaching fp16's maximum.

Taught in notebook 06: ``plot_stable_then_nan`` in section "1. A run that is stable for 100
steps, then NaN"; ``plot_fixes`` in "3. Fixes compared on the same run"; ``plot_late_losses`` in
its part "Three causes, three different fixes"; ``plot_absmax_traces`` in "4. When fp16's range
*is* the cause: fixes that exist on a T4". Each takes the course's ``History`` objects (what
``BadBatchScenario.train`` returns), draws with matplotlib and returns the Figure; the notebook
calls ``plt.show()``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from course_utils.nan.debug import first_nonfinite_step
from course_utils.train import History

STATUS_COLORS = {"finite": "tab:green", "NaN": "tab:red", "not run": "0.85"}


def _check_history(history, what: str = "history") -> None:
    if not isinstance(history, History):
        raise TypeError(
            f"{what} must be a History (what scenario.train returns), got {type(history).__name__}"
        )
    if len(history) == 0:
        raise ValueError(f"{what} is empty: train at least one step first")


def _check_runs(runs, what: str) -> None:
    if not isinstance(runs, Mapping) or not runs:
        raise TypeError(f"{what} must be a non-empty dict of name -> History")
    for name, run in runs.items():
        _check_history(run, f"{what}[{name!r}]")


def plot_stable_then_nan(history: History, first_bad: int, label: str) -> Figure:
    """Loss (top) and gradient norm (bottom, log scale) per step, with the steps from
    ``first_bad`` on shaded red: a NaN has no point to draw."""
    _check_history(history)
    if isinstance(first_bad, bool) or not isinstance(first_bad, int) or first_bad < 1:
        raise ValueError(f"first_bad must be a step number (an int >= 1), got {first_bad!r}")
    fig, (ax_loss, ax_norm) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    steps = history.column("step")
    ax_loss.plot(steps, history.losses, label=label)
    ax_norm.plot(steps, history.column("grad_norm"), label=label)
    for ax in (ax_loss, ax_norm):
        ax.axvspan(first_bad, len(history) + 0.5, color="tab:red", alpha=0.12)
    ax_loss.text(
        first_bad + 0.5, 0.92, "NaN", color="tab:red", transform=ax_loss.get_xaxis_transform()
    )
    ax_loss.set_ylabel("loss")
    ax_norm.set_ylabel("gradient norm")
    ax_norm.set_yscale("log")
    ax_norm.set_xlabel("step")
    ax_loss.set_title(
        f"Stable for {first_bad - 1} steps, then NaN from step {first_bad} on "
        "(red: nothing left to draw)"
    )
    fig.tight_layout()
    return fig


def plot_fixes(
    history: History,
    runs: Mapping[str, History],
    *,
    bad_step: int = 101,
    last_step: int = 120,
    context: int = 11,
) -> Figure:
    """Two panels for runs resumed from the checkpoint before ``bad_step``. Top: the loss of the
    original run over its last ``context`` steps before ``bad_step`` (black), and of every run in
    ``runs`` that has a finite step after its first (a run that is NaN from its first step has
    nothing to draw); the run whose name contains "skip" is dashed (the two finite runs nearly
    coincide). Bottom: one row per run, one cell per step from ``bad_step`` to ``last_step``:
    finite, NaN, or not run."""
    _check_history(history)
    _check_runs(runs, "runs")
    if not 0 < bad_step <= last_step:
        raise ValueError(f"need 0 < bad_step <= last_step, got {bad_step} and {last_step}")
    fig, (ax, ax_status) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True, height_ratios=[3, 2])
    before = slice(bad_step - 1 - context, bad_step - 1)
    ax.plot(
        history.column("step")[before],
        history.losses[before],
        color="black",
        linewidth=2,
        label="original run",
    )
    for row, (name, run) in enumerate(runs.items()):
        dead_at = first_nonfinite_step(run)
        if not dead_at or dead_at > run[0].step:
            dashed = "skip" in name
            ax.plot(
                run.column("step"),
                run.losses,
                label=name,
                linestyle="--" if dashed else "-",
                linewidth=3 if dashed else 1.5,
                alpha=0.8,
            )
        status = {r.step: "finite" if math.isfinite(r.loss) else "NaN" for r in run}
        for step in range(bad_step, last_step + 1):
            color = STATUS_COLORS[status.get(step, "not run")]
            ax_status.barh(row, 1, left=step - 0.5, color=color, edgecolor="white")
    ax.axvline(bad_step - 0.5, color="tab:red", linestyle="--", linewidth=1)
    ax.set_ylabel("loss")
    ax.set_ylim(-0.2, 6)
    ax.set_xlim(bad_step - 1 - context + 0.5, last_step + 0.5)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(
        f"Fixes resumed from the step-{bad_step - 1} checkpoint "
        "(the clamped loss is 0 on the empty batch)"
    )
    ax_status.set_yticks(range(len(runs)), list(runs), fontsize=8)
    ax_status.invert_yaxis()
    ax_status.set_xlabel("step")
    ax_status.legend(
        handles=[Patch(color=color, label=label) for label, color in STATUS_COLORS.items()],
        loc="upper right",
        fontsize=8,
        ncols=3,
        bbox_to_anchor=(1, 1.25),
    )
    ax_status.set_title("each step of each run", fontsize=9, loc="left")
    fig.tight_layout()
    return fig


def plot_late_losses(
    history: History, compared: Mapping[str, History], *, resumed_at: int = 100, context: int = 11
) -> Figure:
    """The loss of runs resumed at step ``resumed_at`` after the original run's last ``context``
    steps (black). Runs whose name starts with "(a)" are dashed and drawn from their second step
    (their first is the planted outlier's huge loss)."""
    _check_history(history)
    _check_runs(compared, "compared")
    fig, ax = plt.subplots(figsize=(9, 4))
    before = slice(resumed_at - context, resumed_at)
    ax.plot(
        history.column("step")[before],
        history.losses[before],
        color="black",
        linewidth=2,
        label=f"steps {resumed_at - context + 1}-{resumed_at}",
    )
    for name, run in compared.items():
        first = 1 if name.startswith("(a)") else 0
        ax.plot(
            run.column("step")[first:],
            run.losses[first:],
            label=name,
            linestyle="--" if name.startswith("(a)") else "-",
        )
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    ax.set_title(f"bf16, AdamW, resumed from step {resumed_at}: no run here goes NaN")
    return fig


def plot_absmax_traces(
    traces: Mapping[str, Sequence[tuple[str, float]]],
    *,
    limit: float = 65504.0,
    limit_label: str = "fp16 max, 65504",
    title: str = "DebugUnderflowOverflow's trace (fp16 emulated): c_proj outputs approaching 65504",
) -> Figure:
    """One line per trace: the absolute max of each module's output, in module order (the
    ``[(module, abs max)]`` of ``DebuggerRun.output_absmax``), log scale, with ``limit`` dashed.
    The first trace names the x axis; inf and NaN are drawn above the limit, at 2e5 (or at
    3 x ``limit`` for a limit above 2e5 / 3)."""
    if not isinstance(traces, Mapping) or not traces:
        raise TypeError("traces must be a non-empty dict of label -> [(module, abs max), ...]")
    first = next(iter(traces.values()))
    for label, trace in traces.items():
        if len(trace) != len(first) or any(len(item) != 2 for item in trace):
            raise ValueError(
                f"trace {label!r}: every trace must be [(module, abs max), ...] over the same "
                f"{len(first)} modules"
            )
    off_scale = max(2e5, 3 * float(limit))  # where inf and NaN are drawn: above the limit
    fig, ax = plt.subplots(figsize=(9, 4))
    names = [name.removeprefix("transformer.") for name, _ in first]
    for label, trace in traces.items():
        values = [v if math.isfinite(v) else off_scale for _, v in trace]
        ax.plot(names, values, marker="o", label=label)
    ax.axhline(limit, color="tab:red", linestyle="--", label=limit_label)
    ax.set_yscale("log")
    ax.set_ylabel("abs max of the output")
    ax.tick_params(axis="x", rotation=45)
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


__all__ = ["plot_absmax_traces", "plot_fixes", "plot_late_losses", "plot_stable_then_nan"]
