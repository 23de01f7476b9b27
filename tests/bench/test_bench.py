"""course_utils.bench (matmul throughput, peaks, training steps, memory vs batch), the
scripts/bench.py CLI and the CPU-safe parts of scripts/gpu_check.sh."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import time

import pytest
import torch
from conftest import REPO_ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.bench import matmul as bench
from course_utils.bench import timing as bench_core
from course_utils.bench import train_step as bench_train
from course_utils.hardware.peaks import GPU_PEAKS, lookup_peak


@pytest.fixture(autouse=True)
def idle_cpu(monkeypatch):
    """These tests check the benchmarks' logic, not this machine's load: make the CPU look idle
    (the busy detector has its own tests, which patch it the other way)."""
    monkeypatch.setattr(bench_core, "_system_busy_seconds", lambda: None)
    monkeypatch.setattr(bench_core, "_load_average", lambda: 0.0)


# ------------------------------------------------------------------------------------- timing
def test_time_call_takes_the_median_after_warmup():
    calls = []

    def fn():
        calls.append(time.perf_counter())
        time.sleep(0.002 if len(calls) != 3 else 0.2)  # one slow call must not move the median

    timing = bench_core.time_call(fn, "cpu", warmup=1, reps=7, budget_s=10.0)
    assert len(calls) == 1 + 7 and timing.reps == 7 and timing.warmup == 1
    assert 0.002 <= timing.median_s < 0.1
    assert timing.method == "perf_counter"


def test_time_call_shrinks_reps_to_its_budget_but_keeps_a_minimum():
    timing = bench_core.time_call(lambda: time.sleep(0.05), warmup=1, reps=50, budget_s=0.1)
    assert timing.reps == 3  # budget / estimate = 2, raised to min_reps


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"warmup": -1}, ValueError), ({"reps": 0}, ValueError), ({"budget_s": 0}, ValueError),
     ({"reps": 2.5}, TypeError)],
)  # fmt: skip
def test_time_call_rejects_bad_settings(kwargs, error):
    with pytest.raises(error):
        bench_core.time_call(lambda: None, **kwargs)


def test_out_of_memory_errors_are_recognised():
    assert bench_core.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert bench_core.is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp] DefaultCPUAllocator: can't allocate memory"))  # fmt: skip
    assert not bench_core.is_out_of_memory(
        RuntimeError("mat1 and mat2 shapes cannot be multiplied")
    )
    assert bench_core.check_fits(1024, "cpu") is None
    assert "does not fit" in bench_core.check_fits(10**18, "cpu")


def test_write_json_turns_nan_into_null(tmp_path):
    path = bench_core.write_json({"a": math.nan, "b": [1.0, math.inf]}, tmp_path / "x" / "r.json")
    assert json.loads(path.read_text()) == {"a": None, "b": [1.0, None]}


# ------------------------------------------------------------------------------------- matmul
def test_matmul_flops():
    assert bench.matmul_flops(2, 3, 4) == 48


def test_fp32_matmul_on_this_cpu_is_measured():
    r = bench.matmul_throughput("fp32", 64, "cpu", reps=3)
    assert r.skipped is None and r.seconds > 0 and r.reps >= 1
    assert r.flops == 2 * 64**3
    assert r.tflops == pytest.approx(r.flops / r.seconds / 1e12)


@pytest.mark.parametrize(("dtype", "word"), [("tf32", "tf32"), ("fp8", "fp8")])
def test_dtypes_a_cpu_cannot_multiply_in_are_skipped_with_the_reason(dtype, word):
    r = bench.matmul_throughput(dtype, 64, "cpu")
    assert r.tflops is None and word in r.skipped and "NVIDIA" in r.skipped


def test_a_size_that_does_not_fit_is_skipped_not_allocated():
    started = time.perf_counter()
    r = bench.matmul_throughput("fp32", 10**7, "cpu")  # 400 TB per operand
    assert r.tflops is None and r.skipped.startswith("does not fit")
    assert time.perf_counter() - started < 1.0


def test_an_out_of_memory_error_is_reported_and_other_errors_are_not_hidden(monkeypatch):
    def oom(*args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(bench, "_operands", oom)
    r = bench.matmul_throughput("fp32", 64, "cpu")
    assert r.skipped.startswith("out of memory") and r.tflops is None

    def bug(*args):
        raise RuntimeError("shapes cannot be multiplied")

    monkeypatch.setattr(bench, "_operands", bug)
    with pytest.raises(RuntimeError, match="shapes"):
        bench.matmul_throughput("fp32", 64, "cpu")


@pytest.mark.parametrize(("args", "error"), [(("fp64", 64), ValueError), (("fp32", 0), ValueError),
                                             (("fp32", 64.0), ValueError)])  # fmt: skip
def test_bad_matmul_arguments(args, error):
    with pytest.raises(error, match="fp32, tf32|positive int"):
        bench.matmul_throughput(*args, device="cpu")


def test_sweep_compares_to_the_best_fp32_rate_on_a_cpu_and_round_trips_json():
    sweep = bench.matmul_sweep(("fp32", "bf16", "tf32"), (32, 64), "cpu", budget_s=0.05)
    assert [(r.dtype, r.size) for r in sweep.results] == [
        ("fp32", 32), ("fp32", 64), ("bf16", 32), ("bf16", 64), ("tf32", 32), ("tf32", 64)
    ]  # fmt: skip
    ref, what = sweep.reference("bf16")
    assert (
        ref == sweep.best("fp32").tflops
        and "measured here" in what
        and "not a hardware peak" in what
    )
    assert sweep.vendor_peak("bf16") is None  # MFU needs a vendor peak: none on a CPU
    assert sweep.fraction_of_peak("fp32") == 1.0
    assert 0 < sweep.fraction_of_peak("bf16") and sweep.speedup("bf16") > 0
    assert sweep.fraction_of_peak("tf32") is None and len(sweep.skipped()) == 2
    text = sweep.table()
    assert "skipped tf32 n=32,64" in text and "GFLOP/s" in text + "TFLOP/s"
    assert "of ref" in text and "of peak" not in text and "note:" not in text
    compared = bench.compare_to_fp32(sweep, ("bf16", "tf32"))
    assert compared[0].startswith("bf16: ") and "x the fp32 rate at n=64" in compared[0]
    assert compared[1].startswith("tf32: not measured (tf32 is a mode")
    again = bench.MatmulSweep.from_dict(json.loads(json.dumps(sweep.to_dict())))
    assert again.results == sweep.results
    ax = sweep.plot()
    assert {line.get_label() for line in ax.get_lines()} >= {"fp32", "bf16"}


def test_sweep_skips_sizes_predicted_to_take_too_long(monkeypatch):
    def fake(dtype, size, device, budget_s):
        return bench.MatmulResult(dtype, size, seconds=1.0, tflops=1e-9, reps=1)

    monkeypatch.setattr(bench, "matmul_throughput", fake)
    sweep = bench.matmul_sweep(("fp16",), (100, 200), "cpu", max_point_s=2.0)
    assert sweep.results[0].seconds == 1.0
    assert sweep.results[1].skipped.startswith("would take about 8.0 s")


def test_recorded_benchmarks_reads_only_bench_files(tmp_path):
    assert bench.recorded_benchmarks(tmp_path / "none") == []
    good = {"schema": bench_core.SCHEMA, "kind": "bench", "provenance": {"date": "2026-01-01"}}
    (tmp_path / "b.json").write_text(json.dumps(good))
    (tmp_path / "other.json").write_text(json.dumps({"schema": "x", "kind": "train"}))
    (tmp_path / "broken.json").write_text("{")
    runs = bench.recorded_benchmarks(tmp_path)
    assert [r["file"] for r in runs] == ["b.json"]


# -------------------------------------------------------------------------------------- peaks
def test_vendor_peaks_halve_sparsity_figures_and_cite_sources():
    h100 = lookup_peak("NVIDIA H100 80GB HBM3")
    assert h100.model == "H100 SXM" and h100.listed["bf16"] == 1979 and h100.dense("bf16") == 989.5
    assert h100.dense("fp32") == 67  # CUDA-core fp32 is not a sparsity figure
    assert lookup_peak("NVIDIA H100 PCIe").model == "H100 PCIe"
    assert lookup_peak("NVIDIA H200").dense("fp8") == 1979
    assert lookup_peak("NVIDIA A100-SXM4-80GB").dense("bf16") == 312  # listed dense already
    assert lookup_peak("Tesla T4").dense("bf16") is None  # no bf16 tensor cores
    assert lookup_peak("NVIDIA GH200 480GB") is None and lookup_peak("Mystery GPU") is None
    assert all(row.source.startswith("https://") for row in GPU_PEAKS)
    with pytest.raises(ValueError, match="fp64"):
        h100.dense("fp64")
    with pytest.raises(TypeError):
        lookup_peak(None)


def test_fraction_of_vendor_peak_on_a_listed_gpu():
    sweep = bench.MatmulSweep(
        "cuda", "NVIDIA H100 80GB HBM3",
        [bench.MatmulResult("bf16", 8192, seconds=1.0, tflops=791.6, reps=5)],
        peak=lookup_peak("NVIDIA H100 80GB HBM3"),
    )  # fmt: skip
    assert sweep.fraction_of_peak("bf16") == pytest.approx(0.8)
    assert "H100 SXM dense bf16 peak" in sweep.reference("bf16")[1]


def test_gpu_targets_are_measured_against_their_thresholds(monkeypatch):
    monkeypatch.setattr(bench, "large_product_reference", lambda *a: 800.0)
    sweep = bench.MatmulSweep("cuda", "NVIDIA H200", [
        bench.MatmulResult("bf16", 8192, seconds=1.0, tflops=700.0, reps=5)], lookup_peak("H200"))  # fmt: skip
    step = bench.StepResult("gpt2-small", "bf16", 8, 1024, 124_000_000, "cuda", mfu=0.3)
    targets = bench.gpu_targets(sweep, [step], "cuda")
    assert targets["bf16_matmul"]["ratio"] == pytest.approx(0.875)
    assert targets["bf16_matmul"]["met"] is True
    assert targets["gpt2_small_bf16_mfu"] == {
        "mfu": 0.3, "batch_size": 8, "seq_len": 1024, "target": 0.35, "met": False
    }  # fmt: skip


# ----------------------------------------------------------------------------- training steps
@pytest.fixture(scope="module")
def mini():
    return bench_train.build_model("mini")


def test_flops_per_token_follow_nanogpt(mini):
    c = mini.config
    n = sum(p.numel() for p in mini.parameters()) - c.n_positions * c.n_embd  # minus wpe
    assert bench_train.non_embedding_params(mini) == n
    expected = 6 * n + 12 * c.n_layer * c.n_head * (c.n_embd // c.n_head) * 64
    assert bench_train.train_flops_per_token(mini, 64) == expected
    assert bench.mfu(1000.0, 1e9, 1.0) == pytest.approx(1.0)
    assert bench.mfu(1000.0, 1e9, None) is None
    with pytest.raises(TypeError, match="GPT-2"):
        bench_train.train_flops_per_token(torch.nn.Linear(2, 2), 8)


def test_train_step_sweep_measures_fp32_and_skips_fp16_on_a_cpu(monkeypatch):
    rows = bench.train_step_sweep(
        ("mini",), (1,), ("fp32", "fp16"), seq_len=16, steps=1, warmup_steps=1, device="cpu",
        peak_tflops={"fp32": 1.0, "fp16": None},
    )  # fmt: skip
    fp32, fp16 = rows
    assert fp32.skipped is None and fp32.steps_timed == 1 and fp32.step_s > 0
    assert fp32.tokens_per_s == pytest.approx(16 / fp32.step_s)
    assert fp32.mfu == pytest.approx(fp32.tflops / 1.0) and fp32.peak_mem_bytes is None
    assert fp16.step_s is None and "fp16 on a CPU" in fp16.skipped
    # a point that does not fit is skipped, not run
    monkeypatch.setattr(bench_train, "check_fits", lambda *a: "does not fit: needs 9 GiB")
    (row,) = bench.train_step_sweep(("mini",), (2,), ("fp32",), seq_len=16, steps=1, device="cpu")
    assert row.skipped == "does not fit: needs 9 GiB"
    with pytest.raises(ValueError, match="context"):
        bench.train_step_sweep(("mini",), (1,), ("fp32",), seq_len=4096, device="cpu")
    with pytest.raises(ValueError, match="unknown model preset"):
        bench.train_step_sweep(("gpt5",), (1,), ("fp32",), device="cpu")


def test_memory_vs_batch_autocast_costs_memory_at_batch_1_and_saves_less_than_half(mini):
    points = bench.memory_vs_batch(mini, (1, 8), 32)
    by = {(p.precision, p.batch_size): p for p in points}
    assert by["fp32", 1].model_state == by["bf16", 1].model_state  # fp32 master weights + AdamW
    assert by["fp32", 1].weight_copies == 0 < by["bf16", 1].weight_copies
    assert by["bf16", 1].total > by["fp32", 1].total  # the 16-bit copies outweigh the savings
    assert by["bf16", 8].total < by["fp32", 8].total
    assert bench.crossover_batch(points) == 8
    assert all(by["bf16", b].total > 0.5 * by["fp32", b].total for b in (1, 8))  # never -50%


def test_memory_vs_batch_is_notebook_04s_sweep_and_reads_crossovers_only_where_measured(mini):
    from course_utils.memory import measure_memory, sweep_batch_sizes

    points = bench.memory_vs_batch(mini, (1, 8), 32)
    batches = {b: bench_train.random_batch(mini.config.vocab_size, b, 32, "cpu") for b in (1, 8)}
    anatomy = {p: measure_memory(mini, batches[1], p) for p in ("fp32", "bf16")}
    sweep = sweep_batch_sizes(mini, batches, anatomy)
    for p in points:  # the same bytes as memory.py's sweep, point by point
        i = sweep.batch_sizes.index(p.batch_size)
        assert p.total == sweep.totals(p.precision)[i]
        # the measured activations at the smallest size are what the full step measured too
        assert p.batch_size != 1 or p.activations == anatomy[p.precision].activations
    # the line through the points crosses between the measured sizes; crossover_batch names
    # the first measured size past it
    assert 1 < sweep.crossover() <= bench.crossover_batch(points) == 8
    with pytest.raises(ValueError, match="at least two positive ints"):
        bench.memory_vs_batch(mini, (4,), 32)


# ------------------------------------------------------------------------------------ the CLI
def load_script(name):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_cli_writes_json_with_provenance(tmp_path, capsys):
    cli = load_script("bench")
    argv = ["--device", "cpu", "--dtypes", "fp32", "tf32", "--sizes", "32", "--models", "mini",
            "--batch-sizes", "1", "--precisions", "fp32", "--seq-len", "16", "--steps", "1",
            "--out", str(tmp_path)]  # fmt: skip
    assert cli.main(argv) == 0
    (path,) = tmp_path.glob("bench-*.json")
    data = json.loads(path.read_text())
    assert data["schema"] == "course-bench/1" and data["kind"] == "bench"
    prov = data["provenance"]
    assert {"date", "command", "device_name", "torch", "git_commit"} <= set(prov)
    assert prov["command"].startswith("python scripts/bench.py --device cpu")
    assert [r["dtype"] for r in data["matmul"]["results"]] == ["fp32", "tf32"]
    assert data["matmul"]["results"][1]["skipped"] and data["train_step"][0]["step_s"] > 0
    assert "targets" not in data  # GPU only
    assert f"wrote {path}" in capsys.readouterr().out
    assert bench.recorded_benchmarks(tmp_path)[0]["file"] == path.name


def test_write_json_is_atomic_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    # issue 13 item 8: a plain write_text left a truncated file where a good one was
    path = bench_core.write_json({"run": 1}, tmp_path / "sub" / "bench.json")
    assert json.loads(path.read_text()) == {"run": 1}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        bench_core.write_json({"run": 2, "x": float("nan")}, path)
    assert json.loads(path.read_text()) == {"run": 1}  # the previous file, whole
    assert [f.name for f in path.parent.iterdir()] == ["bench.json"]  # no temporary left
    monkeypatch.undo()
    bench_core.write_json({"run": 2, "x": float("nan")}, path)
    assert json.loads(path.read_text()) == {"run": 2, "x": None}


def test_a_symlink_at_the_bench_file_is_replaced_not_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "bench.json").symlink_to(victim)
    bench_core.write_json({"run": 1}, tmp_path / "bench.json")
    assert victim.read_text() == "keep me" and not (tmp_path / "bench.json").is_symlink()


def test_check_output_folder_says_what_is_wrong(tmp_path):
    assert (
        bench_core.check_output_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    )
    assert not (tmp_path / "new").exists()  # checked, not created
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        bench_core.check_output_folder(tmp_path / "file.txt" / "sub")
    with pytest.raises(ValueError, match="is a file"):
        bench_core.check_output_folder(tmp_path / "file.txt")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="broken symlink"):
        bench_core.check_output_folder(tmp_path / "dangling" / "sub")
    with pytest.raises(TypeError):
        bench_core.check_output_folder(None)
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ValueError, match="not writable"):
            bench_core.check_output_folder(locked / "sub")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--steps", "0"], "--steps: must be 1 or more, got 0"),
        (["--steps", "-3"], "--steps: must be 1 or more"),
        (["--sizes", "64", "0"], "--sizes: must be 1 or more"),
        (["--batch-sizes", "x"], "--batch-sizes: expected a whole number"),
        (["--seq-len", "0"], "--seq-len: must be 1 or more"),
        (["--out", "{file}/sub"], "is a file, not a folder"),
        (["--out", "{file}/result.json"], "is a file, not a folder"),
        (["--out", "{folder}.json"], "is a folder, not a .json file"),
    ],
)
def test_bench_cli_rejects_bad_settings_before_measuring_anything(tmp_path, capsys, argv, message):
    # issue 13, lesser: --steps 0 raised statistics.StatisticsError after the matmul sweep
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder.json").mkdir()
    argv = [a.format(file=tmp_path / "file", folder=tmp_path / "folder") for a in argv]
    cli = load_script("bench")
    with pytest.raises(SystemExit) as stop:
        cli.main(["--device", "cpu", *argv])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_matmul_sweep_takes_one_dtype_name_or_one_size():
    # issue 13, lesser: matmul_sweep("fp32") said "unknown dtype 'f'"
    sweep = bench.matmul_sweep("fp32", 32, "cpu", budget_s=0.02)
    assert [(r.dtype, r.size) for r in sweep.results] == [("fp32", 32)]
    with pytest.raises(ValueError, match="unknown dtype 'fp3'"):
        bench.matmul_sweep("fp3", (32,), "cpu")


# ---------------------------------------------------------------------------- gpu_check.sh
GPU_CHECK = REPO_ROOT / "scripts" / "gpu_check.sh"


def run_gpu_check(*args, **env):
    return subprocess.run(
        ["bash", str(GPU_CHECK), *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, **env},
    )  # fmt: skip


def test_gpu_check_parses_and_dry_run_lists_every_step(tmp_path):
    assert subprocess.run(["bash", "-n", str(GPU_CHECK)]).returncode == 0
    done = run_gpu_check(str(tmp_path / "out"), "--dry-run")
    assert done.returncode == 0, done.stderr
    for step in ("env", "wheels", "unit", "notebooks", "bench", "reference"):
        assert f"[dry-run] {step} " in done.stdout
    assert "--nbval-lax" in done.stdout and "scripts/bench.py --out" in done.stdout
    assert not (tmp_path / "out" / "summary.txt").exists()  # a dry run writes nothing


def test_gpu_check_stops_without_a_gpu_and_rejects_unknown_steps(tmp_path):
    import sys

    done = run_gpu_check(str(tmp_path), "--steps", "env", PYTHON=sys.executable)
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert done.returncode == 1
    summary = (tmp_path / "summary.txt").read_text()
    assert "env: FAILED" in summary and "no usable GPU" in summary
    assert "no CUDA GPU visible" in (tmp_path / "env.log").read_text()
    bad = run_gpu_check(str(tmp_path), "--steps", "env,bogus")
    assert bad.returncode == 2 and "unknown step 'bogus'" in bad.stderr


def test_gpu_check_never_installs_torch_from_wheels():
    text = GPU_CHECK.read_text()
    optional = text.split('OPTIONAL="', 1)[1].split('"', 1)[0].split()
    assert "nbval:nbval" in optional and "trl:trl" in optional
    assert not any(item.split(":")[1] in {"torch", "triton"} for item in optional)
    assert "pip install --no-index --find-links" in text


# ------------------------------------------------------------------ claims and exercise checks
def test_claim_verdicts_use_cuda_peaks_when_measured_else_the_anatomy():
    steps = [
        bench.StepResult("m", "fp32", 8, 64, 10, "cuda", step_s=1.0, peak_mem_bytes=1000),
        bench.StepResult("m", "bf16", 8, 64, 10, "cuda", step_s=0.55, peak_mem_bytes=700),
    ]
    speed, memory = bench.claim_verdicts(steps)
    assert "m batch 8: 1.82x (holds)" in speed and speed.endswith("claim: holds")
    assert "m batch 8: -30% (falls short)" in memory and memory.endswith("claim: falls short")
    points = [bench.MemoryPoint("fp32", 1, 8, 10, 160, 0, 100),
              bench.MemoryPoint("bf16", 1, 8, 10, 160, 20, 60)]  # fmt: skip
    (memory,) = bench.claim_verdicts(memory_points=points)
    assert memory.startswith("memory (bf16 vs fp32): batch 1: -8% (falls short)")
    assert bench.claim_verdicts() == []


def _steps(*speedups, note=""):
    rows = []
    for batch, up in enumerate(speedups, start=1):
        rows.append(bench.StepResult("m", "fp32", batch, 64, 10, "cuda", step_s=1.0, note=note))
        rows.append(bench.StepResult("m", "bf16", batch, 64, 10, "cuda", step_s=1 / up, note=note))
    return rows


def test_a_5x_speedup_exceeds_the_claim_and_pure_bf16_at_minus_48_percent_holds():
    (speed,) = bench.claim_verdicts(_steps(5.0))
    assert "5.00x (exceeds)" in speed and speed.endswith("claim: exceeds")
    (speed,) = bench.claim_verdicts(_steps(0.29, 1.7, 5.0))
    assert speed.endswith("mixed: exceeds at 1 of 3, holds at 1 of 3, does not hold at 1 of 3")
    points = [bench.MemoryPoint("fp32", 1, 8, 10, 160, 0, 40),
              bench.MemoryPoint("bf16-pure", 1, 8, 10, 80, 0, 24)]  # fmt: skip
    (memory,) = bench.claim_verdicts(memory_points=points, amp="bf16-pure")
    assert "batch 1: -48% (holds)" in memory and memory.endswith("claim: holds")


def test_steps_timed_on_a_busy_machine_get_no_speed_verdict():
    (speed,) = bench.claim_verdicts(_steps(1.7, note=f"{bench_core.BUSY_MARKER}: other ..."))
    assert "no verdict drawn" in speed and "holds" not in speed


@pytest.mark.parametrize(
    ("speedup", "verdict"),
    [(0.05, "does not hold"), (1.0, "does not hold"), (1.1, "does not hold"),
     (1.2, "falls short"), (1.35, "holds"), (1.5, "holds"), (2.0, "holds"), (2.2, "holds"),
     (2.3, "exceeds"), (5.0, "exceeds")],
)  # fmt: skip
def test_speed_verdict_edges(speedup, verdict):
    assert bench_train.speed_verdict(speedup) == verdict


@pytest.mark.parametrize(
    ("change", "verdict"),
    [(0.03, "does not hold"), (-0.03, "does not hold"), (-0.05, "falls short"),
     (-0.31, "falls short"), (-0.45, "holds"), (-0.48, "holds"), (-0.55, "holds"),
     (-0.6, "exceeds")],
)  # fmt: skip
def test_memory_verdict_edges(change, verdict):
    assert bench_train.memory_verdict(change) == verdict


@settings(max_examples=200, deadline=None)
@given(st.floats(0.01, 100.0), st.floats(0.01, 100.0))
def test_a_larger_speedup_never_gets_a_worse_speed_verdict(a, b):
    rank = {v: i for i, v in enumerate(reversed(bench_train.VERDICTS))}
    low, high = sorted((a, b))
    assert rank[bench_train.speed_verdict(low)] <= rank[bench_train.speed_verdict(high)]


@settings(max_examples=200, deadline=None)
@given(st.floats(-0.99, 3.0), st.floats(-0.99, 3.0))
def test_a_larger_memory_saving_never_gets_a_worse_memory_verdict(a, b):
    rank = {v: i for i, v in enumerate(reversed(bench_train.VERDICTS))}
    more_saved, less_saved = sorted((a, b))  # the more negative change saves more
    assert (
        rank[bench_train.memory_verdict(less_saved)] <= rank[bench_train.memory_verdict(more_saved)]
    )


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0.0, -1.0, True, "2x", None])
def test_verdicts_reject_what_is_not_a_ratio(bad):
    error = TypeError if isinstance(bad, (bool, str)) or bad is None else ValueError
    with pytest.raises(error, match="speedup"):
        bench_train.speed_verdict(bad)
    with pytest.raises((TypeError, ValueError), match="memory change"):
        bench_train.memory_verdict(bad if bad != 0.0 else float("nan"))


def test_exercise_07_checks_name_the_usual_mistakes():
    from course_utils.exercises import evaluate

    assert evaluate("07.matmul_tflops", lambda m, n, k, s: 2 * m * n * k / s / 1e12).passed
    half = evaluate("07.matmul_tflops", lambda m, n, k, s: m * n * k / s / 1e12)
    assert not half.passed and "multiply-add is 2 operations" in half.message
    cube = evaluate("07.matmul_tflops", lambda m, n, k, s: 2 * n**3 / s / 1e12)
    assert not cube.passed and "n**3" in cube.message
    assert evaluate("07.mfu", lambda t, n, p: 6 * n * t / (p * 1e12)).passed
    forward = evaluate("07.mfu", lambda t, n, p: 2 * n * t / (p * 1e12))
    assert not forward.passed and "forward pass" in forward.message
    percent = evaluate("07.mfu", lambda t, n, p: 600 * n * t / (p * 1e12))
    assert "percentage" in percent.message


def _patch_cpu(monkeypatch, others_cores, own_cores=1.0):
    """Fake clocks for a CpuWatch that lasts 1 s (first reading at start, second at stop):
    other processes use ``others_cores`` and this process ``own_cores`` in that second."""

    def readings(*values):
        it = iter(values)
        return lambda: next(it, values[-1])

    monkeypatch.setattr(bench_core.time, "perf_counter", readings(0.0, 1.0))
    monkeypatch.setattr(bench_core, "_own_cpu_seconds", readings(0.0, own_cores))
    monkeypatch.setattr(bench_core, "_system_busy_seconds", readings(0.0, others_cores + own_cores))


def test_cpu_watch_counts_only_the_other_processes(monkeypatch):
    monkeypatch.setattr(bench_core, "usable_cores", lambda: 2)
    monkeypatch.setattr(bench_core.torch, "get_num_threads", lambda: 2)
    _patch_cpu(monkeypatch, others_cores=1.5)
    load = bench_core.CpuWatch().stop()
    assert load.others_cores == pytest.approx(1.5) and load.busy
    assert load.note.startswith(bench_core.BUSY_MARKER) and "1.5 of its 2 cores" in load.note
    _patch_cpu(monkeypatch, others_cores=0.05, own_cores=2.0)  # our own 2 threads do not count
    assert not bench_core.CpuWatch().stop().busy


def test_spare_cores_absorb_other_work_and_short_or_unreadable_intervals():
    assert not bench_core.CpuLoad(2.0, 1.2, cores=8, threads=4).busy  # 4 spare cores
    assert bench_core.CpuLoad(2.0, 4.8, cores=8, threads=4).busy
    assert not bench_core.CpuLoad(0.05, 9.0, cores=2, threads=2).busy  # too short to judge
    # without /proc/stat: the load average at the start, against the cores
    assert bench_core.CpuLoad(2.0, None, 2, 2, load_before=8.5).busy
    assert "load average was 8.5 on 2 cores" in bench_core.CpuLoad(2.0, None, 2, 2, 8.5).note
    assert bench_core.CpuLoad(2.0, None, 2, 2, load_before=None).note == ""


def test_a_busy_sweep_says_so_and_draws_no_fraction_comparison_or_mfu(monkeypatch):
    monkeypatch.setattr(bench_core, "usable_cores", lambda: 2)
    _patch_cpu(monkeypatch, others_cores=3.0)
    monkeypatch.setattr(
        bench, "matmul_throughput",
        lambda d, n, device, budget_s: bench.MatmulResult(d, n, seconds=1e-3, tflops=1e-5, reps=3),
    )  # fmt: skip
    sweep = bench.matmul_sweep(("fp32", "bf16"), (16,), "cpu", budget_s=0.01)
    assert sweep.busy and sweep.table().splitlines()[1].startswith(
        f"note: {bench_core.BUSY_MARKER}"
    )
    assert sweep.reference("fp32")[0] is None and sweep.fraction_of_peak("bf16") is None
    assert bench.compare_to_fp32(sweep) == [f"no comparison drawn: {sweep.note}"]
    assert bench.MatmulSweep.from_dict(sweep.to_dict()).busy  # a recorded busy run stays busy
    step = bench.StepResult("mini", "fp32", 1, 16, 10, "cpu", step_s=0.1, tflops=1e-4)
    (line,) = bench.utilisation_lines([step], sweep)
    assert "no utilisation computed" in line and "MFU" not in line
    monkeypatch.undo()
    monkeypatch.setattr(bench_core, "_system_busy_seconds", lambda: None)
    monkeypatch.setattr(bench_core, "_load_average", lambda: 64.0)  # no /proc/stat: load average
    rows = bench.train_step_sweep(
        ("mini",), (1,), ("fp32",), seq_len=16, steps=1, warmup_steps=1, device="cpu",
        peak_tflops=1.0,
    )  # fmt: skip
    assert rows[0].note.startswith(bench_core.BUSY_MARKER) and rows[0].mfu is None


def test_utilisation_on_a_cpu_is_named_for_what_it_is_not_mfu():
    fp32 = bench.MatmulResult("fp32", 64, seconds=1e-3, tflops=0.01)
    sweep = bench.MatmulSweep("cpu", "Some CPU", [fp32])
    step = bench.StepResult("mini", "fp32", 1, 16, 10, "cpu", step_s=0.1, tflops=0.001)
    (line,) = bench.utilisation_lines([step], sweep)
    assert "10.0% of this machine's measured fp32 matmul rate (not MFU)" in line
    gpu = bench.StepResult("m", "bf16", 8, 64, 10, "cuda", step_s=0.1, tflops=300.0, mfu=0.3)
    (line,) = bench.utilisation_lines([gpu], sweep)
    assert "MFU 30.0% of the vendor's dense bf16 peak" in line


def test_published_training_rows_are_quoted_consistently():
    from course_utils.hardware.peaks import PUBLISHED_TRAINING, published_training_table

    assert len(published_training_table()) == len(PUBLISHED_TRAINING) >= 4
    for run in PUBLISHED_TRAINING:
        # the two quoted throughputs give the source's own speedup column (catches a typo)
        assert run.speedup == pytest.approx(run.listed_speedup, abs=5e-4), run
        assert run.source.startswith("https://github.com/NVIDIA/DeepLearningExamples/")
        assert run.baseline in {"FP32", "TF32"} and "fp16" in run.amp


def test_reports_reject_what_is_not_a_sweep_or_a_dtype():
    sweep = bench.MatmulSweep("cpu", "Some CPU")
    with pytest.raises(TypeError, match="MatmulSweep"):
        bench.compare_to_fp32({"fp32": 1.0})
    with pytest.raises(ValueError, match="unknown dtype 'int8'"):
        bench.compare_to_fp32(sweep, ("int8",))
    with pytest.raises(TypeError, match="MatmulSweep"):
        bench.utilisation_lines([], None)
    with pytest.raises(TypeError, match="StepResult"):
        bench.utilisation_lines([{"model": "mini"}], sweep)
