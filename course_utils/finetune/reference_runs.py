"""Reference GPU runs of notebook 05's comparison: load them, describe them, plot them beside yours.

Taught in notebook 05, section "6. On a GPU".

``scripts/record_reference_run.py`` runs the fp32 / bf16 / fp16 fine-tuning comparison on a GPU
and writes ``data/reference_runs/<gpu>.json``: GPU name, driver, library versions, date, the
exact command and every measured figure. Nothing in those files is typed by hand.

>>> recordings = load_reference_runs()             # [] when none has been recorded yet
>>> print(describe(recordings))                    # doctest: +SKIP
>>> plot_speed_and_memory(my_runs, recordings)     # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re

from course_utils.data import data_dir
from course_utils.finetune.runs import EXPERIMENT, RunResult

REQUIRED_KEYS = ("experiment", "gpu", "driver", "versions", "date", "command", "runs")


@dataclasses.dataclass
class Recording:
    """One reference file: where and how it was recorded, and its runs."""

    path: pathlib.Path
    gpu: str
    driver: str
    versions: dict[str, str]
    date: str
    command: str
    runs: list[RunResult]
    smoke: bool = False

    def models(self) -> list[str]:
        return sorted({run.model for run in self.runs})


def reference_runs_dir() -> pathlib.Path:
    """``data/reference_runs``."""
    return data_dir() / "reference_runs"


def gpu_file_name(gpu_name: str) -> str:
    """A file name for a GPU: ``"NVIDIA H100 80GB HBM3"`` -> ``"nvidia-h100-80gb-hbm3.json"``."""
    if not isinstance(gpu_name, str) or not gpu_name.strip():
        raise ValueError(f"GPU name must be a non-empty string, got {gpu_name!r}")
    slug = re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-")
    return f"{slug}.json"


def read_recording(path: str | pathlib.Path) -> Recording:
    """Parse one reference file; a clear ValueError names the file and what is wrong with it."""
    path = pathlib.Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}: it was not written by the script")
    try:
        runs = [RunResult.from_dict(run) for run in data["runs"]]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: a run record is malformed: {exc}") from exc
    return Recording(
        path=path,
        gpu=data["gpu"],
        driver=data["driver"],
        versions=dict(data["versions"]),
        date=data["date"],
        command=data["command"],
        runs=runs,
        smoke=bool(data.get("smoke", False)),
    )


def load_reference_runs(
    directory: str | pathlib.Path | None = None, experiment: str = EXPERIMENT
) -> list[Recording]:
    """Every recording of ``experiment`` in ``directory`` (default ``data/reference_runs``),
    sorted by GPU name. Files of other experiments (notebook 07's benchmarks share the folder),
    files that are not JSON and CPU smoke tests are skipped; a missing folder means none has
    been recorded."""
    folder = pathlib.Path(directory) if directory is not None else reference_runs_dir()
    if not folder.is_dir():
        return []
    recordings = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue  # not readable as JSON: not a recording of ours (read_recording says why)
        if not isinstance(data, dict) or data.get("experiment") != experiment:
            continue
        recording = read_recording(path)
        if not recording.smoke:
            recordings.append(recording)
    return sorted(recordings, key=lambda r: r.gpu)


def describe(recordings: list[Recording]) -> str:
    """A few lines saying which reference runs there are, or plainly that there are none."""
    if not recordings:
        return (
            f"No reference GPU runs have been recorded yet ({_shown(reference_runs_dir())} holds "
            "none for this notebook).\nWith a GPU, record one: python scripts/record_reference_run.py "
            "(it writes data/reference_runs/<gpu>.json)."
        )
    lines = []
    for rec in recordings:
        torch_version = rec.versions.get("torch", "?")
        lines.append(
            f"{rec.gpu} (driver {rec.driver}, torch {torch_version}, {rec.date}): "
            f"{len(rec.runs)} runs, models {', '.join(rec.models())}"
        )
    return "\n".join(lines)


def relative_figures(runs: list[RunResult]) -> dict[str, dict[str, float]]:
    """Per run label: time per step and memory relative to the fp32 run of the same list
    (1.0 = same as fp32). Memory is the CUDA peak when measured, else the bytes saved for
    backward plus the weights."""
    base = next((run for run in runs if run.label == "fp32"), None)
    if base is None:
        raise ValueError("relative figures need an 'fp32' run to compare with")
    out = {}
    for run in runs:
        out[run.label] = {
            "time": run.time_per_step_s / base.time_per_step_s,
            "memory": _memory(run) / _memory(base),
        }
    return out


def plot_speed_and_memory(my_runs: list[RunResult], recordings: list[Recording], model: str = ""):
    """Bars of time per step and memory relative to fp32: your runs, then each reference GPU's
    runs of ``model`` (default: the model of your runs). Says so in the title when there are no
    reference runs."""
    import matplotlib.pyplot as plt

    model = model or my_runs[0].model
    groups = [("your device: " + my_runs[0].device, my_runs)]
    for rec in recordings:
        runs = [run for run in rec.runs if run.model == model]
        if runs:
            groups.append((rec.gpu, runs))
    labels = [run.label for run in my_runs]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.8 / len(groups)
    for g, (name, runs) in enumerate(groups):
        figures = relative_figures(runs)
        for ax, key in zip(axes, ("time", "memory"), strict=True):
            xs = [i + g * width for i, label in enumerate(labels) if label in figures]
            ys = [figures[label][key] for label in labels if label in figures]
            ax.bar(xs, ys, width=width, label=name, color=f"C{g}")
    for ax, what in zip(axes, ("time per step", "memory"), strict=True):
        ax.axhline(1.0, color="gray", linewidth=1)
        ax.set_xticks([i + width * (len(groups) - 1) / 2 for i in range(len(labels))], labels)
        ax.set_ylabel(f"{what} relative to fp32")
        ax.legend(fontsize=8)
    note = "" if recordings else " (no reference GPU runs recorded yet)"
    fig.suptitle(f"{model}: relative to fp32 on the same device{note}")
    fig.text(
        0.5,
        0.01,
        "memory: the CUDA peak on a GPU; on a CPU, the weights plus the bytes saved for backward",
        ha="center",
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def _memory(run: RunResult) -> float:
    if run.cuda_peak_bytes:
        return float(run.cuda_peak_bytes)
    return float(run.saved_bytes + run.weight_bytes)


def _shown(path: pathlib.Path) -> str:
    try:
        return str(path.relative_to(data_dir().parent))
    except ValueError:
        return str(path)
