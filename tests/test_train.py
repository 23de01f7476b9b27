"""course_utils.train and course_utils.precision: every precision mode on a tiny GPT-2, on CPU."""

import contextlib
import math
from types import SimpleNamespace

import pytest
import torch
from tiny_models import tiny_gpt2
from transformers.utils import logging as hf_logging

from course_utils.precision import PRECISIONS, EmulatedFp16Autocast, active_emulation
from course_utils.scaling import DynamicLossScaler
from course_utils.train import Callback, History, train

pytestmark = pytest.mark.usefixtures("one_thread")

hf_logging.set_verbosity_error()
FP16 = torch.float16


def random_batch(rows: int = 4, length: int = 16, seed: int = 1) -> dict:
    ids = torch.randint(0, 128, (rows, length), generator=torch.Generator().manual_seed(seed))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def quick(model, batches, **kwargs) -> History:
    kwargs = {"steps": 3, "lr": 1e-2, "progress": False, "allow_slow_fp16": True} | kwargs
    return train(model, batches, **kwargs)


def fp16_exact(tensor: torch.Tensor) -> bool:
    """Every value is an fp16 number (rounding to fp16 changes nothing)."""
    return torch.equal(tensor, tensor.to(FP16).to(tensor.dtype))


class ScaledLoss(torch.nn.Module):
    """The tiny model with its loss multiplied by a small factor: small enough gradients flush
    to zero in fp16 (a stand-in for the small gradients of a big model)."""

    def __init__(self, model, factor):
        super().__init__()
        self.model, self.factor = model, factor

    def forward(self, **batch):
        return SimpleNamespace(loss=self.model(**batch).loss * self.factor)


class GradProbe(Callback):
    """Copies the gradients (as the optimizer will see them) at each step."""

    def __init__(self):
        self.grads = []

    def on_before_optimizer_step(self, state):
        named = state.model.named_parameters()
        self.grads.append({n: p.grad.clone() for n, p in named if p.grad is not None})


# ---------------------------------------------------------------------------------------------
# Every mode trains; the history is filled.


@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_every_precision_learns_a_batch(precision):
    history = quick(tiny_gpt2(), random_batch(), precision=precision, steps=15)
    assert len(history) == 15 and history.precision == precision
    assert history.column("step") == list(range(1, 16))
    assert all(math.isfinite(loss) for loss in history.losses)
    assert history.losses[-1] < 0.5 * history.losses[0]  # memorising: the loss at least halves
    assert all(r.grad_norm > 0 and r.step_time_s > 0 and r.lr == 1e-2 for r in history)
    assert all(r.peak_mem_bytes is None and r.skipped is False for r in history)  # CPU, no overflow
    expected_scale = 2.0**16 if precision.startswith("fp16") else 1.0  # GradScaler's default
    assert history[0].loss_scale == expected_scale


@pytest.mark.parametrize(
    ("precision", "matmul_dtype", "weight_dtype"),
    [
        ("fp32", torch.float32, torch.float32),
        ("bf16", torch.bfloat16, torch.float32),  # autocast: 16-bit matmuls, fp32 weights
        ("fp16", torch.float16, torch.float32),
        ("fp16-emulated", torch.float32, torch.float32),  # fp16 values, held in fp32
        ("bf16-pure", torch.bfloat16, torch.bfloat16),
    ],
)
def test_what_each_mode_really_runs(precision, matmul_dtype, weight_dtype):
    model = tiny_gpt2()
    outputs = []
    for module in (model.transformer.h[0].mlp.c_fc, model.lm_head):  # Conv1D (addmm), Linear
        module.register_forward_hook(lambda mod, args, out: outputs.append(out.detach()))
    probe = GradProbe()
    quick(model, random_batch(), precision=precision, steps=1, callbacks=[probe])
    assert {out.dtype for out in outputs} == {matmul_dtype}
    assert {p.dtype for p in model.parameters()} == {weight_dtype}
    assert {g.dtype for g in probe.grads[0].values()} == {weight_dtype}
    if precision in ("fp16", "fp16-emulated"):
        assert all(fp16_exact(out) for out in outputs)
    if precision == "fp32":
        assert not any(fp16_exact(out) for out in outputs)


def test_bf16_pure_keeps_optimizer_state_in_bf16():
    states = []
    quick(
        tiny_gpt2(), random_batch(), precision="bf16-pure", callbacks=[lambda s: states.append(s)]
    )
    moments = [s["exp_avg"] for s in states[-1].optimizer.state.values()]
    assert moments and {m.dtype for m in moments} == {torch.bfloat16}


