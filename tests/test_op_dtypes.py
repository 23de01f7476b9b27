"""course_utils.op_dtypes: the dispatch-mode tracer, on a tiny GPT-2 under CPU autocast."""

import pytest
import torch
from tiny_models import tiny_gpt2
from transformers.utils import logging as hf_logging

from course_utils.op_dtypes import (
    AUTOCAST_OPS,
    POLICIES,
    SOURCE_URLS,
    TORCH_TAG,
    OpTrace,
    documented_policy,
    documented_table,
    dtype_name,
    fp32_only_on,
    registered_autocast_ops,
    trace_op_dtypes,
)

pytestmark = pytest.mark.usefixtures("one_thread")

hf_logging.set_verbosity_error()


def batch() -> dict:
    ids = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(1))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}


@pytest.fixture(scope="module")
def bf16_trace() -> OpTrace:
    model = tiny_gpt2()
    with trace_op_dtypes(model) as trace:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(**batch()).loss
        loss.backward()
    return trace


def test_matmuls_run_in_bf16_and_the_loss_in_fp32(bf16_trace):
    assert bf16_trace.output_dtypes("addmm") == {"bf16"}  # Conv1D projections
    assert bf16_trace.output_dtypes("mm") == {"bf16"}  # lm_head (a Linear without bias)
    assert bf16_trace.output_dtypes("_log_softmax") == {"fp32"}
    assert bf16_trace.output_dtypes("nll_loss_forward") == {"fp32"}
    addmm = next(c for c in bf16_trace.calls if c.op == "addmm")
    assert addmm.inputs == ("bf16", "bf16", "bf16") and addmm.phase == "forward"


def test_weights_are_cast_on_the_fly_and_gradients_cast_back(bf16_trace):
    forward, backward = bf16_trace.casts("forward"), bf16_trace.casts("backward")
    assert forward[("fp32", "bf16")] >= 2 * 4  # weight and bias of 4 Conv1D per block, and more
    assert backward[("bf16", "fp32")] >= forward[("fp32", "bf16")] - 2  # weight grads back to fp32
    assert bf16_trace.output_dtypes("mm", phase="backward") == {"bf16"}


def test_residual_add_promotes_to_fp32(bf16_trace):
    mixed_adds = [
        c for c in bf16_trace.select() if c.op == "add" and set(c.inputs) == {"bf16", "fp32"}
    ]
    assert mixed_adds and {c.output for c in mixed_adds} == {"fp32"}
    assert {c.where for c in mixed_adds} == {"transformer.h.0", "transformer.h.1"}


def test_forward_ops_are_labelled_with_modules_and_backward_with_nodes(bf16_trace):
    table = bf16_trace.table(by=("where", "op", "output"))
    row = table[(table["where"] == "transformer.h.0.attn.c_attn") & (table["op"] == "addmm")]
    assert list(row.output) == ["bf16"] and list(row.calls) == [1]
    backward_nodes = {c.where for c in bf16_trace.select("backward")}
    assert "AddmmBackward0" in backward_nodes
    assert all(c.where == "" or c.where.startswith("transformer") or c.where in {"lm_head", "(model)"}
               for c in bf16_trace.select("forward"))  # fmt: skip


def test_table_hides_bookkeeping_unless_asked(bf16_trace):
    table = bf16_trace.table()
    assert list(table.columns) == ["op", "inputs", "output", "calls"]
    assert "view" not in set(table.op) and "detach" not in set(table.op)
    assert "view" in set(bf16_trace.table(bookkeeping=True).op)
    assert "_to_copy" not in set(bf16_trace.table(casts=False).op)
    assert table.calls.sum() == sum(c.is_floating for c in bf16_trace.select())
    assert "eq" not in set(table.op) and "eq" in set(bf16_trace.table(floating_only=False).op)
    assert bf16_trace.table(floating_only=False).calls.sum() == len(bf16_trace.select())
    with pytest.raises(KeyError, match="cannot group by"):
        bf16_trace.table(by=("module",))
    with pytest.raises(ValueError, match="phase"):
        bf16_trace.select("sideways")


def test_fp32_run_has_no_16_bit_op():
    model = tiny_gpt2()
    with trace_op_dtypes(model) as trace:
        model(**batch()).loss.backward()
    dtypes = {d for c in trace.calls for d in (*c.inputs, *c.outputs)}
    assert "bf16" not in dtypes and "fp16" not in dtypes
    assert not trace.casts(None).get(("fp32", "bf16"))


def test_first_nonfinite_finds_the_overflowing_op():
    lin = torch.nn.Linear(4, 4)
    with torch.no_grad():
        lin.weight.fill_(300.0)
    x = torch.full((1, 4), 100.0)
    with trace_op_dtypes(lin, check_finite=True) as trace:
        with torch.autocast("cpu", dtype=torch.float16):
            y = lin(x)  # 4 * 300 * 100 = 120000 > 65504: inf in fp16
        (y.float() * 2).sum()
    first = trace.first_nonfinite()
    assert first is not None and first.op == "addmm" and first.output == "fp16"
    assert first.where == "(model)"
    with trace_op_dtypes() as unchecked:
        torch.ones(2) + 1
    with pytest.raises(ValueError, match="check_finite"):
        unchecked.first_nonfinite()


