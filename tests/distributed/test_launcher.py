"""torchrun from Python (course_utils.distributed), the DDP and FSDP2 workers on 2 gloo
processes, the reduction simulation, and the accelerate/DeepSpeed configs."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from conftest import REPO_ROOT

from course_utils import distributed
from course_utils.distributed import worker as dist_worker

CONFIGS = REPO_ROOT / "data" / "configs"


# ------------------------------------------------------------------------- the real workers
@pytest.fixture(scope="module")
def ddp_run():
    return distributed.launch("ddp", ["--precision", "bf16", "--steps", "3"], timeout=240)


@pytest.fixture(scope="module")
def fsdp_run():
    return distributed.launch("fsdp", ["--steps", "3"], timeout=240)


def test_ddp_with_bf16_autocast_on_two_gloo_ranks(ddp_run):
    assert ddp_run.ok and len(ddp_run.ranks) == 2
    for rank in ddp_run.ranks:
        assert rank.stdout.startswith(f"[rank {rank.rank}/2] gloo | device cpu")
        r = rank.result
        assert (r["rank"], r["world_size"], r["backend"]) == (rank.rank, 2, "gloo")
        assert (r["logits_dtype"], r["weight_dtype"], r["grad_dtype"]) == (
            "torch.bfloat16", "torch.float32", "torch.float32"
        )  # fmt: skip
        assert r["weights_identical"] and len(r["local_losses"]) == 3
        # autocast decides per op: a layer norm on the fp32 residual stream stays fp32
        assert r["layer_norm_dtypes"] == ["torch.float32", "torch.float32"]
    r0, r1 = ddp_run.results
    assert r0["global_losses"] == r1["global_losses"]  # all-reduced: the same on both ranks
    assert r0["local_losses"] != r1["local_losses"]  # but each rank saw its own slice
    errors = r0["grad_rel_error_vs_one_process"]  # DDP vs one process on the global batch
    assert errors["fp32"] < 1e-5  # fp32: one big batch, split, up to rounding
    assert errors["fp32"] < errors["bf16"] < 0.05  # bf16 shards round their partial sums apart
    assert r1["grad_rel_error_vs_one_process"] is None
    assert ddp_run.command.startswith(
        "torchrun --standalone --nproc_per_node=2 -m course_utils.distributed.ddp --precision bf16"
    )
    assert r0["script"] == "ddp"


def test_fsdp2_policies_store_fp32_compute_bf16_and_bound_the_bf16_reduction(fsdp_run):
    assert fsdp_run.ok
    r0, r1 = fsdp_run.results
    for name, info in r0["policies"].items():
        assert (
            info["sharded_param_dtype"] == "torch.float32" and info["grad_dtype"] == "torch.float32"
        )
        assert info["local_shard_shape"][0] * 2 == info["full_shape"][0]
        want = "torch.float32" if name == "fp32" else "torch.bfloat16"
        # the policy casts per module: the layer norm inside the block runs in bf16 too
        assert info["block_output_dtype"] == info["layer_norm_dtype"] == want, name
    errors = r0["grad_rel_errors"]
    assert errors == r1["grad_rel_errors"]  # every rank gathered the same full gradients
    assert 0 < errors["bf16/bf16 vs bf16/fp32"] < errors["bf16/fp32 vs fp32"] < 0.05
    # Two ranks: one bf16 addition, rounded once to nearest: within 2^-8 of the exact sum.
    assert 0 < r0["bf16_reduce_max_elementwise_rel_error"] <= 2**-8
    # Trained on a fresh batch every step, the loss on a held-out batch goes down.
    before, after = r0["heldout_losses"]
    assert after < before and r0["heldout_losses"] == r1["heldout_losses"]
    assert r0["optimizer_state_dtype"] == "torch.float32" and r0["weights_identical"]


def test_fsdp2_pitfall_a_model_loaded_in_bf16_keeps_bf16_master_shards(fsdp_run):
    loaded = fsdp_run.results[0]["loaded"]
    assert [loaded["fp32"][k] for k in ("sharded_param_dtype", "grad_dtype")] == [
        "torch.float32", "torch.float32"
    ]  # fmt: skip
    bf16 = loaded["bf16"]  # the same bf16/fp32 policy, on a model loaded in bf16: pure bf16
    assert bf16["sharded_param_dtype"] == bf16["grad_dtype"] == "torch.bfloat16"
    assert bf16["optimizer_state_dtype"] == "torch.bfloat16"
    # One AdamW step at lr 1e-5: fp32 masters all move, most bf16 masters do not.
    assert loaded["fp32"]["unchanged_fraction"] < 0.01 < 0.5 < bf16["unchanged_fraction"]


def test_fsdp2_pitfall_accumulation_without_sync_keeps_unsharded_grads_in_reduce_dtype(fsdp_run):
    r0 = fsdp_run.results[0]
    acc = r0["accumulation"]
    assert {name: info["accumulated_dtype"] for name, info in acc.items()} == {
        "fp32": "torch.float32", "bf16/fp32": "torch.float32", "bf16/bf16": "torch.bfloat16"
    }  # fmt: skip
    for info in acc.values():
        assert info["sharded_grad_is_none"] and info["final_grad_dtype"] == "torch.float32"
    # Unsharded: each of the 2 ranks holds the whole gradient, twice its fp32 shard's bytes in
    # fp32, as many bytes as its fp32 shard in bf16.
    shard = acc["fp32"]["local_param_bytes"]
    assert acc["fp32"]["accumulated_bytes"] == acc["bf16/fp32"]["accumulated_bytes"] == 2 * shard
    assert acc["bf16/bf16"]["accumulated_bytes"] == shard
    assert 0 < acc["bf16/bf16"]["grad_rel_error_vs_bf16/fp32"] < 0.05
    assert acc["bf16/fp32"]["grad_rel_error_vs_fp32"] < 0.05


def test_exercise_08_key_agrees_with_what_fsdp2_did(fsdp_run):
    from torch.distributed.fsdp import MixedPrecisionPolicy

    from course_utils.exercises.nb08 import fsdp2_dtypes_key

    r0 = fsdp_run.results[0]
    policies = {
        "fp32": MixedPrecisionPolicy(),
        "bf16/fp32": MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32),
        "bf16/bf16": MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.bfloat16),
    }
    for name, policy in policies.items():
        key = {k: str(v) for k, v in fsdp2_dtypes_key(torch.float32, policy).items()}
        measured = r0["policies"][name]
        assert key["stored"] == measured["sharded_param_dtype"], name
        assert key["compute"] == measured["block_output_dtype"], name
        assert key["accumulate"] == r0["accumulation"][name]["accumulated_dtype"], name
    loaded_bf16 = fsdp2_dtypes_key(torch.bfloat16, policies["bf16/fp32"])
    assert str(loaded_bf16["stored"]) == r0["loaded"]["bf16"]["sharded_param_dtype"]


# ----------------------------------------------------------------------------- the launcher
def test_failures_show_each_ranks_stderr(tmp_path):
    script = tmp_path / "dist_fail.py"
    script.write_text(
        "import os, sys\n"
        "print('hello from', os.environ['RANK'])\n"
        "print('trouble on', os.environ['RANK'], file=sys.stderr)\n"
        "sys.exit(3 if os.environ['RANK'] == '1' else 0)\n"
    )
    run = distributed.launch(script, check=False, timeout=120)
    assert not run.ok and run.returncode != 0
    assert [r.stdout.strip() for r in run.ranks] == ["hello from 0", "hello from 1"]
    assert "trouble on 1" in run.ranks[1].stderr and run.results == [None, None]
    with pytest.raises(RuntimeError, match=r"(?s)exit code .*rank 1 stderr.*trouble on 1"):
        run.check()


def test_a_job_past_its_timeout_is_stopped(tmp_path):
    script = tmp_path / "dist_sleep.py"
    script.write_text("import time\nprint('started', flush=True)\ntime.sleep(120)\n")
    with pytest.raises(TimeoutError, match="ran past 2 s"):
        distributed.launch(script, timeout=2)


def test_bad_launch_arguments_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="workers are ddp, fsdp, with_accelerate"):
        distributed.launch("dist_ddp")  # the old scripts/dist_ddp.py name
    with pytest.raises(FileNotFoundError, match="no worker script"):
        distributed.launch(tmp_path / "missing.py")
    with pytest.raises(TypeError, match="name or a path"):
        distributed.torchrun_command(3)
    with pytest.raises(ValueError, match="nproc"):
        distributed.launch("ddp", nproc=0)
    with pytest.raises(TypeError, match="list of strings"):
        distributed.launch("ddp", "--precision bf16")


def test_torchrun_command_runs_the_workers_as_modules(tmp_path, monkeypatch):
    assert distributed.torchrun_command("fsdp", ["--steps", 2], nproc=4) == [
        "torchrun", "--standalone", "--nproc_per_node=4", "-m", "course_utils.distributed.fsdp",
        "--steps", "2",
    ]  # fmt: skip
    for name, module in distributed.WORKERS.items():
        assert module == f"course_utils.distributed.{name}"
        assert importlib.util.find_spec(module) is not None  # importable, as -m needs
    assert "accelerate" not in distributed.WORKERS  # with_accelerate: never shadows the library
    script = tmp_path / "mine.py"
    script.write_text("print('hi')\n")
    monkeypatch.chdir(tmp_path)
    assert distributed.torchrun_command(script)[3:] == ["mine.py"]  # a script of your own


def test_a_worker_started_without_torchrun_says_how_to_start_it(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(RuntimeError, match="torchrun --standalone"):
        dist_worker.init()


def test_first_layer_norm_finds_the_norm_or_says_there_is_none():
    block = dist_worker.blocks_of(dist_worker.build_model("toy"))[0]
    assert dist_worker.first_layer_norm(block) is block.norm1
    with pytest.raises(TypeError, match="no nn.LayerNorm inside Linear"):
        dist_worker.first_layer_norm(torch.nn.Linear(2, 2))


def test_toy_model_loss_is_causal_and_finite():
    model = dist_worker.build_model("toy")
    batch = dist_worker.global_batch(256, 2, 2, 16, step=1)
    loss = model(**batch).loss
    assert torch.isfinite(loss) and abs(loss.item() - torch.log(torch.tensor(256.0)).item()) < 1.0
    ids = batch["input_ids"][:1]
    changed = ids.clone()
    changed[0, -1] = (changed[0, -1] + 1) % 256  # the last token must not change earlier logits
    with torch.no_grad():
        a, b = model(input_ids=ids).logits, model(input_ids=changed).logits
    assert torch.equal(a[0, :-1], b[0, :-1])
    with pytest.raises(ValueError, match="toy, mini, tiny-gpt2"):
        dist_worker.build_model("gpt5")


def test_worker_data_is_a_learnable_fresh_batch_per_step():
    one = dist_worker.global_batch(256, 2, 3, 8, step=1)["input_ids"]
    assert one.shape == (6, 8) and int(one.max()) < dist_worker.PATTERN_TOKENS
    assert torch.equal(one[:, 1:], (one[:, :-1] + 1) % dist_worker.PATTERN_TOKENS)  # counting
    assert not torch.equal(one, dist_worker.global_batch(256, 2, 3, 8, step=2)["input_ids"])
    assert torch.equal(one, dist_worker.global_batch(256, 2, 3, 8, step=1)["input_ids"])
    # Held-out rows (step 0) start at odd numbers, training rows at even ones: never the same row.
    held = dist_worker.global_batch(256, 2, 4, 8, step=0)["input_ids"][:, 0]
    trained = torch.cat(
        [dist_worker.global_batch(256, 2, 4, 8, step=s)["input_ids"][:, 0] for s in range(1, 50)]
    )
    assert bool((held % 2 == 1).all()) and bool((trained % 2 == 0).all())
    with pytest.raises(ValueError, match="vocab_size must be at least 64"):
        dist_worker.global_batch(32, 2, 3, 8, step=1)


def test_fsdp_worker_refuses_accumulation_without_a_micro_step_to_skip(capsys):
    from course_utils.distributed import fsdp as module

    with pytest.raises(SystemExit):
        module.main(["--micro-steps", "1"])
    assert "--micro-steps must be at least 2" in capsys.readouterr().err


# --------------------------------------------------------------------- reduction simulation
def test_simulated_bf16_reduction_error_grows_with_ranks_and_fp32_stays_exact_enough():
    rows = distributed.simulate_reduction((2, 16, 256), numel=4096)
    bf16 = [r.bf16_reduce for r in rows]
    assert bf16 == sorted(bf16) and bf16[-1] > 5 * bf16[0]
    assert bf16[0] <= 2**-8  # one rounding of the sum of two bf16 values
    assert rows[0].fp32_reduce == 0.0  # two bf16 values add exactly in fp32
    assert all(r.fp32_reduce < 1e-6 for r in rows)
    assert distributed.simulate_reduction((2,), numel=4096) == rows[:1]  # deterministic
    with pytest.raises(ValueError, match="world sizes"):
        distributed.simulate_reduction((0,))


# -------------------------------------------------------------------------------- configs
def test_deepspeed_blocks_match_gradscaler_and_are_exclusive():
    import inspect

    bf16 = json.loads((CONFIGS / "deepspeed_bf16.json").read_text())
    fp16 = json.loads((CONFIGS / "deepspeed_fp16.json").read_text())
    assert bf16["bf16"] == {"enabled": True} and "fp16" not in bf16
    assert bf16["communication_data_type"] == "fp32"
    defaults = {k: p.default for k, p in inspect.signature(torch.amp.GradScaler).parameters.items()}
    block = fp16["fp16"]
    assert block["enabled"] and block["loss_scale"] == 0 and "bf16" not in fp16
    assert 2.0 ** block["initial_scale_power"] == defaults["init_scale"]
    assert block["loss_scale_window"] == defaults["growth_interval"] and block["hysteresis"] == 1


def test_accelerate_configs_load_and_its_fsdp2_default_reduces_in_bf16():
    pytest.importorskip("accelerate")
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import FullyShardedDataParallelPlugin

    ddp = load_config_from_file(str(CONFIGS / "accelerate_ddp_bf16.yaml"))
    fsdp = load_config_from_file(str(CONFIGS / "accelerate_fsdp2_bf16.yaml"))
    assert (ddp.mixed_precision, ddp.num_processes, str(ddp.distributed_type)) == (
        "bf16", 2, "DistributedType.MULTI_GPU"
    )  # fmt: skip
    assert fsdp.mixed_precision == "bf16" and fsdp.fsdp_config["fsdp_version"] == 2
    # The claim in the yaml's comment and in notebook 08:
    plugin = FullyShardedDataParallelPlugin(fsdp_version=2)
    plugin.set_mixed_precision("bf16")
    assert plugin.mixed_precision_policy.reduce_dtype is torch.bfloat16


def test_exercise_08_checks():
    from torch.distributed.fsdp import MixedPrecisionPolicy

    from course_utils.exercises import evaluate
    from course_utils.exercises.nb08 import fsdp2_dtypes_key

    assert evaluate("08.fsdp2_dtypes", fsdp2_dtypes_key).passed

    def policy_only(loaded, policy):  # the classic mistake: the policy decides the masters
        return {**fsdp2_dtypes_key(loaded, policy), "stored": torch.float32}

    wrong = evaluate("08.fsdp2_dtypes", policy_only)
    assert not wrong.passed and "loaded in torch.bfloat16" in wrong.message
    assert "when fully_shard ran" in wrong.message

    def none_means_fp32(loaded, policy):
        return {**fsdp2_dtypes_key(loaded, policy), "reduce": policy.reduce_dtype or loaded}

    wrong = evaluate("08.fsdp2_dtypes", none_means_fp32)
    assert not wrong.passed and "falls back to the compute" in wrong.message

    def accumulates_in_compute(loaded, policy):
        return {**fsdp2_dtypes_key(loaded, policy), "accumulate": policy.param_dtype or loaded}

    assert (
        "set_requires_gradient_sync" in evaluate("08.fsdp2_dtypes", accumulates_in_compute).message
    )
    missing = evaluate("08.fsdp2_dtypes", lambda loaded, policy: {"stored": loaded})
    assert "missing: compute, reduce, accumulate" in missing.message
    as_text = evaluate(
        "08.fsdp2_dtypes",
        lambda loaded, policy: dict.fromkeys(("stored", "compute", "reduce", "accumulate"), "bf16"),
    )
    assert "should be a torch.dtype" in as_text.message
    assert "expected a dict" in evaluate("08.fsdp2_dtypes", lambda loaded, policy: None).message
    assert not evaluate("08.fsdp2_dtypes", MixedPrecisionPolicy()).passed  # not a function

    def ring(numel, world, dtype):
        return 2 * (world - 1) / world * numel * torch.tensor([], dtype=dtype).element_size()

    assert evaluate("08.ring_allreduce_bytes", ring).passed
    one_phase = evaluate("08.ring_allreduce_bytes", lambda n, w, d: ring(n, w, d) / 2)
    assert "one phase" in one_phase.message
    four = evaluate("08.ring_allreduce_bytes", lambda n, w, d: 2 * (w - 1) / w * n * 4)
    assert "4 bytes per element" in four.message


def test_the_progress_bar_follows_rank_0s_lines(tmp_path):
    import io

    from tqdm import tqdm

    from course_utils.distributed.launcher import _show_rank0

    log = tmp_path / "run-1" / "attempt_0" / "0" / "stdout.log"
    bar = tqdm(desc="torchrun ddp", disable=False, file=io.StringIO())
    _show_rank0(bar, tmp_path)  # nothing printed yet
    assert bar.n == 0
    log.parent.mkdir(parents=True)
    log.write_text("[rank 0/2] gloo | device cpu\n[rank 0/2] step 1 | local loss 7.6\n")
    _show_rank0(bar, tmp_path)
    assert bar.n == 2 and bar.postfix == "step 1 | local loss 7.6"
    bar.close()