# ---------------------------------------------------------------------------------------------
# fp16 emulation: rounding, underflow, and loss scaling.


def test_emulation_rounds_weight_and_activation_gradients():
    model = tiny_gpt2()
    input_grads = []
    model.transformer.h[0].mlp.c_proj.register_full_backward_hook(
        lambda mod, grad_in, grad_out: input_grads.append(grad_in[0])
    )
    probe = GradProbe()
    quick(model, random_batch(), precision="fp16-emulated", steps=1, scaler=None, callbacks=[probe])
    assert input_grads and fp16_exact(input_grads[0])  # an activation gradient
    assert fp16_exact(probe.grads[0]["transformer.h.0.mlp.c_fc.weight"])  # a weight gradient
    fp32_probe = GradProbe()
    quick(tiny_gpt2(), random_batch(), precision="fp32", steps=1, callbacks=[fp32_probe])
    assert not fp16_exact(fp32_probe.grads[0]["transformer.h.0.mlp.c_fc.weight"])


def test_emulation_is_closer_to_real_fp16_than_fp32_is():
    model = tiny_gpt2()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(20)  # large activations, so that fp16 rounding shows in the logits
        ids = random_batch()["input_ids"]
        fp32 = model(input_ids=ids).logits
        with EmulatedFp16Autocast() as amp:
            emulated = model(input_ids=ids).logits
        with torch.autocast("cpu", dtype=FP16):
            real = model(input_ids=ids).logits.float()
    assert amp.calls["addmm"] == 8 and amp.calls["linear"] == 1
    assert fp16_exact(emulated)
    assert (emulated - real).abs().max() < (fp32 - real).abs().max()


def underflow_run(precision, scaler):
    probe = GradProbe()
    model = ScaledLoss(tiny_gpt2(), factor=1e-6)
    history = quick(model, random_batch(), precision=precision, steps=1, scaler=scaler,
                    callbacks=[probe])  # fmt: skip
    grads = torch.cat([g.flatten() for g in probe.grads[0].values()])
    return history[0].grad_norm, (grads == 0).float().mean().item()


def test_fp16_gradients_underflow_without_a_scaler_and_recover_with_one():
    fp32_norm, fp32_zeros = underflow_run("fp32", None)
    assert fp32_norm > 0 and fp32_zeros < 0.1
    assert underflow_run("fp16-emulated", None) == (0.0, 1.0)  # every gradient flushed to zero
    for scaler in ("auto", 2.0**16, DynamicLossScaler()):
        norm, zeros = underflow_run("fp16-emulated", scaler)
        assert zeros < 0.1 and norm == pytest.approx(fp32_norm, rel=0.01), scaler


