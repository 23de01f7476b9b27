"""course_utils.nan: find the first non-finite module, forward or backward, and leave no trace."""

import math

import pytest
import torch
from tiny_models import tiny_gpt2
from transformers.utils import logging as hf_logging

from course_utils.nan import (
    TensorStats,
    find_first_nonfinite,
    first_nonfinite_step,
    grad_norm_spikes,
    nonfinite_parameters,
)
from course_utils.train import History, StepRecord

pytestmark = pytest.mark.usefixtures("one_thread")

hf_logging.set_verbosity_error()
NAN = float("nan")


def batch(seed: int = 1) -> dict:
    ids = torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(seed))
    return {"input_ids": ids, "labels": ids.clone()}


def hooks_on(model) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


def test_healthy_model_gives_none_and_leaves_no_trace():
    model = tiny_gpt2()
    model.train()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    assert find_first_nonfinite(model, batch()) is None
    assert hooks_on(model) == 0
    assert all(p.grad is None for p in model.parameters())  # gradients as they were
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())
    assert model.training


def test_existing_gradients_are_restored():
    model = tiny_gpt2()
    model(**batch()).loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    find_first_nonfinite(model, batch(2))
    assert all(torch.equal(p.grad, grads[name]) for name, p in model.named_parameters())


def test_nan_embedding_row_is_found_in_forward():
    model, data = tiny_gpt2(), batch()
    with torch.no_grad():
        model.transformer.wte.weight[data["input_ids"][0, 3]] = NAN
    report = find_first_nonfinite(model, data)
    assert (report.module, report.phase) == ("transformer.wte", "forward")
    assert report.module_type == "Embedding"
    assert not report.parameters[0].finite and report.parameters[0].nan == 32  # one row
    assert report.inputs_finite and math.isnan(report.loss)
    assert "transformer.wte" in str(report)
    assert nonfinite_parameters(model) == {"transformer.wte.weight": 32}
    assert hooks_on(model) == 0


def test_inf_activation_is_found_with_its_statistics():
    model = tiny_gpt2()
    target = model.transformer.h[1].mlp.c_fc
    handle = target.register_forward_hook(lambda module, args, out: out * float("inf"))
    try:
        report = find_first_nonfinite(model, batch())
    finally:
        handle.remove()
    assert (report.module, report.phase) == ("transformer.h.1.mlp.c_fc", "forward")
    assert report.inputs_finite
    assert report.outputs[0].inf > 0 and report.outputs[0].dtype == "float32"
    assert report.outputs[0].shape == (2, 12, 128)


def test_nan_made_between_submodules_points_to_the_parent():
    model = tiny_gpt2()
    attn = model.transformer.h[0].attn
    # NaN in the attention's own code (after c_attn, before c_proj): poison c_proj's input
    handle = attn.c_proj.register_forward_pre_hook(lambda module, args: (args[0] * NAN,))
    try:
        report = find_first_nonfinite(model, batch())
    finally:
        handle.remove()
    assert report.module == "transformer.h.0.attn.c_proj"
    assert not report.inputs_finite
    assert "'transformer.h.0.attn'" in report.note


def test_nan_gradient_of_a_weight_is_found_in_backward():
    model = tiny_gpt2()
    weight = model.transformer.h[0].attn.c_attn.weight
    handle = weight.register_hook(lambda grad: grad * NAN)
    try:
        report = find_first_nonfinite(model, batch())
    finally:
        handle.remove()
    assert (report.module, report.phase) == ("transformer.h.0.attn.c_attn", "backward")
    assert report.outputs[0].name == "grad of weight" and report.outputs[0].nan > 0
    assert math.isfinite(report.loss)


def test_inf_gradient_of_an_activation_is_found_in_backward():
    model = tiny_gpt2()

    def poison(module, grad_input, grad_output):
        return tuple(g * float("inf") if g is not None else None for g in grad_input)

    handle = model.transformer.h[1].register_full_backward_hook(poison)
    try:
        report = find_first_nonfinite(model, batch())
    finally:
        handle.remove()
    # the gradient that reaches block 0's output is the first non-finite one
    assert (report.module, report.phase) == ("transformer.h.0", "backward")
    assert hooks_on(model) == 0


def test_nan_only_in_the_loss():
    model = tiny_gpt2()
    data = batch()
    data["labels"] = torch.full_like(data["labels"], -100)  # mean over no token: 0 / 0
    report = find_first_nonfinite(model, data)
    assert (report.module, report.phase) == ("", "forward")
    assert [s.name for s in report.outputs if not s.finite] == ["output.loss"]
    assert "the model itself" in str(report)


def test_runs_in_a_precision_mode():
    model = tiny_gpt2()
    with torch.no_grad():  # huge query and key weights: the logits overflow fp16, not fp32
        model.transformer.h[0].attn.c_attn.weight[:, :64] *= 3000.0
    model.set_attn_implementation("eager")
    assert find_first_nonfinite(model, batch()) is None
    report = find_first_nonfinite(model, batch(), precision="fp16-emulated")
    assert report is not None and report.module.startswith("transformer.h.0.attn")


def test_bad_arguments():
    model = tiny_gpt2()
    with pytest.raises(TypeError, match="torch.nn.Module"):
        find_first_nonfinite("model", batch())
    with pytest.raises(TypeError, match="dict"):
        find_first_nonfinite(model, [1, 2])
    with pytest.raises(ValueError, match="needs a loss"):
        find_first_nonfinite(model, {"input_ids": batch()["input_ids"]})
    with pytest.raises(ValueError, match="unknown precision"):
        find_first_nonfinite(model, batch(), precision="fp8")
    assert hooks_on(model) == 0