def test_hooks_are_removed_even_after_an_error():
    model = tiny_gpt2()
    with pytest.raises(IndexError):
        with trace_op_dtypes(model):
            model(input_ids=torch.full((1, 40), 1))  # longer than n_positions=32: no position 32
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert torch.ones(1).add(1).item() == 2.0  # the mode is gone too


def test_unknown_op_lists_the_ops_seen(bf16_trace):
    with pytest.raises(KeyError, match="ops seen"):
        bf16_trace.output_dtypes("softmax_of_doom")


def test_documented_policies():
    assert documented_policy("addmm", "cuda") == "lower precision"
    assert documented_policy("native_layer_norm", "cuda") == "fp32"
    assert documented_policy("native_layer_norm", "cpu") == "not listed"
    for sdpa in ("_scaled_dot_product_flash_attention_for_cpu", "scaled_dot_product_attention"):
        assert documented_policy(sdpa, "cpu") == "lower precision"
    # AT_FORALL_LOWER_PRECISION_FP lists scaled_dot_product_attention: attention is 16-bit on CUDA
    for sdpa in ("_scaled_dot_product_efficient_attention", "_scaled_dot_product_flash_attention"):
        assert documented_policy(sdpa, "cuda") == "lower precision"
    for op in ("_softmax", "pow", "native_layer_norm", "sum"):  # fp32 on CUDA only
        assert (documented_policy(op, "cuda"), documented_policy(op, "cpu")) == (
            "fp32",
            "not listed",
        )
    assert documented_policy("nll_loss_forward", "cpu") == "fp32"
    assert documented_policy("cat", "cpu") == "promote"
    assert documented_policy("binary_cross_entropy", "cuda") == "refused"
    assert documented_policy("binary_cross_entropy", "cpu") == "fp32"
    assert documented_policy("tanh", "cuda") == "not listed"
    with pytest.raises(ValueError, match="device_type"):
        documented_policy("mm", "tpu")
    with pytest.raises(TypeError, match="op must be"):
        documented_policy(torch.mm, "cpu")
    for lists in AUTOCAST_OPS.values():  # no op in two lists of one device
        names = [op for ops in lists.values() for op in ops]
        assert len(names) == len(set(names))
        assert set(lists) <= set(POLICIES)


@pytest.mark.parametrize("device_type", ["cpu", "cuda"])
def test_source_lists_match_the_installed_dispatcher(device_type):
    """The lists transcribed from autocast_mode.h/.cpp are exactly the ops the installed torch
    registers an autocast kernel for (a CPU-only build registers the CUDA ones too)."""
    table = {op for ops in AUTOCAST_OPS[device_type].values() for op in ops}
    registered = registered_autocast_ops(device_type)
    assert table - registered == set(), "listed, not registered"
    assert registered - table == set(), "registered, not listed"
    with pytest.raises(ValueError, match="device_type"):
        registered_autocast_ops("mps")


def test_source_urls_name_the_installed_torch():
    assert TORCH_TAG == "v" + torch.__version__.split("+")[0]
    assert SOURCE_URLS["cuda"].endswith(f"/blob/{TORCH_TAG}/aten/src/ATen/autocast_mode.h")


def test_binary_cross_entropy_runs_in_fp32_under_cpu_autocast():
    """On the CPU it is on the fp32 list; CUDA autocast refuses it (a kernel that raises)."""
    p = torch.sigmoid(torch.randn(4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = torch.nn.functional.binary_cross_entropy(p.bfloat16(), torch.ones(4).bfloat16())
    assert loss.dtype == torch.float32


def test_cpu_lists_match_what_autocast_did(bf16_trace):
    """The documented CPU lists agree with the measured trace for the ops GPT-2 runs."""
    for call in bf16_trace.select():
        policy = documented_policy(call.op, "cpu")
        if policy == "lower precision":
            assert call.output == "bf16", call
        elif policy == "fp32":
            assert call.output == "fp32", call


def test_dtype_names():
    assert [dtype_name(d) for d in (torch.float32, torch.bfloat16, torch.float16)] == [
        "fp32",
        "bf16",
        "fp16",
    ]
    assert dtype_name(torch.complex64) == "complex64"
    with pytest.raises(TypeError):
        dtype_name("fp32")
    with pytest.raises(TypeError, match="nn.Module"):
        with trace_op_dtypes("model"):
            pass


def test_documented_table_and_the_ops_cast_to_fp32_on_one_device_only():
    table = documented_table(["mm", "softmax", "nll_loss"])
    assert list(table.columns) == ["cpu", "cuda"] and list(table.index) == [
        "mm",
        "softmax",
        "nll_loss",
    ]
    assert table.loc["softmax"].tolist() == ["not listed", "fp32"]
    assert table.loc["mm", "cpu"] == documented_policy("mm", "cpu")
    only_cuda = fp32_only_on("cuda")
    assert {"softmax", "layer_norm"} <= only_cuda and "nll_loss" not in only_cuda
    assert all(documented_policy(op, "cpu") == "not listed" for op in only_cuda)
    with pytest.raises(TypeError, match="list of aten op names"):
        documented_table("mm")
    with pytest.raises(ValueError, match="device_type must be one of"):
        documented_table(["mm"], device_types=("cpu", "tpu"))
    with pytest.raises(ValueError, match="device_type must be one of"):
        fp32_only_on("mps")
