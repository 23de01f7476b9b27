"""The precision audit: what it records, its verdicts, and that it catches the Trainer's silent cases."""

import dataclasses

import pytest
import torch
from torch import nn

from course_utils.finetune.audit import AuditReport, PrecisionAudit, is_linear_like
from course_utils.models import shipped_models
from course_utils.precision import dtype_name


class TinyRegressor(nn.Module):
    """Two linear layers and an MSE loss: ``model(x=..., y=...)`` returns the scalar loss."""

    def __init__(self):
        super().__init__()
        self.up = nn.Linear(8, 16)
        self.down = nn.Linear(16, 1)

    def forward(self, x, y):
        return nn.functional.mse_loss(self.down(torch.relu(self.up(x))), y)


def _steps(model, n=3, autocast=None, scaler=None, optimizer=None):
    torch.manual_seed(0)
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=1e-2)
    for _ in range(n):
        x, y = torch.randn(4, 8), torch.randn(4, 1)
        with torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            loss = model(x=x, y=y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        optimizer.zero_grad()


def test_fp32_loop_is_recorded_as_fp32():
    model = TinyRegressor()
    with PrecisionAudit(model, expected="fp32") as audit:
        _steps(model)
    report = audit.report()
    assert report.steps == 3
    assert report.ran == "fp32" and report.ok
    assert report.autocast is None and report.autocast_dtypes == ()
    assert report.linear_output_dtypes == {"Linear": ("float32",)}
    assert report.loss_dtypes == ("float32",)
    assert report.verdict == "OK: ran fp32 (as requested: fp32)"


def test_bf16_autocast_is_seen_inside_the_layers_and_the_loss_stays_fp32():
    model = TinyRegressor()
    with PrecisionAudit(model, expected="bf16") as audit:
        _steps(model, autocast=torch.bfloat16)
    report = audit.report()
    assert report.ran == "bf16 autocast" and report.ok
    assert report.linear_output_dtypes == {"Linear": ("bfloat16",)}
    assert report.loss_dtypes == ("float32",)  # autocast runs mse_loss in fp32
    assert report.weight_dtypes["trainable"] == {"float32": 8 * 16 + 16 + 16 + 1}
    assert not report.scaler_present


def test_requested_fp16_but_ran_fp32_is_a_mismatch():
    model = TinyRegressor()
    with PrecisionAudit(model, expected="fp16") as audit:
        _steps(model)
    report = audit.report()
    assert report.ran == "fp32"
    assert not report.ok
    assert "fp16 was requested" in report.problems[0]
    assert report.verdict.startswith("MISMATCH: ran fp32;")


def test_fp16_autocast_without_a_scaler_is_flagged_and_with_one_is_ok():
    model = TinyRegressor()
    with PrecisionAudit(model, expected="fp16") as audit:
        _steps(model, n=2, autocast=torch.float16)
    assert audit.report().ran == "fp16 autocast"
    assert any("without a GradScaler" in p for p in audit.report().problems)

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    with PrecisionAudit(model, scaler=scaler, expected="fp16") as audit:
        _steps(model, n=2, autocast=torch.float16, scaler=scaler)
    report = audit.report()
    assert report.ran == "fp16 autocast + GradScaler" and report.ok
    assert report.scaler_steps == 2
    assert report.scaler_scale == scaler.get_scale()
    assert "scale" not in scaler.__dict__  # the instance wrappers are gone


def test_evaluation_under_no_grad_is_not_counted():
    model = TinyRegressor()
    with PrecisionAudit(model) as audit:
        _steps(model, n=2)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            model(x=torch.randn(2, 8), y=torch.randn(2, 1))
        model.eval()
        model(x=torch.randn(2, 8), y=torch.randn(2, 1))
    report = audit.report()
    assert report.steps == 2
    assert report.ran == "fp32"  # the bf16 evaluation left no trace


def test_16_bit_weights_without_autocast_are_named_and_not_called_mixed_precision():
    model = TinyRegressor().to(torch.bfloat16).requires_grad_(False)  # frozen, like a LoRA base
    with PrecisionAudit(model, expected="fp32") as audit:
        x = torch.randn(4, 8, dtype=torch.bfloat16, requires_grad=True)
        model(x=x, y=torch.randn(4, 1, dtype=torch.bfloat16)).backward()
    report = audit.report()
    assert report.ran == "bf16 weights (no autocast)"
    assert report.ok
    assert report.verdict.endswith("(the flags asked for fp32; the weights' dtype decided)")
    assert any("not mixed precision" in note for note in report.all_notes)


def test_hooks_are_removed_even_when_the_block_raises():
    model = TinyRegressor()
    with pytest.raises(RuntimeError, match="boom"), PrecisionAudit(model):
        raise RuntimeError("boom")
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_nothing_recorded_is_a_problem_not_a_pass():
    model = TinyRegressor()
    with PrecisionAudit(model) as audit:
        pass
    report = audit.report()
    assert report.ran == "nothing recorded" and not report.ok


def test_report_text_has_stable_labels():
    model = TinyRegressor()
    with PrecisionAudit(model, expected="bf16") as audit:
        _steps(model, n=1, autocast=torch.bfloat16)
    text = str(audit.report())
    for label in ("requested", "autocast", "linear outputs", "loss", "GradScaler", "verdict"):
        assert f"  {label}" in text
    assert "autocast      : bfloat16" in text


def test_bad_input_gets_clear_errors():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        PrecisionAudit("gpt2")
    with pytest.raises(ValueError, match="expected must be one of"):
        PrecisionAudit(TinyRegressor(), expected="fp8")
    with pytest.raises(TypeError, match="GradScaler"):
        PrecisionAudit(TinyRegressor(), scaler=object())
    with pytest.raises(TypeError, match="needs the model"), PrecisionAudit():
        pass


def test_a_bare_linear_layer_is_audited_too():
    layer = nn.Linear(4, 1)
    with (
        PrecisionAudit(layer, expected="bf16") as audit,
        torch.autocast("cpu", dtype=torch.bfloat16),
    ):
        layer(torch.randn(3, 4)).float().sum().backward()
    report = audit.report()
    assert report.linear_output_dtypes == {"Linear": ("bfloat16",)} and report.ok
    assert "weights       : trainable float32\n" in str(report)  # dtypes, not counts


def test_helpers():
    assert dtype_name(torch.bfloat16, long=True) == "bfloat16" and dtype_name(None) == "none"
    assert is_linear_like(nn.Linear(2, 2)) and not is_linear_like(nn.ReLU())
    assert isinstance(PrecisionAudit(TinyRegressor()).report(), AuditReport)


# ------------------------------------------------------------------ with the real Trainer

needs_model = pytest.mark.skipif(
    "tiny-gpt2" not in shipped_models(), reason="the shipped tiny-gpt2 is missing"
)


def _train_one_step(**config_kwargs):
    """One SFTTrainer + LoRA step on 4 examples with a PrecisionAudit; returns its report."""
    import tempfile

    from trl import SFTConfig

    from course_utils import finetune
    from course_utils.models import load_model_and_tokenizer

    torch.manual_seed(0)
    model, tokenizer = load_model_and_tokenizer("tiny-gpt2")
    settings = dict(
        output_dir=tempfile.mkdtemp(prefix="audit-test-"),
        max_steps=1,
        per_device_train_batch_size=2,
        max_length=32,
        report_to="none",
        disable_tqdm=True,
        save_strategy="no",
        activation_checkpointing=False,
    )
    settings.update(config_kwargs)
    audit = PrecisionAudit()
    trainer = finetune.sft_trainer(
        model,
        tokenizer,
        SFTConfig(**settings),
        finetune.load_finetune_dataset("train", limit=4),
        peft_config=finetune.lora_config(),
        callbacks=[audit],
    )
    trainer.train()
    return audit.report()


@needs_model
@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU behaviour")
def test_trainer_fp16_on_cpu_trains_fp32_and_is_flagged():
    report = _train_one_step(fp16=True, bf16=False, use_cpu=True)
    assert report.requested == "fp16"
    assert report.ran == "fp32"
    assert not report.scaler_present and report.scaler_steps == 0
    assert not report.ok and "trained in fp32" in report.problems[0]


@needs_model
def test_trl_turns_bf16_on_by_default_and_the_audit_says_so():
    report = _train_one_step(use_cpu=True)  # neither bf16 nor fp16 given
    assert report.requested == "bf16"
    assert report.ran == "bf16 autocast" and report.ok
    assert any("TRL's default" in note for note in report.notes)
    assert list(report.weight_dtypes["trainable"]) == ["float32"]  # LoRA adapters stay fp32
    assert "float32" in report.weight_dtypes["frozen"]  # bf16 autocast leaves weights fp32
    assert report.linear_output_dtypes["LoRA A/B"] == ("bfloat16",)


@needs_model
def test_trainer_fp32_is_ok():
    report = _train_one_step(bf16=False, fp16=False, use_cpu=True)
    assert report.ran == "fp32" and report.ok
    assert {"Conv1D", "LoRA A/B"} <= set(report.linear_output_dtypes)
    assert report.linear_output_dtypes["Conv1D"] == ("float32",)


@needs_model
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_trainer_fp16_on_cuda_uses_autocast_and_a_grad_scaler():
    report = _train_one_step(fp16=True, bf16=False)
    assert report.ran == "fp16 autocast + GradScaler" and report.ok
    assert report.scaler_steps == 1 and report.scaler_scale is not None


# ------------------------------------------------------------------ pure 16-bit training


def _full_finetune_steps(model, n=2):
    """``n`` AdamW steps of bf16 autocast on every weight (full fine-tuning), as ``bf16=True``
    does; returns nothing, the audit watches."""
    model.train()  # from_pretrained returns a model in eval mode; the audit counts training steps
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, 128, (2, 8), generator=torch.Generator().manual_seed(0))
    for _ in range(n):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def test_a_bf16_checkpoint_loaded_the_default_way_trains_pure_bf16_and_is_flagged(tmp_path):
    from tiny_models import tiny_gpt2
    from transformers import AutoModelForCausalLM

    tiny_gpt2().to(torch.bfloat16).save_pretrained(tmp_path)  # a checkpoint saved in bf16

    default = AutoModelForCausalLM.from_pretrained(tmp_path)  # transformers 5: dtype="auto"
    assert default.dtype is torch.bfloat16
    with PrecisionAudit(default, expected="bf16") as audit:
        _full_finetune_steps(default)
    report = audit.report()
    assert report.pure_16_bit == "bfloat16"
    assert report.ran == "pure bf16 (bf16 autocast, bf16 trainable weights)"
    assert not report.ok and "no fp32 master weights" in report.problems[0]
    assert "dtype=torch.float32" in report.problems[0] and report.verdict.startswith("MISMATCH")

    upcast = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32)
    assert upcast.dtype is torch.float32
    with PrecisionAudit(upcast, expected="bf16") as audit:
        _full_finetune_steps(upcast)
    report = audit.report()
    assert report.pure_16_bit is None and report.ran == "bf16 autocast" and report.ok


