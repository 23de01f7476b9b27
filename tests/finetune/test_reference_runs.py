"""Reference GPU runs: loading, describing, plotting, and the script that records them."""

import json
import os
import pathlib
import shutil
import sys

import pytest
import torch

from course_utils.finetune import reference_runs as rr
from course_utils.finetune.runs import EXPERIMENT, RunResult
from course_utils.models import shipped_models

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "scripts"))
import record_reference_run  # noqa: E402


def _run(label, time_s=0.1, saved=1000, weights=4000, peak=None):
    return RunResult(
        label=label,
        precision=label if label in ("fp32", "bf16", "fp16") else "fp32",
        base_dtype="float32",
        model="tiny-gpt2",
        device="cuda:0",
        steps=3,
        batch_size=2,
        max_length=32,
        learning_rate=5e-3,
        train_loss=[(1, 5.0), (2, 4.5), (3, 4.0)],
        eval_loss=[(0, 5.5), (3, 4.2)],
        step_times_s=[1.0, time_s, time_s],
        saved_bytes=saved,
        weight_bytes=weights,
        trainable_params=10,
        cuda_peak_bytes=peak,
        weight_dtypes={"trainable": {"float32": 10}, "frozen": {"float32": 100}},
        audit={"ran": label, "verdict": "OK"},
    )


def _recording(tmp_path, name="nvidia-a100.json", **overrides):
    data = {
        "experiment": EXPERIMENT,
        "gpu": "NVIDIA A100-SXM4-80GB",
        "driver": "550.54",
        "versions": {"torch": "2.13.0"},
        "date": "2026-01-01T00:00:00+00:00",
        "command": "python scripts/record_reference_run.py",
        "runs": [
            rr.dataclasses.asdict(_run("fp32", 0.2)),
            rr.dataclasses.asdict(_run("bf16", 0.1)),
        ],
    }
    data.update(overrides)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_none_recorded_is_said_plainly(tmp_path):
    assert rr.load_reference_runs(tmp_path / "missing") == []
    assert rr.load_reference_runs(tmp_path) == []
    text = rr.describe([])
    assert text.startswith("No reference GPU runs have been recorded yet")
    assert "scripts/record_reference_run.py" in text


def test_shipped_reference_files_are_real_gpu_recordings():
    for recording in rr.load_reference_runs():
        assert not recording.smoke and "CPU" not in recording.gpu
        assert recording.driver and recording.versions.get("torch") and recording.command
        assert {run.label for run in recording.runs} >= {"fp32", "fp16"}
        assert all(run.step_times_s and run.cuda_peak_bytes for run in recording.runs)


def test_recordings_round_trip_and_other_files_are_skipped(tmp_path):
    _recording(tmp_path)
    (tmp_path / "bench-cpu-2026.json").write_text(json.dumps({"kind": "bench"}))
    (tmp_path / "half-written.json").write_text("{")
    _recording(tmp_path, name="cpu-smoke.json", smoke=True, gpu="none (CPU smoke test)")
    recordings = rr.load_reference_runs(tmp_path)
    assert [r.gpu for r in recordings] == ["NVIDIA A100-SXM4-80GB"]
    runs = recordings[0].runs
    assert runs[0].train_loss == [(1, 5.0), (2, 4.5), (3, 4.0)] and runs[1].label == "bf16"
    assert "NVIDIA A100-SXM4-80GB (driver 550.54, torch 2.13.0" in rr.describe(recordings)


def test_malformed_files_name_the_file_and_the_problem(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        rr.read_recording(bad)
    path = _recording(tmp_path, name="nodriver.json")
    data = json.loads(path.read_text())
    del data["driver"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="nodriver.json lacks driver"):
        rr.read_recording(path)
    path = _recording(tmp_path, name="badrun.json", runs=[{"label": "fp32", "typo": 1}])
    with pytest.raises(ValueError, match="badrun.json: a run record is malformed"):
        rr.read_recording(path)


def test_relative_figures_and_plot():
    runs = [
        _run("fp32", 0.2, peak=2000),
        _run("bf16", 0.1, peak=1500),
        _run("fp16", 0.1, peak=1000),
    ]
    figures = rr.relative_figures(runs)
    assert figures["bf16"]["time"] == pytest.approx(0.5)
    assert figures["fp16"]["memory"] == pytest.approx(0.5)  # CUDA peak when measured
    with pytest.raises(ValueError, match="an 'fp32' run"):
        rr.relative_figures(runs[1:])
    fig = rr.plot_speed_and_memory(runs, [])
    assert "no reference GPU runs recorded yet" in fig._suptitle.get_text()
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_gpu_file_name():
    assert rr.gpu_file_name("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3.json"
    with pytest.raises(ValueError):
        rr.gpu_file_name(" ")


# ------------------------------------------------------------------ the recording script


def test_script_refuses_to_write_smoke_runs_into_data_and_needs_a_gpu_otherwise():
    with pytest.raises(SystemExit):
        record_reference_run.parse_args(["--smoke"])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            record_reference_run.parse_args([])


def test_script_checks_out_before_any_training(tmp_path, monkeypatch, capsys):
    # issue 13 item 8: --out was checked only after the whole (GPU) run
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit) as stop:
        record_reference_run.parse_args(["--smoke", "--out", str(tmp_path / "file" / "ref")])
    assert stop.value.code == 2 and "is a file, not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        record_reference_run.parse_args(["--smoke", "--out", str(tmp_path / "file")])
    args = record_reference_run.parse_args(["--smoke", "--out", str(tmp_path / "new")])
    assert args.out == tmp_path / "new" and not args.out.exists()  # creatable: accepted


def test_script_writes_its_file_atomically(tmp_path, monkeypatch):
    path = record_reference_run.save_payload({"runs": [1]}, tmp_path / "out", "gpu.json")
    assert json.loads(path.read_text()) == {"runs": [1]}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        record_reference_run.save_payload({"runs": [2]}, tmp_path / "out", "gpu.json")
    assert json.loads(path.read_text()) == {"runs": [1]}
    assert [f.name for f in path.parent.iterdir()] == ["gpu.json"]


@pytest.mark.skipif("tiny-gpt2" not in shipped_models(), reason="the shipped tiny-gpt2 is missing")
def test_script_smoke_run_writes_a_complete_measured_file(tmp_path):
    path = record_reference_run.main(
        ["--smoke", "--models", "gpt2-small-sized", "--out", str(tmp_path)]
    )
    data = json.loads(path.read_text())
    for key in ("gpu", "driver", "versions", "date", "command", "settings", "runs"):
        assert data[key] is not None or key in ("driver",)
    assert set(data["versions"]) >= {"torch", "transformers", "trl", "peft"}
    assert data["smoke"] is True and data["command"].startswith(
        "python scripts/record_reference_run.py"
    )
    recording = rr.read_recording(path)
    labels = [run.label for run in recording.runs]
    assert labels == [label for label, _, _ in record_reference_run.RUNS]
    for run in recording.runs:
        assert len(run.step_times_s) == 2 and all(t > 0 for t in run.step_times_s)
        assert run.saved_bytes > 0 and run.weight_bytes > 0 and run.audit["verdict"]
        assert run.model == record_reference_run.SMALL_MODEL
    assert rr.load_reference_runs(tmp_path) == []  # smoke files are never shown as GPU runs
    shutil.rmtree(tmp_path)