def test_our_dynamic_scaler_and_grad_scaler_give_the_same_run():
    settings = dict(init_scale=2.0**30, growth_interval=3)  # starts too high: overflows first
    runs = []
    for scaler in (DynamicLossScaler(**settings), torch.amp.GradScaler("cpu", **settings)):
        model = tiny_gpt2()
        history = quick(model, random_batch(), precision="fp16-emulated", steps=20, scaler=scaler)
        runs.append((history, model))
    (ours, ours_model), (theirs, theirs_model) = runs
    assert ours.column("loss_scale") == theirs.column("loss_scale")
    assert ours.skipped_steps == theirs.skipped_steps and len(ours.skipped_steps) >= 2
    assert len(set(ours.column("loss_scale"))) >= 4  # backed off, then grew again
    for p, q in zip(ours_model.parameters(), theirs_model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_a_skipped_step_leaves_the_weights_alone():
    model = tiny_gpt2()
    before = [p.detach().clone() for p in model.parameters()]
    history = quick(model, random_batch(), precision="fp16-emulated", steps=1, scaler=2.0**40)
    assert history[0].skipped and not math.isfinite(history[0].grad_norm)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


# ---------------------------------------------------------------------------------------------
# Clipping after unscale_, gradient accumulation.


def test_clipping_happens_in_true_units_after_unscale():
    fp32 = quick(tiny_gpt2(), random_batch(), precision="fp32", steps=1)
    true_norm = fp32[0].grad_norm
    clip_to = true_norm / 4
    clipped_norms = []

    class ClippedNorm(Callback):
        def on_before_optimizer_step(self, state):
            grads = [p.grad for p in state.model.parameters() if p.grad is not None]
            clipped_norms.append(torch.nn.utils.get_total_norm(grads).item())

    history = quick(tiny_gpt2(), random_batch(), precision="fp16-emulated", steps=1,
                    scaler=1024.0, max_grad_norm=clip_to, callbacks=[ClippedNorm()])  # fmt: skip
    assert history[0].loss_scale == 1024.0
    assert history[0].grad_norm == pytest.approx(true_norm, rel=0.01)  # not 1024 x larger
    assert clipped_norms[0] == pytest.approx(clip_to, rel=1e-3)


def test_gradient_accumulation_equals_one_big_batch():
    big = random_batch(rows=8)
    halves = [{k: v[:4] for k, v in big.items()}, {k: v[4:] for k, v in big.items()}]
    probes, models, histories = [GradProbe(), GradProbe()], [tiny_gpt2(), tiny_gpt2()], []
    for model, probe, batches, accum in zip(models, probes, ([big], halves), (1, 2), strict=True):
        histories.append(
            quick(model, batches, precision="fp32", grad_accum_steps=accum, callbacks=[probe],
                  make_optimizer=lambda params: torch.optim.SGD(params, lr=0.5))
        )  # fmt: skip
    assert histories[0].losses == pytest.approx(histories[1].losses, rel=1e-5)
    for name, grad in probes[0].grads[0].items():
        torch.testing.assert_close(probes[1].grads[0][name], grad, rtol=1e-4, atol=1e-7)
    for p, q in zip(*(m.parameters() for m in models), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Callbacks, logging, the History helpers.


def test_callbacks_can_skip_a_step_and_stop_training():
    class SkipSecondStopThird(Callback):
        def on_before_optimizer_step(self, state):
            state.skip_step = state.step == 2

        def on_step_end(self, state):
            state.stop = state.step == 3

    model = tiny_gpt2()
    snapshots = []
    history = quick(model, random_batch(), precision="fp32", steps=10,
                    callbacks=[SkipSecondStopThird(), lambda s: snapshots.append(
                        [p.detach().clone() for p in s.model.parameters()])])  # fmt: skip
    assert len(history) == 3 and history.skipped_steps == [2]
    assert all(torch.equal(a, b) for a, b in zip(snapshots[0], snapshots[1], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(snapshots[1], snapshots[2], strict=True))


def test_log_lines_and_history_helpers(capsys):
    history = quick(tiny_gpt2(), random_batch(), precision="fp16-emulated", steps=4, log_every=2)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[0] for line in lines] == ["step    2", "step    4"]
    assert "scale 65536" in lines[0] and "time: " in lines[0]
    frame = history.to_frame()
    assert list(frame.index) == [1, 2, 3, 4] and frame["loss_scale"].eq(65536.0).all()
    assert history.summary().startswith("fp16-emulated | 4 steps | loss ")
    with pytest.raises(KeyError, match="grad_norm"):
        history.column("gradnorm")
    import matplotlib

    matplotlib.use("Agg")
    ax = history.plot()
    assert ax.get_ylabel() == "loss"
    matplotlib.pyplot.close("all")


def test_batches_cycle_a_list_and_a_generator_must_last():
    batches = [random_batch(seed=1), random_batch(seed=2)]
    assert len(quick(tiny_gpt2(), batches, precision="fp32", steps=3)) == 3
    with pytest.raises(ValueError, match="ran out"):
        quick(tiny_gpt2(), (b for b in batches), precision="fp32", steps=3)


# ---------------------------------------------------------------------------------------------
# Bad input: clear errors from our code, raised before the model is touched.


def test_unknown_precision_names_the_valid_ones():
    model = tiny_gpt2()
    with pytest.raises(ValueError) as error:
        quick(model, random_batch(), precision="float16")
    assert all(repr(name) in str(error.value) for name in PRECISIONS)
    assert next(model.parameters()).dtype == torch.float32


def test_fp16_on_a_cpu_says_it_is_slow_and_suggests_emulation():
    with pytest.raises(ValueError, match="fp16-emulated") as error:
        train(tiny_gpt2(), random_batch(), steps=1, precision="fp16", device="cpu", progress=False)
    assert "allow_slow_fp16=True" in str(error.value) and "slower" in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(steps=0), ValueError, "steps"),
        (dict(steps=2.0), TypeError, "steps"),
        (dict(grad_accum_steps=0), ValueError, "grad_accum_steps"),
        (dict(lr=-1.0), ValueError, "lr"),
        (dict(max_grad_norm=0.0), ValueError, "max_grad_norm"),
        (dict(max_grad_norm=math.nan), ValueError, "max_grad_norm"),
        (dict(scaler="dynamic"), TypeError, "scaler"),
        (dict(precision="bf16-pure", scaler=1024.0), ValueError, "no loss scaler"),
        (dict(callbacks=[3]), TypeError, "callback"),
        (dict(batches=[]), ValueError, "empty"),
        (dict(batches=[[1, 2]]), TypeError, "dict"),
        (dict(batches=42), TypeError, "batches"),
        (dict(batches={"input_ids": torch.zeros(2, 4, dtype=torch.long)}), ValueError, "labels"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    kwargs = {"batches": random_batch(), "precision": "fp32"} | kwargs
    with pytest.raises(error, match=match):
        quick(tiny_gpt2(), **kwargs)


# ---------------------------------------------------------------------------------------------
# Issue 13 (lesser): clear messages instead of bare Python errors; a word for all -100 labels;
# skipped steps seen with a fused optimizer.


def test_callbacks_none_means_no_callbacks():
    history = quick(tiny_gpt2(), random_batch(), precision="fp32", callbacks=None)
    assert len(history) == 3


def test_a_model_that_is_not_a_module_is_refused_clearly():
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module.*function"):
        quick(lambda **batch: torch.tensor(1.0), random_batch(), precision="fp32")


def test_all_parameters_frozen_is_refused_clearly():
    model = tiny_gpt2()
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameter"):
        quick(model, random_batch(), precision="fp32")


@pytest.mark.parametrize("returned", [None, "adamw", torch.nn.Linear(2, 2)])
def test_an_optimizer_factory_returning_no_optimizer_is_refused_clearly(returned):
    with pytest.raises(TypeError, match=r"make_optimizer\(params\) must return"):
        quick(tiny_gpt2(), random_batch(), precision="fp32", make_optimizer=lambda p: returned)


def test_all_ignored_labels_give_a_warning_that_says_why_the_loss_is_nan():
    from course_utils.train import NoLabelsWarning

    batch = random_batch()
    batch["labels"] = torch.full_like(batch["labels"], -100)
    with pytest.warns(NoLabelsWarning, match=r"step 1: the loss is nan.*-100"):
        history = quick(tiny_gpt2(), batch, precision="fp32", steps=1)
    assert math.isnan(history[0].loss)


def test_no_warning_when_labels_are_fine(recwarn):
    quick(tiny_gpt2(), random_batch(), precision="fp32", steps=1)
    assert not [w for w in recwarn if "-100" in str(w.message)]


def test_skipped_steps_are_seen_with_a_fused_optimizer():
    """GradScaler lets a fused optimizer skip an overflowing step itself (step(found_inf=...)),
    so optimizer.step() is called either way."""
    runs = {}
    for fused in (False, True):
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**100, growth_interval=1000)
        runs[fused] = quick(
            tiny_gpt2(),
            random_batch(),
            precision="fp16-emulated",
            scaler=scaler,
            steps=4,
            make_optimizer=lambda params, fused=fused: torch.optim.AdamW(
                params, lr=1e-3, fused=fused
            ),
        )
    assert runs[False].skipped_steps, "the huge scale should overflow at first"
    assert runs[True].skipped_steps == runs[False].skipped_steps


@pytest.mark.parametrize(
    ("precision", "context", "desc"),
    [
        ("fp32", None, "train fp32"),
        ("fp16-emulated", None, "train fp16-emulated"),
        ("fp32", EmulatedFp16Autocast, "train fp16-emulated"),  # a loop told fp32 in an emulation
    ],
)
def test_the_progress_bar_names_the_mode_that_ran(capsys, precision, context, desc):
    block = context() if context is not None else contextlib.nullcontext()
    with block:
        quick(tiny_gpt2(), random_batch(), steps=1, precision=precision, progress=True)
    assert active_emulation() is None  # the block's end forgets it
    bar = capsys.readouterr().err
    assert f"{desc}: 100%" in bar, bar


def test_an_emulation_left_by_an_error_is_forgotten():
    with pytest.raises(ZeroDivisionError), EmulatedFp16Autocast() as outer:
        assert active_emulation() is outer
        with EmulatedFp16Autocast() as inner:
            assert active_emulation() is inner
        assert active_emulation() is outer
        1 / 0  # noqa: B018
    assert active_emulation() is None