def test_frozen_16_bit_weights_with_fp32_adapters_are_not_pure_16_bit():
    model = TinyRegressor().to(torch.bfloat16)
    model.up.requires_grad_(False)  # frozen bf16, like a LoRA base
    model.down.float()  # trainable fp32, like LoRA adapters
    report = AuditReport(
        steps=1,
        requested="fp32",
        requested_from="expected=",
        autocast_dtypes=(),
        linear_output_dtypes={"Linear": ("bfloat16", "float32")},
        loss_dtypes=("float32",),
        scaler_present=False,
        scaler_steps=0,
        scaler_scale=None,
        skipped_steps=0,
        weight_dtypes={"trainable": {"float32": 17}, "frozen": {"bfloat16": 144}},
    )
    assert report.pure_16_bit is None and report.ok
    pure = dataclasses.replace(report, weight_dtypes={"trainable": {"bfloat16": 17}, "frozen": {}})
    assert pure.pure_16_bit == "bfloat16" and not pure.ok
    assert pure.ran == "pure bf16 (no autocast, bf16 trainable weights)"


def test_skipped_steps_are_counted_around_your_own_loop():
    model = TinyRegressor()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**60)  # overflows fp16 at once
    with PrecisionAudit(model, scaler=scaler, expected="fp16") as audit:
        _steps(model, n=3, autocast=torch.float16, scaler=scaler)
    report = audit.report()
    assert report.skipped_steps == 3 and report.scaler_scale == 2.0**57
    assert "skipped 3 optimizer step(s)" in str(report)
