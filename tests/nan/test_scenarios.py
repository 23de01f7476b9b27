"""course_utils.nan.scenarios (the reproducible NaN runs of notebook 06) and its exercise checks."""

import math
import warnings

import pytest
import torch
from transformers.utils import logging as hf_logging

from course_utils import exercises
from course_utils.nan import first_nonfinite_step, nonfinite_parameters
from course_utils.nan.scenarios import (
    BadBatchScenario,
    EmulatedBf16Autocast,
    EmulatedFp16AutocastFp32Aware,
    Fp16RangeScenario,
    completion_only_loss,
    encode_sft_batch,
    full_precision,
    grow_residual_stream,
    keep_in_fp32,
    projection_absmax,
    training_precision,
    upcast_attention_scores,
)

pytestmark = pytest.mark.usefixtures("one_thread")

hf_logging.set_verbosity_error()


def answer_tokens(batch) -> int:
    return int((batch["labels"][:, 1:] != -100).sum())


# ----------------------------------------------------------------------------- pieces


def test_emulated_bf16_matches_real_bf16_autocast():
    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 32)
    x = torch.randn(8, 64, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        real = layer(x)
    with EmulatedBf16Autocast() as amp:
        emulated = layer(x)
    assert real.dtype is torch.bfloat16 and emulated.dtype is torch.float32
    assert torch.equal(emulated, emulated.to(torch.bfloat16).float())  # bf16 values only
    # same inputs rounded to bf16, fp32 accumulation: at most one bf16 rounding step apart
    ulp = 2.0**-7 * real.float().abs().clamp(min=1e-3)
    assert ((emulated - real.float()).abs() <= ulp).all()
    assert amp.calls["linear"] == 1
    emulated.sum().backward()
    assert torch.equal(x.grad, x.grad.to(torch.bfloat16).float())  # gradient rounded too


def test_training_precision():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    mode, context = training_precision("bf16", cpu)
    assert mode == "fp32" and isinstance(context, EmulatedBf16Autocast)
    mode, context = training_precision("fp16", cpu)
    assert mode == "fp32" and isinstance(context, EmulatedFp16AutocastFp32Aware)
    assert training_precision("bf16", cuda)[0] == "bf16"
    assert training_precision("fp32", cpu)[0] == "fp32"
    with pytest.raises(ValueError, match="unknown precision"):
        training_precision("fp8", cpu)


def test_completion_only_loss_is_nan_without_answer_tokens():
    logits = torch.randn(2, 5, 11, requires_grad=True)
    labels = torch.full((2, 5), -100)
    loss = completion_only_loss(logits, labels)
    assert math.isnan(loss.item())
    loss.backward()
    assert torch.isnan(logits.grad[:, :-1]).all()  # 0/0 poisons every gradient (the last
    # position predicts nothing: its logits are not used)
    clamped = completion_only_loss(logits, labels, clamp=True)
    assert clamped.item() == 0.0
    labels[0, 3] = 4
    finite = completion_only_loss(logits, labels)
    expected = torch.nn.functional.cross_entropy(logits[0, 2], torch.tensor(4))
    assert torch.allclose(finite, expected)


def test_encode_sft_batch_masks_prompts_and_truncates():
    scenario = BadBatchScenario(steps=4, bad_step=3)
    tokenizer = scenario.tokenizer
    batch = encode_sft_batch(
        tokenizer, [("Question: What does abs(x) do?\n", "Absolute value.")], 64
    )
    prompt = tokenizer("Question: What does abs(x) do?\n", add_special_tokens=False)["input_ids"]
    assert (batch["labels"][0, : len(prompt)] == -100).all()
    assert batch["labels"][0, -1] == tokenizer.eos_token_id
    assert scenario.batches[2]["input_ids"].shape[1] == 64  # cut to max_length
    assert answer_tokens(scenario.batches[2]) == 0  # the bad batch has no answer left
    assert all(answer_tokens(b) > 0 for i, b in enumerate(scenario.batches) if i != 2)


def test_scenario_arguments():
    with pytest.raises(ValueError, match="bad_step"):
        BadBatchScenario(steps=10, bad_step=1)
    with pytest.raises(ValueError, match="nothing to run"):
        BadBatchScenario(steps=4, bad_step=3).train(steps=9)


# ----------------------------------------------------------------------------- the runs


def test_bad_batch_kills_the_run_at_its_step_and_the_fixes():
    scenario = BadBatchScenario(steps=5, bad_step=4)
    history = scenario.train()
    assert first_nonfinite_step(history) == 4
    assert all(math.isfinite(x) for x in history.losses[:3])
    assert all(math.isnan(x) for x in history.losses[3:])
    assert nonfinite_parameters(scenario.last_model)  # AdamW wrote NaN into the weights
    assert history.precision in ("bf16 (emulated)", "bf16")

    # the fixes, in fp32 (faster on a CPU; the NaN does not depend on the precision)
    clipped = scenario.train(max_grad_norm=1.0, precision="fp32")  # a NaN norm: no help
    assert first_nonfinite_step(clipped) == 4
    skipped = scenario.train(skip_steps=[4], precision="fp32")
    assert first_nonfinite_step(skipped) is None
    assert skipped.column("step") == [1, 2, 3, 5]
    fixed = BadBatchScenario(steps=5, bad_step=4, clamp_loss=True).train(precision="fp32")
    assert first_nonfinite_step(fixed) is None and fixed[3].loss == 0.0


def test_resume_from_a_checkpoint_continues_the_run(tmp_path):
    from course_utils.nan.checkpoints import Checkpointer, CheckpointStore

    scenario = BadBatchScenario(steps=6, bad_step=6)
    store = CheckpointStore(tmp_path)
    full = scenario.train(precision="fp32", steps=5, callbacks=[Checkpointer(store, every=3)])
    resumed = scenario.train(precision="fp32", start=store.load(3), steps=5)
    assert resumed.column("step") == [4, 5]
    # same state, same batches: the same losses as the uninterrupted run
    assert resumed.losses == pytest.approx(full.losses[3:5], rel=1e-4)
    state = store.load(3)
    scenario.train(precision="fp32", start=state, steps=5)
    assert torch.equal(
        state["optimizer"]["state"][0]["exp_avg"], store.load(3)["optimizer"]["state"][0]["exp_avg"]
    )


def test_fp16_range_scenario():
    scenario = Fp16RangeScenario(steps=2)
    fp16 = scenario.train(precision="fp16")
    assert all(math.isnan(x) for x in fp16.losses) and fp16.skipped_steps == [1, 2]
    assert fp16[-1].loss_scale == 2.0**15  # halved once, after the first overflow
    assert fp16.precision == "fp16 (emulated) + GradScaler"
    bf16 = scenario.train(precision="bf16")
    assert all(math.isfinite(x) for x in bf16.losses) and not bf16.skipped_steps
    kept = scenario.train(precision="fp16", keep_fp32=["c_proj"])
    assert all(math.isfinite(x) for x in kept.losses) and not kept.skipped_steps
    growth = scenario.applied_growth
    assert growth >= 1 and math.log2(growth).is_integer()
    model = scenario.load_model()
    assert all(
        projection_absmax(model, b) > torch.finfo(torch.float16).max for b in scenario.batches
    )


def test_grow_residual_stream_keeps_the_function():
    scenario = Fp16RangeScenario(steps=2, growth=1024.0)
    original, grown = scenario.load_model(grown=False), scenario.load_model()
    assert grown.lm_head.weight is not grown.transformer.wte.weight  # untied, head unchanged
    assert torch.equal(grown.lm_head.weight, original.transformer.wte.weight)
    batch = scenario.batches[0]
    with torch.no_grad():  # the same loss: LayerNorm divides the scale out (up to its eps)
        same = original(**batch).loss.item(), grown(**batch).loss.item()
    assert same[1] == pytest.approx(same[0], rel=1e-4)
    assert projection_absmax(grown, batch) > 500 * projection_absmax(original, batch)
    for bad in (0, -2.0, math.inf, True, "2"):
        with pytest.raises(ValueError, match="factor"):
            grow_residual_stream(original, bad)
    with pytest.raises(TypeError, match="GPT-2"):
        grow_residual_stream(torch.nn.Linear(2, 2), 2.0)


def test_keep_in_fp32_and_full_precision():
    layer = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with torch.no_grad():
        layer[0].weight.fill_(3e4)
    x = torch.ones(1, 4)
    with EmulatedFp16AutocastFp32Aware():
        assert torch.isinf(layer(x)).all()  # 4 x 3e4 = 1.2e5 > 65504
        with full_precision():
            assert torch.isfinite(layer(x)).all()
        with full_precision({"matmul"}):  # another op: still rounded
            assert torch.isinf(layer(x)).all()
    assert keep_in_fp32(layer, "0") == ["0"]
    with EmulatedFp16AutocastFp32Aware():
        assert torch.isfinite(layer(x)).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(x).dtype is torch.float32  # real autocast is switched off in it too
    with pytest.raises(ValueError, match="no module"):
        keep_in_fp32(layer, ["c_proj"])
    with pytest.raises(ValueError, match="non-empty"):
        keep_in_fp32(layer, [])


def test_upcast_attention_scores():
    scenario = Fp16RangeScenario(steps=2, growth=1.0)
    model = scenario.load_model()
    upcast_attention_scores(model)
    assert all(block.attn.reorder_and_upcast_attn for block in model.transformer.h)
    with torch.no_grad():
        plain = scenario.load_model()(**scenario.batches[0]).loss
        upcast = model(**scenario.batches[0]).loss
    assert upcast.item() == pytest.approx(plain.item(), rel=1e-4)


def test_outliers():
    scenario = BadBatchScenario(steps=3, bad_step=None, outliers={2: 1e6})
    run = scenario.train(precision="fp32")
    clean = BadBatchScenario(steps=3, bad_step=None).train(precision="fp32")
    assert run.losses[0] == clean.losses[0]
    assert run.losses[1] == pytest.approx(clean.losses[1] * 1e6, rel=1e-4)
    assert all(math.isfinite(x) for x in run.losses)
    assert scenario.last_model.loss_function.__class__.__name__ != "_StepWeightedLoss"
    inf = BadBatchScenario(steps=3, bad_step=None, outliers={2: math.inf})
    assert first_nonfinite_step(inf.train(precision="fp32", max_grad_norm=1.0)) == 2
    for bad in ({0: 2.0}, {4: 2.0}, {2: 0}, {2: "x"}, {True: 2.0}):
        with pytest.raises(ValueError, match="outliers"):
            BadBatchScenario(steps=3, bad_step=None, outliers=bad)


def test_heldout_loss():
    scenario = Fp16RangeScenario(steps=2, growth=1.0, heldout_batches=2)
    assert len(scenario.heldout) == 2
    model = scenario.load_model()
    loss = scenario.heldout_loss(model)
    assert math.isfinite(loss) and model.training  # back in training mode
    assert scenario.heldout_loss(model, "bf16") == pytest.approx(loss, rel=1e-2)
    with pytest.raises(ValueError, match="unknown precision"):
        scenario.heldout_loss(model, "fp8")


def test_hf_trainer_runs_the_same_batches(tmp_path):
    scenario = BadBatchScenario(steps=3, bad_step=3)
    trainer = scenario.hf_trainer(tmp_path)
    trainer.train()
    assert trainer.state.global_step == 3
    assert nonfinite_parameters(trainer.model)  # the bad batch at step 3 poisoned it


# ----------------------------------------------------------------------------- exercise checks


def test_exercise_find_bad_step():
    def right(batches):
        for index, batch in enumerate(batches):
            if answer_tokens(batch) == 0:
                return index + 1
        return None

    assert exercises.evaluate("06.find_bad_step", right).passed
    off_by_one = exercises.evaluate("06.find_bad_step", lambda b: right(b) and right(b) - 1)
    assert not off_by_one.passed and "count from 1" in off_by_one.message
    assert not exercises.evaluate("06.find_bad_step", lambda b: 1).passed
    assert not exercises.evaluate("06.find_bad_step", ...).passed


def test_exercise_overflowing_module():
    from course_utils.exercises.nb06 import _grown

    _, report = _grown()
    assert report.module == "transformer.h.0.mlp.c_proj" and report.inputs_finite
    assert exercises.evaluate("06.overflowing_module", report.module).passed
    other = exercises.evaluate("06.overflowing_module", "transformer.h.1.mlp.c_proj")
    assert not other.passed and "first one" in other.message
    parent = exercises.evaluate("06.overflowing_module", "transformer.h.0.mlp")
    assert not parent.passed and "submodule" in parent.message
    assert not exercises.evaluate("06.overflowing_module", "transformer.wte").passed
    assert not exercises.evaluate("06.overflowing_module", 3).passed


def test_exercise_single_fix():
    assert exercises.evaluate("06.single_fix", {"keep_fp32": ["c_proj"]}).passed
    bf16 = exercises.evaluate("06.single_fix", {"precision": "bf16"})
    assert not bf16.passed and "T4" in bf16.message
    clip = exercises.evaluate("06.single_fix", {"max_grad_norm": 1.0})
    assert not clip.passed and "still has NaN" in clip.message
    only_mlp = exercises.evaluate("06.single_fix", {"keep_fp32": ["mlp.c_proj"]})
    assert not only_mlp.passed and "another module" in only_mlp.message
    bad_name = exercises.evaluate("06.single_fix", {"keep_fp32": ["nope"]})
    assert not bad_name.passed and "does not run" in bad_name.message
    assert not exercises.evaluate("06.single_fix", {"precision": "bf16", "lr": 1e-4}).passed
    assert not exercises.evaluate("06.single_fix", {"optimizer": "sgd"}).passed


RIGHT = {
    "finite_outlier": "max_grad_norm",
    "nonfinite_value": "rollback_skip",
    "divergence": "lower_lr",
}


@pytest.mark.parametrize(
    ("answer", "passed", "words"),
    [
        (RIGHT, True, "Correct"),
        (RIGHT | {"finite_outlier": "rollback_skip"}, True, "Correct"),
        (RIGHT | {"finite_outlier": "nothing"}, False, "AdamW's moments"),
        (RIGHT | {"finite_outlier": "fp32"}, False, "precision does not enter"),
        (RIGHT | {"nonfinite_value": "max_grad_norm"}, False, "max_norm / NaN"),
        (RIGHT | {"nonfinite_value": "fp32"}, False, "fp32 too"),
        (RIGHT | {"divergence": "max_grad_norm"}, False, "clipping changes"),
        (RIGHT | {"divergence": "gradient_max_norm"}, False, "is not one of"),
        ({"finite_outlier": "max_grad_norm"}, False, "missing"),
        (RIGHT | {"bf16": "nothing"}, False, "not a cause"),
        (("max_grad_norm", 1.0), False, "dict"),
    ],
)
def test_exercise_tutorial_question(answer, passed, words):
    result = exercises.evaluate("06.tutorial_question", answer)
    assert result.passed is passed and words in str(result)


def test_gradient_max_norm_really_is_not_a_field(tmp_path):
    """The notebook's claims about TrainingArguments and SFTConfig, on the installed versions."""
    from transformers import TrainingArguments
    from trl import SFTConfig

    with pytest.raises(TypeError, match="gradient_max_norm"):
        TrainingArguments(output_dir=str(tmp_path), gradient_max_norm=1.0)
    assert TrainingArguments(output_dir=str(tmp_path)).max_grad_norm == 1.0
    # TRL 1.16's SFTConfig defaults the deprecated `gradient_checkpointing` to True, which makes
    # transformers 5 warn; notebook 06 passes the new name (same value) and gets no warning
    with pytest.warns(FutureWarning, match="gradient_checkpointing"):
        SFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = SFTConfig(
            output_dir=str(tmp_path), use_cpu=True, bf16=False, activation_checkpointing=True
        )
    assert config.max_grad_norm == 1.0 and config.gradient_checkpointing is True


def test_the_scenario_fails_without_a_word_as_the_tutorial_run_did():
    """train() warns about a batch without labels; the scenario reproduces the silent run (finding
    the batch is notebook 06's lesson), so it silences that warning, and only that one."""
    from course_utils.train import NoLabelsWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", NoLabelsWarning)
        history = BadBatchScenario(steps=3, bad_step=2).train(precision="fp32")
    assert math.isnan(history[1].loss)


def test_the_progress_bar_of_an_emulated_bf16_run_says_bf16():
    from course_utils.nan.scenarios import EmulatedBf16Autocast, EmulatedFp16AutocastFp32Aware
    from course_utils.precision import active_emulation

    with EmulatedBf16Autocast():
        assert active_emulation().mode_name == "bf16-emulated"
    with EmulatedFp16AutocastFp32Aware():
        assert active_emulation().mode_name == "fp16-emulated"
