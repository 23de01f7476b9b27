"""torchrun from Python (course_utils.distributed), the DDP and FSDP2 workers on 2 gloo
processes, the reduction simulation, and the accelerate/DeepSpeed configs."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import REPO_ROOT

from course_utils import dist_worker, distributed

CONFIGS = REPO_ROOT / "data" / "configs"


# ------------------------------------------------------------------------- the real workers
@pytest.fixture(scope="module")
def ddp_run():
    return distributed.launch("dist_ddp", ["--precision", "bf16", "--steps", "3"], timeout=240)


@pytest.fixture(scope="module")
def fsdp_run():
    return distributed.launch("dist_fsdp", ["--steps", "3"], timeout=240)


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
    r0, r1 = ddp_run.results
    assert r0["global_losses"] == r1["global_losses"]  # all-reduced: the same on both ranks
    assert r0["local_losses"] != r1["local_losses"]  # but each rank saw its own slice
    errors = r0["grad_rel_error_vs_one_process"]  # DDP vs one process on the global batch
    assert errors["fp32"] < 1e-5  # fp32: one big batch, split, up to rounding
    assert errors["fp32"] < errors["bf16"] < 0.05  # bf16 shards round their partial sums apart
    assert r1["grad_rel_error_vs_one_process"] is None
    assert "torchrun --standalone --nproc_per_node=2 scripts/dist_ddp.py" in ddp_run.command


def test_fsdp2_policies_store_fp32_compute_bf16_and_bound_the_bf16_reduction(fsdp_run):
    assert fsdp_run.ok
    r0, r1 = fsdp_run.results
    for name, info in r0["policies"].items():
        assert (
            info["sharded_param_dtype"] == "torch.float32" and info["grad_dtype"] == "torch.float32"
        )
        assert info["local_shard_shape"][0] * 2 == info["full_shape"][0]
        want = "torch.float32" if name == "fp32" else "torch.bfloat16"
        assert info["block_output_dtype"] == want, name
    errors = r0["grad_rel_errors"]
    assert errors == r1["grad_rel_errors"]  # every rank gathered the same full gradients
    assert 0 < errors["bf16/bf16 vs bf16/fp32"] < errors["bf16/fp32 vs fp32"] < 0.05
    # Two ranks: one bf16 addition, rounded once to nearest: within 2^-8 of the exact sum.
    assert 0 < r0["bf16_reduce_max_elementwise_rel_error"] <= 2**-8
    assert r0["train_losses"][-1] < r0["train_losses"][0]
    assert r0["optimizer_state_dtype"] == "torch.float32" and r0["weights_identical"]


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


def test_bad_launch_arguments_get_clear_errors():
    with pytest.raises(FileNotFoundError, match="dist_ddp.*dist_fsdp|dist_accelerate.*dist_ddp"):
        distributed.launch("dist_nope")
    with pytest.raises(ValueError, match="nproc"):
        distributed.launch("dist_ddp", nproc=0)
    with pytest.raises(TypeError, match="list of strings"):
        distributed.launch("dist_ddp", "--precision bf16")
    assert distributed.torchrun_command("dist_fsdp", ["--steps", 2], nproc=4)[:3] == [
        "torchrun", "--standalone", "--nproc_per_node=4"
    ]  # fmt: skip


def test_a_worker_started_without_torchrun_says_how_to_start_it(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(RuntimeError, match="torchrun --standalone"):
        dist_worker.init()


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

    good = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    assert evaluate("08.reduce_in_fp32", good).passed
    bf16 = evaluate("08.reduce_in_fp32", MixedPrecisionPolicy(param_dtype=torch.bfloat16))
    assert not bf16.passed and "falls back to param_dtype" in bf16.message
    both = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.bfloat16)
    assert "Accelerate" in evaluate("08.reduce_in_fp32", both).message
    assert not evaluate("08.reduce_in_fp32", {"param_dtype": "bf16"}).passed

    def ring(numel, world, dtype):
        return 2 * (world - 1) / world * numel * torch.tensor([], dtype=dtype).element_size()

    assert evaluate("08.ring_allreduce_bytes", ring).passed
    one_phase = evaluate("08.ring_allreduce_bytes", lambda n, w, d: ring(n, w, d) / 2)
    assert "one phase" in one_phase.message
    four = evaluate("08.ring_allreduce_bytes", lambda n, w, d: 2 * (w - 1) / w * n * 4)
    assert "4 bytes per element" in four.message