def test_tensor_stats():
    stats = TensorStats.of(torch.tensor([1.0, -3.0, NAN, float("inf")]), "x")
    assert (stats.nan, stats.inf, stats.min, stats.max, stats.absmax) == (1, 1, -3.0, 1.0, 3.0)
    assert not stats.finite
    empty = TensorStats.of(torch.tensor([NAN]), "y")
    assert math.isnan(empty.max)
    ints = TensorStats.of(torch.tensor([3, -7]), "ids")
    assert ints.finite and ints.absmax == 7


def history_of(losses, norms) -> History:
    records = [
        StepRecord(
            step=i + 1,
            loss=loss,
            grad_norm=norm,
            loss_scale=1.0,
            skipped=False,
            lr=1e-3,
            step_time_s=0.0,
            peak_mem_bytes=None,
        )  # fmt: skip
        for i, (loss, norm) in enumerate(zip(losses, norms, strict=True))
    ]
    return History(precision="fp32", device="cpu", records=records)


def test_first_nonfinite_step():
    assert first_nonfinite_step(history_of([1, 2, 3], [1, 1, 1])) is None
    assert first_nonfinite_step(history_of([1, NAN, 3], [1, 1, 1])) == 2
    assert first_nonfinite_step(history_of([1, 2, 3], [1, 1, float("inf")])) == 3


def test_grad_norm_spikes():
    norms = [1.0] * 10 + [50.0] + [1.0] * 3 + [NAN]
    history = history_of([1.0] * len(norms), norms)
    assert grad_norm_spikes(history, factor=10, window=5) == [11, 15]
    assert grad_norm_spikes(history, factor=100, window=5) == [15]
    with pytest.raises(ValueError, match="factor"):
        grad_norm_spikes(history, factor=1)
    with pytest.raises(ValueError, match="window"):
        grad_norm_spikes(history, window=0)


def test_run_debugger_stops_at_nan_weights_and_leaves_its_hooks():
    from course_utils.nan import run_debugger

    model, data = tiny_gpt2(), batch()
    clean = run_debugger(model, data)
    assert not clean.raised and clean.stopped_at is None and clean.hooks_left > 0
    with torch.no_grad():
        model.transformer.wte.weight.fill_(float("nan"))
    broken = run_debugger(model, data)
    assert broken.raised and broken.stopped_at is not None
    assert all(not m._forward_hooks for m in model.modules())  # it worked on a copy


def test_run_debugger_trace_mode_parses_every_frame():
    from course_utils.nan import run_debugger

    model, data = tiny_gpt2(), batch()
    traced = run_debugger(model, data, trace=True)
    assert not traced.raised
    names = [name for name, _ in traced.frames]
    assert "transformer.h.0.mlp.c_proj" in names and "transformer.h.1.attn.c_proj" in names
    outputs = dict(traced.output_absmax("c_proj"))
    with torch.no_grad():  # the parsed abs max is the one of the real output (printed to 3 digits)
        hidden = model.transformer.h[0].ln_2(model.transformer.wte(data["input_ids"]))
    assert outputs["transformer.h.0.mlp.c_proj"] > 0 and hidden.isfinite().all()
    # an overflow in emulated fp16 is seen in trace mode as inf, without stopping
    with torch.no_grad():
        model.transformer.h[0].mlp.c_proj.bias.fill_(1e5)  # past 65504
    over = run_debugger(model, data, precision="fp16-emulated", trace=True)
    assert not over.raised and math.isinf(dict(over.output_absmax("h.0.mlp.c_proj")).popitem()[1])
    stopped = run_debugger(model, data, precision="fp16-emulated")
    assert stopped.raised and stopped.stopped_at == "transformer.h.0.mlp.c_proj"
    with pytest.raises(TypeError, match="torch.nn.Module"):
        run_debugger("model", data)
    with pytest.raises(TypeError, match="dict"):
        run_debugger(model, [1, 2])


def test_largest_weight_change_and_adam_bound():
    from course_utils.nan import adam_step_bound, largest_weight_change

    model = tiny_gpt2()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert largest_weight_change(before, model) == 0.0
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    loss = model(**batch()).loss * 1e6  # an outlier: a million times the gradient
    loss.backward()
    optimizer.step()
    moved = largest_weight_change(before, model)
    # first step: m_hat / sqrt(v_hat) = g / |g| = 1, so every moved weight moved by lr
    assert moved == pytest.approx(1e-3, rel=1e-3)
    assert moved <= adam_step_bound(1e-3)
    assert adam_step_bound(1e-3) == pytest.approx(1e-3 * 0.1 / math.sqrt(0.001))
    assert adam_step_bound(1.0, (0.9, 0.99)) == 1.0  # (1 - b1) = sqrt(1 - b2): bound is lr
    with pytest.raises(ValueError, match="lr"):
        adam_step_bound(0)
    with pytest.raises(ValueError, match="betas"):
        adam_step_bound(1e-3, (1.0, 0.999))
    with pytest.raises(TypeError, match="state dict"):
        largest_weight_change([1], model)
    with pytest.raises(ValueError, match="not in the state dict"):
        largest_weight_change({}, model)
